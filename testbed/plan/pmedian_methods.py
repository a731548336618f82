"""The p-median methods for a known p: exhaustive enumeration, greedy drop, greedy add, Teitz–Bart interchange.

All work on the demand x candidate distance matrix and return candidate column indices (see pmedian_core).
The greedy drop follows the seed (3.1.2) exactly: start from every candidate open, repeatedly close the one whose
removal increases the total distance least, lowest index on ties; it is the DROP heuristic of Feldman, Lehrer and
Ray (1966). It keeps each demand node's nearest and second-nearest open distances so one step costs O(|I| k).
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from ..errors import QkdbedError
from .pmedian_core import Solution, Step, first_min, total_distance

# Enumeration refuses beyond this many subsets: at |I| = 30 that is minutes of numpy time, and the ILP is the
# exact method that scales.
DEFAULT_MAX_SUBSETS = 20_000_000
_CHUNK_ELEMENTS = 4_000_000  # subsets x demand nodes evaluated per numpy pass (about 32 MB of float64)


def enumerate_best(dist_ic: np.ndarray, weight_i: np.ndarray, p: int, tol: float,
                   max_subsets: int = DEFAULT_MAX_SUBSETS) -> Solution:
    """Exact: evaluate Z(S) for every p-subset in lexicographic order, keep the first minimiser.

    Subsets are produced by itertools.combinations in chunks, turned into an index array, and each chunk's
    objectives are computed in p numpy passes (running minimum over the chosen columns, then one dot product).
    """
    n_demand, k = dist_ic.shape
    count = math.comb(k, p)
    if count > max_subsets:
        raise QkdbedError(f"enumeration would evaluate C({k},{p}) = {count:,} subsets (limit {max_subsets:,}); "
                          "use --method ilp (exact) or a heuristic (drop, add, interchange)")
    dist_ji = np.ascontiguousarray(dist_ic.T)  # a row per candidate, so gathering columns is a row gather
    per_chunk = max(1, _CHUNK_ELEMENTS // max(1, n_demand))
    combos_iter = itertools.combinations(range(k), p)
    best_z, best_set = math.inf, None
    while True:
        flat = np.fromiter(itertools.chain.from_iterable(itertools.islice(combos_iter, per_chunk)), dtype=np.intp)
        if flat.size == 0:
            break
        combos = flat.reshape(-1, p)
        reach = dist_ji[combos[:, 0]]
        for c in range(1, p):
            np.minimum(reach, dist_ji[combos[:, c]], out=reach)
        z = reach @ weight_i
        at = int(first_min(z, tol))
        if z[at] < best_z - tol:
            best_z, best_set = float(z[at]), tuple(int(j) for j in combos[at])
    return Solution(open_j=best_set, proven_optimal=True)


class DropState:
    """Open set plus, per demand node, its nearest open candidate `a`, second-nearest `b` and their distances.

    Removing candidate j costs Delta(j) = sum over the nodes assigned to j of w_i (d2_i - d1_i): they move to
    their second choice. After a removal only the nodes whose first or second choice was j need recomputing.
    """

    def __init__(self, dist_ic: np.ndarray, weight_i: np.ndarray, tol: float, open_j=None):
        self.dist, self.weight, self.tol = dist_ic, weight_i, tol
        k = dist_ic.shape[1]
        self.open = np.zeros(k, dtype=bool)
        self.open[list(range(k)) if open_j is None else list(open_j)] = True
        n = dist_ic.shape[0]
        self.a = np.zeros(n, dtype=np.intp)
        self.b = np.zeros(n, dtype=np.intp)
        self.d1 = np.zeros(n)
        self.d2 = np.zeros(n)
        self._refresh(np.arange(n))

    @property
    def size(self) -> int:
        return int(self.open.sum())

    def open_set(self) -> tuple[int, ...]:
        return tuple(int(j) for j in np.flatnonzero(self.open))

    def distance(self) -> float:
        return float(self.weight @ self.d1)

    def _refresh(self, rows: np.ndarray) -> None:
        if rows.size == 0:
            return
        sub = np.where(self.open[None, :], self.dist[rows], np.inf)
        r = np.arange(rows.size)
        a = first_min(sub, self.tol, axis=1)
        d1 = sub[r, a].copy()
        sub[r, a] = np.inf
        b = first_min(sub, self.tol, axis=1)  # with one open node every entry is inf: d2 = inf, b meaningless
        self.a[rows], self.d1[rows], self.b[rows], self.d2[rows] = a, d1, b, sub[r, b]

    def removal_costs(self) -> np.ndarray:
        """Delta(j) for every candidate; +inf for closed ones. Needs at least two open candidates."""
        gain = self.weight * (self.d2 - self.d1)
        delta = np.bincount(self.a, weights=gain, minlength=self.open.size)
        delta[~self.open] = np.inf
        return delta

    def best_removal(self) -> tuple[int, float]:
        delta = self.removal_costs()
        j = int(first_min(delta, self.tol))
        return j, float(delta[j])

    def remove(self, j: int) -> None:
        affected = np.flatnonzero((self.a == j) | (self.b == j))
        self.open[j] = False
        self._refresh(affected)


def greedy_drop(dist_ic: np.ndarray, weight_i: np.ndarray, p: int, tol: float) -> Solution:
    """The seed's greedy algorithm (3.1.2): from S = J drop the cheapest candidate until |S| = p."""
    state = DropState(dist_ic, weight_i, tol)
    steps: list[Step] = []
    while state.size > p:
        j, delta = state.best_removal()
        state.remove(j)
        steps.append(Step("drop", state.size, state.distance(), node=j, delta=delta))
    return Solution(open_j=state.open_set(), steps=steps)


def greedy_add(dist_ic: np.ndarray, weight_i: np.ndarray, p: int, tol: float) -> Solution:
    """Kuehn–Hamburger greedy add: from S = {} add the candidate lowering Z most until |S| = p."""
    k = dist_ic.shape[1]
    reach = np.full(dist_ic.shape[0], np.inf)
    is_open = np.zeros(k, dtype=bool)
    steps: list[Step] = []
    z_now = math.inf
    for size in range(1, p + 1):
        z = weight_i @ np.minimum(reach[:, None], dist_ic)
        z[is_open] = np.inf
        j = int(first_min(z, tol))
        is_open[j] = True
        reach = np.minimum(reach, dist_ic[:, j])
        steps.append(Step("add", size, float(z[j]), node=j, delta=None if size == 1 else float(z[j]) - z_now))
        z_now = float(z[j])
    return Solution(open_j=tuple(int(j) for j in np.flatnonzero(is_open)), steps=steps)


def interchange(dist_ic: np.ndarray, weight_i: np.ndarray, start: tuple[int, ...], tol: float,
                max_passes: int = 1000) -> Solution:
    """Teitz–Bart vertex substitution from `start`: a 1-swap local optimum.

    Candidates outside S are visited cyclically in index order; for each, the best member of S to swap it with is
    found in one vectorised step (every member's removal cost comes from the nearest/second-nearest bookkeeping);
    the swap is made if it lowers Z. The search stops after a full pass with no improving swap.
    """
    k = dist_ic.shape[1]
    state = DropState(dist_ic, weight_i, tol, open_j=start)
    z_now = state.distance()
    steps: list[Step] = []
    for _ in range(max_passes):
        improved = False
        for j in range(k):
            if state.open[j]:
                continue
            members = np.flatnonzero(state.open)
            # distance of each demand node if member s were closed (column per s), then with j opened
            without = np.where(state.a[:, None] == members[None, :], state.d2[:, None], state.d1[:, None])
            z_swap = weight_i @ np.minimum(without, dist_ic[:, j:j + 1])
            at = int(first_min(z_swap, tol))
            if z_swap[at] < z_now - tol:
                out = int(members[at])
                state.open[out] = False
                state.open[j] = True
                state._refresh(np.arange(dist_ic.shape[0]))
                new_z = state.distance()
                steps.append(Step("swap", state.size, new_z, node=j, out=out, delta=new_z - z_now))
                z_now, improved = new_z, True
        if not improved:
            break
    return Solution(open_j=state.open_set(), steps=steps)


def add_then_interchange(dist_ic: np.ndarray, weight_i: np.ndarray, p: int, tol: float) -> Solution:
    """Greedy add followed by Teitz–Bart: the usual strong heuristic (planning.md §B.5)."""
    start = greedy_add(dist_ic, weight_i, p, tol)
    result = interchange(dist_ic, weight_i, start.open_j, tol)
    return Solution(open_j=result.open_j, steps=start.steps + result.steps)


__all__ = ["enumerate_best", "greedy_drop", "greedy_add", "interchange", "add_then_interchange", "DropState",
           "total_distance", "DEFAULT_MAX_SUBSETS"]
