"""Build a simulated network from a recipe and run it: the simulator's whole job, as one pure function.

`simulate(recipe)` takes a validated recipe (which includes its seed) and returns the event log; nothing else is
read or written, so sweeps can run jobs in worker processes and one seed gives a bit-identical log.

Random streams: every component draws from its own generator, derived from the recipe's seed and the component's
name (`link:R1-R2`, `flow:U1->U4`) through numpy's `SeedSequence`. Adding a flow therefore does not change the key
supply of any link, and results stay comparable across schemes.
"""

from __future__ import annotations

import time
import zlib
from dataclasses import dataclass

import numpy as np

from .. import keysupply, schemes
from ..node.node import Node
from ..recipe import Recipe
from ..record import EventLog, FlowInfo
from ..traffic import offer_times
from .engine import Simulator


def rng_for(seed: int, component: str) -> np.random.Generator:
    """An independent, reproducible random stream for one named component of a run."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(zlib.crc32(component.encode()),)))


@dataclass
class SimResult:
    log: EventLog
    events: int
    wall_s: float
    nodes: dict[str, Node]


def build(recipe: Recipe) -> tuple[Simulator, dict[str, Node]]:
    topo = recipe.topology
    next_hops = topo.next_hops(recipe.routing_metric)
    nodes: dict[str, Node] = {}
    for name in topo.nodes:
        neighbours = {nb: topo.link(name, nb).bandwidth_bps for nb in topo.neighbours(name)}
        scheme = schemes.create(recipe.scheme, recipe.scheme_params, recipe.profile)
        nodes[name] = Node(name, neighbours, next_hops[name], scheme, recipe.scheduler, recipe.ack)
    flows: list[FlowInfo] = []
    for fid, spec in enumerate(recipe.flows, start=1):
        offers = offer_times(spec, recipe.duration_s, rng_for(recipe.seed, f"flow:{spec.name}"))
        nodes[spec.src].add_flow(fid, spec.dst, offers.tolist(), spec.weight)
        for n in nodes.values():
            n.set_weight(fid, spec.weight)
        flows.append(FlowInfo(fid, spec.name, spec.src, spec.dst, offers, spec.weight, spec.group))
    log = EventLog(list(topo.nodes), [(l.a, l.b) for l in topo.links], flows, recipe.duration_s)
    delays = {}
    for l in topo.links:
        delays[(l.a, l.b)] = delays[(l.b, l.a)] = l.delay_s
    paths_cache: dict[str, dict[str, list[str]]] = {}

    def paths(src: str, dst: str) -> list[str]:
        if src not in paths_cache:
            paths_cache[src] = topo.shortest_paths_from(src, recipe.routing_metric)
        return paths_cache[src][dst]

    sim = Simulator(nodes, delays, paths, log, recipe.duration_s, recipe.sample_period_s, recipe.record_sends)
    for i, (link, spec, sched) in enumerate(link_schedules(recipe)):
        sim.add_supply(i, link.a, link.b, sched.times_s, sched.units)
    return sim, nodes


def link_schedules(recipe: Recipe) -> list[tuple]:
    """(link, supply spec, schedule) for every link, from the link's own model or the recipe's default, each
    drawn from the link's own random stream: the simulator and the emulator's injector use exactly these."""
    topo = recipe.topology
    out = []
    for i, link in enumerate(topo.links):
        raw = link.key_supply if link.key_supply is not None else recipe.key_supply
        where = topo.source if link.key_supply is not None else recipe.source
        path = f"links[{i}].key_supply" if link.key_supply is not None else "key_supply"
        spec = keysupply.parse_supply_spec(raw, where, path, recipe.base_dir)
        sched = keysupply.build_schedule(spec, link, recipe.duration_s, rng_for(recipe.seed, f"link:{link.name}"))
        out.append((link, spec, sched))
    return out


def simulate(recipe: Recipe) -> SimResult:
    t0 = time.perf_counter()
    sim, nodes = build(recipe)
    log = sim.run()
    log.finish()
    return SimResult(log, sim.events, time.perf_counter() - t0, nodes)
