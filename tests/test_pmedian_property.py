"""Exact methods against an independent brute force on random small connected graphs (hypothesis).

The oracle below shares no code with the planner: plain-Python Floyd–Warshall and plain loops over
itertools.combinations. Integer link lengths and weights keep every objective an exact integer in floating point,
so "agree" means equal, and the lowest-index tie rule can be checked exactly too.
"""

from __future__ import annotations

import itertools

from hypothesis import HealthCheck, given, settings, strategies as st

from testbed.network import Link, Node, Topology
from testbed.plan.pmedian import solve_pmedian, solve_unknown_p

SETTINGS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def instances(draw, max_nodes: int = 9):
    n = draw(st.integers(2, max_nodes))
    names = [f"v{i}" for i in range(n)]
    edges = {}
    for i in range(1, n):  # a random spanning tree keeps it connected
        edges[(draw(st.integers(0, i - 1)), i)] = draw(st.integers(1, 20))
    for _ in range(draw(st.integers(0, n))):
        a, b = sorted(draw(st.lists(st.integers(0, n - 1), min_size=2, max_size=2, unique=True)))
        edges[(a, b)] = draw(st.integers(1, 20))
    topo = Topology("rand", {m: Node(m) for m in names},
                    [Link(names[a], names[b], distance_km=float(km)) for (a, b), km in edges.items()])
    weights = {m: draw(st.integers(0, 5)) for m in names} if draw(st.booleans()) else None
    cands = names if draw(st.booleans()) else sorted(draw(st.sets(st.sampled_from(names), min_size=1)),
                                                     key=names.index)
    return topo, names, edges, weights, cands


def brute_distances(names, edges):
    n = len(names)
    d = [[0 if i == j else float("inf") for j in range(n)] for i in range(n)]
    for (a, b), km in edges.items():
        d[a][b] = d[b][a] = min(d[a][b], km)
    for k in range(n):
        for i in range(n):
            for j in range(n):
                if d[i][k] + d[k][j] < d[i][j]:
                    d[i][j] = d[i][k] + d[k][j]
    return d


def brute_cost(d, names, weights, subset):
    total = 0
    for i, name in enumerate(names):
        w = 1 if weights is None else weights[name]
        total += w * min(d[i][names.index(s)] for s in subset)
    return total


def brute_pmedian(d, names, weights, cands, p):
    """All p-subsets in lexicographic order; the first one reaching the minimum (lowest-index tie rule)."""
    best, best_set = None, None
    for subset in itertools.combinations(cands, p):
        cost = brute_cost(d, names, weights, subset)
        if best is None or cost < best:
            best, best_set = cost, list(subset)
    return best, best_set


@SETTINGS
@given(instances(), st.data())
def test_enumeration_and_ilp_match_brute_force(inst, data):
    topo, names, edges, weights, cands = inst
    p = data.draw(st.integers(1, len(cands)))
    d = brute_distances(names, edges)
    best, best_set = brute_pmedian(d, names, weights, cands, p)
    kw = dict(metric="km", weights=weights, candidates=cands)
    enum = solve_pmedian(topo, p, "enum", **kw)
    assert enum.objective == best and enum.servers == best_set
    for method in ("ilp", "ilp-full"):
        ilp = solve_pmedian(topo, p, method, **kw)
        assert ilp.objective == best and len(ilp.servers) == p
        assert brute_cost(d, names, weights, ilp.servers) == best
    for method in ("drop", "add", "interchange"):
        h = solve_pmedian(topo, p, method, **kw)
        assert h.objective >= best and len(h.servers) == p
        assert h.objective == brute_cost(d, names, weights, h.servers)
    # every demand node sits with a nearest server
    for i, name in enumerate(names):
        assert d[i][names.index(enum.assignment[name])] == min(d[i][names.index(s)] for s in enum.servers)


@SETTINGS
@given(instances(max_nodes=8), st.integers(0, 40))
def test_unknown_p_ilp_matches_brute_force_over_all_subsets(inst, f):
    topo, names, edges, weights, cands = inst
    d = brute_distances(names, edges)
    best = min(f * r + brute_cost(d, names, weights, subset)
               for r in range(1, len(cands) + 1) for subset in itertools.combinations(cands, r))
    kw = dict(metric="km", weights=weights, candidates=cands)
    ilp = solve_unknown_p(topo, float(f), "ilp", **kw)
    assert ilp.objective == best
    for method in ("enum", "drop", "add"):
        r = solve_unknown_p(topo, float(f), method, **kw)
        assert r.objective >= best  # the seed's stopping rules are heuristics in p (§B.4 caveat)
        assert r.objective == f * r.p + brute_cost(d, names, weights, r.servers)
