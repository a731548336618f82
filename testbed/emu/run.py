"""Run a recipe on an emulated testbed: up, health gate, start, watch, collect, down -- one event log out.

The testbed replays exactly what the simulator would feed its nodes: the same routes, schemes and per-link
key-supply schedules (seed streams `link:<name>`), and the same offer times per flow (`flow:<name>`), against one
clock (the start instant every agent and the injector share). After `duration_s` no more keys or offers arrive;
the agents keep running for `drain_s` so that frames already on the wire land (the simulator has no frames in
flight at its end because its hops take 0.1 ms; a real hop takes longer). The merged log has the simulator's
format, so `metrics`, `plot` and `report` work on it unchanged; `emu.json` in the run folder says how the run went
(bring-up and teardown seconds, failures, every agent's final counters).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from ..recipe import Recipe
from ..record import FlowInfo, write_json_atomic
from ..sim.run import rng_for
from ..traffic import offer_times
from . import control
from .backends import get as get_backend
from .lab import lab_from_recipe
from .state import State

DRAIN_S = 1.0


def testbed_name(recipe: Recipe) -> str:
    stem = "".join(ch if ch.isalnum() else "-" for ch in recipe.name)[:16].strip("-") or "run"
    return f"{stem}-{os.getpid() % 100000}-{int(time.time() * 1000) % 100000}"


def run_emulated(recipe: Recipe, backend: str, run_dir: Path, name: str | None = None,
                 drain_s: float = DRAIN_S, on_started=None) -> "EventLog":  # noqa: F821
    """Bring a testbed up for `recipe` on `backend`, run it, and return the merged event log.

    `on_started(state, start_unix)` (optional) is called once the run has begun (tests use it to inject faults).
    """
    name = name or testbed_name(recipe)
    lab = lab_from_recipe(recipe, name)
    flows, by_node, weights = [], {}, {}
    for fid, spec in enumerate(recipe.flows, start=1):
        offers = offer_times(spec, recipe.duration_s, rng_for(recipe.seed, f"flow:{spec.name}"))
        flows.append(FlowInfo(fid, spec.name, spec.src, spec.dst, offers, spec.weight, spec.group))
        by_node.setdefault(spec.src, []).append({"fid": fid, "dst": spec.dst, "weight": spec.weight,
                                                  "offers": offers.tolist()})
        weights[fid] = spec.weight
    state = State(name)
    state.create(backend)
    be = get_backend(backend, state)
    info: dict = {"backend": backend, "testbed": name, "drain_s": drain_s, "failures": []}
    t0 = time.monotonic()
    try:
        be.up(lab)
        urls = {n: v["control_url"] for n, v in state.data["nodes"].items()}
        inj = state.data["injector_url"]
        control.wait_ready(urls, inj, alive=lambda: {k: v["alive"] for k, v in be.status().items()})
        info["bring_up_s"] = time.monotonic() - t0
        start_unix = control.start(urls, inj, recipe.duration_s, drain_s, by_node, weights)
        if on_started is not None:
            on_started(state, start_unix)
        failures = control.watch(urls, start_unix + recipe.duration_s + drain_s)
        down = {f["node"] for f in failures}
        control.wait_finished(urls, down)
        parts, stats = control.collect(urls, down)
        for n in urls:
            if n not in parts and n not in down:
                failures.append({"node": n, "detected_unix": time.time(), "what": "event log not collected"})
        for f in failures:
            f["at_s"] = f.pop("detected_unix") - start_unix
            f["links_down_seen_by"] = {m: s.get(f"peer_{f['node']}_up") == 0 for m, s in stats.items()
                                       if f"peer_{f['node']}_up" in s}
        info["failures"] = failures
        info["agent_stats"] = stats
        log = control.merge(parts, lab.node_names, [(l.a, l.b) for l in lab.links], flows, recipe.duration_s)
        control.shutdown(urls)
        control.shutdown({"injector": inj})
        return log
    finally:
        t1 = time.monotonic()
        run_dir.mkdir(parents=True, exist_ok=True)
        try:
            be.down()  # if this raises, the state stays so that `qkdbed down NAME` can finish the job
            state.remove()
        finally:
            info["teardown_s"] = time.monotonic() - t1
            write_json_atomic(run_dir / "emu.json", info)
