"""The lab model of an emulated testbed: which agents exist, who links to whom, and every agent's configuration.

Kathará's split, without its weight: this module knows nodes, links, routes, schemes and key-supply schedules, and
nothing about processes, namespaces or containers; a backend (`backends/`) only supplies an `AddressPlan` (where
each agent listens and how it reaches its neighbours, its injector and its controller) and runs the processes.

Agents learn everything from their configuration file -- own addresses, neighbours' addresses, the injector
endpoint -- and never assume loopback, so the same agent runs as a local process, in a Mininet host, in a container
or in a Kubernetes pod.
"""

from __future__ import annotations

import json
import os
import secrets
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import keysupply
from ..network import Topology
from ..recipe import Recipe

PEER_PORT = 7400  # agent <-> agent frames
CONTROL_PORT = 7401  # agent control endpoint (HTTP)
INJECTOR_PORT = 7402  # injector -> agents key material
INJECTOR_CONTROL_PORT = 7403  # injector control endpoint (HTTP)
KME_PORT = 8443  # a user node's ETSI GS QKD 014 API (HTTPS, mutual TLS), on the node's control address
DEFAULT_UP_DURATION_S = 3600.0  # key-supply horizon of a testbed brought up without a recipe


@dataclass
class LinkSpec:
    index: int
    a: str
    b: str
    bandwidth_bps: float
    delay_s: float

    @property
    def name(self) -> str:
        return f"{self.a}-{self.b}"


@dataclass
class AddressPlan:
    """Where everything listens, chosen by a backend. Hosts are IPv4 literals (no name resolution needed)."""

    link_addr: dict[tuple[str, str], str]  # (node, peer) -> node's address on its link to peer
    control_host: dict[str, str]  # node -> address of its control endpoint (reachable from the controller)
    injector_listen: list[str]  # addresses the injector binds
    injector_for: dict[str, str]  # node -> injector address as that node reaches it
    injector_control: str  # injector control address, reachable from the controller
    shaped_links: bool = False  # the backend shapes link bandwidth itself (agents then skip serialisation delay)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Lab:
    name: str
    topology: Topology
    node_names: list[str]
    links: list[LinkSpec]
    next_hops: dict[str, dict[str, str]]
    scheme: dict[str, Any]
    scheduler: str
    ack: bool
    seed: int
    duration_s: float
    sample_period_s: float
    record_sends: bool
    schedules: list[tuple[list[float], list[int]]]  # per link: supply times (s) and units per end
    unit_bytes: list[int]
    kme: bool = True  # user nodes run an ETSI GS QKD 014 KME (docs/etsi014.md)
    insecure_http: bool = False  # KMEs serve plain HTTP (explicit opt-in, experiments only)

    def kme_nodes(self) -> list[str]:
        """The nodes that run a KME: every user node (SAE ID = node name)."""
        if not self.kme:
            return []
        return [n for n in self.node_names if self.topology.nodes[n].role == "user"]

    def neighbours(self, node: str) -> list[str]:
        return self.topology.neighbours(node)

    def link(self, a: str, b: str) -> LinkSpec:
        for l in self.links:
            if {l.a, l.b} == {a, b}:
                return l
        raise KeyError((a, b))


def lab_from_recipe(recipe: Recipe, name: str) -> Lab:
    """The lab for a recipe: same routes, schemes and key-supply schedules (same seeds) as the simulator."""
    from ..sim.run import link_schedules

    topo = recipe.topology
    schedules, unit_bytes = [], []
    for link, spec, sched in link_schedules(recipe):
        schedules.append((sched.times_s.tolist(), [int(u) for u in sched.units.tolist()]))
        unit_bytes.append(spec.unit_bytes)
    return Lab(
        name=name, topology=topo, node_names=list(topo.nodes),
        links=[LinkSpec(i, l.a, l.b, l.bandwidth_bps, l.delay_s) for i, l in enumerate(topo.links)],
        next_hops=topo.next_hops(recipe.routing_metric),
        scheme={"name": recipe.scheme, "params": recipe.scheme_params, "profile": recipe.profile},
        scheduler=recipe.scheduler, ack=recipe.ack, seed=recipe.seed, duration_s=recipe.duration_s,
        sample_period_s=recipe.sample_period_s, record_sends=recipe.record_sends, schedules=schedules,
        unit_bytes=unit_bytes)


def lab_from_topology(topo: Topology, name: str, seed: int = 1, scheme: str = "ondemand",
                      duration_s: float = DEFAULT_UP_DURATION_S) -> Lab:
    """A lab for `qkdbed up TOPOLOGY`: default key supply (synthetic, scale 10), no flows."""
    from ..sim.run import rng_for

    schedules = []
    for link in topo.links:
        spec = keysupply.parse_supply_spec(link.key_supply, topo.source)
        sched = keysupply.build_schedule(spec, link, duration_s, rng_for(seed, f"link:{link.name}"))
        schedules.append((sched.times_s.tolist(), [int(u) for u in sched.units.tolist()]))
    return Lab(
        name=name, topology=topo, node_names=list(topo.nodes),
        links=[LinkSpec(i, l.a, l.b, l.bandwidth_bps, l.delay_s) for i, l in enumerate(topo.links)],
        next_hops=topo.next_hops("hops"), scheme={"name": scheme, "params": {}, "profile": "paper"},
        scheduler="round-robin", ack=True, seed=seed, duration_s=duration_s, sample_period_s=0.5,
        record_sends=True, schedules=schedules, unit_bytes=[keysupply.UNIT_BYTES] * len(topo.links))


def name_octet(name: str, lo: int, hi: int) -> int:
    """A number in [lo, hi] derived from the testbed name, so concurrent testbeds get different subnets."""
    return lo + zlib.crc32(name.encode()) % (hi - lo + 1)


def kme_url(lab: Lab, plan: AddressPlan, node: str) -> str:
    return f"{'http' if lab.insecure_http else 'https'}://{plan.control_host[node]}:{KME_PORT}"


def agent_configs(lab: Lab, plan: AddressPlan, kme_dir: str | None = None) -> tuple[dict[str, dict], dict]:
    """Per-node agent configurations and the injector's, with fresh random link secrets. `kme_dir` is the testbed
    folder holding the PKI (`pki/`) the KMEs serve from; without it no KME is configured."""
    psk = {l.index: secrets.token_hex(32) for l in lab.links}
    e2e_secret = secrets.token_hex(32)
    links_meta = [[l.a, l.b] for l in lab.links]
    configs: dict[str, dict] = {}
    for idx, n in enumerate(lab.node_names):
        neigh = {}
        for peer in lab.neighbours(n):
            l = lab.link(n, peer)
            neigh[peer] = {
                "host": plan.link_addr[(peer, n)], "port": PEER_PORT, "link": l.name, "link_index": l.index,
                "i_am_a": l.a == n, "bandwidth_bps": l.bandwidth_bps, "delay_s": l.delay_s,
                "psk": psk[l.index], "dial": idx < lab.node_names.index(peer),
                "unit_bytes": lab.unit_bytes[l.index],
            }
        listen = sorted({plan.link_addr[(n, p)] for p in lab.neighbours(n)} | {plan.control_host[n]})
        configs[n] = {
            "testbed": lab.name, "node": n, "node_names": lab.node_names, "links": links_meta,
            "listen": listen, "peer_port": PEER_PORT,
            "control": {"host": plan.control_host[n], "port": CONTROL_PORT},
            "injector": {"host": plan.injector_for[n], "port": INJECTOR_PORT},
            "neighbours": neigh, "next_hop": lab.next_hops[n], "scheme": lab.scheme, "scheduler": lab.scheduler,
            "ack": lab.ack, "seed": lab.seed, "sample_period_s": lab.sample_period_s,
            "record_sends": lab.record_sends, "shaped_links": plan.shaped_links, "e2e_secret": e2e_secret,
        }
    kmes = lab.kme_nodes() if kme_dir is not None else []
    sae_map = {n: n for n in kmes}  # in the testbed, SAE "U1" is served by KME "U1"
    for n in kmes:
        configs[n]["kme"] = {"host": plan.control_host[n], "port": KME_PORT, "dir": kme_dir, "sae_map": sae_map,
                             "insecure_http": lab.insecure_http}
    injector = {
        "testbed": lab.name, "node_names": lab.node_names, "seed": lab.seed,
        "listen": plan.injector_listen, "port": INJECTOR_PORT,
        "control": {"host": plan.injector_control, "port": INJECTOR_CONTROL_PORT},
        "links": [{"index": l.index, "a": l.a, "b": l.b, "name": l.name, "unit_bytes": lab.unit_bytes[l.index],
                   "times_s": lab.schedules[l.index][0], "units": lab.schedules[l.index][1]} for l in lab.links],
    }
    return configs, injector


def write_configs(directory: Path, configs: dict[str, dict], injector: dict) -> dict[str, Path]:
    """Write one JSON file per agent plus `injector.json` (mode 0600: they hold the link secrets)."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = {}
    for n, cfg in list(configs.items()) + [("injector", injector)]:
        p = directory / f"{n}.json"
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(cfg, fh)
        paths[n] = p
    return paths


def control_url(host: str, port: int = CONTROL_PORT) -> str:
    return f"http://{host}:{port}"
