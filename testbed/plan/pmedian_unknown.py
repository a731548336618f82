"""The improved model (seed §2.2, planning.md §B.3): p unknown, each open service node costs `opening_cost`.

Z = f * |S| + Z_dist(S). The seed gives two stopping rules, both reproduced here with every evaluated Z_p
recorded as a Step so a run can be checked by hand:

* enumeration (3.2.1): p = 1, 2, ...; stop at the first p with min Z_p <= min Z_{p+1}. This is the first local
  minimum of Z_p in p, not necessarily the global one (f*(p) need not be convex); uflp_ilp is exact.
* greedy drop (3.2.2): from S = J drop the cheapest candidate while that does not increase Z (ties drop, i.e.
  prefer fewer nodes); also stop at one node. The extracted text has the two conditions swapped, which would stop
  as soon as dropping helps; that literal reading is available as `literal=True` only to show what it does.

Greedy add for this model (add while Z decreases) is included as the natural counterpart (planning.md §B.5).
"""

from __future__ import annotations

import numpy as np

from .pmedian_core import Solution, Step, first_min
from .pmedian_methods import DropState, enumerate_best, total_distance


def enumeration_stop_rule(dist_ic: np.ndarray, weight_i: np.ndarray, opening_cost: float, tol: float,
                          max_subsets: int) -> Solution:
    """Seed 3.2.1: walk p upward with exact p-medians until Z_p stops decreasing."""
    k = dist_ic.shape[1]

    def best(p: int) -> tuple[tuple[int, ...], float]:
        sol = enumerate_best(dist_ic, weight_i, p, tol, max_subsets)
        return sol.open_j, opening_cost * p + total_distance(dist_ic, weight_i, sol.open_j)

    p = 1
    current, z_p = best(1)
    steps = [Step("evaluate", 1, z_p)]
    while p < k:
        nxt, z_next = best(p + 1)
        better = z_next < z_p - tol  # the seed: stop when min Z_p <= min Z_{p+1}
        steps.append(Step("evaluate", p + 1, z_next, delta=z_next - z_p, accepted=better))
        if not better:
            break
        p, current, z_p = p + 1, nxt, z_next
    return Solution(open_j=current, steps=steps)


def drop_stop_rule(dist_ic: np.ndarray, weight_i: np.ndarray, opening_cost: float, tol: float,
                   literal: bool = False) -> Solution:
    """Seed 3.2.2: greedy drop from S = J, stopping when the best drop would make Z worse.

    Each step records the candidate j*, the Z_{p-1} it would give, and whether it was taken. With `literal`,
    the swapped conditions of the extracted text: stop when Z_p >= Z_{p-1}, drop otherwise.
    """
    state = DropState(dist_ic, weight_i, tol)
    z_p = opening_cost * state.size + state.distance()
    steps = [Step("evaluate", state.size, z_p)]
    while state.size > 1:
        j, delta = state.best_removal()
        z_next = opening_cost * (state.size - 1) + state.distance() + delta
        take = (z_p < z_next - tol) if literal else (z_next <= z_p + tol)
        steps.append(Step("drop", state.size - 1, z_next, node=j, delta=z_next - z_p, accepted=take))
        if not take:
            break
        state.remove(j)
        z_p = opening_cost * state.size + state.distance()
    return Solution(open_j=state.open_set(), steps=steps)


def add_stop_rule(dist_ic: np.ndarray, weight_i: np.ndarray, opening_cost: float, tol: float) -> Solution:
    """Greedy add for the improved model: open the best candidate while that lowers Z (at least one is opened)."""
    k = dist_ic.shape[1]
    reach = np.full(dist_ic.shape[0], np.inf)
    is_open = np.zeros(k, dtype=bool)
    steps: list[Step] = []
    z_p = np.inf
    for size in range(1, k + 1):
        z = weight_i @ np.minimum(reach[:, None], dist_ic) + opening_cost * size
        z[is_open] = np.inf
        j = int(first_min(z, tol))
        take = size == 1 or z[j] < z_p - tol
        steps.append(Step("add", size, float(z[j]), node=j, delta=None if size == 1 else float(z[j] - z_p),
                          accepted=take))
        if not take:
            break
        is_open[j] = True
        reach = np.minimum(reach, dist_ic[:, j])
        z_p = float(z[j])
    return Solution(open_j=tuple(int(j) for j in np.flatnonzero(is_open)), steps=steps)
