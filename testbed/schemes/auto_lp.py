"""AUTO's per-port optimisation (seed 000, problem (3) with constraints C1-C7), solved exactly.

The decision variable is one number, S = s(t+T)·T, the key units the port may supply in the next slot. Every
constraint is a bound on S, so the feasible set is an interval [lo, hi], and the objective |D̄(t+T) - C| is the
absolute value of an affine function of S. The optimum is therefore the projection of the root S_D of that
affine function onto [lo, hi] -- a closed form. `solve_pulp` builds and solves the same LP with PuLP (CBC) so that
the closed form can be checked against a general solver.

Reading of the paper's model used here (all amounts in messages = key units, times in seconds):

- running averages with weight k = |t| (the number of key-generation events recorded at the port), as in the
  paper's S̄(t+T) = (S̄(t)·|t| + s(t+T)·T)/(|t| + 1), and likewise for Ā and D̄;
- C1:  S̄' >= Q̄ - (T - C - ε)·ā         =>  S >= (k+1)(Q̄ - (T-C-ε)ā) - k S̄
- C2:  s >= a                            =>  S >= a T
- C3:  S̄' <= Q̄ + (T - C + ε)·ā         =>  S <= (k+1)(Q̄ + (T-C+ε)ā) - k S̄
- C4:  s <= DoE·Λ̄/(W·t̄) + λ̄  (the elastic window of §IV-A: the surplus DoE·Λ̄ spread over W key-generation
       events of mean interval t̄, on top of the long-term rate λ̄; the printed (C4) has W·T, which would allow
       the whole surplus within W slots of 8 ms -- we follow the window text and note it)
- C5:  s <= L / (t_next - t)  with t_next the predicted next key-generation event (no exhaustion before it);
       when the prediction is overdue the horizon is one slot T
- C6:  Q(t+T) = Q - S + A, kept linear by requiring Q(t+T) >= 0, i.e. S <= Q + A (the port does not supply keys
       for messages it does not have; this keeps (3) a linear program)
- C7:  S >= 0 (and T >= C is checked by the caller)
- objective: D̄(t+T) = (k D̄ + Q(t+T)/a)/(k+1), minimise |D̄(t+T) - C|; with Q(t+T) = Q - S + A this is affine
  in S with slope -1/(a(k+1)), so S_D = Q + A - a((k+1)C - k D̄).

Infeasible (lo > hi): the paper is silent. We return `feasible=False` and the caller applies its policy (paper
profile: the largest rate the key storage allows, min(C4, C5, C6) -- storage safety first; original profile:
10 kbps, as the released code).
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class LPInput:
    T_s: float
    C_s: float
    eps_s: float
    k: int  # |t|: key-generation events recorded
    Q: float  # messages queued now
    A: float  # messages expected to arrive in the next slot (a·T)
    a: float  # arrival rate, messages/s (> 0)
    Q_bar: float
    a_bar: float  # messages/s
    S_bar: float  # messages per slot
    D_bar_s: float
    c4_max_rate: float  # messages/s (may be negative: cliff)
    c5_max_rate: float  # messages/s


@dataclass(frozen=True)
class LPResult:
    S: float  # messages per slot (the optimum, or NaN when infeasible)
    lo: float
    hi: float
    feasible: bool
    S_D: float
    objective: float  # |D̄(t+T) - C| at the optimum (NaN when infeasible)
    binding: str  # which bound decided: "target", or the name of the active bound


def bounds(x: LPInput) -> tuple[float, float, dict[str, float]]:
    k1 = x.k + 1
    b = {
        "C1": k1 * (x.Q_bar - (x.T_s - x.C_s - x.eps_s) * x.a_bar) - x.k * x.S_bar,
        "C2": x.a * x.T_s,
        "C7": 0.0,
        "C3": k1 * (x.Q_bar + (x.T_s - x.C_s + x.eps_s) * x.a_bar) - x.k * x.S_bar,
        "C4": x.c4_max_rate * x.T_s,
        "C5": x.c5_max_rate * x.T_s,
        "C6": x.Q + x.A,
    }
    lo = max(b["C1"], b["C2"], b["C7"])
    hi = min(b["C3"], b["C4"], b["C5"], b["C6"])
    return lo, hi, b


def objective(x: LPInput, S: float) -> float:
    q_next = x.Q - S + x.A
    d_next = (x.k * x.D_bar_s + q_next / x.a) / (x.k + 1)
    return abs(d_next - x.C_s)


def closed_form_fast(T: float, C: float, eps: float, k: int, Q: float, A: float, a: float, Q_bar: float,
                     a_bar: float, S_bar: float, D_bar: float, c4_rate: float, c5_rate: float) -> tuple[float, float,
                                                                                                   float, bool]:
    """The same closed form as `solve_closed_form` on plain floats (no objects): the simulator's hot path.
    Returns (S, lo, hi, feasible); a test checks it against `solve_closed_form` and `solve_pulp`."""
    k1 = k + 1
    lo = k1 * (Q_bar - (T - C - eps) * a_bar) - k * S_bar
    c2 = a * T
    if c2 > lo:
        lo = c2
    if lo < 0.0:
        lo = 0.0
    hi = k1 * (Q_bar + (T - C + eps) * a_bar) - k * S_bar
    c = c4_rate * T
    if c < hi:
        hi = c
    c = c5_rate * T
    if c < hi:
        hi = c
    c = Q + A
    if c < hi:
        hi = c
    if lo > hi + 1e-9 * max(1.0, abs(lo), abs(hi)):
        return math.nan, lo, hi, False
    S = Q + A - a * (k1 * C - k * D_bar)
    if S < lo:
        S = lo
    elif S > hi:
        S = hi if hi > lo else lo
    return S, lo, hi, True


def solve_closed_form(x: LPInput, tol: float = 1e-9) -> LPResult:
    lo, hi, b = bounds(x)
    S_D = x.Q + x.A - x.a * ((x.k + 1) * x.C_s - x.k * x.D_bar_s)
    scale = max(1.0, abs(lo), abs(hi))
    if lo > hi + tol * scale:
        return LPResult(math.nan, lo, hi, False, S_D, math.nan, "infeasible")
    if S_D < lo:
        S, binding = lo, min(("C1", "C2", "C7"), key=lambda n: abs(b[n] - lo))
    elif S_D > hi:
        S, binding = hi, min(("C3", "C4", "C5", "C6"), key=lambda n: abs(b[n] - hi))
    else:
        S, binding = S_D, "target"
    S = min(max(S, lo), max(lo, hi))
    return LPResult(S, lo, hi, True, S_D, objective(x, S), binding)


def solve_pulp(x: LPInput) -> LPResult:
    """The same LP, stated for a general solver: min u s.t. u >= ±(D̄(t+T) - C), every bound on S."""
    import pulp

    lo, hi, b = bounds(x)
    S_D = x.Q + x.A - x.a * ((x.k + 1) * x.C_s - x.k * x.D_bar_s)
    prob = pulp.LpProblem("auto_rate", pulp.LpMinimize)
    S = pulp.LpVariable("S")
    u = pulp.LpVariable("u", lowBound=0)
    prob += u
    d_next = (x.k * x.D_bar_s + (x.Q - S + x.A) * (1.0 / x.a)) * (1.0 / (x.k + 1))
    prob += u >= d_next - x.C_s
    prob += u >= x.C_s - d_next
    for name in ("C1", "C2", "C7"):
        prob += S >= b[name], name
    for name in ("C3", "C4", "C5", "C6"):
        prob += S <= b[name], name
    status = prob.solve(pulp.PULP_CBC_CMD(msg=False))
    if pulp.LpStatus[status] != "Optimal":
        return LPResult(math.nan, lo, hi, False, S_D, math.nan, "infeasible")
    s_val = float(S.value())
    return LPResult(s_val, lo, hi, True, S_D, objective(x, s_val), "pulp")
