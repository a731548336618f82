"""The network a testbed runs: nodes, links (classical channel + key supply), and routes.

A topology file names nodes (role `user` or `relay`, or `group-key-server`) and undirected links. Each link has
a fibre distance and attenuation (which a distance key-supply model turns into a key rate), a classical channel
(bandwidth, one-way propagation delay) and optionally its own key-supply model. Everything else in qkdbed reads
the network through `Topology`, whichever file format or generator it came from.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import QkdbedError, ValidationError
from .schema import Reader, load_yaml

ROLES = ("user", "relay", "group-key-server")
DEFAULT_BANDWIDTH_BPS = 1e9  # paper Table II: classical channel 1 Gbps
DEFAULT_DELAY_S = 1e-4  # paper Table II: one-hop propagation 0.1 ms
# Standard single-mode fibre loss used when a link gives a distance but no attenuation (ITU-T G.652, 1550 nm).
DEFAULT_FIBRE_LOSS_DB_PER_KM = 0.2


@dataclass(frozen=True)
class Node:
    name: str
    role: str = "relay"
    x: float | None = None  # optional drawing coordinates
    y: float | None = None


@dataclass(frozen=True)
class Link:
    a: str
    b: str
    distance_km: float = 10.0
    attenuation_db: float | None = None
    bandwidth_bps: float = DEFAULT_BANDWIDTH_BPS
    delay_s: float = DEFAULT_DELAY_S
    key_supply: dict | None = None  # per-link override of the recipe's key-supply model

    @property
    def name(self) -> str:
        return f"{self.a}-{self.b}"

    @property
    def loss_db(self) -> float:
        if self.attenuation_db is not None:
            return self.attenuation_db
        return DEFAULT_FIBRE_LOSS_DB_PER_KM * self.distance_km

    def other(self, node: str) -> str:
        return self.b if node == self.a else self.a


@dataclass
class Topology:
    name: str
    nodes: dict[str, Node]
    links: list[Link]
    description: str = ""
    source: str = "(generated)"
    _adj: dict[str, dict[str, Link]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._adj = {n: {} for n in self.nodes}
        for link in self.links:
            self._adj[link.a][link.b] = link
            self._adj[link.b][link.a] = link

    # -- structure -------------------------------------------------------------------------------------------
    @property
    def node_names(self) -> list[str]:
        return list(self.nodes)

    def neighbours(self, node: str) -> list[str]:
        return sorted(self._adj[node])

    def link(self, a: str, b: str) -> Link:
        try:
            return self._adj[a][b]
        except KeyError:
            raise QkdbedError(f"{self.source}: no link between {a} and {b}") from None

    def users(self) -> list[str]:
        return [n for n, v in self.nodes.items() if v.role == "user"]

    def is_connected(self) -> bool:
        if not self.nodes:
            return True
        start = next(iter(self.nodes))
        seen, stack = {start}, [start]
        while stack:
            for m in self._adj[stack.pop()]:
                if m not in seen:
                    seen.add(m)
                    stack.append(m)
        return len(seen) == len(self.nodes)

    # -- routing ---------------------------------------------------------------------------------------------
    def edge_weight(self, link: Link, metric: str) -> float:
        if metric == "hops":
            return 1.0
        if metric == "km":
            return link.distance_km
        raise QkdbedError(f"routing metric must be 'hops' or 'km', got {metric!r}")

    def shortest_paths_from(self, src: str, metric: str = "hops") -> dict[str, list[str]]:
        """Dijkstra from `src`; ties broken by (cost, hop count, node-name path) so routes are deterministic."""
        best: dict[str, tuple] = {src: (0.0, 0, (src,))}
        heap = [(0.0, 0, (src,))]
        while heap:
            cost, hops, path = heapq.heappop(heap)
            node = path[-1]
            if best.get(node) != (cost, hops, path):
                continue
            for nb, link in self._adj[node].items():
                cand = (cost + self.edge_weight(link, metric), hops + 1, path + (nb,))
                cur = best.get(nb)
                if cur is None or cand < cur:
                    best[nb] = cand
                    heapq.heappush(heap, cand)
        return {n: list(v[2]) for n, v in best.items()}

    def path(self, src: str, dst: str, metric: str = "hops") -> list[str]:
        paths = self.shortest_paths_from(src, metric)
        if dst not in paths:
            raise QkdbedError(f"{self.source}: no path from {src} to {dst} (the network is disconnected)")
        return paths[dst]

    def next_hops(self, metric: str = "hops") -> dict[str, dict[str, str]]:
        """next_hop[node][dst] for every reachable pair, built from per-destination shortest-path trees.

        Built from the path each *source* would take, so that hop-by-hop forwarding follows exactly the path a
        source computes: we route by the destination's tree (paths from dst, reversed), which is consistent
        for every intermediate node because sub-paths of shortest paths are shortest paths.
        """
        table: dict[str, dict[str, str]] = {n: {} for n in self.nodes}
        for dst in self.nodes:
            tree = self.shortest_paths_from(dst, metric)
            for node, p in tree.items():
                if node != dst:
                    table[node][dst] = p[-2]  # path from dst to node, reversed: the step toward dst
        return table

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name}
        if self.description:
            out["description"] = self.description
        out["nodes"] = [{k: v for k, v in (("name", n.name), ("role", n.role), ("x", n.x), ("y", n.y))
                         if v is not None} for n in self.nodes.values()]
        links = []
        for l in self.links:
            d = {"a": l.a, "b": l.b, "distance_km": l.distance_km}
            if l.attenuation_db is not None:
                d["attenuation_db"] = l.attenuation_db
            if l.bandwidth_bps != DEFAULT_BANDWIDTH_BPS:
                d["bandwidth_bps"] = l.bandwidth_bps
            if l.delay_s != DEFAULT_DELAY_S:
                d["delay_s"] = l.delay_s
            if l.key_supply is not None:
                d["key_supply"] = l.key_supply
            links.append(d)
        out["links"] = links
        return out


# -- loading ---------------------------------------------------------------------------------------------------

def topology_from_dict(data: Any, where: str) -> Topology:
    r = Reader(data, where)
    name = r.str("name", Path(where).stem)
    description = r.str("description", "")
    defaults = r.sub("link_defaults", {})
    d_bw = defaults.num("bandwidth_bps", DEFAULT_BANDWIDTH_BPS, min=0, strict_min=True)
    d_delay = defaults.num("delay_s", DEFAULT_DELAY_S, min=0)
    d_dist = defaults.num("distance_km", 10.0, min=0)
    d_ks = defaults.raw("key_supply", None)
    defaults.reject_unknown()
    nodes: dict[str, Node] = {}
    raw_nodes = r.list("nodes")
    if not raw_nodes:
        raise r.fail("nodes", "at least one node")
    for i in range(len(raw_nodes)):
        if isinstance(raw_nodes[i], str):
            raw_nodes[i] = {"name": raw_nodes[i]}
        nr = r.item("nodes", i)
        nm = nr.raw("name")
        if isinstance(nm, int) and not isinstance(nm, bool):
            nm = str(nm)
        if not isinstance(nm, str) or not nm:
            raise nr.fail("name", "a non-empty node name", nm)
        if nm in nodes:
            raise nr.fail("name", "a unique node name (duplicate)", nm)
        role = nr.str("role", "relay", choices=ROLES)
        x = nr.num("x", None) if nr.has("x") else None
        y = nr.num("y", None) if nr.has("y") else None
        nr.reject_unknown()
        nodes[nm] = Node(nm, role, x, y)
    links: list[Link] = []
    seen: set[frozenset] = set()
    raw_links = r.list("links", [])
    for i in range(len(raw_links)):
        lr = r.item("links", i)
        ends = []
        for key in ("a", "b"):
            v = lr.raw(key)
            v = str(v) if isinstance(v, int) and not isinstance(v, bool) else v
            if v not in nodes:
                raise lr.fail(key, "the name of a node listed under nodes", v)
            ends.append(v)
        if ends[0] == ends[1]:
            raise lr.fail("b", "a node other than a (no self-loops)", ends[1])
        pair = frozenset(ends)
        if pair in seen:
            raise lr.fail("b", f"at most one link between {ends[0]} and {ends[1]} (duplicate)")
        seen.add(pair)
        ks = lr.raw("key_supply", d_ks)
        if ks is not None and not isinstance(ks, dict):
            raise lr.fail("key_supply", "a mapping describing a key-supply model", ks)
        att = lr.num("attenuation_db", None, min=0) if lr.has("attenuation_db") else None
        links.append(Link(
            a=ends[0], b=ends[1],
            distance_km=lr.num("distance_km", d_dist, min=0),
            attenuation_db=att,
            bandwidth_bps=lr.num("bandwidth_bps", d_bw, min=0, strict_min=True),
            delay_s=lr.num("delay_s", d_delay, min=0),
            key_supply=ks,
        ))
        lr.reject_unknown()
    r.reject_unknown()
    return Topology(name=name, nodes=nodes, links=links, description=description, source=where)


TOPOLOGY_DIR = Path(__file__).resolve().parent.parent / "topologies"


def resolve_topology_path(ref: str, relative_to: Path | None = None) -> Path:
    """A topology reference is a path, or a bare name looked up in the project's `topologies/` folder."""
    candidates = []
    p = Path(ref)
    if relative_to is not None and not p.is_absolute():
        candidates.append(relative_to / p)
    candidates.append(p)
    if not p.suffix:
        candidates.append(TOPOLOGY_DIR / f"{ref}.yaml")
    for c in candidates:
        if c.is_file():
            return c
    raise QkdbedError(f"topology {ref!r}: no such file (looked in: {', '.join(str(c) for c in candidates)})")


def load_topology(ref: str, relative_to: Path | None = None) -> Topology:
    if ref.startswith("gen:"):
        return generate_from_spec(ref)
    path = resolve_topology_path(ref, relative_to)
    data = load_yaml(path)
    return topology_from_dict(data, str(path))


# -- generators (for tests and scale benchmarks) ------------------------------------------------------------------

def _mk(name: str, nodes: list[Node], edges: list[tuple[str, str]], **link_kw) -> Topology:
    return Topology(name, {n.name: n for n in nodes}, [Link(a, b, **link_kw) for a, b in edges])


def line(n: int, **link_kw) -> Topology:
    """U1 - N2 - ... - N(n-1) - Un: users at both ends, relays between."""
    if n < 2:
        raise QkdbedError("line topology needs n >= 2")
    names = [f"N{i}" for i in range(1, n + 1)]
    nodes = [Node(nm, "user" if i in (0, n - 1) else "relay") for i, nm in enumerate(names)]
    return _mk(f"line-{n}", nodes, list(zip(names, names[1:])), **link_kw)


def star(n_leaves: int, **link_kw) -> Topology:
    """One relay H with n user leaves L1..Ln."""
    nodes = [Node("H", "relay")] + [Node(f"L{i}", "user") for i in range(1, n_leaves + 1)]
    return _mk(f"star-{n_leaves}", nodes, [("H", f"L{i}") for i in range(1, n_leaves + 1)], **link_kw)


def ring(n: int, **link_kw) -> Topology:
    if n < 3:
        raise QkdbedError("ring topology needs n >= 3")
    names = [f"N{i}" for i in range(1, n + 1)]
    nodes = [Node(nm, "user") for nm in names]
    return _mk(f"ring-{n}", nodes, [(names[i], names[(i + 1) % n]) for i in range(n)], **link_kw)


def random_metro(n_relays: int, users_per_relay: int, seed: int = 0, extra_edges: int | None = None,
                 **link_kw) -> Topology:
    """A random connected relay backbone (spanning tree plus extra chords) with users hung off each relay.

    Used for the 100-node scale benchmark: backbone links 20 km, access links 10 km, as in china-metro-12.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    relays = [f"R{i}" for i in range(1, n_relays + 1)]
    edges: set[tuple[str, str]] = set()
    for i in range(1, n_relays):
        j = int(rng.integers(0, i))
        edges.add((relays[j], relays[i]))
    extra = n_relays // 2 if extra_edges is None else extra_edges
    tries = 0
    while extra > 0 and tries < 100 * n_relays:
        tries += 1
        i, j = sorted(int(x) for x in rng.choice(n_relays, 2, replace=False))
        e = (relays[i], relays[j])
        if e not in edges:
            edges.add(e)
            extra -= 1
    nodes = [Node(r, "relay") for r in relays]
    links = [Link(a, b, distance_km=20.0, attenuation_db=5.35, **link_kw) for a, b in sorted(edges)]
    k = 0
    for r in relays:
        for _ in range(users_per_relay):
            k += 1
            nodes.append(Node(f"U{k}", "user"))
            links.append(Link(f"U{k}", r, distance_km=10.0, attenuation_db=3.33, **link_kw))
    return Topology(f"metro-{n_relays}x{users_per_relay}-s{seed}", {n.name: n for n in nodes}, links)


GENERATORS = {"line": line, "star": star, "ring": ring, "metro": random_metro}


def generate_from_spec(spec: str) -> Topology:
    """`gen:line:5`, `gen:star:4`, `gen:ring:6`, `gen:metro:25:3:7` (relays, users per relay, seed)."""
    parts = spec.split(":")[1:]
    if not parts or parts[0] not in GENERATORS:
        raise QkdbedError(f"topology {spec!r}: expected gen:<{'|'.join(GENERATORS)}>:<args>")
    try:
        args = [int(a) for a in parts[1:]]
        return GENERATORS[parts[0]](*args)
    except (TypeError, ValueError) as e:
        raise QkdbedError(f"topology {spec!r}: bad generator arguments ({e})") from None


def distance_rate_bps(rate0_bps: float, loss_db: float) -> float:
    """Key rate after `loss_db` of channel loss: R0 * 10**(-loss/10) (seed 000 key-supply distance model)."""
    return rate0_bps * math.pow(10.0, -loss_db / 10.0)
