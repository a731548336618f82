"""TCP-Reno-like source congestion control shared by the two TCP-like baselines (seed 000 §VI-A, baselines 1, 2).

Both QKD-TL (`qkdtl.py`) and RED-AQM (`red_reno.py`) put a Reno sender at every flow's source; only the signal
differs (key-shortage ECN vs. tail-drop loss plus ECN). Two controllers, selected by the `controller` parameter:

- `window` (profile `paper`): a window of messages in flight, in flight = released - acknowledged - known lost,
  with the end-to-end ACKs the node already sends. Slow start adds one message per ACK, congestion avoidance
  1/cwnd per ACK (RFC 5681 §3.1); a congestion signal halves the window at most once per round trip (NewReno's
  recovery point, RFC 6582: later signals are ignored until a message released after the reduction is answered).
  The paper sets the slow-start threshold as a *rate*, "the long-term key generation rate, i.e., 500 kbps": until
  the first reduction the sender is in slow start while cwnd x 4096 bit / srtt < 500 kbps; afterwards ssthresh is
  the halved window in messages, as in Reno. The window grows only while it is actually used (at least half full
  when the ACK comes, in the spirit of RFC 7661): in a network whose base RTT is 0.6 ms a 1 Mbps sender never fills
  even one message of window, and an unused window that grew without bound would make the first congestion
  signals ineffective.
- `batch` (profile `original`): the authors' rate-based controller of `main_ECN.cpp` (reference §3): every
  `rtt_window_s` = 100 ms a batch of slots is laid out at the current rate r, then r is updated: doubled in slow
  start until it reaches `ssthresh_bps` (512 kbps = SST/2), +1 kbps per batch in congestion avoidance, halved
  once per batch after any ECN. Slot gaps are whole milliseconds (`gap_resolution_s`). With `shared_per_node`
  (the code's quirk) one controller serves every flow of the source node.

Every TCP-like source is capped at 1 Mbps (`max_rate_bps`, "two-fold long-term key generation rate", §VI-A):
releases are paced at one message per 4096 bit / 1 Mbps = 4.096 ms.

Signals reach the controller as ECN frames `(ECN, flow, seq, src, dst, t_s, value)` sent end to end by the node
that saw the congestion (or applied locally when that node is the source). `seq` is -1 for a shortage mark and
the dropped message's sequence number for a loss notification (the message will never be acknowledged, so the
window controller stops counting it in flight).
"""

from __future__ import annotations

import math
from array import array
from typing import Any

from ..errors import QkdbedError
from ..node import actions as A
from ..node.frames import ECN

INF = math.inf
UNIT_BITS = 4096  # one message = one key unit = 512 bytes (paper Table II)
MARK = -1  # ECN seq value of a shortage mark (no message lost)

# Parameters of the Reno source, per profile (names carry units).
RENO_DEFAULTS = {
    "paper": {
        "controller": "window",
        "max_rate_bps": 1e6,  # "maximum rate limitation as 1Mbps ... for all users" (§VI-A)
        "ssthresh_bps": 500e3,  # "slow start threshold ... 500 kbps" (baseline 1)
        "initial_window_msgs": 1.0,
        "min_window_msgs": 1.0,
        "window_validation": True,  # grow only while the window is used (RFC 7661 spirit)
        "initial_rate_bps": 1e3,  # batch controller only
        "ai_rate_bps": 1e3,
        "rtt_window_s": 0.1,
        "gap_resolution_s": 0.0,
        "shared_per_node": False,
    },
    "original": {
        "controller": "batch",
        "max_rate_bps": 1e6,
        "ssthresh_bps": 512e3,  # SST = 1024 kbps; slow start ends at SST/2 (reference §3)
        "initial_window_msgs": 1.0,
        "min_window_msgs": 1.0,
        "window_validation": True,
        "initial_rate_bps": 1e3,  # r starts at 1 kbps
        "ai_rate_bps": 1e3,  # +1 kbps per batch in congestion avoidance
        "rtt_window_s": 0.1,  # RTT_TIME_WINDOWS = 100 ms
        "gap_resolution_s": 1e-3,  # int(4096/r) ms
        "shared_per_node": True,  # one Reno state per node, shared by all its flows
    },
}


def resolve_params(scheme: str, profile: str, params: dict[str, Any], defaults: dict[str, dict[str, Any]]
                   ) -> dict[str, Any]:
    """Profile defaults overlaid with the recipe's `scheme.params`; an unknown name is one clear error."""
    if profile not in defaults:
        raise QkdbedError(f"scheme {scheme}: unknown profile {profile!r} (known: {', '.join(defaults)})")
    out = dict(defaults[profile])
    for k, v in params.items():
        if k not in out:
            raise QkdbedError(f"scheme {scheme}: unknown parameter {k!r} (allowed: {', '.join(sorted(out))})")
        out[k] = v
    return out


def check_reno(scheme: str, p: dict[str, Any]) -> None:
    if p["controller"] not in ("window", "batch"):
        raise QkdbedError(f"scheme {scheme}: parameter 'controller' must be 'window' or 'batch', "
                          f"got {p['controller']!r}")
    for k in ("max_rate_bps", "ssthresh_bps", "initial_window_msgs", "min_window_msgs", "initial_rate_bps",
              "rtt_window_s"):
        v = p[k]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0:
            raise QkdbedError(f"scheme {scheme}: parameter {k!r} must be a positive number, got {v!r}")
    for k in ("ai_rate_bps", "gap_resolution_s"):
        v = p[k]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
            raise QkdbedError(f"scheme {scheme}: parameter {k!r} must be a number >= 0, got {v!r}")


class WindowReno:
    """Reno with a window of messages in flight (profile `paper`). Pure state machine: the caller passes `now`.

    Paced: at most one release per `gap_s` (the 1 Mbps cap)."""

    __slots__ = ("cwnd", "ssthresh", "ssthresh_bps", "min_cwnd", "validate", "gap_s", "t_allow", "srtt",
                 "recover", "high_seq", "lost", "rel_t", "reductions")

    def __init__(self, p: dict[str, Any]):
        self.cwnd = float(p["initial_window_msgs"])
        self.ssthresh: float | None = None  # None: the rate threshold `ssthresh_bps` applies (until a reduction)
        self.ssthresh_bps = float(p["ssthresh_bps"])
        self.min_cwnd = float(p["min_window_msgs"])
        self.validate = bool(p["window_validation"])
        self.gap_s = UNIT_BITS / float(p["max_rate_bps"])
        self.t_allow = -INF
        self.srtt: float | None = None
        self.recover = -1  # a reduction is allowed once a message with seq >= recover was answered
        self.high_seq = -1  # highest seq acknowledged or reported lost
        self.lost = 0
        self.rel_t = array("d")  # release time of each seq (for RTT samples)
        self.reductions = 0

    def in_slow_start(self) -> bool:
        if self.ssthresh is None:
            if self.srtt is None:
                return True
            return self.cwnd * UNIT_BITS < self.ssthresh_bps * self.srtt
        return self.cwnd < self.ssthresh

    def release(self, now: float, backlog: int, released: int, acked: int) -> tuple[int, float]:
        inflight = released - acked - self.lost
        if inflight >= int(self.cwnd + 1e-9):
            return 0, INF  # window full: an ACK or a loss notice will ask again
        if now < self.t_allow:
            return 0, self.t_allow
        t = self.t_allow + self.gap_s
        self.t_allow = t if t > now else now + self.gap_s
        self.rel_t.append(now)
        return 1, self.t_allow

    def on_ack(self, now: float, seq: int, released: int, acked_before: int) -> None:
        if 0 <= seq < len(self.rel_t):
            rtt = now - self.rel_t[seq]
            self.srtt = rtt if self.srtt is None else 0.875 * self.srtt + 0.125 * rtt
        if seq > self.high_seq:
            self.high_seq = seq
        inflight = released - acked_before - self.lost  # including the message just acknowledged
        if self.validate and 2 * inflight < self.cwnd:
            return
        if self.in_slow_start():
            self.cwnd += 1.0
        else:
            self.cwnd += 1.0 / self.cwnd

    def on_congestion(self, now: float, seq: int, released: int) -> bool:
        """A shortage mark (seq = MARK) or a loss notice (seq >= 0). Returns True if the window was halved."""
        if seq >= 0:
            self.lost += 1
            if seq > self.high_seq:
                self.high_seq = seq
        if self.high_seq < self.recover:
            return False  # already reduced within this round trip
        self.cwnd = max(self.min_cwnd, self.cwnd / 2.0)
        self.ssthresh = self.cwnd
        self.recover = released
        self.reductions += 1
        return True


SS, CA, FR = 0, 1, 2  # batch-controller states (slow start, congestion avoidance, fast recovery pending)


class BatchReno:
    """The original code's rate-based Reno (reference §3): batches of slots at rate r, r updated per batch.

    At each batch build (when the previous batch's slots are used up) the batch is laid out from the current r:
    if r x rtt_window <= 4096 bit it is one slot after a gap of 4096/r; otherwise int(r x rtt_window / 4096) slots
    spaced 4096/r apart (gaps rounded down to `gap_resolution_s`). Then r is updated: slow start doubles it and
    switches to avoidance once r >= ssthresh; avoidance adds `ai_rate_bps`; a pending ECN (FAST_RECOVERY) halves it
    (at least `initial_rate_bps`) and returns to avoidance, so r is halved at most once per batch. r never exceeds
    `max_rate_bps` (the paper's 1 Mbps cap; the code only had the 1 Mbps port)."""

    __slots__ = ("r_bps", "state", "r_min", "r_max", "sst", "ai", "window_s", "res_s", "slots_left", "gap_s",
                 "t_next", "batches", "reductions")

    def __init__(self, p: dict[str, Any]):
        self.r_bps = float(p["initial_rate_bps"])
        self.r_min = float(p["initial_rate_bps"])
        self.r_max = float(p["max_rate_bps"])
        self.sst = float(p["ssthresh_bps"])
        self.ai = float(p["ai_rate_bps"])
        self.window_s = float(p["rtt_window_s"])
        self.res_s = float(p["gap_resolution_s"])
        self.state = SS
        self.slots_left = 0
        self.gap_s = 0.0
        self.t_next = INF  # time of the next unused slot
        self.batches = 0
        self.reductions = 0

    def build(self, now: float) -> None:
        r = min(self.r_bps, self.r_max)
        gap = UNIT_BITS / r
        if self.res_s:
            gap = max(self.res_s, math.floor(gap / self.res_s + 1e-9) * self.res_s)
        n = 1 if r * self.window_s <= UNIT_BITS else int(r * self.window_s / UNIT_BITS)
        self.slots_left, self.gap_s, self.t_next = n, gap, now + gap
        self.batches += 1
        if self.state == SS:
            self.r_bps = min(self.r_max, self.r_bps * 2.0)
            if self.r_bps >= self.sst:
                self.state = CA
        elif self.state == CA:
            self.r_bps = min(self.r_max, self.r_bps + self.ai)
        else:  # FR: the ECN reaction, once per batch
            half = self.r_bps / 2.0
            if self.res_s:  # the code keeps r in whole kbps: r = max(1, r / 2) in integer arithmetic
                half = math.floor(half / 1e3) * 1e3
            self.r_bps = max(self.r_min, half)
            self.state = CA
            self.reductions += 1

    def release(self, now: float, backlog: int) -> tuple[int, float]:
        if self.slots_left == 0:
            self.build(now)
        if now < self.t_next:
            return 0, self.t_next
        # Catch up with every slot of the batch that is due (the code schedules at previous slot + gap).
        due = min(self.slots_left, int((now - self.t_next) / self.gap_s + 1e-9) + 1, backlog)
        self.slots_left -= due
        self.t_next += due * self.gap_s
        if self.slots_left == 0:
            self.build(now)
        return due, self.t_next

    def on_congestion(self, now: float, seq: int, released: int) -> bool:
        if self.state == FR:
            return False
        self.state = FR
        return True


class RenoSources:
    """The source half of a TCP-like baseline: create controllers, answer `release`, feed ACKs and ECNs.

    Mixed into the scheme classes; `self.p` holds the resolved parameters."""

    p: dict[str, Any]

    def attach(self, node) -> None:
        if self.p["controller"] == "window" and not node.ack:
            raise QkdbedError(f"scheme {self.name}: the window controller needs end-to-end ACKs (recipe ack: true), "
                              "or set params.controller: batch")
        node.state = {"src_of": {}, "batch": None}

    def flow_init(self, node, flow) -> None:
        if self.p["controller"] == "window":
            flow.cc = WindowReno(self.p)
        elif self.p["shared_per_node"]:
            if node.state["batch"] is None:
                node.state["batch"] = BatchReno(self.p)
            flow.cc = node.state["batch"]
        else:
            flow.cc = BatchReno(self.p)

    def release(self, node, flow, now: float, backlog: int) -> tuple[int, float]:
        cc = flow.cc
        if cc.__class__ is WindowReno:
            return cc.release(now, backlog, flow.released, flow.acked)
        return cc.release(now, backlog)

    def on_ack(self, node, flow, frame: tuple, now: float) -> None:
        cc = flow.cc
        if cc.__class__ is WindowReno:
            cc.on_ack(now, frame[2], flow.released, flow.acked - 1)

    def on_control(self, node, peer, frame: tuple, now: float) -> None:
        if frame[0] == ECN:
            flow = node.flows.get(frame[1])
            if flow is not None:
                self.congestion(node, flow, frame[2], now)

    def congestion(self, node, flow, seq: int, now: float, kick: bool = True) -> None:
        flow.cc.on_congestion(now, seq, flow.released)
        if kick and seq >= 0:  # a loss frees a place in the window: the source may release again
            node.kick(node.ports[flow.port], now)

    def notify(self, node, fid: int, src: str, seq: int, value: float, dst: str, now: float) -> None:
        """Send an ECN for flow `fid` to its source `src` (end to end), or react locally at the source."""
        if src == node.name:
            node.out.append((A.CONTROL, None, fid, ECN))  # recorded like the frame a remote node would send
            flow = node.flows.get(fid)
            if flow is not None:
                # No kick: we may be inside the node's own release loop (a drop at the source queue); the
                # node already asks the controller again at the time `release` returned.
                self.congestion(node, flow, seq, now, kick=False)
        else:
            node.send_e2e(src, (ECN, fid, seq, src, dst, now, value))
