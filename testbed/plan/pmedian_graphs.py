"""The benchmark's random connected graphs (planning.md §B.6 item 1), generated directly in numpy.

Waxman's model with beta = 0.4, alpha = 0.25: N points uniform in a 100 km x 100 km square, i < j linked with
probability beta * exp(-delta_ij / (alpha * L_max)), L_max the largest pairwise distance, the edge weighing its
Euclidean length. A disconnected draw is discarded and the same generator draws again, so trial t of size N is
fully determined by the seed 1000 * N + t. Written out rather than taken from networkx because networkx swapped
the meaning of alpha and beta between releases.
"""

from __future__ import annotations

import numpy as np

from .pmedian_paths import floyd_warshall

WAXMAN_BETA = 0.4
WAXMAN_ALPHA = 0.25
SQUARE_KM = 100.0


def trial_seed(n: int, trial: int) -> int:
    return 1000 * n + trial


def waxman_adjacency(n: int, seed: int, beta: float = WAXMAN_BETA, alpha: float = WAXMAN_ALPHA,
                     max_draws: int = 10_000) -> np.ndarray:
    """Edge-length matrix (km; inf = no edge, 0 on the diagonal) of the first connected Waxman draw."""
    rng = np.random.default_rng(seed)
    for _ in range(max_draws):
        pts = rng.uniform(0.0, SQUARE_KM, size=(n, 2))
        delta = np.sqrt(((pts[:, None, :] - pts[None, :, :]) ** 2).sum(axis=-1))
        l_max = delta.max()
        u = rng.random((n, n))
        linked = np.triu(u < beta * np.exp(-delta / (alpha * l_max)), k=1)
        linked = linked | linked.T
        if _connected(linked):
            adj = np.where(linked, delta, np.inf)
            np.fill_diagonal(adj, 0.0)
            return adj
    raise RuntimeError(f"no connected Waxman graph with n={n} in {max_draws} draws")


def _connected(linked: np.ndarray) -> bool:
    """Breadth-first reachability from node 0 with boolean matrix steps."""
    seen = np.zeros(linked.shape[0], dtype=bool)
    seen[0] = True
    frontier = seen.copy()
    while frontier.any():
        nxt = linked[frontier].any(axis=0) & ~seen
        seen |= nxt
        frontier = nxt
    return bool(seen.all())


def edge_count(adj: np.ndarray) -> int:
    return int((np.isfinite(adj) & (adj > 0)).sum() // 2)


def waxman_distances(n: int, trial: int, metric: str = "km") -> tuple[np.ndarray, int]:
    """Shortest-path matrix of trial `trial` at size n (km, or hops on the same graph) and its edge count."""
    adj = waxman_adjacency(n, trial_seed(n, trial))
    if metric == "hops":
        adj = np.where(np.isfinite(adj), 1.0, np.inf)
        np.fill_diagonal(adj, 0.0)
    return floyd_warshall(adj), edge_count(adj)
