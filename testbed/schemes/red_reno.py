"""`red-reno`: baseline 2 of seed 000 §VI-A, RED-style active management of the key store plus TCP Reno sources.

Key-supply rate of each egress port from its key storage L by Eq. (5):

    s(L) = s_min                                                  L < tau_min
           s_min + s_max (L - tau_min) / (k (tau_max - tau_min))   tau_min <= L < tau_max
           s_max                                                  tau_max <= L

with s_min = s_max / k, k = 2, tau_min = 800 kbit, tau_max = 16 Mbit, s_max = 1 Mbps (the code's C_max; the paper
caps every TCP-like user at 1 Mbps). The paper calls f "non-increasing", but the formula *increases* with L (from
s_min at tau_min to s_max at tau_max) and so does the original code: we implement the formula. (The paper also
writes the middle case as "tau_max <= L < tau_min" and calls tau_min the upper threshold: typos.) The ramp is
deterministic: nothing is random despite the name RED. The rate is re-evaluated whenever L changes (after every
send and every key-generation event), which is what the code's per-iteration recomputation amounts to.

Queues: each per-flow queue holds at most `queue_limit_msgs` = 200 messages (`REQUEST_QUEUE_SIZE`); an arriving
message that finds 200 queued is dropped (the node records the drop) and an ECN carrying the dropped sequence
number goes to the flow's source, whose Reno controller halves (at most once per RTT) and stops counting the
message in flight. Sources are the shared Reno sender of `reno.py`.

Profile `original` (`main_AQM.cpp`, reference §4): thresholds 200 / 4000 messages, C-style integer arithmetic
(`integer_arithmetic`), and behind `int32_overflow: true` the overflow of the 32-bit product 1e6 (L - 200) for
L > 2347: 782.5 kbps at L = 2347, then 217.5 kbps at 2348 rising to 434.7 kbps at 3999, and 1 Mbps from 4000.
"""

from __future__ import annotations

from typing import Any

from ..errors import QkdbedError
from .base import Scheme, register
from .reno import RENO_DEFAULTS, UNIT_BITS, RenoSources, check_reno, resolve_params

DEFAULTS = {
    "paper": dict(RENO_DEFAULTS["paper"], k=2.0, s_max_bps=1e6, tau_min_bits=800e3, tau_max_bits=16e6,
                  queue_limit_msgs=200, integer_arithmetic=False, int32_overflow=False),
    "original": dict(RENO_DEFAULTS["original"], k=2.0, s_max_bps=1e6, tau_min_bits=200 * UNIT_BITS,
                     tau_max_bits=4000 * UNIT_BITS, queue_limit_msgs=200, integer_arithmetic=True,
                     int32_overflow=False),
}


def eq5_rate_bps(keys: float, s_max_bps: float = 1e6, k: float = 2.0, tau_min_bits: float = 800e3,
                 tau_max_bits: float = 16e6) -> float:
    """Eq. (5): key-supply rate for a key storage of `keys` units (4096 bit each), real arithmetic."""
    s_min = s_max_bps / k
    l_bits = keys * UNIT_BITS
    if l_bits < tau_min_bits:
        return s_min
    if l_bits >= tau_max_bits:
        return s_max_bps
    return s_min + s_max_bps * (l_bits - tau_min_bits) / (k * (tau_max_bits - tau_min_bits))


def _c_div(a: int, b: int) -> int:
    """C integer division (truncation toward zero)."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


def _int32(x: int) -> int:
    return (x + 2 ** 31) % 2 ** 32 - 2 ** 31


def eq5_rate_original_bps(keys: int, s_max_bps: int = 1_000_000, k: int = 2, tau_min_msgs: int = 200,
                          tau_max_msgs: int = 4000, int32_overflow: bool = False) -> int:
    """The code's Eq. (5): thresholds in messages, int arithmetic; optionally the int32 overflow of
    s_max x (L - tau_min) (reference §4)."""
    if keys <= tau_min_msgs:
        return s_max_bps // k
    if keys >= tau_max_msgs:
        return s_max_bps
    num = s_max_bps * (keys - tau_min_msgs)
    if int32_overflow:
        num = _int32(num)
    return _c_div(num, (tau_max_msgs - tau_min_msgs) * k) + s_max_bps // k


class RedPort:
    __slots__ = ("drops", "high_water")

    def __init__(self) -> None:
        self.drops = 0
        self.high_water = 0  # longest per-flow queue seen after an enqueue


class RedReno(RenoSources, Scheme):
    name = "red-reno"
    display_name = "RED-AQM + Reno"
    has_queue_policy = True

    def __init__(self, params: dict[str, Any] | None = None, profile: str = "paper"):
        super().__init__(params, profile)
        p = self.p = resolve_params(self.name, profile, self.params, DEFAULTS)
        check_reno(self.name, p)
        for key in ("k", "s_max_bps", "tau_min_bits", "tau_max_bits", "queue_limit_msgs"):
            v = p[key]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0:
                raise QkdbedError(f"scheme {self.name}: parameter {key!r} must be a positive number, got {v!r}")
        if p["tau_max_bits"] <= p["tau_min_bits"]:
            raise QkdbedError(f"scheme {self.name}: parameter 'tau_max_bits' must exceed tau_min_bits "
                              f"({p['tau_min_bits']:g}), got {p['tau_max_bits']!r}")
        self._limit = int(p["queue_limit_msgs"])
        if p["integer_arithmetic"]:
            args = (int(p["s_max_bps"]), int(p["k"]), int(round(p["tau_min_bits"] / UNIT_BITS)),
                    int(round(p["tau_max_bits"] / UNIT_BITS)), bool(p["int32_overflow"]))
            self._rate = lambda keys: float(eq5_rate_original_bps(keys, *args))
        elif p["int32_overflow"]:
            raise QkdbedError(f"scheme {self.name}: parameter 'int32_overflow' needs integer_arithmetic: true "
                              "(profile original)")
        else:
            args = (float(p["s_max_bps"]), float(p["k"]), float(p["tau_min_bits"]), float(p["tau_max_bits"]))
            self._rate = lambda keys: eq5_rate_bps(keys, *args)

    def port_init(self, node, port) -> None:
        port.state = RedPort()
        port.rate_bps = self._rate(port.keys)

    def on_supply(self, node, port, now: float, units: int) -> None:
        port.rate_bps = self._rate(port.keys)

    def on_enqueue(self, node, port, frame: tuple, upstream, now: float) -> bool:
        q = port.queues.get(frame[1])
        n = len(q) if q is not None else 0
        if n >= self._limit:
            port.state.drops += 1
            # Tail drop, and tell the source (seq = the lost message): main_AQM.cpp sends ECN on every drop.
            self.notify(node, frame[1], frame[3], frame[2], float(n), frame[4], now)
            return False
        if n + 1 > port.state.high_water:
            port.state.high_water = n + 1
        return True

    def on_dequeue(self, node, port, flow: int, now: float) -> None:
        port.rate_bps = self._rate(port.keys)

    def port_stats(self, node, port) -> dict[str, float]:
        return {"drops": port.state.drops, "queue_high_water": port.state.high_water}


register("red-reno", RedReno, "RED-AQM + Reno", colour="#2ca02c", marker="^")
