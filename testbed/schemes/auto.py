"""AUTO: elastic key-supply rate control per egress port (seed 000 §IV, Alg. 1), in two profiles.

`paper`    the published model: DoE by Definition 1 over the key-generation history, the elastic window W counted
           in key-generation events, running averages weighted by |t| (events recorded), and problem (3) with
           C1-C7 solved exactly each T and at each key-generation event (`auto_lp.py`; `solver: pulp` solves the
           same LP with CBC).
`original` the authors' released code (reference/original-implementation.md §2.4): a 5-second window, the code's
           DoE, means over all decisions since start, the (n+1)X - nS̄ conversion, the 10 / 1000 kbps clamps and
           millisecond pacing. Each quirk is a named parameter (see ORIGINAL_DEFAULTS) so it can be switched alone.

The scheme `auto` is AUTO with plain sources (no congestion control beyond the port rates): each half of the paper's
proposal can be studied alone. `auto-cpbfc` (in `cpbfc.py`) adds probing and backpressure.

Arrival rate a (Sec. V-A): the sum over the port's live flows of the rate each flow can arrive at, learned from
probes when CP-BFC runs (`PortAuto.a_flow`), otherwise measured (an average of arrivals per slot).
"""

from __future__ import annotations

import math
from typing import Any

from ..errors import QkdbedError
from . import auto_lp
from .base import Scheme, register

UNIT_BITS = 4096

PAPER_DEFAULTS: dict[str, Any] = {
    "T_s": 0.008,  # update interval T (Table II)
    "C_s": 0.008,  # expected queuing delay C (Table II)
    "eps_s": 0.0,  # convergence gap ε (Table II)
    "W": 5,  # elastic window, key-generation events (Table II)
    "solver": "closed-form",  # closed-form | pulp
    # when (3) is infeasible: relax (drop C1/C3, then C2; never the storage bounds C4-C6), storage (min(C4, C5,
    # C6)), fallback (fallback_rate_bps), hold (keep the last rate)
    "infeasible": "relax",
    "fallback_rate_bps": 10_000.0,
    "max_rate_bps": None,  # optional cap (None: only the classical channel)
    "idle_rate": "long-term",  # rate of a port with no arrivals: long-term (λ̄) | zero
    "arrival_avg_slots": 25,  # measured arrival rate: average over this many slots (when no probe estimate)
}

ORIGINAL_DEFAULTS: dict[str, Any] = {
    "T_s": 0.008,
    "C_s": 0.008,
    "eps_s": 0.0,
    "window_s": 5.0,  # W_TIME_SIZE: a time window of key-supply records, in seconds
    "decisions_from_s": 2.0,  # decisions start at t = 2000 ms
    "max_rate_kbps": 1000.0,
    "fallback_rate_kbps": 10.0,
    "ms_pacing": True,  # interval = int(4096000 / rate_bps) ms
    "mean_not_sum_delay_bug": True,  # d̄ adds the queued messages' mean age instead of their sum
    "idle_rate_long_run": True,  # a port with a_tot = 0: total_keys·4096/elapsed_ms kbps (uncapped)
}


def _params(params: dict[str, Any], defaults: dict[str, Any], scheme: str, extra: set[str]) -> dict[str, Any]:
    out = dict(defaults)
    for k, v in params.items():
        if k not in defaults and k not in extra:
            raise QkdbedError(f"scheme {scheme}: unknown parameter {k!r} (known: {', '.join(sorted(set(defaults) | extra))})")
        if k in defaults:
            out[k] = v
    return out


class PortAuto:
    """AUTO state of one egress port."""

    __slots__ = ("ev_t", "ev_amt", "sum_amt", "Q_bar", "a_bar", "S_bar", "D_bar", "n_dec", "arrivals", "served",
                 "a_flow", "live", "last", "window", "doe", "consumed_mark", "total", "served_so_far", "sent_n",
                 "sent_delay_sum", "arr_hist", "decisions", "infeasible", "enq", "enq_sum", "lam", "t_bar",
                 "mean_amt", "cap", "win_lam", "win_v")

    def __init__(self) -> None:
        self.ev_t: list[float] = []  # key-generation event times at this port
        self.ev_amt: list[int] = []  # amounts Λ (units)
        self.sum_amt = 0
        self.Q_bar = 0.0
        self.a_bar = 0.0  # messages/s
        self.S_bar = 0.0  # messages/slot
        self.D_bar = 0.0  # s
        self.n_dec = 0
        self.arrivals = 0  # since the last decision
        self.served = 0
        self.a_flow: dict[int, float] = {}  # flow -> arrival estimate (messages/s) from probes / source pacing
        self.live: set[int] = set()
        self.last: tuple[float, float, bool] | None = None  # (lo, hi, feasible) of the last decision
        self.window: list[tuple[float, int, float]] = []  # original: (time, Λ, DoE) records
        self.doe = math.inf
        self.consumed_mark = 0
        self.total = 0
        self.served_so_far = 0
        self.sent_n = 0
        self.sent_delay_sum = 0.0
        self.arr_hist: list[int] = []
        self.decisions = 0
        self.infeasible = 0
        self.enq: dict[int, Any] = {}  # original profile: per-flow enqueue times (for the code's delay means)
        self.enq_sum = 0.0
        self.lam = 0.0  # λ̄, messages/s (updated at each key-generation event)
        self.t_bar = 0.0  # mean interval between key-generation events, s
        self.mean_amt = 0.0  # Λ̄, units per event
        self.cap = 0.0  # capacity the port advertises to probes: min(C4, C5) in messages/s (paper profile)
        self.win_lam = 0  # original profile: Σ Λ and Σ (S - Λ) over the window records
        self.win_v = 0

    # -- Definition 1 -------------------------------------------------------------------------------------------
    def doe_paper(self, L: float) -> float:
        if not self.ev_amt:
            return math.inf
        mean = self.sum_amt / len(self.ev_amt)
        return (L - self.ev_amt[-1]) / mean if mean > 0 else math.inf


class AutoRate:
    """AUTO rate control, paper profile: decisions every T and at every key-generation event."""

    def __init__(self, p: dict[str, Any]):
        self.p = p
        if p["T_s"] < p["C_s"]:
            raise QkdbedError(f"AUTO: constraint C7 needs T >= C, got T_s={p['T_s']} < C_s={p['C_s']}")
        if p["solver"] not in ("closed-form", "pulp"):
            raise QkdbedError(f"AUTO: solver must be closed-form or pulp, got {p['solver']!r}")
        if p["infeasible"] not in ("relax", "storage", "fallback", "hold"):
            raise QkdbedError(f"AUTO: infeasible must be relax, storage, fallback or hold, got {p['infeasible']!r}")
        self.solve = auto_lp.solve_pulp if p["solver"] == "pulp" else auto_lp.solve_closed_form
        self.fast = p["solver"] == "closed-form"
        # parameters as attributes: `decide` runs millions of times
        self.T, self.C, self.eps, self.W = p["T_s"], p["C_s"], p["eps_s"], p["W"]
        self.policy = p["infeasible"]
        self.idle_long_term = p["idle_rate"] == "long-term"
        self.cap_bps = p.get("max_rate_bps")

    def on_supply(self, node, port, now: float, units: int) -> None:
        st: PortAuto = port.state.auto
        st.ev_t.append(now)
        st.ev_amt.append(units)
        st.sum_amt += units
        k = len(st.ev_t)
        st.mean_amt = st.sum_amt / k
        if k >= 2:
            span = st.ev_t[-1] - st.ev_t[0]
            st.t_bar = span / (k - 1)
            st.lam = (st.sum_amt - st.ev_amt[0]) / span if span > 0 else 0.0
        st.doe = st.doe_paper(port.keys)
        self.decide(node, port, now, tick=False)

    def measured_a(self, st: PortAuto, tick: bool) -> float:
        """Arrivals per second averaged over the last `arrival_avg_slots` slots (updated at ticks only)."""
        h = st.arr_hist
        if tick:
            h.append(st.arrivals)
            st.arrivals = 0
            if len(h) > self.p["arrival_avg_slots"]:
                del h[0]
        return sum(h) / (len(h) * self.p["T_s"]) if h else 0.0

    def arrival_rate(self, st: PortAuto, tick: bool) -> float:
        if st.a_flow:
            return sum(st.a_flow.values())
        return self.measured_a(st, tick)

    def decide(self, node, port, now: float, tick: bool = True) -> None:
        """One AUTO decision for `port` (Alg. 1 lines 8-11). The simulator's hottest function: plain floats."""
        st: PortAuto = port.state.auto
        T = self.T
        af = st.a_flow
        a = sum(af.values()) if af else self.measured_a(st, tick)
        k = len(st.ev_t)
        if k == 0:
            st.cap = 0.0
            st.last = None
            self._set(node, port, 0.0, now)
            return
        Q = port.queued
        lam = st.lam
        t_bar = st.t_bar if k >= 2 else max(now - st.ev_t[0], T)
        L = port.keys
        mean_amt = st.mean_amt
        # Definition 1, then C4 (elastic window) and C5 (no exhaustion before the next event)
        if mean_amt > 0:
            doe = (L - st.ev_amt[-1]) / mean_amt
            c4 = doe * mean_amt / (self.W * t_bar) + lam
        else:
            c4 = math.inf
        dt_next = st.ev_t[-1] + t_bar - now
        c5 = L / dt_next if dt_next > T else L / T
        # The capacity probes carry (Sec. V-A): the most this port may supply under its storage bounds. Advertising
        # the decided rate instead would make a = s a fixed point at any level and starve the flows.
        cap = c4 if c4 < c5 else c5
        st.cap = cap if cap > 0.0 else 0.0
        if a <= 0:
            st.last = None  # no arrivals: no LP; an idle port offers the long-term rate
            self._set(node, port, lam if self.idle_long_term else 0.0, now)
            return
        # running averages weighted by |t| (the paper's S̄(t+T) formula), with the current observations
        w = k
        w1 = w + 1
        Q_bar = st.Q_bar = (st.Q_bar * w + Q) / w1
        a_bar = st.a_bar = (st.a_bar * w + a) / w1
        A = a * T
        C = self.C
        S_bar, D_bar = st.S_bar, st.D_bar
        if self.fast:
            # auto_lp.closed_form_fast inlined (this runs millions of times); a test checks both agree
            eps = self.eps
            lo = w1 * (Q_bar - (T - C - eps) * a_bar) - k * S_bar
            if A > lo:
                lo = A
            if lo < 0.0:
                lo = 0.0
            hi = w1 * (Q_bar + (T - C + eps) * a_bar) - k * S_bar
            x = c4 * T
            if x < hi:
                hi = x
            x = c5 * T
            if x < hi:
                hi = x
            x = Q + A
            if x < hi:
                hi = x
            S_D = Q + A - a * (w1 * C - k * D_bar)
            if lo > hi + 1e-9 * (abs(lo) if abs(lo) > 1.0 else 1.0):
                feasible = False
            else:
                feasible = True
                S = lo if S_D < lo else (S_D if S_D <= hi else (hi if hi > lo else lo))
            st.last = (lo, hi, feasible)
        else:
            x = auto_lp.LPInput(T_s=T, C_s=C, eps_s=self.eps, k=k, Q=Q, A=A, a=a, Q_bar=Q_bar,
                                a_bar=a_bar, S_bar=S_bar, D_bar_s=D_bar, c4_max_rate=c4, c5_max_rate=c5)
            res = self.solve(x)
            S, feasible = res.S, res.feasible
            S_D = res.S_D
            st.last = (res.lo, res.hi, feasible)
        st.decisions += 1
        if not feasible:
            st.infeasible += 1
            pol = self.policy
            if pol == "relax":
                # Lexicographic relaxation: keep the physical bounds (storage C4, C5; queue C6; S >= 0) and drop
                # the long-term averaging constraints C1/C3 first, then C2; project the delay target onto what is
                # left. The key storage is never put at risk to honour a history average.
                hard_hi = min(c4 * T, c5 * T, Q + A)
                if hard_hi < 0.0:
                    hard_hi = 0.0
                lo2 = A if A <= hard_hi else 0.0
                S = min(max(S_D, lo2), hard_hi)
                st.last = (lo2, hard_hi, False)
            elif pol == "storage":
                S = max(0.0, min(c4 * T, c5 * T, Q + A))
            elif pol == "fallback":
                S = self.p["fallback_rate_bps"] / UNIT_BITS * T
            else:
                S = (port.rate_bps or 0.0) / UNIT_BITS * T
        q_next = Q - S + A
        if q_next < 0.0:
            q_next = 0.0
        st.S_bar = (S_bar * w + S) / w1
        st.D_bar = (D_bar * w + q_next / a) / w1
        rate_bps = S / T * UNIT_BITS if S > 0.0 else 0.0
        cap_bps = self.cap_bps
        if cap_bps is not None and rate_bps > cap_bps:
            rate_bps = float(cap_bps)
        if rate_bps != port.rate_bps:
            node.set_rate(port, rate_bps, now)

    def _set(self, node, port, rate_msgs: float, now: float) -> None:
        rate_bps = rate_msgs * UNIT_BITS if rate_msgs > 0.0 else 0.0
        cap = self.cap_bps
        if cap is not None and rate_bps > cap:
            rate_bps = float(cap)
        if rate_bps != port.rate_bps:
            node.set_rate(port, rate_bps, now)


class AutoRateOriginal:
    """AUTO as the released C++ code computes it (reference §2.4), quirks behind named parameters."""

    def __init__(self, p: dict[str, Any]):
        self.p = p

    def on_supply(self, node, port, now: float, units: int) -> None:
        st: PortAuto = port.state.auto
        st.total += units
        if not st.ev_t:  # the first supply only creates the counters
            st.ev_t.append(now)
            return
        st.ev_t.append(now)
        # arrival-rate ageing: flows with no queue entry and not live since the last supply stop counting
        for f in list(st.a_flow):
            if not port.queues.get(f) and f not in st.live:
                st.a_flow[f] = 0.0
        st.live.clear()
        # drop records aged at least (window + 1) s: floor((now - t)/1 s) > window
        win = self.p["window_s"]
        st.window = [r for r in st.window if math.floor(now - r[0]) <= win]
        keys_per_s = math.floor(sum(r[1] for r in st.window) / win) if st.window else 0
        doe = (port.keys / keys_per_s - 1.0) if keys_per_s > 0 else math.inf
        st.window.append((now, units, doe, st.served))
        st.served = 0
        st.win_lam = sum(r[1] for r in st.window)  # kept for `rate`, which runs every T
        st.win_v = sum(r[3] - r[1] for r in st.window)
        st.doe = doe

    def decide(self, node, port, now: float) -> None:
        p = self.p
        st: PortAuto = port.state.auto
        if now < p["decisions_from_s"]:
            return
        T_ms, C_ms = p["T_s"] * 1e3, p["C_s"] * 1e3
        a_tot = sum(st.a_flow.values())  # kbps
        if a_tot == 0:
            if p["idle_rate_long_run"] and now > 0:
                rate_kbps = st.total * UNIT_BITS / (now * 1e3)  # total_keys·4096 / elapsed_ms, in kbps
                rate_kbps = float(int(rate_kbps))
            else:
                rate_kbps = 0.0
            self._set(node, port, rate_kbps, now)
            return
        served = st.total - port.keys - st.served_so_far
        st.served_so_far += served
        n = st.n_dec
        Q_now = port.queued
        st.Q_bar = (st.Q_bar * n + Q_now) / (n + 1)
        st.a_bar = (st.a_bar * n + a_tot) / (n + 1)
        st.S_bar = (st.S_bar * n + served) / (n + 1)
        st.n_dec = n = n + 1
        # queued messages' mean age (ms) and count, from the running sum of their enqueue times
        N_q = port.queued
        d_q = (now - st.enq_sum / N_q) * 1e3 if N_q else 0.0
        if p["mean_not_sum_delay_bug"]:
            num = st.sent_delay_sum + d_q
        else:
            num = st.sent_delay_sum + d_q * N_q
        N = N_q + st.sent_n
        d_bar = num / N if N else 0.0
        rate_kbps = self.rate(st, a_tot, T_ms, C_ms, port.keys, Q_now, d_bar, N, n)
        self._set(node, port, rate_kbps, now)

    def rate(self, st: PortAuto, a_tot: float, T: float, C: float, L: float, Q_now: float, d_bar: float,
             N: float, n: int) -> float:
        """The code's `rate()`: every amount in messages per T (ms), a in kbps, 4096 converts kbit to messages."""
        p = self.p
        eps = p["eps_s"] * 1e3
        A_pred = a_tot * T / 4096.0
        if not st.window:
            return 0.0
        s_min = min(st.Q_bar - (T - C + eps) * st.a_bar / 4096.0, A_pred)
        s_max1 = min(L, st.Q_bar + (T - C + eps) * st.a_bar / 4096.0)
        sum_lam = st.win_lam
        k = len(st.window)
        V = st.win_v  # Σ(S − Λ): messages sent minus keys added, per record
        doe = st.window[-1][2]
        tau = (5.0 / k) * 1000.0 / T
        if math.isfinite(doe):
            s_max2 = min(L, (doe * sum_lam / 5.0 - V) / tau + sum_lam / tau)
        else:
            s_max2 = L
        s_max = min(s_max1, s_max2)
        s_min_i = s_min * (n + 1) - n * st.S_bar
        s_max_i = s_max * (n + 1) - n * st.S_bar
        S_D = Q_now + A_pred - (C * (N + A_pred) - d_bar * N) / T
        S_D = S_D * (n + 1) - n * st.S_bar
        if s_min_i <= S_D <= s_max_i:
            S = S_D
        else:
            S = s_max_i if abs(S_D - s_max_i) <= abs(S_D - s_min_i) else s_min_i
        if S <= 0 or s_min_i > s_max_i:
            return p["fallback_rate_kbps"]
        return float(min(p["max_rate_kbps"], int(S * 4096.0 / T)))

    def _set(self, node, port, rate_kbps: float, now: float) -> None:
        rate_bps = rate_kbps * 1000.0
        if self.p["ms_pacing"] and rate_bps > 0:
            ms = int(4096000.0 / rate_bps)
            rate_bps = UNIT_BITS / (ms / 1000.0) if ms > 0 else rate_bps
        node.set_rate(port, rate_bps, now)


class PortState:
    """Per-port scheme state: AUTO's, plus room for CP-BFC's (`bp`)."""

    __slots__ = ("auto", "bp")

    def __init__(self) -> None:
        self.auto = PortAuto()
        self.bp: Any = None


class Auto(Scheme):
    """AUTO with plain sources: every offered message enters the network at once (no end-to-end control)."""

    name = "auto"
    display_name = "AUTO"
    has_queue_policy = True  # to count arrivals and services per slot

    EXTRA_PARAMS: set[str] = set()

    def __init__(self, params=None, profile="paper"):
        super().__init__(params, profile)
        if profile == "paper":
            self.p = _params(self.params, PAPER_DEFAULTS, self.name, self.EXTRA_PARAMS)
            self.rate = AutoRate(self.p)
        else:
            self.p = _params(self.params, ORIGINAL_DEFAULTS, self.name, self.EXTRA_PARAMS)
            self.rate = AutoRateOriginal(self.p)
        self.tick_s = self.p["T_s"]

    def port_init(self, node, port) -> None:
        port.state = PortState()
        node.set_rate(port, 0.0, 0.0)  # no supply before the first decision

    def on_supply(self, node, port, now, units) -> None:
        self.rate.on_supply(node, port, now, units)

    def on_tick(self, node, now) -> None:
        decide = self.rate.decide
        for port in node.ports.values():
            if port.queues or port.sources or port.state.auto.a_flow:
                decide(node, port, now)

    def on_enqueue(self, node, port, frame, upstream, now) -> bool:
        st = port.state.auto
        st.arrivals += 1
        st.live.add(frame[1])
        if self.profile == "original":
            q = st.enq.get(frame[1])
            if q is None:
                from collections import deque

                q = st.enq[frame[1]] = deque()
            q.append(now)
            st.enq_sum += now
        return True

    def on_dequeue(self, node, port, flow, now) -> None:
        st = port.state.auto
        st.served += 1
        if self.profile == "original":
            t = st.enq[flow].popleft()
            st.enq_sum -= t
            st.sent_delay_sum += (now - t) * 1e3
            st.sent_n += 1

    def port_stats(self, node, port) -> dict[str, float]:
        st = port.state.auto
        out = {"doe": st.doe if math.isfinite(st.doe) else -1.0, "decisions": st.decisions,
               "infeasible": st.infeasible}
        if st.last is not None:
            out.update(lp_lo=st.last[0], lp_hi=st.last[1], lp_feasible=float(st.last[2]))
        return out


register("auto", Auto, "AUTO", colour="#2ca02c", marker="s")
