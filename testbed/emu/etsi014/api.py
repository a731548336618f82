"""The ETSI GS QKD 014 V1.1.1 REST server of one KME, as an aiohttp application the node agent runs in its loop.

    app = make_app(keystore)                      # routes under /api/v1/keys/
    runner = await start_kme_server(app, host, port, server_ssl_context(testbed_dir, node))
    ...
    await runner.cleanup()

Methods (the path names the *slave* SAE for status and enc_keys, the *master* SAE for dec_keys):

| method | path                               | body (POST)  | answer        |
|--------|------------------------------------|--------------|---------------|
| GET/POST | /api/v1/keys/{slave_SAE_ID}/status   | (ignored)    | Status        |
| GET/POST | /api/v1/keys/{slave_SAE_ID}/enc_keys | Key request  | Key container |
| GET/POST | /api/v1/keys/{master_SAE_ID}/dec_keys| Key IDs      | Key container |

Every refusal is an Error body `{"message": …, "details": [...]}` with 400 (bad request), 401 (caller not ours,
or keys not issued to it) or 503 (not enough keys, slave KME unreachable, or a fault in this server); other paths
get 404/405, also with an Error body. The caller's SAE ID is the subject CN of its TLS client certificate; in the
explicit insecure-HTTP mode (quick experiments only, never the default) it is the `X-SAE-ID` header.

The server keeps no key state of its own: every decision is the key store's, so a refused request changes nothing.
"""

from __future__ import annotations

import asyncio
import base64
import inspect
import json
import logging
import ssl
import time
from collections import deque
from typing import Any, Callable

from aiohttp import web

from .keystore import BadRequest, KeyStore, KeyStoreError, Unauthorized, Unavailable, UnknownKeyIds

log = logging.getLogger(__name__)

API_PREFIX = "/api/v1/keys"
#: Header naming the caller in insecure-HTTP mode (there is no certificate to read it from).
INSECURE_SAE_HEADER = "X-SAE-ID"
#: How long dec_keys waits for a handout still travelling from the master KME before calling a key_ID unknown.
#: An application sends the key_IDs to its peer right after enc_keys, typically faster than the relay network
#: delivers the handout; a second covers several hops of the emulated network.
DEFAULT_DEC_WAIT_S = 1.0
#: Latency samples kept per SAE pair for the p50/p99 in stats() (a sliding window, bounded memory).
LATENCY_WINDOW = 2048

# --- event rows for the run's event log ----------------------------------------------------------------------
#: Method codes in the `keyservice` table.
METHOD_STATUS, METHOD_ENC_KEYS, METHOD_DEC_KEYS, METHOD_OTHER = 0, 1, 2, 3
METHOD_CODES = {"status": METHOD_STATUS, "enc_keys": METHOD_ENC_KEYS, "dec_keys": METHOD_DEC_KEYS}
#: One row per API request; `kme`, `master`, `slave` are indices from the agent's `name_index` (node names in the
#: testbed, -1 when unknown, e.g. a caller without a valid identity); `status` is the HTTP code.
KEYSERVICE_SCHEMA: list[tuple[str, str]] = [
    ("t_s", "f8"), ("kme", "i4"), ("master", "i4"), ("slave", "i4"), ("method", "i4"), ("status", "i4"),
    ("keys_requested", "i4"), ("keys_served", "i4"), ("size_bits", "i4"), ("latency_s", "f8"),
]

KEYSTORE_KEY: web.AppKey[KeyStore] = web.AppKey("etsi014_keystore", KeyStore)
STATS_KEY: web.AppKey["Etsi014Stats"] = web.AppKey("etsi014_stats", object)  # type: ignore[arg-type]
_STATE_KEY: web.AppKey["_ServerState"] = web.AppKey("etsi014_state", object)  # type: ignore[arg-type]
#: Per-request bookkeeping (caller, pair, counts) filled by the handlers, read by the middleware.
_INFO_KEY: Any = web.RequestKey("etsi014_info", dict) if hasattr(web, "RequestKey") else "etsi014_info"


class Etsi014Stats:
    """Per SAE pair: requests, keys requested/served, refusals by status, service latency.

    Latency is measured in the server from the handler's start to its answer (TLS and HTTP parsing excluded), so
    it shows the KME's own cost, not the client's."""

    _COUNTERS = ("status_requests", "enc_requests", "enc_keys_requested", "enc_keys_served", "dec_requests",
                 "dec_keys_requested", "dec_keys_served", "refused", "refused_400", "refused_401", "refused_503",
                 "latency_sum_s", "latency_max_s")

    def __init__(self) -> None:
        self._pairs: dict[tuple[str, str], dict[str, float]] = {}
        self._lat: dict[tuple[str, str], deque] = {}

    def record(self, method: str, master: str, slave: str, status: int, requested: int, served: int,
               latency_s: float) -> None:
        pair = (master or "?", slave or "?")
        c = self._pairs.get(pair)
        if c is None:
            c = self._pairs[pair] = dict.fromkeys(self._COUNTERS, 0)
            self._lat[pair] = deque(maxlen=LATENCY_WINDOW)
        if method == "status":
            c["status_requests"] += 1
        elif method == "enc_keys":
            c["enc_requests"] += 1
            c["enc_keys_requested"] += requested
            c["enc_keys_served"] += served
        elif method == "dec_keys":
            c["dec_requests"] += 1
            c["dec_keys_requested"] += requested
            c["dec_keys_served"] += served
        if status != 200:
            c["refused"] += 1
            if status in (400, 401, 503):
                c[f"refused_{status}"] += 1
        c["latency_sum_s"] += latency_s
        c["latency_max_s"] = max(c["latency_max_s"], latency_s)
        self._lat[pair].append(latency_s)

    def stats(self) -> dict[str, float]:
        """Flat name → number map: `etsi014.<master>.<slave>.<counter>` plus latency_p50_s / latency_p99_s over
        the last LATENCY_WINDOW requests of the pair."""
        out: dict[str, float] = {}
        for (m, s), c in self._pairs.items():
            base = f"etsi014.{m}.{s}."
            for k, v in c.items():
                out[base + k] = v
            lat = sorted(self._lat[(m, s)])
            if lat:
                out[base + "latency_p50_s"] = lat[len(lat) // 2]
                out[base + "latency_p99_s"] = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
        return out


class _ServerState:
    """Per-app mutable state: the identity mode, the wake-up of waiting dec_keys, the event sink."""

    def __init__(self, insecure_http: bool, dec_wait_s: float, event_sink, name_index, clock):
        self.insecure_http = insecure_http
        self.dec_wait_s = dec_wait_s
        self.event_sink = event_sink
        self.name_index = name_index
        self.clock = clock
        self.loop: asyncio.AbstractEventLoop | None = None
        self.changed: asyncio.Event | None = None  # created on startup, inside the loop
        self.listener: Callable[[], None] | None = None

    def wake(self) -> None:
        """Called by the key store (from any thread) when handed-out keys arrive."""
        if self.loop is not None and self.changed is not None:
            self.loop.call_soon_threadsafe(self._set)

    def _set(self) -> None:
        ev, self.changed = self.changed, asyncio.Event()
        ev.set()


# --- helpers -------------------------------------------------------------------------------------------------
def error_body(message: str, details: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The standard's Error object."""
    body: dict[str, Any] = {"message": message}
    if details:
        body["details"] = details
    return body


def _error(status: int, message: str, details: list[dict[str, Any]] | None = None) -> web.Response:
    return web.json_response(error_body(message, details), status=status)


def _caller(request: web.Request, state: _ServerState) -> str:
    """The calling SAE's ID: its client certificate's subject CN (or the header in insecure-HTTP mode)."""
    if state.insecure_http:
        sae = request.headers.get(INSECURE_SAE_HEADER, "")
        if not sae:
            raise Unauthorized(f"insecure-HTTP mode: name the calling SAE in the {INSECURE_SAE_HEADER} header")
        return sae
    transport = request.transport
    cert = transport.get_extra_info("peercert") if transport is not None else None
    if not cert:
        raise Unauthorized("no client certificate: the SAE must authenticate with mutual TLS")
    for rdn in cert.get("subject", ()):
        for name, value in rdn:
            if name == "commonName":
                return value
    raise Unauthorized("client certificate has no subject CN naming the SAE")


async def _json_body(request: web.Request) -> dict[str, Any]:
    """The request body as a JSON object; an empty body means "all defaults"."""
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise BadRequest("malformed JSON body", [{"error": str(e)}]) from None
    if not isinstance(body, dict):
        raise BadRequest("JSON body must be an object")
    return body


def _query_int(request: web.Request, name: str) -> int | None:
    v = request.query.get(name)
    if v is None:
        return None
    if not v.isdigit() or len(v) > 9:
        raise BadRequest(f"query parameter {name} must be a non-negative integer", [{name: v}])
    return int(v)


def _check_mandatory_extensions(ext: Any) -> None:
    """extension_mandatory: the KME must honour each or refuse the request. This KME supports none, so any
    extension named there is refused with 400; an empty array (or empty objects) is accepted."""
    if ext is None:
        return
    items = ext if isinstance(ext, list) else [ext]
    names = []
    for item in items:
        if not isinstance(item, dict):
            raise BadRequest("extension_mandatory must be an array of objects")
        names.extend(item.keys())
    if names:
        raise BadRequest("unsupported mandatory extension", [{"extension_mandatory": n} for n in names])


def _container(keys: list[tuple[str, bytes]]) -> dict[str, Any]:
    """The standard's Key container."""
    return {"keys": [{"key_ID": kid, "key": base64.b64encode(data).decode("ascii")} for kid, data in keys]}


# --- handlers ------------------------------------------------------------------------------------------------
async def _status(request: web.Request) -> web.Response:
    state, ks, info = request.app[_STATE_KEY], request.app[KEYSTORE_KEY], request[_INFO_KEY]
    info["master"] = caller = _caller(request, state)
    info["slave"] = slave = request.match_info["sae_id"]
    return web.json_response(ks.status(caller, slave))


async def _enc_keys(request: web.Request) -> web.Response:
    state, ks, info = request.app[_STATE_KEY], request.app[KEYSTORE_KEY], request[_INFO_KEY]
    info["master"] = caller = _caller(request, state)
    info["slave"] = slave = request.match_info["sae_id"]
    if request.method == "POST":
        body = await _json_body(request)
        number, size = body.get("number"), body.get("size")
        extra = body.get("additional_slave_SAE_IDs")
        if extra is not None and (not isinstance(extra, list) or not all(isinstance(s, str) for s in extra)):
            raise BadRequest("additional_slave_SAE_IDs must be an array of strings")
        _check_mandatory_extensions(body.get("extension_mandatory"))
        # extension_optional: the standard lets a KME ignore these, and this one does.
    else:
        number, size, extra = _query_int(request, "number"), _query_int(request, "size"), None
    info["requested"] = number if isinstance(number, int) and not isinstance(number, bool) else 1
    info["size_bits"] = size if isinstance(size, int) and not isinstance(size, bool) else ks.key_size_bits
    keys, handout = ks.take_enc_keys(caller, slave, number, size, extra)
    if ks.on_handout is not None:
        try:
            result = ks.on_handout(handout)
            if inspect.isawaitable(result):
                await result
        except Exception as e:  # the keys are burnt: never served to anyone, which is safe
            log.warning("etsi014: handout to %s failed: %r", handout.slave_kme, e)
            raise Unavailable("the slave SAE's KME could not be informed; keys discarded",
                              [{"target_KME_ID": handout.slave_kme}]) from None
    info["served"] = len(keys)
    return web.json_response(_container(keys))


async def _dec_keys(request: web.Request) -> web.Response:
    state, ks, info = request.app[_STATE_KEY], request.app[KEYSTORE_KEY], request[_INFO_KEY]
    info["slave"] = caller = _caller(request, state)
    info["master"] = master = request.match_info["sae_id"]
    if request.method == "POST":
        body = await _json_body(request)
        items = body.get("key_IDs")
        if not isinstance(items, list) or not items:
            raise BadRequest("key_IDs must be a non-empty array of {\"key_ID\": …} objects")
        key_ids = []
        for it in items:
            if not isinstance(it, dict) or not isinstance(it.get("key_ID"), str):
                raise BadRequest("each key_IDs entry must be an object with a string key_ID")
            key_ids.append(it["key_ID"])
    else:
        key_ids = request.query.getall("key_ID", [])
        if not key_ids:
            raise BadRequest("query parameter key_ID is required")
    info["requested"] = len(key_ids)
    deadline = state.clock() + state.dec_wait_s
    while True:
        # Take the current wake-up event *before* trying, so a handout landing between the try and the wait
        # sets the event we then wait on instead of being missed.
        changed = state.changed
        try:
            keys = ks.take_dec_keys(master, caller, key_ids)
            break
        except UnknownKeyIds:
            left = deadline - state.clock()
            if left <= 0 or changed is None:
                raise
            try:
                await asyncio.wait_for(changed.wait(), left)
            except asyncio.TimeoutError:
                pass
    info["served"] = len(keys)
    return web.json_response(_container(keys))


def _method_of(path: str) -> str:
    tail = path.rsplit("/", 1)[-1]
    return tail if tail in METHOD_CODES else "other"


@web.middleware
async def _service_middleware(request: web.Request, handler) -> web.StreamResponse:
    """Turns every refusal into the standard's Error body and records statistics and an event row."""
    state: _ServerState = request.app[_STATE_KEY]
    t_start = state.clock()
    info = request[_INFO_KEY] = {"master": "", "slave": "", "requested": 0, "served": 0, "size_bits": 0}
    try:
        resp = await handler(request)
    except KeyStoreError as e:
        resp = _error(e.status, e.message, e.details)
    except web.HTTPException as e:  # router: unknown path (404), wrong method (405)
        resp = _error(e.status, e.reason or "error")
    except Exception:
        log.exception("etsi014: unexpected fault while serving %s", request.path)
        resp = _error(503, "internal error in the KME")
    latency_s = state.clock() - t_start
    method = _method_of(request.path)
    request.app[STATS_KEY].record(method, info["master"], info["slave"], resp.status, info["requested"],
                                  info["served"], latency_s)
    if state.event_sink is not None:
        idx = state.name_index
        state.event_sink((t_start, idx(request.app[KEYSTORE_KEY].kme_id), idx(info["master"]),
                          idx(info["slave"]), METHOD_CODES.get(method, METHOD_OTHER), resp.status,
                          info["requested"], info["served"], info["size_bits"], latency_s))
    return resp


# --- public API ----------------------------------------------------------------------------------------------
def make_app(keystore: KeyStore, kme_id: str | None = None, sae_map: dict[str, str] | None = None, *,
             insecure_http: bool = False, dec_wait_s: float = DEFAULT_DEC_WAIT_S,
             event_sink: Callable[[tuple], None] | None = None, name_index: Callable[[str], int] | None = None,
             clock: Callable[[], float] | None = None) -> web.Application:
    """The KME's aiohttp application.

    `kme_id` and `sae_map` default to the key store's and, when given, must agree with it (one source of truth).
    `event_sink(row)` receives one KEYSERVICE_SCHEMA tuple per request (the agent appends it to the event log's
    `keyservice` table); `name_index(name) → int` maps KME/SAE names to the log's indices (default: position in
    the sorted names of `sae_map`, -1 if unknown). `clock()` is the agent's run clock in seconds (the rows' `t_s`);
    by default, seconds since this call. `insecure_http=True` takes the caller from the `X-SAE-ID` header: experiments only.
    """
    if kme_id is not None and kme_id != keystore.kme_id:
        raise ValueError(f"kme_id {kme_id!r} differs from the key store's {keystore.kme_id!r}")
    if sae_map is not None and dict(sae_map) != keystore.sae_map:
        raise ValueError("sae_map differs from the key store's")
    if name_index is None:
        names = sorted(set(keystore.sae_map) | set(keystore.sae_map.values()))
        table = {n: i for i, n in enumerate(names)}

        def name_index(name: str) -> int:
            return table.get(name, -1)

    if clock is None:
        t0 = time.monotonic()

        def clock() -> float:
            return time.monotonic() - t0

    app = web.Application(middlewares=[_service_middleware], client_max_size=64 * 1024)
    state = _ServerState(insecure_http, dec_wait_s, event_sink, name_index, clock)
    app[KEYSTORE_KEY] = keystore
    app[STATS_KEY] = Etsi014Stats()
    app[_STATE_KEY] = state
    for method in ("GET", "POST"):
        app.router.add_route(method, API_PREFIX + "/{sae_id}/status", _status)
        app.router.add_route(method, API_PREFIX + "/{sae_id}/enc_keys", _enc_keys)
        app.router.add_route(method, API_PREFIX + "/{sae_id}/dec_keys", _dec_keys)

    async def _startup(app: web.Application) -> None:
        state.loop = asyncio.get_running_loop()
        state.changed = asyncio.Event()
        state.listener = state.wake
        keystore.add_listener(state.listener)

    async def _cleanup(app: web.Application) -> None:
        if state.listener is not None:
            keystore.remove_listener(state.listener)
        state.loop = None

    app.on_startup.append(_startup)
    app.on_cleanup.append(_cleanup)
    return app


def stats(app: web.Application) -> dict[str, float]:
    """The app's flat statistics map, merged with the key store's counters (prefixed `etsi014.store.`)."""
    out = app[STATS_KEY].stats()
    out.update({f"etsi014.store.{k}": v for k, v in app[KEYSTORE_KEY].counters().items()})
    return out


async def start_kme_server(app: web.Application, host: str, port: int,
                           ssl_context: ssl.SSLContext | None) -> web.AppRunner:
    """Serve `app` on host:port inside the running loop; returns the runner (stop with `await runner.cleanup()`).

    mTLS is required unless the app was made with `insecure_http=True`: a missing TLS context is refused rather
    than silently serving keys over plain HTTP. Port 0 picks a free port; read it with `bound_port(runner)`."""
    insecure = app[_STATE_KEY].insecure_http
    if ssl_context is None and not insecure:
        raise ValueError("an ssl_context (mutual TLS) is required; pass insecure_http=True to make_app to opt out")
    if ssl_context is not None and insecure:
        raise ValueError("insecure_http app given an ssl_context: choose one mode")
    if ssl_context is not None and ssl_context.verify_mode != ssl.CERT_REQUIRED:
        raise ValueError("the server ssl_context must require client certificates (ssl.CERT_REQUIRED)")
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=ssl_context, backlog=512)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner


def bound_port(runner: web.AppRunner) -> int:
    """The TCP port the runner listens on (useful after port 0)."""
    return runner.addresses[0][1]
