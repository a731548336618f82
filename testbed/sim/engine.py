"""The discrete-event runtime: one event heap, in-memory links, and the nodes' actions carried out in order.

Events are `(time_s, seq, kind, a, b, c)` tuples in a binary heap. `seq` is a global counter, so simultaneous events
run in the order they were scheduled: the run is a pure function of its inputs and one seed gives a bit-identical
event log. Per-event work is O(1) apart from the heap operation (O(log n)).

Links: a frame sent from u to v arrives after the classical channel's serialisation time (the node passes it) and
the link's propagation delay; a per-direction FIFO keeps frames in order, as the emulator's TCP connections do.
End-to-end control frames (ACKs, ECN to the source, probe replies) arrive after the sum of per-hop delays along the
route, which is what hop-by-hop forwarding of an unqueued frame would take.
"""

from __future__ import annotations

import heapq
from typing import Callable

from ..node import actions as A
from ..node.frames import ACK, DATA
from ..node.node import TIMER_TICK, Node
from ..record import EventLog

TICK_KEY = (TIMER_TICK, None)

EV_ARRIVE = 0
EV_TIMER = 1
EV_SUPPLY = 2
EV_SAMPLE = 3
EV_CALL = 4
EV_TICKS = 5  # every node's periodic scheme tick due at one instant, in one heap entry


class Simulator:
    def __init__(self, nodes: dict[str, Node], link_delay_s: dict[tuple[str, str], float],
                 paths: Callable[[str, str], list[str]], log: EventLog, duration_s: float,
                 sample_period_s: float = 0.5, record_sends: bool = True):
        self.nodes = nodes
        self.delay = link_delay_s  # (u, v) -> propagation delay, both directions present
        self.paths = paths
        self.log = log
        self.duration_s = duration_s
        self.sample_period_s = sample_period_s
        self.record_sends = record_sends
        self.heap: list[tuple] = []
        self.seq = 0
        self.now = 0.0
        self.events = 0
        self.idx = {n: i for i, n in enumerate(log.node_names)}
        self._fifo: dict[tuple[str, str], float] = {}
        self._e2e: dict[tuple[str, str], float] = {}
        self._supply_links: list[tuple[str, str]] = []
        self._ticks: dict[float, list[Node]] = {}

    # -- scheduling --------------------------------------------------------------------------------------------
    def push(self, t: float, kind: int, a=None, b=None, c=None) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (t, self.seq, kind, a, b, c))

    def call_at(self, t: float, fn: Callable[[float], None]) -> None:
        """Run `fn(now)` at time t (scenario hooks: a link's key rate changes, a node fails, ...)."""
        self.push(t, EV_CALL, fn)

    def add_supply(self, link_index: int, a: str, b: str, times_s, units) -> None:
        for t, u in zip(times_s.tolist(), units.tolist()):
            if t < self.duration_s:
                self.push(t, EV_SUPPLY, link_index, (a, b), u)

    def e2e_delay(self, src: str, dst: str) -> float:
        key = (src, dst)
        d = self._e2e.get(key)
        if d is None:
            path = self.paths(src, dst)
            d = 0.0
            for u, v in zip(path, path[1:]):
                d += self.delay[(u, v)] + self.nodes[u].ports[v].overhead_s
            self._e2e[key] = d
        return d

    # -- main loop ---------------------------------------------------------------------------------------------
    def run(self) -> EventLog:
        now = 0.0
        for node in self.nodes.values():
            node.start(now)
            self._drain(node, now)
        if self.sample_period_s:
            self.push(0.0, EV_SAMPLE)
        heap = self.heap
        pop = heapq.heappop
        nodes = self.nodes
        drain = self._drain
        end = self.duration_s
        supply_rows = self.log.rows["supply"]
        n = 0
        while heap:
            ev = pop(heap)
            now = ev[0]
            if now >= end:
                break
            n += 1
            kind = ev[2]
            if kind == EV_ARRIVE:
                node = nodes[ev[3]]
                node.frame_received(now, ev[4], ev[5])
                if node.out:
                    drain(node, now)
            elif kind == EV_TIMER:
                node = nodes[ev[3]]
                node.timer_fired(now, ev[4])
                if node.out:
                    drain(node, now)
            elif kind == EV_SUPPLY:
                a, b = ev[4]
                units = ev[5]
                supply_rows.append((now, ev[3], units))
                na, nb = nodes[a], nodes[b]
                na.keys_supplied(now, b, units)
                if na.out:
                    drain(na, now)
                nb.keys_supplied(now, a, units)
                if nb.out:
                    drain(nb, now)
            elif kind == EV_SAMPLE:
                self.log.compact()
                for node in nodes.values():
                    node.sample(now)
                    drain(node, now)
                self.push(now + self.sample_period_s, EV_SAMPLE)
            elif kind == EV_TICKS:
                for node in self._ticks.pop(now):
                    node.timer_fired(now, TICK_KEY)
                    if node.out:
                        drain(node, now)
            elif kind == EV_CALL:
                ev[3](now)
        self.now = min(now, end)
        self.events = n
        self.log.duration_s = end
        return self.log

    def _drain(self, node: Node, now: float) -> None:
        """Carry out a node's actions in the order it emitted them."""
        out = node.out
        node.out = []
        rows = self.log.rows
        me = node.name
        idx = self.idx
        push = self.push
        for act in out:
            code = act[0]
            if code == A.SEND:
                peer, frame, tx_s = act[1], act[2], act[3]
                key = (me, peer)
                t = now + tx_s + self.delay[key]
                last = self._fifo.get(key, 0.0)
                if t < last:
                    t = last
                self._fifo[key] = t
                push(t, EV_ARRIVE, peer, me, frame)
                if frame[0] == DATA:
                    if self.record_sends:
                        rows["sends"].append((now, idx[me], idx[peer], frame[1], frame[2], act[4]))
                else:
                    rows["control"].append((now, idx[me], idx[peer], frame[1], frame[0], frame[6]))
            elif code == A.TIMER:
                key = act[2]
                if key == TICK_KEY:
                    # Periodic ticks of all nodes fall on the same instants (every T from 0): one heap entry per
                    # instant instead of one per node; nodes tick in the order they armed, deterministically.
                    when = act[1]
                    lst = self._ticks.get(when)
                    if lst is None:
                        self._ticks[when] = [node]
                        push(when, EV_TICKS)
                    else:
                        lst.append(node)
                else:
                    push(act[1], EV_TIMER, me, key)
            elif code == A.DELIVER:
                f = act[1]
                rows["deliveries"].append((now, f[1], f[2], f[5]))
            elif code == A.SEND_E2E:
                dst, frame = act[1], act[2]
                push(now + self.e2e_delay(me, dst), EV_ARRIVE, dst, None, frame)
                if frame[0] != ACK:
                    rows["control"].append((now, idx[me], -1, frame[1], frame[0], frame[6]))
            elif code == A.ACKED:
                f = act[1]
                rows["acks"].append((now, f[1], f[2]))
            elif code == A.DROP:
                f = act[1]
                rows["drops"].append((now, idx[me], f[1], f[2], act[2]))
            elif code == A.SAMPLE:
                rows["pool"].append((now, idx[me], idx[act[1]], act[2], act[3], act[4], act[5]))
            elif code == A.CONTROL:
                rows["control"].append((now, idx[me], idx.get(act[1], -1), act[2], act[3], 0.0))
