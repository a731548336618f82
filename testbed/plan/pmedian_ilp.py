"""Exact integer programs solved with PuLP and its bundled CBC: the p-median (ReVelle–Swain) and, for the improved
model with p unknown, the uncapacitated facility location problem with a uniform opening cost.

Open variables y_j are binary; assignment variables x_ij are continuous in [0, 1] because, once the open set is
fixed, the assignment LP has an integral optimum (every node goes to its nearest open candidate). The linking
constraints are disaggregated, x_ij <= y_j for every pair: that LP relaxation is much tighter than the aggregated
sum_i x_ij <= |I| y_j and is usually integral already.

Even so, CBC's simplex needs minutes for the |I| k = 250,000 pairs of a 500-node network (measured: 8.5 min for one
p = 2 instance), so the p-median ILP is first shrunk by Lagrangian reduction (pmedian_bounds): candidates that
cannot be in any solution better than the heuristic's are removed before the model is built. The answer is still
exact: see `pmedian_ilp`.
"""

from __future__ import annotations

import numpy as np
import pulp

from ..errors import QkdbedError
from .pmedian_bounds import lagrangian_reduction
from .pmedian_core import Solution, total_distance
from .pmedian_methods import add_then_interchange, interchange


def _solve(dist_ic: np.ndarray, weight_i: np.ndarray, p: int | None, opening_cost: float,
           time_limit_s: float | None, columns: np.ndarray | None = None) -> Solution:
    """Build and solve the model over candidate `columns` (all by default); returns column indices of dist_ic."""
    cols = np.arange(dist_ic.shape[1]) if columns is None else np.asarray(columns)
    n_demand, k = dist_ic.shape[0], cols.size
    prob = pulp.LpProblem("key_server_location", pulp.LpMinimize)
    y = [pulp.LpVariable(f"y{j}", cat="Binary") for j in range(k)]
    x = [[pulp.LpVariable(f"x{i}_{j}", lowBound=0, upBound=1) for j in range(k)] for i in range(n_demand)]
    cost = weight_i[:, None] * dist_ic[:, cols]
    terms = [(x[i][j], float(cost[i, j])) for i in range(n_demand) for j in range(k) if cost[i, j] != 0.0]
    if opening_cost:
        terms += [(y[j], float(opening_cost)) for j in range(k)]
    prob += pulp.LpAffineExpression(terms)
    for i in range(n_demand):
        prob += pulp.LpAffineExpression([(x[i][j], 1.0) for j in range(k)]) == 1, f"serve{i}"
        for j in range(k):
            prob += pulp.LpAffineExpression([(x[i][j], 1.0), (y[j], -1.0)]) <= 0, f"link{i}_{j}"
    if p is not None:
        prob += pulp.LpAffineExpression([(v, 1.0) for v in y]) == p, "count"
    status = prob.solve(pulp.PULP_CBC_CMD(msg=False, timeLimit=time_limit_s, threads=1))
    chosen = tuple(int(cols[j]) for j in range(k) if (y[j].value() or 0.0) > 0.5)
    optimal = pulp.LpStatus[status] == "Optimal" and prob.sol_status == pulp.LpSolutionOptimal
    if not chosen or (p is not None and len(chosen) != p):
        limit = f"; time limit {time_limit_s:g} s" if time_limit_s else ""
        raise QkdbedError(f"the ILP solver found no solution (status {pulp.LpStatus[status]}{limit})")
    return Solution(open_j=tuple(sorted(chosen)), proven_optimal=optimal,
                    info={"ilp_candidates": int(k), "ilp_pairs": int(n_demand * k)})


def pmedian_ilp(dist_ic: np.ndarray, weight_i: np.ndarray, p: int, time_limit_s: float | None = None,
                tol: float = 1e-9, reduce: bool = True) -> Solution:
    """Exact p-median: min sum w_i d_ij x_ij, sum_j x_ij = 1, x_ij <= y_j, sum_j y_j = p.

    With `reduce`: take the add + interchange solution as upper bound UB, compute Lagrangian lower bounds, and
    drop every candidate j whose bound with j forced open is already >= UB. An optimal set either costs UB (the
    heuristic's set is then optimal) or is cheaper and so contains no dropped candidate, hence is found by the
    ILP over the remaining ones; the better of the two is returned. If the bounds meet, no ILP is needed at all.
    """
    if not reduce:
        return _solve(dist_ic, weight_i, p, 0.0, time_limit_s)
    incumbent = add_then_interchange(dist_ic, weight_i, p, tol).open_j
    upper = total_distance(dist_ic, weight_i, incumbent)
    for _ in range(3):  # the relaxation may find a cheaper set; polish it and tighten the reduction with it
        red = lagrangian_reduction(dist_ic, weight_i, p, upper, tol)
        if red.best_set is None:
            break
        incumbent = interchange(dist_ic, weight_i, red.best_set, tol).open_j
        upper = total_distance(dist_ic, weight_i, incumbent)
    if red.upper_bound < upper - tol:  # the last round improved on its own incumbent: keep is relative to that
        incumbent, upper = red.best_set, red.upper_bound
    info = {"upper_bound": upper, "lower_bound": red.lower_bound, "kept_candidates": int(red.keep.size)}
    if red.keep.size <= p:  # too few candidates left for any set cheaper than UB except, maybe, `keep` itself
        only = tuple(int(j) for j in red.keep)
        best = only if len(only) == p and total_distance(dist_ic, weight_i, only) < upper - tol else incumbent
        return Solution(open_j=best, proven_optimal=True, info={**info, "ilp_candidates": 0})
    sol = _solve(dist_ic, weight_i, p, 0.0, time_limit_s, columns=red.keep)
    best = sol.open_j if total_distance(dist_ic, weight_i, sol.open_j) < upper - tol else incumbent
    return Solution(open_j=best, proven_optimal=sol.proven_optimal, info={**info, **sol.info})


def uflp_ilp(dist_ic: np.ndarray, weight_i: np.ndarray, opening_cost: float,
             time_limit_s: float | None = None) -> Solution:
    """Exact improved model (p unknown): min f sum_j y_j + sum w_i d_ij x_ij with the same constraints, no count."""
    return _solve(dist_ic, weight_i, None, opening_cost, time_limit_s)
