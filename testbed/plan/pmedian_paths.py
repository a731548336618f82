"""All-pairs shortest-path lengths for the p-median planner (the seed's "step 1": adjacency matrix, then Floyd).

Floyd–Warshall is written as n vectorised numpy passes (one per intermediate node) instead of pulling in scipy:
for the sizes a placement is planned on (up to a few hundred nodes) n passes over an n-by-n array take well under
a second, and numpy is already a dependency.
"""

from __future__ import annotations

import numpy as np

from ..errors import QkdbedError
from ..network import Topology

METRICS = ("hops", "km")


def adjacency_matrix(n: int, edges: list[tuple[int, int, float]]) -> np.ndarray:
    """Edge-length matrix with 0 on the diagonal and +inf where two nodes share no link (parallel edges: shortest)."""
    adj = np.full((n, n), np.inf)
    np.fill_diagonal(adj, 0.0)
    for i, j, length in edges:
        if length < adj[i, j]:
            adj[i, j] = adj[j, i] = length
    return adj


def floyd_warshall(adj: np.ndarray) -> np.ndarray:
    """Shortest-path lengths from an edge-length matrix (inf = no edge); unreachable pairs stay inf.

    Pass k relaxes every pair through node k at once, d[i, j] = min(d[i, j], d[i, k] + d[k, j]); that is the
    textbook triple loop with the two inner loops done by numpy broadcasting.
    """
    dist = np.array(adj, dtype=float, copy=True)
    n = dist.shape[0]
    for k in range(n):
        np.minimum(dist, dist[:, k:k + 1] + dist[k:k + 1, :], out=dist)
    return dist


def topology_distances(topology: Topology, metric: str = "hops") -> tuple[list[str], np.ndarray]:
    """Node names (in the topology's order) and the matrix of shortest-path lengths between them.

    `metric` is "hops" (each link counts 1: in a trusted-relay network this is the relay key spent per delivered
    key) or "km" (fibre length).
    """
    if metric not in METRICS:
        raise QkdbedError(f"distance metric must be one of {', '.join(METRICS)}, got {metric!r}")
    names = topology.node_names
    index = {name: i for i, name in enumerate(names)}
    edges = [(index[l.a], index[l.b], 1.0 if metric == "hops" else float(l.distance_km)) for l in topology.links]
    return names, floyd_warshall(adjacency_matrix(len(names), edges))
