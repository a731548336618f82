"""Matrix-level building blocks shared by every p-median method.

Everything here works on `dist_ic`, the |I| x |J| matrix of shortest-path lengths from demand node i to
candidate j, and `weight_i`, the demand weights. Candidates are referred to by column index; "lowest index wins
ties" (planning.md §B.4) means lowest column, which is the candidate's position in the topology's node order.

Ties are decided with a small tolerance rather than exact float equality: 0.1 + 0.2 and 0.3 km are the same path
length to a planner, and without the tolerance the tie rule would depend on summation order.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


def tie_tolerance(dist_ic: np.ndarray, weight_i: np.ndarray) -> float:
    """Objective differences below this are ties: 1e-9 of the largest possible total distance."""
    finite = dist_ic[np.isfinite(dist_ic)]
    scale = float(weight_i.sum()) * (float(finite.max()) if finite.size else 1.0)
    return 1e-9 * (1.0 + scale)


def first_min(values: np.ndarray, tol: float, axis: int = -1) -> np.ndarray:
    """Index of the first entry within `tol` of the minimum along `axis` (lowest-index tie rule)."""
    lowest = values.min(axis=axis, keepdims=True)
    return np.argmax(values <= lowest + tol, axis=axis)


def nearest(dist_ic: np.ndarray, open_j: np.ndarray, tol: float) -> np.ndarray:
    """For every demand node, the open candidate (column index) it is assigned to: nearest, lowest index on ties."""
    cols = np.asarray(open_j, dtype=np.intp)
    sub = dist_ic[:, cols]
    return cols[first_min(sub, tol, axis=1)]


def total_distance(dist_ic: np.ndarray, weight_i: np.ndarray, open_j) -> float:
    """Z(S) = sum_i w_i min_{j in S} d(i, j): the p-median objective of an open set under nearest assignment."""
    cols = np.asarray(list(open_j), dtype=np.intp)
    return float(weight_i @ dist_ic[:, cols].min(axis=1))


@dataclass(frozen=True)
class Step:
    """One move of an iterative method, kept so a run can be replayed and checked by hand.

    `action` is "drop", "add", "swap" or "evaluate"; `node` the candidate column moved (for a swap, the one
    brought in, `out` the one removed); `p` the number of open nodes after the move; `objective` the objective
    after the move (with the opening cost when the improved model is solved); `delta` its change.
    """

    action: str
    p: int
    objective: float
    node: int | None = None
    out: int | None = None
    delta: float | None = None
    accepted: bool = True


@dataclass
class Solution:
    """What a matrix-level method returns: the open columns (ascending) and the steps that led there."""

    open_j: tuple[int, ...]
    steps: list[Step] = field(default_factory=list)
    proven_optimal: bool = False
    info: dict = field(default_factory=dict)  # method-specific facts worth reporting (bounds, model size)
