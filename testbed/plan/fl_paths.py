"""k shortest simple paths by fibre km (Yen 1971), for the planner's path formulation and the CO-QBN baseline.

Written here rather than taken from networkx, which qkdbed does not depend on. Ties are broken by hop count and
then by the node names along the path, so results are deterministic.
"""

from __future__ import annotations

import heapq

from ..network import Topology


def _dijkstra(topology: Topology, src: str, dst: str, banned_nodes: set[str],
              banned_arcs: set[tuple[str, str]], weight=None) -> tuple[float, list[str]] | None:
    heap = [(0.0, 0, (src,))]
    best: dict[str, tuple] = {src: (0.0, 0, (src,))}
    while heap:
        cost, hops, path = heapq.heappop(heap)
        node = path[-1]
        if node == dst:
            return cost, list(path)
        if best.get(node) != (cost, hops, path):
            continue
        for nb in topology.neighbours(node):
            if nb in banned_nodes or (node, nb) in banned_arcs:
                continue
            link = topology.link(node, nb)
            cand = (cost + (weight(link) if weight else link.distance_km), hops + 1, path + (nb,))
            if nb not in best or cand < best[nb]:
                best[nb] = cand
                heapq.heappush(heap, cand)
    return None


def cheapest_path(topology: Topology, src: str, dst: str, weight) -> tuple[float, list[str]] | None:
    """Least-cost path under `weight(link)`, e.g. a per-link price instead of km."""
    return _dijkstra(topology, src, dst, set(), set(), weight)


def path_km(topology: Topology, path: list[str]) -> float:
    return sum(topology.link(a, b).distance_km for a, b in zip(path, path[1:]))


def k_shortest_paths(topology: Topology, src: str, dst: str, k: int) -> list[list[str]]:
    """Up to k loop-free paths from src to dst in increasing km (fewer if the graph has fewer)."""
    first = _dijkstra(topology, src, dst, set(), set())
    if first is None:
        return []
    found = [first[1]]
    pool: list[tuple[float, int, tuple[str, ...]]] = []
    seen = {tuple(first[1])}
    while len(found) < k:
        last = found[-1]
        for i in range(len(last) - 1):
            root = last[:i + 1]
            banned_arcs = {(p[i], p[i + 1]) for p in found if p[:i + 1] == root}
            spur = _dijkstra(topology, root[-1], dst, set(root[:-1]), banned_arcs)
            if spur is None:
                continue
            cand = tuple(root[:-1] + spur[1])
            if cand not in seen:
                seen.add(cand)
                heapq.heappush(pool, (path_km(topology, list(cand)), len(cand), cand))
        if not pool:
            break
        found.append(list(heapq.heappop(pool)[2]))
    return found
