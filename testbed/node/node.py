"""The sans-I/O QKD node: key pools per link, per-flow queues per egress port, and the KRMM pipeline.

A node never reads a clock, sleeps or touches a socket (the h11 / aioquic habit): every input carries `now`, and
every effect is an action appended to `self.out` for the runtime to carry out (see `actions.py`). The simulator and
the emulator's agent feed the same inputs, which is why their results can be compared.

Inputs:   frame_received(now, peer, frame) · keys_supplied(now, peer, units) · timer_fired(now, key)
          request_offered(now, flow_id, n) · sample(now) · add_flow(...)
Outputs:  SEND, SEND_E2E, TIMER, DELIVER, ACKED, DROP, CONTROL, SAMPLE (drained from `node.out`)

Key pools (seed 000 §III-C, KSM): for each neighbour a *master* pool (`Port.keys`, spent when sending toward the
neighbour) and a *slave* pool (`Port.rx_keys`, spent when decrypting a message from it). A link's key supply adds
the same amount to my master pool toward the peer and to my slave pool from the peer, so the peer's slave pool
mirrors my master pool unit for unit.

Egress port pipeline: a message is routed to the port toward its next hop, admitted by the scheme's queue policy
into its flow's queue, and sent when (1) the port's pacing allows it (key-supply rate `rate_bps`, and the classical
channel's serialisation), (2) the master pool holds a key unit, (3) the scheduler picks its flow and the flow is
not paused by the downstream node.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from . import actions as A
from ..schemes.base import Scheme
from .frames import ACK, DATA

INF = math.inf
UNIT_BITS = 4096  # one key unit = one message payload = 512 bytes (paper Table II)
FRAME_OVERHEAD_BYTES = 12 + 32  # header + authentication tag, for serialisation time on the classical channel

TIMER_PORT = 0  # timer key (TIMER_PORT, peer): wake an egress port
TIMER_TICK = 1  # timer key (TIMER_TICK, None): the scheme's periodic tick
TIMER_SCHEME = 2  # timer keys (k, ...) with k >= TIMER_SCHEME belong to the scheme (`Scheme.on_timer`)


@dataclass
class SourceFlow:
    """A flow originating at this node: the application's offered messages and their release into the network.

    `offer_t` holds offer times in seconds. The simulator preloads the whole list; the emulator appends as the
    application offers. Messages with `offer_t <= now` are visible; `released` of them have entered the egress
    queue (congestion control decides how fast); `acked` were acknowledged end to end.
    """

    fid: int
    src: str
    dst: str
    port: str  # first hop
    weight: float = 1.0
    offer_t: list[float] = field(default_factory=list)
    visible: int = 0
    released: int = 0
    acked: int = 0
    finite: bool = True  # the offer list is complete (simulator); False while an emulated app may add more
    cc: Any = None  # congestion-control state, owned by the scheme

    @property
    def backlog(self) -> int:
        return self.visible - self.released


class Port:
    """An egress port toward one neighbour, with its key pools and per-flow queues."""

    __slots__ = ("peer", "keys", "rx_keys", "supplied", "consumed", "rx_consumed", "rate_bps", "bandwidth_bps",
                 "overhead_s", "busy_until", "last_send", "timer_at", "queues", "ring", "weights", "credit", "turn", "queued", "paused",
                 "upstream", "sources", "state", "sent", "supply_events")

    def __init__(self, peer: str, bandwidth_bps: float):
        self.peer = peer
        self.keys = 0  # master pool, units
        self.rx_keys = 0  # slave pool, units
        self.supplied = 0  # units added to each pool so far
        self.consumed = 0  # master units spent (== DATA frames sent on this port)
        self.rx_consumed = 0  # slave units spent (== DATA frames received from the peer)
        self.rate_bps: float | None = None  # key-supply rate; None: only the classical channel limits
        self.bandwidth_bps = bandwidth_bps
        self.overhead_s = (UNIT_BITS + 8 * FRAME_OVERHEAD_BYTES) / bandwidth_bps  # serialisation of one frame
        self.busy_until = 0.0
        self.last_send = -INF
        self.timer_at = INF
        self.queues: dict[int, deque] = {}
        self.ring: deque[int] = deque()  # flows with queued messages, in round-robin order
        self.weights: dict[int, float] = {}
        self.credit: dict[int, float] = {}
        self.turn: set[int] = set()
        self.queued = 0  # total messages queued on the port
        self.paused: set[int] = set()  # flows the downstream node asked us to stop
        self.upstream: dict[int, str | None] = {}  # flow -> neighbour it arrives from (None: we are its source)
        self.sources: list[SourceFlow] = []  # flows originating here whose first hop is this port
        self.state: Any = None  # per-port state owned by the scheme
        self.sent = 0
        self.supply_events = 0

    def send_interval_s(self) -> float:
        r = self.rate_bps
        if r is None or r <= 0:
            return self.overhead_s if r is None else INF
        t = UNIT_BITS / r
        return t if t > self.overhead_s else self.overhead_s


class Node:
    """One QKD node (KMT): KRMM + KSM of seed 000 Fig. 5, driven by a runtime."""

    def __init__(self, name: str, neighbours: dict[str, float], next_hop: dict[str, str], scheme,
                 scheduler: str = "round-robin", ack: bool = True):
        """`neighbours` maps neighbour name -> classical channel bandwidth (bps); `next_hop[dst]` is the routing
        table; `scheme` a `testbed.schemes.Scheme` instance (one per node: schemes may keep per-node state)."""
        self.name = name
        self.next_hop = next_hop
        self.scheme = scheme
        self.weighted = scheduler == "weighted-round-robin"
        if scheduler not in ("round-robin", "weighted-round-robin"):
            raise ValueError(f"unknown scheduler {scheduler!r}")
        self.ack = ack
        self.ports: dict[str, Port] = {n: Port(n, bw) for n, bw in neighbours.items()}
        self.flows: dict[int, SourceFlow] = {}
        self.flow_weights: dict[int, float] = {}
        self._in_pump = False
        self.out: list[tuple] = []
        self.delivered: dict[int, int] = {}
        self.state: Any = None
        self._qpol = scheme.has_queue_policy
        self._check_may_send = type(scheme).may_send is not Scheme.may_send
        self._router = type(scheme).route is not Scheme.route  # the shortest-path table unless a scheme routes
        scheme.attach(self)
        for p in self.ports.values():
            scheme.port_init(self, p)

    # ------------------------------------------------------------------------------------------------- setup
    def add_flow(self, fid: int, dst: str, offer_t: list[float] | None = None, weight: float = 1.0,
                 finite: bool = True) -> SourceFlow:
        hop = self.next_hop.get(dst)
        if hop is None:
            raise ValueError(f"{self.name}: no route to {dst}")
        sf = SourceFlow(fid, self.name, dst, hop, weight, list(offer_t or ()), finite=finite)
        self.flows[fid] = sf
        port = self.ports[hop]
        port.sources.append(sf)
        port.weights[fid] = weight
        self.scheme.flow_init(self, sf)
        return sf

    def start(self, now: float) -> None:
        """Arm the first timers: the scheme's tick and a wake-up at each source's first offer."""
        if self.scheme.tick_s:
            self.out.append((A.TIMER, now + self.scheme.tick_s, (TIMER_TICK, None)))
        for p in self.ports.values():
            if p.sources:
                self._try_send(p, now)

    def set_weight(self, fid: int, weight: float) -> None:
        """Scheduling weight of flow `fid` at every port of this node (weighted round-robin; from the recipe)."""
        self.flow_weights[fid] = weight
        for p in self.ports.values():
            if fid in p.weights or fid in p.queues:
                p.weights[fid] = weight

    # ------------------------------------------------------------------------------------------------- inputs
    def keys_supplied(self, now: float, peer: str, units: int) -> None:
        p = self.ports[peer]
        p.keys += units
        p.rx_keys += units
        p.supplied += units
        p.supply_events += 1
        self.scheme.on_supply(self, p, now, units)
        if p.queued or p.sources:
            self._try_send(p, now)

    def request_offered(self, now: float, fid: int, n: int = 1) -> None:
        """The application at this (source) node offers `n` more messages of flow `fid` now (emulator path)."""
        sf = self.flows[fid]
        sf.offer_t.extend([now] * n)
        self._try_send(self.ports[sf.port], now)

    def timer_fired(self, now: float, key: tuple) -> None:
        kind, arg = key
        if kind == TIMER_PORT:
            p = self.ports[arg]
            if now < p.timer_at:  # stale: an earlier timer already served this wake-up, a later one is armed
                return
            p.timer_at = INF
            self._try_send(p, now)
        elif kind == TIMER_TICK:
            self.scheme.on_tick(self, now)
            self.out.append((A.TIMER, now + self.scheme.tick_s, (TIMER_TICK, None)))
        else:
            self.scheme.on_timer(self, now, key)

    def set_timer(self, when: float, key: tuple) -> None:
        """Arm a scheme timer; `key[0]` must be >= TIMER_SCHEME. The scheme ignores stale firings itself."""
        self.out.append((A.TIMER, when, key))

    def frame_received(self, now: float, peer: str | None, frame: tuple) -> None:
        """A frame arrived from neighbour `peer` (None: an end-to-end control frame addressed to this node)."""
        kind = frame[0]
        if kind == DATA:
            if peer is not None:
                self.ports[peer].rx_keys -= 1  # decrypt with the slave pool shared with `peer`
                self.ports[peer].rx_consumed += 1
            dst = frame[4]
            if dst == self.name:
                self._deliver(now, frame)
                return
            hop = self.scheme.route(self, frame, peer, now) if self._router else self.next_hop.get(dst)
            if hop is None or hop not in self.ports:
                self.out.append((A.DROP, frame, A.DROP_NO_ROUTE))
                return
            self._enqueue(self.ports[hop], frame, peer, now)
        elif kind == ACK:
            sf = self.flows.get(frame[1])
            if sf is None:
                return
            sf.acked += 1
            self.out.append((A.ACKED, frame))
            self.scheme.on_ack(self, sf, frame, now)
            if sf.finite and sf.acked == len(sf.offer_t):
                self.scheme.on_flow_end(self, sf, now)
            p = self.ports[sf.port]
            if sf.backlog or (sf.visible < len(sf.offer_t)):
                self._try_send(p, now)
        else:
            self.scheme.on_control(self, peer, frame, now)

    # ------------------------------------------------------------------------------------------------- helpers
    def _deliver(self, now: float, frame: tuple) -> None:
        fid = frame[1]
        self.delivered[fid] = self.delivered.get(fid, 0) + 1
        self.out.append((A.DELIVER, frame))
        self.scheme.on_deliver(self, frame, now)
        if self.ack:
            # Acknowledgement-based reservation (seed 000 §III-C): the destination confirms so the source can
            # release its reserved copy of the end-to-end key. Routed end to end, outside the key pools.
            self.out.append((A.SEND_E2E, frame[3], (ACK, fid, frame[2], self.name, frame[3], frame[5], 0.0)))

    def _enqueue(self, p: Port, frame: tuple, upstream: str | None, now: float) -> bool:
        """A relayed message joins its flow's queue at `p` (or is dropped by the queue policy); send if idle."""
        if not self._admit(p, frame, upstream, now):
            return False
        if p.timer_at == INF:
            if now >= p.busy_until:
                self._try_send(p, now)
            else:
                self.wake(p, p.busy_until)
        return True

    def _admit(self, p: Port, frame: tuple, upstream: str | None, now: float) -> bool:
        """Queue policy, then append to the flow's queue (created on its first message) and the ring."""
        fid = frame[1]
        if self._qpol and not self.scheme.on_enqueue(self, p, frame, upstream, now):
            self.out.append((A.DROP, frame, A.DROP_QUEUE_FULL))
            return False
        q = p.queues.get(fid)
        if q is None:
            q = p.queues[fid] = deque()
            p.upstream[fid] = upstream
            if fid not in p.weights:
                p.weights[fid] = self.flow_weights.get(fid, 1.0)
        if not q:
            p.ring.append(fid)
        q.append(frame)
        p.queued += 1
        return True

    def send_control(self, peer: str, frame: tuple) -> None:
        """Send a control frame to a neighbour now (bypasses queues and key pools)."""
        p = self.ports[peer]
        self.out.append((A.SEND, peer, frame, p.overhead_s, -1))

    def send_e2e(self, dst: str, frame: tuple) -> None:
        """Send a control frame to a remote node through the classical network."""
        self.out.append((A.SEND_E2E, dst, frame))

    def wake(self, p: Port, when: float) -> None:
        """Ask the runtime to call `_try_send(p)` at `when` (keeps only the earliest pending wake-up)."""
        if when < p.timer_at:
            p.timer_at = when
            self.out.append((A.TIMER, when, (TIMER_PORT, p.peer)))

    def _pump_sources(self, p: Port, now: float) -> float:
        """Release offered messages of the flows originating on this port into their egress queues, as congestion
        control allows. Returns the next time a source needs attention (an offer or a congestion-control time)."""
        nxt = INF
        scheme = self.scheme
        for sf in p.sources:
            ot = sf.offer_t
            n = len(ot)
            if sf.visible < n and ot[sf.visible] <= now:
                sf.visible = bisect_right(ot, now, sf.visible)
            backlog = sf.visible - sf.released
            if backlog:
                k, t_next = scheme.release(self, sf, now, backlog)
                if k:
                    src, dst, fid = sf.src, sf.dst, sf.fid
                    seq = sf.released
                    self._in_pump = True  # a scheme hook that kicks the port must not re-enter this loop
                    try:
                        for i in range(seq, seq + k):
                            sf.released = i + 1
                            self._admit(p, (DATA, fid, i, src, dst, ot[i], 0.0), None, now)  # may drop
                    finally:
                        self._in_pump = False
                if sf.released < sf.visible and t_next < nxt:
                    nxt = t_next
            if sf.visible < n and sf.released == sf.visible:
                t = ot[sf.visible]
                if t < nxt:
                    nxt = t
        return nxt

    def _pick(self, p: Port, now: float) -> int | None:
        """The flow at the head of the round-robin ring that may send now (unpaused, scheme-eligible).

        Weighted round-robin is deficit round-robin: a flow's turn adds its weight to its credit and it sends
        while the credit holds a whole message, so a weight-2 flow sends two messages per round and a weight-0.5
        flow one every other round. The chosen flow is left at `ring[0]`."""
        ring = p.ring
        paused = p.paused
        check = self._check_may_send
        weighted = self.weighted
        blocked = 0
        n = len(ring)
        guard = 64 * n + 1
        while n and blocked < n and guard:
            guard -= 1
            fid = ring[0]
            if fid in paused or (check and not self.scheme.may_send(self, p, fid, now)):
                ring.rotate(-1)
                blocked += 1
                continue
            if weighted:
                if fid not in p.turn:
                    p.credit[fid] = p.credit.get(fid, 0.0) + p.weights.get(fid, 1.0)
                    p.turn.add(fid)
                if p.credit[fid] < 1.0 - 1e-9:
                    p.turn.discard(fid)
                    ring.rotate(-1)
                    continue
            return fid
        return None

    def _after_send(self, p: Port, fid: int, q: deque) -> None:
        if self.weighted:
            p.credit[fid] -= 1.0
            if not q:
                p.ring.popleft()
                p.credit.pop(fid, None)  # DRR: an emptied queue forfeits its deficit
                p.turn.discard(fid)
            elif p.credit[fid] < 1.0 - 1e-9:
                p.turn.discard(fid)
                p.ring.rotate(-1)
            return
        if q:
            p.ring.rotate(-1)
        else:
            p.ring.popleft()

    def _try_send(self, p: Port, now: float) -> None:
        """Send at most one message on port `p` now, and arrange to be called again when the next may go."""
        if self._in_pump:
            return  # re-entered from a scheme hook while releasing: the outer call goes on to send
        nxt = self._pump_sources(p, now) if p.sources else INF
        if now < p.busy_until:
            if p.queued:
                self.wake(p, p.busy_until)
            elif nxt < INF:
                self.wake(p, nxt if nxt > p.busy_until else p.busy_until)
            return
        if p.queued and p.keys > 0:
            fid = self._pick(p, now)
            if fid is not None:
                q = p.queues[fid]
                frame = q.popleft()
                p.queued -= 1
                self._after_send(p, fid, q)
                key_index = p.consumed
                p.keys -= 1
                p.consumed += 1
                p.sent += 1
                p.last_send = now
                p.busy_until = now + p.send_interval_s()
                self.out.append((A.SEND, p.peer, frame, p.overhead_s, key_index))
                if self._qpol:
                    self.scheme.on_dequeue(self, p, fid, now)
                if p.queued or p.sources:
                    if p.sources:
                        nxt = self._pump_sources(p, now)
                    if p.queued:
                        self.wake(p, p.busy_until)
                    elif nxt < INF:
                        self.wake(p, nxt if nxt > p.busy_until else p.busy_until)
                return
        # Nothing sendable now: no keys (a supply will call us), all paused (a RESUME will), or empty queues.
        if nxt < INF:
            self.wake(p, nxt)

    def set_rate(self, p: Port, rate_bps: float | None, now: float) -> None:
        """Change a port's key-supply rate (a scheme's rate control). The next send is due one interval of the
        *new* rate after the last send, so a rate change takes effect at once in both directions."""
        if rate_bps == p.rate_bps:
            return
        p.rate_bps = rate_bps
        p.busy_until = p.last_send + p.send_interval_s()
        if p.queued or p.sources:
            if now >= p.busy_until:
                self._try_send(p, now)
            elif p.busy_until < INF:
                if p.timer_at > p.busy_until:
                    p.timer_at = INF  # the armed wake-up is now too late
                self.wake(p, p.busy_until)

    def kick(self, p: Port, now: float) -> None:
        """Re-evaluate a port after a scheme changed its state (rate, pause set, tokens)."""
        if p.queued or p.sources:
            if now >= p.busy_until:
                self._try_send(p, now)
            else:
                self.wake(p, p.busy_until)

    # ------------------------------------------------------------------------------------------------- observe
    def sample(self, now: float) -> None:
        for p in self.ports.values():
            self.out.append((A.SAMPLE, p.peer, p.keys, p.rate_bps if p.rate_bps is not None else -1.0, p.queued,
                             len(p.paused)))

    def stats(self) -> dict[str, float]:
        """Flat name -> number map (for the emulator's control endpoint)."""
        out: dict[str, float] = {}
        for p in self.ports.values():
            k = f"port_{p.peer}_"
            out[k + "keys"] = p.keys
            out[k + "rx_keys"] = p.rx_keys
            out[k + "supplied"] = p.supplied
            out[k + "consumed"] = p.consumed
            out[k + "queued"] = p.queued
            out[k + "rate_bps"] = p.rate_bps if p.rate_bps is not None else -1
            for name, v in self.scheme.port_stats(self, p).items():
                out[k + name] = v
        for fid, n in self.delivered.items():
            out[f"flow_{fid}_delivered"] = n
        for fid, sf in self.flows.items():
            out[f"flow_{fid}_released"] = sf.released
            out[f"flow_{fid}_acked"] = sf.acked
        return out
