"""The KME inside a user node's agent: ETSI GS QKD 014 key delivery fed by the relay network's end-to-end units.

The agent owns the wiring; this module keeps it in one place:

- **Units in.** The agent calls `unit_delivered` when a DATA frame's plain end-to-end unit reaches its destination
  (the node's DELIVER; role "slave") and `unit_acked` when the flow's source gets the end-to-end ACK (the node's
  ACKED; role "master"): the release points of seed 000 §III-C, so both KMEs hold the same bytes under the same
  name `(flow, seq)`, and the source owns the unit (see `etsi014/keystore.py`).
- **Handouts out.** After `enc_keys`, the key store calls `on_handout`; we split the handout message into frames of
  at most `wire.MAX_PAYLOAD` bytes (a handout of 128 keys is ~13 kB of JSON; each piece is itself a valid handout
  of some of the keys) and give each to the agent's `send_e2e_payload`, which routes a KEY_HANDOUT frame hop by hop
  to the slave KME's node (authenticated per hop like every frame; trusted relays). If the first hop is down or
  there is no route, we raise and the server answers 503 (the keys are burnt, never served).
- **Handouts in.** The agent hands a KEY_HANDOUT frame addressed to it to `handout_received`.

The API server runs in the agent's event loop (aiohttp), on the node's control address and the configured port,
with mutual TLS from the testbed PKI (`qkdbed up` creates it) unless the configuration says `insecure_http`.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Callable

from ..node import wire

HANDOUT_OVERHEAD = 2  # the 2-byte end-to-end target that precedes the JSON in a KEY_HANDOUT payload
BIND_RETRY_S = 30.0


class AgentKme:
    """One KME: key store, REST app and server, plus the agent-facing hooks."""

    def __init__(self, node: str, cfg: dict, name_index: Callable[[str], int], clock: Callable[[], float],
                 event_sink: Callable[[tuple], None],
                 send_e2e_payload: Callable[[str, bytes], None]):
        from .etsi014.api import make_app
        from .etsi014.keystore import KeyStore

        self.node = node
        self.cfg = cfg
        self.peers = set(cfg["sae_map"].values()) - {node}  # nodes that run a KME
        self.ks = KeyStore(node, cfg["sae_map"])
        self.ks.on_handout = self._on_handout
        self.app = make_app(self.ks, insecure_http=bool(cfg.get("insecure_http")), event_sink=event_sink,
                            name_index=name_index, clock=clock)
        self.send = send_e2e_payload
        self.runner = None
        self.c = {"units_full": 0, "handout_frames_tx": 0, "handout_frames_rx": 0,
                  "handout_frames_bad": 0, "handouts_failed": 0}

    @property
    def url(self) -> str:
        scheme = "http" if self.cfg.get("insecure_http") else "https"
        return f"{scheme}://{self.cfg['host']}:{self.cfg['port']}"

    async def start(self) -> None:
        from .etsi014.api import start_kme_server
        from .etsi014.pki import server_ssl_context

        ctx = None if self.cfg.get("insecure_http") else server_ssl_context(self.cfg["dir"], self.node)
        deadline = time.monotonic() + BIND_RETRY_S
        while True:  # a container's addresses may appear after it starts
            try:
                self.runner = await start_kme_server(self.app, self.cfg["host"], int(self.cfg["port"]), ctx)
                return
            except OSError as e:
                if time.monotonic() > deadline or e.errno not in (98, 99):
                    raise
                await asyncio.sleep(0.05)

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    # -- units ------------------------------------------------------------------------------------------------
    def unit_delivered(self, src: str, flow: int, seq: int, plain: bytes) -> None:
        """At the destination, on DELIVER: hold the unit for dec_keys (the source owns it)."""
        if src in self.peers:
            self.ks.add_unit(src, (flow, seq), plain, "slave")

    def unit_acked(self, dst: str, flow: int, seq: int, plain: bytes) -> None:
        """At the source, on ACKED: the destination has the unit; own it for enc_keys (unless the store is full:
        then the unit is left unused at both ends rather than growing the store without bound)."""
        if dst not in self.peers:
            return
        if self.ks.room_bytes(dst) < len(plain):
            self.c["units_full"] += 1
            return
        self.ks.add_unit(dst, (flow, seq), plain, "master")

    # -- handouts ---------------------------------------------------------------------------------------------
    def _on_handout(self, handout) -> None:
        try:
            for payload in split_handout(handout.to_message()):
                self.send(handout.slave_kme, payload)
                self.c["handout_frames_tx"] += 1
        except Exception:
            self.c["handouts_failed"] += 1
            raise

    def handout_received(self, sender: str, payload: bytes) -> None:
        self.c["handout_frames_rx"] += 1
        try:
            msg = json.loads(payload)
            if not isinstance(msg, dict) or msg.get("master_kme") != sender:
                raise ValueError(f"handout from node {sender} names master KME {msg.get('master_kme')!r}")
            self.ks.register_remote_handout(msg)
        except (ValueError, TypeError, AttributeError) as e:
            self.c["handout_frames_bad"] += 1
            print(f"kme {self.node}: handout from {sender} refused: {e}", flush=True)

    def stats(self) -> dict[str, float]:
        from .etsi014.api import stats

        out = stats(self.app)
        out.update({f"etsi014.agent.{k}": v for k, v in self.c.items()})
        for peer in sorted(self.peers):
            st = self.ks.room_bytes(peer)
            out[f"etsi014.{peer}.owned_bytes"] = self.ks.capacity_bytes - st
        return out


def split_handout(msg: dict, limit: int = wire.MAX_PAYLOAD - HANDOUT_OVERHEAD) -> list[bytes]:
    """The handout as one or more JSON payloads of at most `limit` bytes, each a handout of some of the keys."""
    keys = msg["keys"]
    whole = json.dumps(msg, separators=(",", ":")).encode()
    if len(whole) <= limit:
        return [whole]
    head = {k: v for k, v in msg.items() if k != "keys"}
    out, chunk = [], []
    for k in keys:
        trial = json.dumps({**head, "keys": chunk + [k]}, separators=(",", ":")).encode()
        if len(trial) > limit:
            if not chunk:
                raise ValueError(f"one key's handout entry exceeds {limit} bytes")
            out.append(json.dumps({**head, "keys": chunk}, separators=(",", ":")).encode())
            chunk = [k]
        else:
            chunk.append(k)
    if chunk:
        out.append(json.dumps({**head, "keys": chunk}, separators=(",", ":")).encode())
    return out
