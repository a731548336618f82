"""Group-key service node location (seed 002): where to put the p servers that generate group keys.

Each demand node is served by its nearest server, and the planner minimises the (weighted) total shortest-path
length from demand nodes to their servers: the p-median problem. In a trusted-relay QKD network, with the "hops"
metric, that total is the relay key consumed to deliver one group key to everyone, so the objective is directly
the key cost the testbed measures. The improved model (p unknown) adds an opening cost per server.

Public API (used by the CLI and by the group-key service of the node model):

    problem = PlacementProblem.from_topology(topology, metric="hops", demand=None, candidates=None, weights=None)
    result = solve_pmedian(problem, p=2, method="auto")        # or pass the Topology and the same keywords
    result = solve_unknown_p(problem, opening_cost=None, method="ilp")
    result.servers, result.assignment, result.members("R1"), result.objective, result.to_dict()

The methods themselves live in pmedian_methods (known p), pmedian_unknown (p unknown) and pmedian_ilp (exact).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from ..errors import QkdbedError
from ..network import Node, Topology
from . import pmedian_methods as methods
from . import pmedian_unknown as unknown
from .pmedian_core import Solution, Step, nearest, tie_tolerance, total_distance
from .pmedian_ilp import pmedian_ilp, uflp_ilp
from .pmedian_paths import METRICS, topology_distances

PMEDIAN_METHODS = ("auto", "enum", "drop", "add", "interchange", "ilp", "ilp-full")
UNKNOWN_P_METHODS = ("auto", "enum", "drop", "add", "ilp")
AUTO_ENUM_LIMIT = 200_000  # "auto" enumerates up to this many subsets (well under a second), else solves the ILP


def _pick_names(kind: str, given: Sequence[str] | None, names: list[str], where: str) -> list[str]:
    """A node subset in the topology's order (that order decides ties), checked against the topology."""
    if given is None:
        return list(names)
    given = [str(g).strip() for g in given]
    known = set(names)
    missing = [g for g in given if g not in known]
    if missing:
        raise QkdbedError(f"{where}: unknown {kind} node{'s' if len(missing) > 1 else ''} "
                          f"{', '.join(missing)} (nodes are {', '.join(names)})")
    dup = sorted({g for g in given if given.count(g) > 1})
    if dup:
        raise QkdbedError(f"{where}: {kind} node{'s' if len(dup) > 1 else ''} listed twice: {', '.join(dup)}")
    if not given:
        raise QkdbedError(f"{where}: the {kind} node list is empty")
    chosen = set(given)
    return [n for n in names if n in chosen]


def _weights(weights: Mapping[str, Any] | None, demand: list[str], where: str) -> np.ndarray:
    """Demand weights in demand order; nodes not listed weigh 1 (seed assumption 3: every demand counts alike)."""
    out = np.ones(len(demand))
    if not weights:
        return out
    pos = {n: i for i, n in enumerate(demand)}
    for name, value in weights.items():
        if name not in pos:
            raise QkdbedError(f"{where}: weight given for {name!r}, which is not a demand node")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise QkdbedError(f"{where}: weight of {name} must be a finite number >= 0, got {value!r}")
        out[pos[name]] = float(value)
    return out


@dataclass
class PlacementProblem:
    """Distances plus who demands and who may serve: everything a method needs, built once per topology."""

    name: str
    metric: str
    names: list[str]          # every node, in the topology's order
    dist: np.ndarray          # all-pairs shortest-path lengths (metric units), names x names
    demand: list[str]
    candidates: list[str]
    weight: np.ndarray        # per demand node
    floyd_time_s: float = 0.0

    @classmethod
    def from_topology(cls, topology: Topology, metric: str = "hops", demand: Sequence[str] | None = None,
                      candidates: Sequence[str] | None = None,
                      weights: Mapping[str, Any] | None = None) -> "PlacementProblem":
        t0 = time.perf_counter()
        names, dist = topology_distances(topology, metric)
        floyd_s = time.perf_counter() - t0
        return cls.from_matrix(dist, names, metric=metric, demand=demand, candidates=candidates, weights=weights,
                               name=topology.name, floyd_time_s=floyd_s)

    @classmethod
    def from_matrix(cls, dist: np.ndarray, names: Sequence[str] | None = None, metric: str = "km",
                    demand: Sequence[str] | None = None, candidates: Sequence[str] | None = None,
                    weights: Mapping[str, Any] | None = None, name: str = "matrix",
                    floyd_time_s: float = 0.0) -> "PlacementProblem":
        """From a ready distance matrix (the benchmark's random graphs); names default to "0", "1", ..."""
        dist = np.asarray(dist, dtype=float)
        names = [str(i) for i in range(dist.shape[0])] if names is None else list(names)
        dem = _pick_names("demand", demand, names, name)
        cand = _pick_names("candidate", candidates, names, name)
        problem = cls(name, metric, names, dist, dem, cand, _weights(weights, dem, name), floyd_time_s)
        problem._check_reachable()
        return problem

    def _check_reachable(self) -> None:
        sub = self.dist_ic
        bad = np.argwhere(~np.isfinite(sub))
        if bad.size:
            i, j = bad[0]
            raise QkdbedError(f"{self.name}: the network is disconnected: no path from demand node "
                              f"{self.demand[i]} to candidate {self.candidates[j]}")

    @property
    def dist_ic(self) -> np.ndarray:
        pos = {n: i for i, n in enumerate(self.names)}
        return self.dist[np.ix_([pos[n] for n in self.demand], [pos[n] for n in self.candidates])]

    def mean_distance(self) -> float:
        """Mean shortest-path length over ordered pairs of distinct nodes: the default opening cost (§B.3)."""
        n = len(self.names)
        if n < 2:
            return 0.0
        off = ~np.eye(n, dtype=bool) & np.isfinite(self.dist)
        return float(self.dist[off].mean()) if off.any() else 0.0

    def check_p(self, p: int) -> None:
        if isinstance(p, bool) or not isinstance(p, (int, np.integer)) or p < 1:
            raise QkdbedError(f"p (the number of key servers) must be an integer >= 1, got {p!r}")
        if p > len(self.candidates):
            raise QkdbedError(f"p = {p} is larger than the {len(self.candidates)} candidate node"
                              f"{'s' if len(self.candidates) != 1 else ''}")


@dataclass
class PlacementResult:
    """A placement: chosen servers, each demand node's server, objective, run time and the method's steps."""

    method: str
    model: str                       # "p-median" or "unknown-p"
    metric: str
    servers: list[str]
    assignment: dict[str, str]       # demand node -> its server
    distance_to_server: dict[str, float]
    distance: float                  # sum_i w_i d(i, server(i))
    objective: float                 # distance, plus opening_cost * p in the improved model
    time_s: float                    # the method alone
    floyd_time_s: float              # the all-pairs shortest paths (the seed's step 1)
    proven_optimal: bool
    opening_cost: float | None = None
    steps: list[dict] = field(default_factory=list)
    info: dict = field(default_factory=dict)  # e.g. the ILP's bounds and how many candidates it kept

    @property
    def p(self) -> int:
        return len(self.servers)

    def members(self, server: str) -> list[str]:
        return [i for i, s in self.assignment.items() if s == server]

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model, "method": self.method, "metric": self.metric, "p": self.p,
            "servers": list(self.servers),
            "groups": {s: self.members(s) for s in self.servers},
            "assignment": dict(self.assignment),
            "distance_to_server": dict(self.distance_to_server),
            "distance": self.distance, "opening_cost": self.opening_cost, "objective": self.objective,
            "proven_optimal": self.proven_optimal, "time_s": self.time_s, "floyd_time_s": self.floyd_time_s,
            "steps": list(self.steps), "info": dict(self.info),
        }


def _problem(target: PlacementProblem | Topology, kw: dict) -> PlacementProblem:
    if isinstance(target, PlacementProblem):
        if kw:
            raise TypeError(f"problem options {sorted(kw)} only apply when a Topology is given")
        return target
    return PlacementProblem.from_topology(target, **kw)


def _result(problem: PlacementProblem, sol: Solution, method: str, model: str, elapsed_s: float,
            opening_cost: float | None) -> PlacementResult:
    dist_ic = problem.dist_ic
    tol = tie_tolerance(dist_ic, problem.weight)
    chosen = np.array(sol.open_j, dtype=np.intp)
    server_col = nearest(dist_ic, chosen, tol)
    rows = np.arange(len(problem.demand))
    d_own = dist_ic[rows, server_col]
    distance = float(problem.weight @ d_own)
    cands = problem.candidates

    def named(step: Step) -> dict:
        d = {"action": step.action, "p": step.p, "objective": step.objective}
        if step.node is not None:
            d["node"] = cands[step.node]
        if step.out is not None:
            d["out"] = cands[step.out]
        if step.delta is not None:
            d["delta"] = step.delta
        if not step.accepted:
            d["accepted"] = False
        return d

    return PlacementResult(
        method=method, model=model, metric=problem.metric,
        servers=[cands[j] for j in sol.open_j],
        assignment={problem.demand[i]: cands[server_col[i]] for i in rows},
        distance_to_server={problem.demand[i]: float(d_own[i]) for i in rows},
        distance=distance,
        objective=distance + (opening_cost * len(sol.open_j) if opening_cost is not None else 0.0),
        time_s=elapsed_s, floyd_time_s=problem.floyd_time_s, proven_optimal=sol.proven_optimal,
        opening_cost=opening_cost, steps=[named(s) for s in sol.steps], info=dict(sol.info),
    )


def solve_pmedian(target: PlacementProblem | Topology, p: int, method: str = "auto", *,
                  max_subsets: int = methods.DEFAULT_MAX_SUBSETS, time_limit_s: float | None = None,
                  **problem_kw) -> PlacementResult:
    """Place exactly p servers. `method`: enum | drop | add | interchange | ilp | ilp-full, or auto (enum if
    small, else ilp). All exact methods agree on the objective; ties may pick different sets.

    `problem_kw` (metric, demand, candidates, weights) build the PlacementProblem when a Topology is passed.
    """
    problem = _problem(target, problem_kw)
    problem.check_p(p)
    if method not in PMEDIAN_METHODS:
        raise QkdbedError(f"p-median method must be one of {', '.join(PMEDIAN_METHODS)}, got {method!r}")
    dist_ic, w = problem.dist_ic, problem.weight
    if method == "auto":
        method = "enum" if math.comb(len(problem.candidates), p) <= AUTO_ENUM_LIMIT else "ilp"
    tol = tie_tolerance(dist_ic, w)
    t0 = time.perf_counter()
    if method == "enum":
        sol = methods.enumerate_best(dist_ic, w, p, tol, max_subsets)
    elif method == "drop":
        sol = methods.greedy_drop(dist_ic, w, p, tol)
    elif method == "add":
        sol = methods.greedy_add(dist_ic, w, p, tol)
    elif method == "interchange":
        sol = methods.add_then_interchange(dist_ic, w, p, tol)
    else:  # "ilp" shrinks the model by Lagrangian reduction first; "ilp-full" hands CBC every pair
        sol = pmedian_ilp(dist_ic, w, p, time_limit_s, tol=tol, reduce=method == "ilp")
    elapsed = time.perf_counter() - t0
    return _result(problem, sol, method, "p-median", elapsed, None)


def solve_unknown_p(target: PlacementProblem | Topology, opening_cost: float | None = None, method: str = "auto",
                    *, literal_stop: bool = False, max_subsets: int = methods.DEFAULT_MAX_SUBSETS,
                    time_limit_s: float | None = None, **problem_kw) -> PlacementResult:
    """Improved model: choose p too, each server costing `opening_cost` (default: mean shortest-path length).

    `method`: enum (seed 3.2.1 stopping rule), drop (seed 3.2.2; `literal_stop` for the swapped reading), add,
    or ilp / auto (exact UFLP).
    """
    problem = _problem(target, problem_kw)
    if method not in UNKNOWN_P_METHODS:
        raise QkdbedError(f"unknown-p method must be one of {', '.join(UNKNOWN_P_METHODS)}, got {method!r}")
    if literal_stop and method != "drop":
        raise QkdbedError("the literal (swapped) stopping rule only applies to the greedy drop (method drop)")
    f = problem.mean_distance() if opening_cost is None else opening_cost
    if isinstance(f, bool) or not isinstance(f, (int, float)) or not math.isfinite(f) or f < 0:
        raise QkdbedError(f"opening cost must be a finite number >= 0, got {opening_cost!r}")
    f = float(f)
    method = "ilp" if method == "auto" else method
    dist_ic, w = problem.dist_ic, problem.weight
    tol = tie_tolerance(dist_ic, w) + 1e-9 * f * len(problem.candidates)
    t0 = time.perf_counter()
    if method == "enum":
        sol = unknown.enumeration_stop_rule(dist_ic, w, f, tol, max_subsets)
    elif method == "drop":
        sol = unknown.drop_stop_rule(dist_ic, w, f, tol, literal=literal_stop)
    elif method == "add":
        sol = unknown.add_stop_rule(dist_ic, w, f, tol)
    else:
        sol = uflp_ilp(dist_ic, w, f, time_limit_s)
    elapsed = time.perf_counter() - t0
    label = "drop-literal" if literal_stop else method
    return _result(problem, sol, label, "unknown-p", elapsed, f)


def with_servers(topology: Topology, servers: Sequence[str]) -> Topology:
    """A copy of the topology whose chosen nodes have role group-key-server (others keep their role)."""
    chosen = set(servers)
    nodes = {n: Node(v.name, "group-key-server" if n in chosen else v.role, v.x, v.y)
             for n, v in topology.nodes.items()}
    return Topology(topology.name, nodes, list(topology.links), topology.description, topology.source)


__all__ = ["PlacementProblem", "PlacementResult", "solve_pmedian", "solve_unknown_p", "with_servers",
           "total_distance", "METRICS", "PMEDIAN_METHODS", "UNKNOWN_P_METHODS"]
