"""`rsvp`: per-flow key reservation (seed 000 §VI-B-3, Table III), after RSVP (RFC 2205) with guaranteed service
(RFC 2212), as China's QKD networks apply it [21].

Signalling (modelled hop by hop with `node.send_control`; the traffic spec travels "in" the PATH: every node's
scheme instance reads the same per-flow parameters, so a node looks the spec up instead of decoding it):

1. When the source has messages to send and no reservation, it sends PATH (token bucket r, b, p, M and delay
   bound D) toward the destination, and again every `retry_s` = 2 s until admitted.
2. Admission at every hop, the source included: the port toward the next hop must have `available = keys -
   reserved >= b` (b in key units). Otherwise the PATH is dropped silently (counted as `path_refused`). A hop
   that forwards the PATH keeps the previous hop (RSVP's path state).
3. The destination answers RESV, which travels back along the path state. Each hop reserves b keys on its port
   toward the downstream neighbour: a reservation entry with a token bucket holding b. Profile `paper` re-checks
   availability there (`recheck_at_resv`; on refusal it tears the downstream part down again); the original
   reserves blindly, so `available` can go negative.
4. The source is admitted when RESV reaches it; only then does it release messages (an unadmitted flow is never
   served, and a message reaching a hop without an entry is dropped, as the original loses it).

Service at each hop, per flow (no port rate): a message may go when its entry holds a token and its pacing time
has come (`may_send`, `node.wake`). The gap is 4096 bit / R while the reserved bucket lasts, and 4096 bit / r once
it has run dry: the cliff. In the original the switch is for good (`enough` is never restored); the paper profile
returns to R when the bucket refills to b (`restore_peak`). Each message takes one token and one key.

Guaranteed rate R (RFC 2212 delay bound, fluid model without the C and D error terms; seed 000 cites it as
Eq. (3.12) of [21]): for p > R >= r the queueing delay of a (r, b, p, M)-constrained flow served at R is at most
D = ((b - M)/R)((p - R)/(p - r)) + M/R. Solving for R:

    R = (p (b - M)/(p - r) + M) / (D + (b - M)/(p - r))

We clamp R into [r, p] (below r the bucket could not be sustained; at or above p the formula no longer applies and
serving faster than the peak rate gains nothing). Profile `original` uses the code's mixed 1000/1024 variant
(`rate_formula: original`, reference §5): R = (p (b-1)/(p-r) 4096 + 4096) / (D_ms/1000 + ((b-1) 4096/1024)/(p-r))
with p, r in kbps and b in messages.

Tokens: at each key-generation event on a port, every reservation entry is owed r x dt / 4096 tokens, dt being the
time since the port's previous event; they are taken out of the new keys (the rest stays unreserved). Profile
`paper` keeps fractions and caps each bucket at b (`cap_bucket`); the original truncates to whole tokens per entry
(`integer_tokens`) and has no cap.

Reservation break (Fig. 14). Definition: a reservation on a port *breaks* at a key-generation event whose amount
is smaller than what the port owes its reservations for the elapsed interval (units < sum_f r_f dt / 4096), i.e.
the link's key rate over that interval fell below the sum of the promised token rates. The entries then share the
new keys in proportion to r_f, and each affected reservation records one break: a ResvErr-style notice sent end
to end from the breaking node to the flow's source, logged as a control row of kind RESV with peer -1 and value
-(tokens short). (Hop-by-hop RESV rows always have a neighbour as peer.)

Teardown: after the source has sent the last message of a finite flow it releases its own entry and sends
TEARDOWN behind the data (links are FIFO); a relay releases its entry once its queue for the flow is empty and
passes TEARDOWN on. Released tokens return to the unreserved pool.

Per-flow parameters: `flows: {<key>: {r_bps, p_bps, b_mbit | b_keys, M_bits, D_s}}`, the key being the flow's
default name "src->dst" or its 1-based position in the recipe (a scheme does not see custom flow names). Missing
values come from Table III (`table3: left` = Fig. 13, `right` = Fig. 14): the recipe's odd flows get column
"Flow 1", even flows "Flow 2". D is not in Table III: D = 1 s (the code's 1000 ms). Units: the paper's b in Mb
becomes keys by `keys_per_mbit`: 1e6 / 4096 = 244.1 in profile `paper`; 500 in profile `original`, which is how
the code's b = 2500 messages stands for 5 Mb (reference §9.12).
"""

from __future__ import annotations

import math
from typing import Any

from ..errors import QkdbedError
from ..node import actions as A
from ..node.frames import PATH, RESV, TEARDOWN
from .base import Scheme, register
from .reno import UNIT_BITS, resolve_params

INF = math.inf
TIMER_SCHEME = 2  # = node.TIMER_SCHEME (timer keys >= 2 are the scheme's); not imported: node.py imports us

# Table III of seed 000: (Fig. 13 | Fig. 14) x (Flow 1, Flow 2). M = 4 kb is one message (4096 bit).
TABLE_III = {
    "left": ({"r_bps": 300e3, "p_bps": 4e6, "b_mbit": 10.0, "M_bits": 4096.0},
             {"r_bps": 100e3, "p_bps": 4e6, "b_mbit": 5.0, "M_bits": 4096.0}),
    "right": ({"r_bps": 300e3, "p_bps": 4e6, "b_mbit": 5.0, "M_bits": 4096.0},
              {"r_bps": 200e3, "p_bps": 4e6, "b_mbit": 5.0, "M_bits": 4096.0}),
}
FLOW_FIELDS = ("r_bps", "p_bps", "b_mbit", "b_keys", "M_bits", "D_s")

DEFAULTS = {
    "paper": {"table3": "left", "flows": {}, "D_s": 1.0, "retry_s": 2.0, "rate_formula": "rfc2212",
              "keys_per_mbit": 1e6 / UNIT_BITS, "gap_resolution_s": 0.0, "recheck_at_resv": True,
              "restore_peak": True, "cap_bucket": True, "integer_tokens": False},
    "original": {"table3": "left", "flows": {}, "D_s": 1.0, "retry_s": 2.0, "rate_formula": "original",
                 "keys_per_mbit": 500.0, "gap_resolution_s": 1e-3, "recheck_at_resv": False,
                 "restore_peak": False, "cap_bucket": False, "integer_tokens": True},
}


def guaranteed_rate_bps(r_bps: float, b_bits: float, p_bps: float, m_bits: float, d_s: float) -> float:
    """RFC 2212 rate for delay bound `d_s` (p > R >= r case), clamped into [r, p]."""
    if p_bps <= r_bps:
        return r_bps  # a flow that never bursts above r needs only r
    burst_s = (b_bits - m_bits) / (p_bps - r_bps)  # how long the peak rate can exceed r before the bucket is dry
    rate = (p_bps * burst_s + m_bits) / (d_s + burst_s)
    return min(max(rate, r_bps), p_bps)


def guaranteed_rate_original_bps(r_bps: float, b_keys: float, p_bps: float, d_s: float) -> float:
    """main_RSVP.cpp's variant (reference §5): kbps, messages and ms, mixing 1000 and 1024."""
    p, r, d_ms = p_bps / 1e3, r_bps / 1e3, d_s * 1e3
    rate = (p * (b_keys - 1) / (p - r) * 4096 + 4096) / (d_ms / 1000 + ((b_keys - 1) * 4096 / 1024) / (p - r))
    return max(rate, r_bps)


class FlowSpec:
    """One flow's reservation request, in key units (b_keys) and the rates derived from it."""

    __slots__ = ("r_bps", "p_bps", "b_bits", "b_keys", "m_bits", "d_s", "R_bps", "gap_R_s", "gap_r_s")

    def __init__(self, r_bps, p_bps, b_bits, b_keys, m_bits, d_s, R_bps, gap_R_s, gap_r_s):
        self.r_bps, self.p_bps, self.b_bits, self.b_keys = r_bps, p_bps, b_bits, b_keys
        self.m_bits, self.d_s, self.R_bps, self.gap_R_s, self.gap_r_s = m_bits, d_s, R_bps, gap_R_s, gap_r_s


class Entry:
    """A reservation on one egress port: the flow's token bucket and pacing."""

    __slots__ = ("spec", "src", "dst", "bucket", "enough", "next_t", "closing")

    def __init__(self, spec: FlowSpec, src: str, dst: str):
        self.spec, self.src, self.dst = spec, src, dst
        self.bucket = float(spec.b_keys)
        self.enough = True  # still serving at R (the reserved bucket has not run dry)
        self.next_t = 0.0  # the original's uninitialised relay next_time, taken as 0
        self.closing = False


class RsvpPort:
    __slots__ = ("entries", "reserved", "last_supply_t", "path_refused", "resv_refused", "breaks")

    def __init__(self) -> None:
        self.entries: dict[int, Entry] = {}
        self.reserved = 0.0  # keys held by the entries' buckets
        self.last_supply_t = 0.0
        self.path_refused = 0
        self.resv_refused = 0
        self.breaks = 0


class SourceState:
    __slots__ = ("admitted", "admit_t", "armed", "attempts", "done", "breaks")

    def __init__(self) -> None:
        self.admitted = False
        self.admit_t = INF
        self.armed = False  # PATH retry timer running
        self.attempts = 0
        self.done = False
        self.breaks = 0


class Rsvp(Scheme):
    name = "rsvp"
    display_name = "RSVP"
    has_queue_policy = True

    def __init__(self, params: dict[str, Any] | None = None, profile: str = "paper"):
        super().__init__(params, profile)
        p = self.p = resolve_params(self.name, profile, self.params, DEFAULTS)
        if p["table3"] not in TABLE_III:
            raise QkdbedError(f"scheme rsvp: parameter 'table3' must be 'left' or 'right', got {p['table3']!r}")
        if p["rate_formula"] not in ("rfc2212", "original"):
            raise QkdbedError(f"scheme rsvp: parameter 'rate_formula' must be 'rfc2212' or 'original', "
                              f"got {p['rate_formula']!r}")
        for key in ("D_s", "retry_s", "keys_per_mbit"):
            v = p[key]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0:
                raise QkdbedError(f"scheme rsvp: parameter {key!r} must be a positive number, got {v!r}")
        if not isinstance(p["flows"], dict):
            raise QkdbedError(f"scheme rsvp: parameter 'flows' must map flow names to {{{', '.join(FLOW_FIELDS)}}}")
        for key, spec in p["flows"].items():
            if not isinstance(spec, dict):
                raise QkdbedError(f"scheme rsvp: flows.{key} must be a mapping with fields {', '.join(FLOW_FIELDS)}")
            for f, v in spec.items():
                if f not in FLOW_FIELDS:
                    raise QkdbedError(f"scheme rsvp: unknown parameter flows.{key}.{f} "
                                      f"(allowed: {', '.join(FLOW_FIELDS)})")
                if isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0:
                    raise QkdbedError(f"scheme rsvp: flows.{key}.{f} must be a positive number, got {v!r}")
        self._specs: dict[tuple[int, str, str], FlowSpec] = {}

    # -- per-flow parameters -----------------------------------------------------------------------------------
    def spec(self, fid: int, src: str, dst: str) -> FlowSpec:
        key = (fid, src, dst)
        s = self._specs.get(key)
        if s is None:
            s = self._specs[key] = self.make_spec(fid, src, dst)
        return s

    def make_spec(self, fid: int, src: str, dst: str) -> FlowSpec:
        p = self.p
        over = p["flows"].get(f"{src}->{dst}") or p["flows"].get(fid) or p["flows"].get(str(fid)) or {}
        v = dict(TABLE_III[p["table3"]][0 if fid % 2 == 1 else 1])
        v["D_s"] = p["D_s"]
        v.update(over)
        if "b_keys" in over:
            b_keys = float(over["b_keys"])
            b_bits = b_keys * UNIT_BITS
        else:
            b_bits = v["b_mbit"] * 1e6
            b_keys = float(math.floor(v["b_mbit"] * p["keys_per_mbit"] + 1e-9))
        r, pk, m, d = float(v["r_bps"]), float(v["p_bps"]), float(v["M_bits"]), float(v["D_s"])
        if p["rate_formula"] == "original":
            R = guaranteed_rate_original_bps(r, b_keys, pk, d)
        else:
            R = guaranteed_rate_bps(r, b_bits, pk, m, d)
        gap_R, gap_r = UNIT_BITS / R, UNIT_BITS / r
        res = p["gap_resolution_s"]
        if res:  # the code: ceil(4096000/R) ms while the bucket lasts, round(4096/r) ms after
            gap_R = math.ceil(gap_R / res - 1e-9) * res
            gap_r = max(res, round(gap_r / res) * res)
        return FlowSpec(r, pk, b_bits, b_keys, m, d, R, gap_R, gap_r)

    # -- lifecycle ---------------------------------------------------------------------------------------------
    def attach(self, node) -> None:
        node.state = {"phop": {}}

    def port_init(self, node, port) -> None:
        port.state = RsvpPort()
        port.rate_bps = None  # no shared port rate: each reservation is paced on its own

    def flow_init(self, node, flow) -> None:
        flow.cc = SourceState()

    # -- source ------------------------------------------------------------------------------------------------
    def release(self, node, flow, now: float, backlog: int) -> tuple[int, float]:
        cc = flow.cc
        if cc.admitted:
            return backlog, INF
        if not cc.armed:
            cc.armed = True
            self.send_path(node, flow, now)
            node.set_timer(now + self.p["retry_s"], (TIMER_SCHEME, flow.fid))
        return 0, INF

    def on_timer(self, node, now: float, key: tuple) -> None:
        flow = node.flows.get(key[1])
        if flow is None or flow.cc.admitted:
            return
        self.send_path(node, flow, now)
        node.set_timer(now + self.p["retry_s"], (TIMER_SCHEME, flow.fid))

    def send_path(self, node, flow, now: float) -> None:
        cc = flow.cc
        cc.attempts += 1
        spec = self.spec(flow.fid, flow.src, flow.dst)
        port = node.ports[flow.port]
        if port.keys - port.state.reserved < spec.b_keys:
            port.state.path_refused += 1  # the source's own first hop cannot hold b
            return
        node.send_control(flow.port, (PATH, flow.fid, cc.attempts, flow.src, flow.dst, now, spec.b_keys))

    # -- signalling --------------------------------------------------------------------------------------------
    def on_control(self, node, peer, frame: tuple, now: float) -> None:
        kind = frame[0]
        if kind == PATH:
            self.on_path(node, peer, frame, now)
        elif kind == RESV:
            if peer is None:  # a break notice reached the source
                flow = node.flows.get(frame[1])
                if flow is not None:
                    flow.cc.breaks += 1
            else:
                self.on_resv(node, peer, frame, now)
        elif kind == TEARDOWN:
            self.on_teardown(node, frame, now)

    def on_path(self, node, peer, frame: tuple, now: float) -> None:
        fid, src, dst = frame[1], frame[3], frame[4]
        if dst == node.name:
            node.send_control(peer, (RESV, fid, frame[2], src, dst, now, frame[6]))
            return
        hop = node.next_hop[dst]
        port = node.ports[hop]
        spec = self.spec(fid, src, dst)
        if fid not in port.state.entries and port.keys - port.state.reserved < spec.b_keys:
            port.state.path_refused += 1  # admission refused: the PATH dies here, the source retries
            return
        node.state["phop"][fid] = peer
        node.send_control(hop, (PATH, fid, frame[2], src, dst, now, frame[6]))

    def on_resv(self, node, peer, frame: tuple, now: float) -> None:
        fid, src, dst = frame[1], frame[3], frame[4]
        port = node.ports[peer]
        st = port.state
        if fid in st.entries:
            return  # duplicate (a retried PATH crossed the first RESV): already reserved here
        spec = self.spec(fid, src, dst)
        if self.p["recheck_at_resv"] and port.keys - st.reserved < spec.b_keys:
            st.resv_refused += 1
            if peer != dst:  # undo the reservations already made downstream
                node.send_control(peer, (TEARDOWN, fid, 0, src, dst, now, 0.0))
            return
        st.entries[fid] = Entry(spec, src, dst)
        st.reserved += spec.b_keys
        if src == node.name:
            flow = node.flows.get(fid)
            if flow is not None and not flow.cc.admitted:
                flow.cc.admitted = True
                flow.cc.admit_t = now
                node.kick(port, now)
            return
        up = node.state["phop"].get(fid)
        if up is not None:
            node.send_control(up, (RESV, fid, frame[2], src, dst, now, frame[6]))

    def on_teardown(self, node, frame: tuple, now: float) -> None:
        dst = frame[4]
        if dst == node.name:
            return
        port = node.ports[node.next_hop[dst]]
        e = port.state.entries.get(frame[1])
        if e is None:
            return
        e.closing = True
        q = port.queues.get(frame[1])
        if not q:
            self.release_entry(node, port, frame[1], e, now)

    def release_entry(self, node, port, fid: int, e: Entry, now: float) -> None:
        st = port.state
        del st.entries[fid]
        st.reserved -= e.bucket
        node.state["phop"].pop(fid, None)
        if port.peer != e.dst:
            node.send_control(port.peer, (TEARDOWN, fid, 0, e.src, e.dst, now, 0.0))

    # -- service -----------------------------------------------------------------------------------------------
    def on_enqueue(self, node, port, frame: tuple, upstream, now: float) -> bool:
        e = port.state.entries.get(frame[1])
        if e is None:
            return False  # no reservation here: lost, as in the original (node records the drop)
        if port.timer_at < INF and e.bucket >= 1.0:
            # A wake-up for another flow is pending; make sure this flow's own time is not missed.
            t = e.next_t if e.next_t > now else now
            node.wake(port, t if t > port.busy_until else port.busy_until)
        return True

    def may_send(self, node, port, flow: int, now: float) -> bool:
        e = port.state.entries.get(flow)
        if e is None or e.bucket < 1.0:
            return False  # no token: the next key-generation event wakes the port
        if now < e.next_t:
            node.wake(port, e.next_t)
            return False
        return True

    def on_dequeue(self, node, port, flow: int, now: float) -> None:
        st = port.state
        e = st.entries[flow]
        e.bucket -= 1.0
        st.reserved -= 1.0
        if e.bucket < 1.0:
            e.enough = False  # the reserved bucket ran dry: the cliff, from R down to r
        e.next_t = now + (e.spec.gap_R_s if e.enough else e.spec.gap_r_s)
        q = port.queues.get(flow)
        if q:
            return
        if e.closing:
            self.release_entry(node, port, flow, e, now)
            return
        src = node.flows.get(flow)
        if src is not None and src.port == port.peer and src.finite and src.released == len(src.offer_t):
            # The source sent its last message: tear the reservation down behind it.
            src.cc.done = True
            self.release_entry(node, port, flow, e, now)

    def on_supply(self, node, port, now: float, units: int) -> None:
        st = port.state
        dt = now - st.last_supply_t
        st.last_supply_t = now
        if not st.entries or dt <= 0:
            return
        owed_total = 0.0
        for e in st.entries.values():
            owed_total += e.spec.r_bps * dt / UNIT_BITS
        share = 1.0
        broken = units < owed_total - 1e-9
        if broken:
            share = units / owed_total
        integer = self.p["integer_tokens"]
        cap = self.p["cap_bucket"]
        restore = self.p["restore_peak"]
        for fid, e in st.entries.items():
            owed = e.spec.r_bps * dt / UNIT_BITS
            add = owed * share
            if integer:
                add = float(math.floor(add + 1e-9))
            if cap and e.bucket + add > e.spec.b_keys:
                add = max(0.0, e.spec.b_keys - e.bucket)
            e.bucket += add
            st.reserved += add
            if restore and e.bucket >= e.spec.b_keys:
                e.enough = True
            if broken:
                st.breaks += 1
                self.notify_break(node, fid, e, owed - owed * share, now)

    def notify_break(self, node, fid: int, e: Entry, short: float, now: float) -> None:
        if e.src == node.name:
            node.out.append((A.CONTROL, None, fid, RESV))
            flow = node.flows.get(fid)
            if flow is not None:
                flow.cc.breaks += 1
        else:
            node.send_e2e(e.src, (RESV, fid, -1, e.src, e.dst, now, -short))

    def port_stats(self, node, port) -> dict[str, float]:
        st = port.state
        return {"reserved_keys": st.reserved, "reservations": len(st.entries), "path_refused": st.path_refused,
                "resv_refused": st.resv_refused, "reservation_breaks": st.breaks}


register("rsvp", Rsvp, "RSVP", colour="#d62728", marker="D")
