"""Lagrangian lower bounds for the p-median, used to shrink the exact ILP (Beasley's reduction, 1985).

Relaxing "every demand node is served once" with multipliers lambda_i gives, for any lambda,

    L(lambda) = sum_i lambda_i + (sum of the p smallest rho_j),   rho_j = sum_i min(0, c_ij - lambda_i),

with c_ij = w_i d_ij. Every feasible p-set costs at least L(lambda); every p-set containing candidate j costs at
least L_j(lambda) = sum_i lambda_i + rho_j + (sum of the p - 1 smallest rho among the others). A candidate with
L_j >= UB (a known solution's cost) is in no cheaper solution and can be left out of the ILP. The multipliers are
improved by subgradient steps; each step is a few numpy passes over the |I| x k matrix. The p candidates the
relaxation opens at each step are also a feasible set: evaluating them (the usual Lagrangian heuristic) often
finds a better upper bound than the greedy heuristics, which is what makes the bounds meet.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Reduction:
    lower_bound: float
    upper_bound: float
    best_set: tuple[int, ...] | None  # a set costing upper_bound found by the relaxation, if it beat the given one
    keep: np.ndarray  # candidate columns that may still be in a solution cheaper than the upper bound


def _evaluate(cost: np.ndarray, lam: np.ndarray, p: int) -> tuple[float, np.ndarray, np.ndarray]:
    rho = np.minimum(0.0, cost - lam[:, None]).sum(axis=0)
    chosen = np.argpartition(rho, p - 1)[:p] if p < rho.size else np.arange(rho.size)
    return float(lam.sum() + rho[chosen].sum()), rho, chosen


def _bounds_with_each_open(lam_sum: float, rho: np.ndarray, p: int) -> np.ndarray:
    """L_j for every j: j forced open plus the p - 1 cheapest others."""
    order = np.argsort(rho, kind="stable")
    best_p = rho[order[:p]].sum()
    best_pm1 = rho[order[:p - 1]].sum()
    in_best = np.zeros(rho.size, dtype=bool)
    in_best[order[:p]] = True
    # a member of the p cheapest: the bound is the plain one; anyone else replaces the p-th cheapest
    return lam_sum + np.where(in_best, best_p, best_pm1 + rho)


def lagrangian_reduction(dist_ic: np.ndarray, weight_i: np.ndarray, p: int, upper: float, tol: float,
                         max_iter: int = 600) -> Reduction:
    """Subgradient ascent on L(lambda) (Polyak steps towards `upper`), then keep j with L_j < upper."""
    cost = weight_i[:, None] * dist_ic
    k = cost.shape[1]
    if p >= k:
        return Reduction(-np.inf, upper, None, np.arange(k))
    srt = np.sort(cost, axis=1)
    lam = srt[:, min(1, k - 1)].copy()  # start between a node's nearest and second-nearest candidate
    best_lb, best_lam = -np.inf, lam.copy()
    theta, stall = 2.0, 0
    best_set = None
    for _ in range(max_iter):
        lb, rho, chosen = _evaluate(cost, lam, p)
        z = float(cost[:, chosen].min(axis=1).sum())
        if z < upper - tol:
            upper, best_set = z, tuple(sorted(int(j) for j in chosen))
        if lb > best_lb + tol:
            best_lb, best_lam, stall = lb, lam.copy(), 0
        else:
            stall += 1
            if stall >= 20:
                theta, stall = theta / 2.0, 0
        if best_lb >= upper - tol or theta < 1e-5:
            break
        served = (cost[:, chosen] < lam[:, None]).sum(axis=1)
        grad = 1.0 - served
        norm = float(grad @ grad)
        if norm == 0.0:  # the relaxed solution is feasible: its bound is as good as this lambda gives
            break
        lam = lam + theta * (upper - lb) / norm * grad
    lb, rho, _ = _evaluate(cost, best_lam, p)
    bounds = _bounds_with_each_open(float(best_lam.sum()), rho, p)
    keep = np.flatnonzero(bounds < upper - tol)
    return Reduction(lb, upper, best_set, keep)
