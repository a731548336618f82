"""The controller's side of a testbed: health gate, start, watch, collect -- all over the agents' HTTP endpoints.

Nothing here depends on the backend: it only needs the control URLs recorded in the testbed's state, which is why
the same controller drives local processes, Mininet hosts and containers (and could drive pods).
"""

from __future__ import annotations

import io
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..errors import QkdbedError
from ..record import SCHEMA, EventLog, FlowInfo
from . import httpd

START_LEAD_S = 0.5  # the start instant is this far in the future when announced, so every agent gets it in time


def _pmap(fn, items):
    items = list(items)
    with ThreadPoolExecutor(max_workers=min(32, max(1, len(items)))) as ex:
        return list(ex.map(fn, items))


def health_all(urls: dict[str, str], timeout_s: float = 1.0) -> dict[str, dict | None]:
    names = list(urls)
    res = _pmap(lambda n: httpd.try_json(urls[n] + "/health", timeout_s), names)
    return dict(zip(names, res))


def wait_ready(urls: dict[str, str], injector_url: str, timeout_s: float = 30.0, alive=None) -> float:
    """Block until every agent reports `ready` (all its links and its injector connection up) and the injector
    sees every agent. Returns the seconds waited; raises QkdbedError naming the stragglers on timeout, or at once
    when `alive()` reports a process that died."""
    t0 = time.monotonic()
    pending = dict(urls)
    while True:
        h = health_all(pending, 0.5)
        pending = {n: u for n, u in pending.items() if not (h[n] and h[n].get("ready"))}
        if not pending:
            inj = httpd.try_json(injector_url + "/health", 0.5)
            if inj and inj.get("ready"):
                return time.monotonic() - t0
        if alive is not None:
            dead = [k for k, ok in alive().items() if not ok]
            if dead:
                raise QkdbedError(f"testbed did not come up: process(es) exited: {', '.join(sorted(dead))} "
                                  "(see `qkdbed logs NODE`)")
        if time.monotonic() - t0 > timeout_s:
            raise QkdbedError(f"testbed not ready after {timeout_s:g} s; waiting for: "
                              f"{', '.join(sorted(pending)) or 'the injector'}")
        time.sleep(0.02)


def start(urls: dict[str, str], injector_url: str, duration_s: float, drain_s: float,
          flows_by_node: dict[str, list[dict]], weights: dict[int, float]) -> float:
    """Announce one start instant (wall clock) to every agent and the injector; returns it (unix seconds)."""
    start_unix = time.time() + START_LEAD_S
    base = {"start_unix": start_unix, "duration_s": duration_s, "drain_s": drain_s,
            "weights": {str(k): v for k, v in weights.items()}}

    def post(n: str) -> None:
        httpd.request(urls[n] + "/start", "POST", {**base, "flows": flows_by_node.get(n, [])}, timeout_s=5)

    _pmap(post, urls)
    httpd.request(injector_url + "/start", "POST", base, timeout_s=5)
    return start_unix


def watch(urls: dict[str, str], until_unix: float, poll_s: float = 1.0) -> list[dict]:
    """Poll health until `until_unix`; return one failure record per agent that stopped answering."""
    failures: dict[str, dict] = {}
    while True:
        now = time.time()
        if now >= until_unix:
            break
        time.sleep(min(poll_s, until_unix - now))
        for n, h in health_all({k: u for k, u in urls.items() if k not in failures}, 0.5).items():
            if h is None:
                failures[n] = {"node": n, "detected_unix": time.time(), "what": "control endpoint unreachable"}
    return list(failures.values())


def wait_finished(urls: dict[str, str], skip: set[str], timeout_s: float = 10.0) -> None:
    t0 = time.monotonic()
    pending = {n: u for n, u in urls.items() if n not in skip}
    while pending and time.monotonic() - t0 < timeout_s:
        h = health_all(pending, 1.0)
        pending = {n: u for n, u in pending.items() if h[n] is not None and not h[n].get("finished")}
        if pending:
            time.sleep(0.05)


def collect(urls: dict[str, str], skip: set[str]) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, dict]]:
    """Each reachable agent's event-log part (npz) and final /stats."""

    def one(n: str):
        if n in skip:
            return None, None
        try:
            raw = httpd.request(urls[n] + "/events", timeout_s=30)
            data = np.load(io.BytesIO(raw))
            part = {k: data[k] for k in SCHEMA}
            stats = httpd.get_json(urls[n] + "/stats", 5)
        except (OSError, ValueError):
            return None, None
        return part, stats

    res = dict(zip(urls, _pmap(one, urls)))
    return {n: r[0] for n, r in res.items() if r[0] is not None}, {n: r[1] for n, r in res.items() if r[1]}


def merge(parts: dict[str, dict[str, np.ndarray]], node_names: list[str], links: list[tuple[str, str]],
          flows: list[FlowInfo], duration_s: float) -> EventLog:
    """One event log from the agents' parts: tables concatenated and ordered by time (stable)."""
    log = EventLog(node_names, links, flows, duration_s)
    for k, cols in SCHEMA.items():
        arrs = [p[k] for p in parts.values() if len(p[k])]
        if arrs:
            t = np.concatenate(arrs)
            log.tables[k] = t[np.argsort(t["t_s"], kind="stable")]
        else:
            log.tables[k] = np.zeros(0, dtype=np.dtype(cols))
    return log.finish()


def shutdown(urls: dict[str, str]) -> None:
    def post(n: str) -> None:
        try:
            httpd.request(urls[n] + "/shutdown", "POST", timeout_s=1)
        except OSError:
            pass

    _pmap(post, urls)
