"""CP-BFC: capacity-probing-driven backpressure flow control (seed 000 §V, Alg. 2 and 3), on top of AUTO.

`auto-cpbfc` = AUTO rate control at every egress port + periodical source probing + per-hop, per-flow
backpressure. Two profiles, as for AUTO:

paper (Alg. 2, Alg. 3, Eq. 4):
- Probing: the source sends a PROBE when the flow starts and again each time the previous probe comes back
  (ACK-driven, as Alg. 2), at most one per `probe_interval_s`, while the flow is live or its queue non-empty. Each
  hop records the upstream per-flow share it carries (for Eq. 4) and the running bottleneck (its arrival-rate
  estimate for the flow, Sec. V-A), then writes its own share; the destination returns the probe to the source,
  which paces the flow at the bottleneck share. On the wire: `seq` = upstream share (bps), `value` = bottleneck.
- A port's per-flow share is its rate times the flow's weight over the total weight of its active flows (non-empty,
  not paused): Eq. 4's S/F_active·w/W read as one weighted fair share.
- Backpressure: per-flow queue limit B = L/(|F|+1) (L the port's key storage, |F| its flows), pause threshold
  PauseTh = RTT_1hop x upstream share (Eq. 4, in messages; at the source the upstream is the application, fed at
  the flow's pacing rate); PAUSE when |Q_f| >= B - PauseTh, RESUME when it falls
  below, each sent only on a state change; a new flow is paused at once when L/(|F|+1) <= PauseTh. At the source
  the same rule gates the application: offered messages wait outside the network. We also re-check resumes at key
  supply (B grows with L), which Alg. 3 leaves to the next dequeue.
- Dead flows (not live since the last key-generation event and with an empty queue) are released (Alg. 1 l.13-19).

original (reference §2.2, §2.3, §2.5), each quirk a parameter: probes on an 8 ms timer from t = 2 s, even before
the flow starts; the source ignores the probed value and sets its rate to 500 kbps (`source_rate_kbps`), pacing
`int(4096/rate)+1` ms per message; the per-flow limit min(200, encrypt) - (1 + ceil(RTT·rate/4096/k)); PAUSE on
every arriving message above the limit, RESUME on every dequeue below it; pauses expire after 50 ms.
"""

from __future__ import annotations

import math
from typing import Any

from ..node.frames import PAUSE, PROBE, PROBE_REPLY, RESUME
from ..node.node import INF, TIMER_SCHEME
from .auto import ORIGINAL_DEFAULTS, PAPER_DEFAULTS, Auto, UNIT_BITS, _params
from .base import register

TIMER_PROBE = TIMER_SCHEME + 1  # (TIMER_PROBE, fid): send the next probe of a source flow
TIMER_ORIG_PROBE = TIMER_SCHEME + 2  # (TIMER_ORIG_PROBE, None): the original's 8 ms probe loop
TIMER_EXPIRY = TIMER_SCHEME + 3  # (TIMER_EXPIRY, peer): the original's 50 ms pause expiry

CPBFC_PAPER = {
    "probe_interval_s": 0.05,  # minimum time between two probes of a flow (Alg. 2 is ACK-clocked)
    "rtt_1hop_s": None,  # one-hop RTT for Eq. 4; None: twice the link's propagation delay + serialisation
    "initial_rate_bps": 100_000.0,  # source pacing before the first probe returns
    "source_cap_bps": 1_000_000.0,  # the paper's 1 Mbps source cap
}
CPBFC_ORIGINAL = {
    "probe_period_s": 0.008,
    "probes_from_s": 2.0,
    "share_from_s": 5.0,  # probes carry 0 before t = 5 s
    "source_rate_kbps": 500.0,  # the hard-coded request_rate set by every returned probe
    "initial_source_rate_kbps": 1.0,
    "ignore_probe_value": True,
    "flow_cap": 200,
    "one_hop_rtt_s": 0.010,
    "pause_expiry_s": 0.050,
    "resume_every_dequeue": True,
    "pause_every_message": True,
}


class FlowCC:
    """CP-BFC state of one flow at its source."""

    __slots__ = ("rate_bps", "next_t", "last_probe", "probe_out", "probe_seq", "started")

    def __init__(self, rate_bps: float):
        self.rate_bps = rate_bps
        self.next_t = -INF
        self.last_probe = -INF
        self.probe_out = False
        self.probe_seq = 0
        self.started = False


class PortBP:
    """Backpressure state of one egress port."""

    __slots__ = ("up_share", "paused_label", "wait_start", "wait_list", "max_overshoot")

    def __init__(self) -> None:
        self.up_share: dict[int, float] = {}  # flow -> upstream per-flow share (bps), from probes
        self.paused_label: set[int] = set()  # flows we asked our upstream to pause
        self.wait_start = -INF  # original: time of the last PAUSE received from this port's peer
        self.wait_list: list[int] = []  # original: flows the peer paused, in arrival order
        self.max_overshoot = 0.0  # paper: largest |Q_f| - B seen at an enqueue (messages), for tests and stats


class AutoCpbfc(Auto):
    name = "auto-cpbfc"
    display_name = "AUTO&CP-BFC"
    EXTRA_PARAMS = set(CPBFC_PAPER) | set(CPBFC_ORIGINAL)

    def __init__(self, params=None, profile="paper"):
        params = dict(params or {})
        own = CPBFC_PAPER if profile == "paper" else CPBFC_ORIGINAL
        other = CPBFC_ORIGINAL if profile == "paper" else CPBFC_PAPER
        for k in params:
            if k in other and k not in own:
                from ..errors import QkdbedError

                raise QkdbedError(f"scheme auto-cpbfc: parameter {k!r} belongs to the other profile")
        super().__init__({k: v for k, v in params.items() if k not in own}, profile)
        self.bp = _params({k: v for k, v in params.items() if k in own}, own, self.name, set())

    # -------------------------------------------------------------------------------------------- lifecycle
    def attach(self, node) -> None:
        if self.profile == "original":
            node.set_timer(self.bp["probes_from_s"], (TIMER_ORIG_PROBE, None))

    def port_init(self, node, port) -> None:
        super().port_init(node, port)
        port.state.bp = PortBP()

    def flow_init(self, node, flow) -> None:
        if self.profile == "paper":
            flow.cc = FlowCC(self.bp["initial_rate_bps"])
        else:
            flow.cc = FlowCC(self.bp["initial_source_rate_kbps"] * 1000.0)

    def _rtt(self, node, port) -> float:
        r = self.bp.get("rtt_1hop_s")
        if r is not None:
            return r
        return 2.0 * (1e-4 + port.overhead_s)  # classical channel: 0.1 ms propagation (Table II) each way

    # -------------------------------------------------------------------------------------------- shares
    def share_bps(self, node, port, fid: int) -> float:
        """Weighted fair share of flow `fid` of the port's capacity among its active flows (paper profile).

        Active flows are those with queued messages (the node's round-robin ring) that are not paused."""
        rate = port.state.auto.cap * UNIT_BITS
        weights = port.weights
        paused = port.paused
        w_total = 0.0
        active_self = False
        for f in port.ring:
            if f not in paused:
                w_total += weights.get(f, 1.0)
                if f == fid:
                    active_self = True
        w = weights.get(fid, node.flow_weights.get(fid, 1.0))
        if not active_self:
            w_total += w
        return rate * w / w_total if w_total > 0 else rate

    def share_original_kbps(self, node, port, now: float) -> float:
        if now < self.bp["share_from_s"]:
            return 0.0
        rate_kbps = (port.rate_bps or 0.0) / 1000.0
        return rate_kbps / max(1, len(port.ring) - len(port.paused))

    # -------------------------------------------------------------------------------------------- source side
    def release(self, node, flow, now, backlog):
        cc: FlowCC = flow.cc
        port = node.ports[flow.port]
        if not cc.started:
            cc.started = True
            if self.profile == "paper":
                self._send_probe(node, flow, now)
        q = port.queues.get(flow.fid)
        qlen = len(q) if q else 0
        if self.profile == "paper":
            if flow.fid in port.state.bp.paused_label:
                if not self._should_resume(node, port, flow.fid, qlen):
                    return 0, INF  # a dequeue or key supply re-evaluates
                port.state.bp.paused_label.discard(flow.fid)
            rate = min(cc.rate_bps, self.bp["source_cap_bps"])
            room = self._room(node, port, flow.fid, qlen, rate)
            port.state.auto.a_flow[flow.fid] = rate / UNIT_BITS
            if rate <= 0:
                return 0, INF
            gap = UNIT_BITS / rate
        else:
            limit = self._limit_original(port)
            room = int(limit - qlen) if flow.fid not in port.state.bp.wait_list else 0
            rate = cc.rate_bps
            gap = (int(4096.0 / (rate / 1000.0)) + 1) / 1000.0 if rate > 0 else INF
            port.state.auto.a_flow[flow.fid] = rate / 1000.0
            if room <= 0:
                return 0, now + 0.001  # blocked: the code retries every loop iteration; we retry each ms
        if room <= 0:
            if self.profile == "paper":
                port.state.bp.paused_label.add(flow.fid)
            return 0, INF
        if cc.next_t < now - gap:
            cc.next_t = now - gap  # no credit for idle time beyond one message
        k = 0
        while k < backlog and k < room and cc.next_t + gap <= now + 1e-12:
            cc.next_t += gap
            k += 1
        nxt = cc.next_t + gap if k < backlog else INF
        if k == 0 and nxt == INF and backlog:
            nxt = cc.next_t + gap
        return k, nxt

    def _room(self, node, port, fid: int, qlen: int, up_bps: float | None = None) -> int:
        """Messages flow `fid` may still add to its queue at `port` before crossing B - PauseTh (Alg. 3)."""
        B, th = self._limits(node, port, fid, up_bps)
        return int(math.floor(B - th - qlen)) if B - th - qlen >= 1 else 0

    def _limits(self, node, port, fid: int, up_bps: float | None = None) -> tuple[float, float]:
        """B = L/(|F|+1) (the +1 keeps room for a flow yet to come) and PauseTh = RTT x upstream share (Eq. 4).

        The upstream share is the one the last probe carried; at the source, the upstream of its own queue is the
        application, fed at the flow's pacing rate (`up_bps`)."""
        B = port.keys / (len(port.queues) + 1)
        if up_bps is None:
            up_bps = port.state.bp.up_share.get(fid)
            if up_bps is None:
                flow = node.flows.get(fid) if port.upstream.get(fid) is None else None
                up_bps = flow.cc.rate_bps if flow is not None else 0.0
        return B, self._rtt(node, port) * up_bps / UNIT_BITS

    def _should_resume(self, node, port, fid: int, qlen: int) -> bool:
        B, th = self._limits(node, port, fid)
        return qlen < B - th

    def _send_probe(self, node, flow, now: float) -> None:
        cc: FlowCC = flow.cc
        port = node.ports[flow.port]
        share = self.share_bps(node, port, flow.fid)
        cc.probe_seq += 1
        cc.probe_out = True
        cc.last_probe = now
        node.send_control(flow.port, (PROBE, flow.fid, int(share), flow.src, flow.dst, now, share))

    def _flow_alive(self, node, flow) -> bool:
        port = node.ports[flow.port]
        q = port.queues.get(flow.fid)
        return bool(q) or flow.backlog > 0 or flow.visible < len(flow.offer_t) or not flow.finite

    # -------------------------------------------------------------------------------------------- control frames
    def on_control(self, node, peer, frame, now) -> None:
        kind, fid = frame[0], frame[1]
        if kind == PROBE:
            self._on_probe(node, peer, frame, now)
        elif kind == PROBE_REPLY:
            flow = node.flows.get(fid)
            if flow is None:
                return
            cc: FlowCC = flow.cc
            if self.profile == "paper":
                cc.rate_bps = frame[6]
                cc.probe_out = False
                port = node.ports[flow.port]
                port.state.auto.a_flow[fid] = min(cc.rate_bps, self.bp["source_cap_bps"]) / UNIT_BITS
                if self._flow_alive(node, flow):
                    t = max(now, cc.last_probe + self.bp["probe_interval_s"])
                    if t <= now:
                        self._send_probe(node, flow, now)
                    else:
                        node.set_timer(t, (TIMER_PROBE, fid))
                node.kick(port, now)
            else:
                rate_kbps = self.bp["source_rate_kbps"] if self.bp["ignore_probe_value"] else frame[6]
                cc.rate_bps = rate_kbps * 1000.0
                node.kick(node.ports[flow.port], now)
        elif kind == PAUSE:
            port = node.ports[peer]
            if self.profile == "paper":
                port.paused.add(fid)
            else:
                bp = port.state.bp
                if fid not in bp.wait_list:
                    bp.wait_list.append(fid)
                    port.paused.add(fid)
                bp.wait_start = now
                node.set_timer(now + self.bp["pause_expiry_s"], (TIMER_EXPIRY, peer))
        elif kind == RESUME:
            port = node.ports[peer]
            if self.profile == "original":
                bp = port.state.bp
                if fid in bp.wait_list:
                    bp.wait_list.remove(fid)
            if fid in port.paused:
                port.paused.discard(fid)
                node.kick(port, now)

    def _on_probe(self, node, peer, frame, now) -> None:
        _, fid, up_share, src, dst, t0, bottleneck = frame
        if dst == node.name:
            node.send_e2e(src, (PROBE_REPLY, fid, frame[2], node.name, src, t0, bottleneck))
            return
        hop = node.next_hop.get(dst)
        if hop is None:
            return
        port = node.ports[hop]
        st = port.state.auto
        if self.profile == "paper":
            port.state.bp.up_share[fid] = float(up_share)
            st.a_flow[fid] = bottleneck / UNIT_BITS  # the rate f can arrive at (Sec. V-A)
            st.live.add(fid)
            own = self.share_bps(node, port, fid)
            node.send_control(hop, (PROBE, fid, int(own), src, dst, t0, min(bottleneck, own)))
        else:
            st.a_flow[fid] = bottleneck  # kbps, as the code: the running minimum of the shares
            st.live.add(fid)
            own = self.share_original_kbps(node, port, now)
            node.send_control(hop, (PROBE, fid, int(own), src, dst, t0, min(bottleneck, own)))

    def on_timer(self, node, now, key) -> None:
        kind = key[0]
        if kind == TIMER_PROBE:
            flow = node.flows.get(key[1])
            if flow is not None and not flow.cc.probe_out and self._flow_alive(node, flow):
                self._send_probe(node, flow, now)
        elif kind == TIMER_ORIG_PROBE:
            for flow in node.flows.values():
                port = node.ports[flow.port]
                share = self.share_original_kbps(node, port, now)
                node.send_control(flow.port, (PROBE, flow.fid, int(share), flow.src, flow.dst, now, share))
            node.set_timer(now + self.bp["probe_period_s"], (TIMER_ORIG_PROBE, None))
        elif kind == TIMER_EXPIRY:
            port = node.ports[key[1]]
            bp = port.state.bp
            if bp.wait_list and now >= bp.wait_start + self.bp["pause_expiry_s"] - 1e-12:
                fid = bp.wait_list.pop(0)
                port.paused.discard(fid)
                bp.wait_start = now
                if bp.wait_list:
                    node.set_timer(now + self.bp["pause_expiry_s"], (TIMER_EXPIRY, key[1]))
                node.kick(port, now)

    # -------------------------------------------------------------------------------------------- queues
    def on_enqueue(self, node, port, frame, upstream, now) -> bool:
        super().on_enqueue(node, port, frame, upstream, now)
        if upstream is None:
            return True  # the source's own application is gated in `release`
        fid = frame[1]
        bp: PortBP = port.state.bp
        if self.profile == "paper":
            q = port.queues.get(fid)
            qlen = (len(q) if q else 0) + 1  # after this enqueue
            new = fid not in port.queues
            B, th = self._limits(node, port, fid)
            if qlen - B > bp.max_overshoot:
                bp.max_overshoot = qlen - B
            if fid not in bp.paused_label and ((new and B <= th) or qlen >= B - th):
                bp.paused_label.add(fid)
                node.send_control(upstream, (PAUSE, fid, 0, frame[3], frame[4], now, 0.0))
        else:
            q = port.queues.get(fid)
            if q is not None and self.bp["pause_every_message"]:
                if len(q) + 1 >= self._limit_original(port):
                    node.send_control(upstream, (PAUSE, fid, 0, frame[3], frame[4], now, 0.0))
        return True

    def on_dequeue(self, node, port, flow, now) -> None:
        super().on_dequeue(node, port, flow, now)
        bp: PortBP = port.state.bp
        q = port.queues.get(flow)
        qlen = len(q) if q else 0
        up = port.upstream.get(flow)
        if self.profile == "paper":
            if flow in bp.paused_label and self._should_resume(node, port, flow, qlen):
                bp.paused_label.discard(flow)
                if up is not None:
                    node.send_control(up, (RESUME, flow, 0, "", "", now, 0.0))
        else:
            if qlen < self._limit_original(port) and up is not None and self.bp["resume_every_dequeue"]:
                node.send_control(up, (RESUME, flow, 0, "", "", now, 0.0))

    def _limit_original(self, port) -> float:
        k = len(port.ring) - len(port.paused)  # the ring holds exactly the flows with queued messages
        k = k if k > 0 else 1
        rate_kbps = (port.rate_bps or 0.0) / 1000.0
        return min(self.bp["flow_cap"], port.keys) - (
            1 + math.ceil(self.bp["one_hop_rtt_s"] * 1e3 * rate_kbps / 4096.0 / k))

    def on_supply(self, node, port, now, units) -> None:
        super().on_supply(node, port, now, units)
        if self.profile != "paper":
            return
        st = port.state.auto
        bp: PortBP = port.state.bp
        # Alg. 1 lines 13-19: release flows that were not live since the last key-generation event
        for fid in list(port.queues):
            if fid not in st.live and not port.queues[fid] and fid not in bp.paused_label:
                del port.queues[fid]
                port.upstream.pop(fid, None)
                st.a_flow.pop(fid, None)
                bp.up_share.pop(fid, None)
        st.live.clear()
        # B grows with L: resume paused flows whose queue is now below threshold
        for fid in list(bp.paused_label):
            q = port.queues.get(fid)
            if self._should_resume(node, port, fid, len(q) if q else 0):
                bp.paused_label.discard(fid)
                up = port.upstream.get(fid)
                if up is not None:
                    node.send_control(up, (RESUME, fid, 0, "", "", now, 0.0))
        for sf in port.sources:
            if sf.backlog:
                node.kick(port, now)
                break


register("auto-cpbfc", AutoCpbfc, "AUTO&CP-BFC", colour="#d62728", marker="o")
