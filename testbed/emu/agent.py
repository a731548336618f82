"""The node agent: one sans-I/O `Node` driven by a real clock, real TCP connections and real key bytes.

It is `sim/engine.py` with the event heap replaced by asyncio: inputs are fed to the node with `now` read from the
testbed clock (seconds since the start instant every agent and the injector share), and the node's actions are
carried out in the order it emitted them, exactly as `Simulator._drain` does (same event-log rows).

Wire (see `node/wire.py`): one TCP connection per neighbour, length-prefixed frames, an HMAC-SHA256 tag per hop.
Conventions this module adds on top of the byte layout:

- the lower-indexed end of a link dials, the other accepts; both first send a HELLO (node indices + nonce, tagged
  with the link's MAC key), so a connection is bound to one authenticated neighbour before any frame is read;
- a DATA payload is the end-to-end key unit XORed with the link key unit `key_index` (see `keystore.py`);
- an end-to-end frame (the node's SEND_E2E: ACKs, ECN, probe replies) carries a 2-byte payload naming its target
  node; relays forward it untouched (re-tagged for the next hop) along their routing tables;
- a KEY_HANDOUT frame (ETSI 014 key handout, KME to KME) is an end-to-end frame whose payload is the 2-byte target
  followed by the handout's JSON; the agent handles it itself (the node never sees it), even after the run's end.

KME (user nodes whose configuration has a `kme` section; see `kme.py`): an ETSI GS QKD 014 server in this loop;
the destination's plain end-to-end unit goes into its key store on DELIVER, the source's on ACKED.

Link emulation: a received frame is handed to the node after the link's propagation delay plus the frame's
serialisation time on the classical channel (`Port.overhead_s`), as the simulator schedules arrivals; a backend
that shapes bandwidth itself (Mininet TC links) sets `shaped_links`, and then only the delay is added here. Frames
of one link stay in order (one FIFO per link).

Hostile input: a frame that is malformed, has a bad tag, names a used key unit or is oversized is dropped and
counted (`/stats`); an oversized length prefix or a failed HELLO also closes that connection (framing is lost).
The agent never exits because of what a peer sent.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import signal
import struct
import sys
import time
from bisect import bisect_right
from collections import deque

from .. import schemes
from ..node import actions as A
from ..node import wire
from ..node.frames import ACK, DATA, KEY_HANDOUT
from ..node.node import Node
from . import httpd
from .keystore import LinkKeys, e2e_key, mac_key, tag, tag_ok, xor

HELLO = struct.Struct("!4sHH16s")  # magic, sender index, receiver index, nonce
HELLO_MAGIC = b"QKHI"
HELLO_BYTES = HELLO.size + 32
E2E_TARGET = struct.Struct("!H")
INJ_HELLO = struct.Struct("!6sH")  # b"QKINJ1", node index
INJ_EVENT = struct.Struct("!HIIdI")  # peer index, event index, units per end, scheduled time (s), unit bytes
KEY_WAIT_S = 5.0  # a DATA frame may overtake its key's supply message; wait this long for the key, then drop
MAX_TX_BUFFER_BYTES = 32 << 20  # a neighbour that stops reading costs at most this much memory
DIAL_RETRY_S = 0.05


class Peer:
    """One neighbour: its connection, its link's keys and MAC keys, and the receive FIFO that emulates the link."""

    def __init__(self, name: str, idx: int, cfg: dict, me: str, psk: bytes):
        self.name, self.idx, self.cfg = name, idx, cfg
        self.keys = LinkKeys(cfg["i_am_a"], cfg.get("unit_bytes", 512))
        self.mac_tx = mac_key(psk, me, name)
        self.mac_rx = mac_key(psk, name, me)
        self.writer: asyncio.StreamWriter | None = None
        self.fifo: deque = deque()
        self.timer: asyncio.TimerHandle | None = None
        self.key_event = asyncio.Event()
        self.down_at_s: float | None = None
        self.connections = 0

    @property
    def up(self) -> bool:
        return self.writer is not None and not self.writer.is_closing()


class Agent:
    def __init__(self, cfg: dict):
        self.cfg = cfg
        self.me: str = cfg["node"]
        self.names: list[str] = cfg["node_names"]
        self.ids = {n: i for i, n in enumerate(self.names)}
        self.idx = self.ids[self.me]
        self.secret = bytes.fromhex(cfg["e2e_secret"])
        self.seed = cfg["seed"]
        neigh = cfg["neighbours"]
        sch = cfg["scheme"]
        scheme = schemes.create(sch["name"], sch.get("params") or {}, sch.get("profile", "paper"))
        self.node = Node(self.me, {p: c["bandwidth_bps"] for p, c in neigh.items()}, cfg["next_hop"], scheme,
                         cfg.get("scheduler", "round-robin"), cfg.get("ack", True))
        self.peers = {p: Peer(p, self.ids[p], c, self.me, bytes.fromhex(c["psk"])) for p, c in neigh.items()}
        self.shaped = bool(cfg.get("shaped_links"))
        self.loop: asyncio.AbstractEventLoop | None = None
        self.mono0: float | None = None  # monotonic time of the testbed's start instant
        self.duration_s = 0.0
        self.end_s = 0.0
        self.started = False
        self.finished = False
        self.injector_up = False
        self.relay_plain: dict[tuple[int, int], bytes] = {}
        self.dest_plain: dict[tuple[int, int], bytes] = {}  # units that reached us, until the node delivers them
        self.kme = None  # AgentKme of a user node (created in main)
        self.kme_error = ""
        self.handout_seq = 0
        self.pending_supply: list[tuple[Peer, int]] = []
        self.rows: dict[str, list] = {k: [] for k in ("sends", "deliveries", "acks", "drops", "control", "pool",
                                                      "supply", "keyservice")}
        self.c = {k: 0 for k in (
            "frames_rx", "frames_tx", "frames_malformed", "frames_bad_tag", "frames_oversized", "frames_replayed",
            "frames_no_key", "frames_unroutable", "conn_rejected", "conn_accepted", "hello_ok", "e2e_keys_ok",
            "e2e_keys_bad", "e2e_forwarded", "tx_link_down", "tx_backlog_drops", "auth_tags_made",
            "auth_tags_checked", "key_events", "key_units_rx", "http_requests")}
        self.t_boot = time.monotonic()
        self.stop = asyncio.Event()

    # ---------------------------------------------------------------------------------------------- clock
    def now(self) -> float:
        if self.mono0 is None:
            return 0.0
        t = time.monotonic() - self.mono0
        return t if t > 0.0 else 0.0

    # ---------------------------------------------------------------------------------------------- main
    async def main(self) -> None:
        self.loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            self.loop.add_signal_handler(sig, self.stop.set)
        ctl = self.cfg["control"]
        servers = [await self._bind(lambda: httpd.serve(self._http, [ctl["host"]], ctl["port"])),
                   await self._bind(lambda: asyncio.start_server(self._accept, host=self.cfg["listen"],
                                                                 port=self.cfg["peer_port"], reuse_address=True))]
        if self.cfg.get("kme"):
            await self._start_kme(self.cfg["kme"])
        tasks = [asyncio.create_task(self._dial(p)) for p in self.peers.values() if p.cfg["dial"]]
        tasks.append(asyncio.create_task(self._injector()))
        print(f"agent {self.me}: listening on {self.cfg['listen']}:{self.cfg['peer_port']}, "
              f"control http://{ctl['host']}:{ctl['port']}", flush=True)
        await self.stop.wait()
        for t in tasks:
            t.cancel()
        for s in servers:
            s.close()
        for p in self.peers.values():
            if p.writer is not None:
                p.writer.close()
        if self.kme is not None:
            await self.kme.stop()

    async def _start_kme(self, kcfg: dict) -> None:
        """The node's ETSI 014 KME. A KME that cannot start (missing package, no certificate) is reported in
        /health (`kme_error`) and the agent carries on relaying: the network must not depend on it."""
        try:
            from .kme import AgentKme

            kme = AgentKme(self.me, kcfg, lambda n: self.ids.get(n, -1), self.now, self.rows["keyservice"].append,
                           self._send_handout)
            await kme.start()
        except Exception as e:  # noqa: BLE001 -- reported, never fatal
            self.kme_error = f"{type(e).__name__}: {e}"
            print(f"agent {self.me}: KME not started: {self.kme_error}", flush=True)
            return
        self.kme = kme
        print(f"agent {self.me}: KME (ETSI GS QKD 014) at {kme.url}", flush=True)

    async def _bind(self, make):
        """Bind, retrying while our addresses do not exist yet (a container's links are wired after it starts)."""
        deadline = time.monotonic() + 30.0
        while True:
            try:
                return await make()
            except OSError as e:
                if time.monotonic() > deadline or e.errno not in (99, 98):  # EADDRNOTAVAIL, EADDRINUSE
                    raise
                await asyncio.sleep(0.05)

    # ---------------------------------------------------------------------------------------------- peers
    def _hello(self, p: Peer) -> bytes:
        body = HELLO.pack(HELLO_MAGIC, self.idx, p.idx, os.urandom(16))
        return wire.with_length(body + tag(p.mac_tx, body))

    async def _dial(self, p: Peer) -> None:
        while not self.stop.is_set():
            try:
                reader, writer = await asyncio.open_connection(p.cfg["host"], p.cfg["port"])
            except OSError:
                await asyncio.sleep(DIAL_RETRY_S)
                continue
            writer.write(self._hello(p))
            who = await self._read_hello(reader, writer)
            if who is not p:
                writer.close()
                await asyncio.sleep(DIAL_RETRY_S)
                continue
            await self._serve_peer(p, reader, writer)
            await asyncio.sleep(0.2)  # the neighbour went away: try again (it may be restarted)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.c["conn_accepted"] += 1
        p = await self._read_hello(reader, writer)
        if p is None:
            writer.close()
            return
        writer.write(self._hello(p))
        await self._serve_peer(p, reader, writer)

    async def _read_hello(self, reader, writer) -> Peer | None:
        try:
            n = wire.LENGTH.unpack(await asyncio.wait_for(reader.readexactly(4), 10))[0]
            if n != HELLO_BYTES:
                self.c["frames_oversized" if n > wire.MAX_FRAME else "frames_malformed"] += 1
                self.c["conn_rejected"] += 1
                return None
            body = await asyncio.wait_for(reader.readexactly(n), 10)
        except (asyncio.IncompleteReadError, asyncio.TimeoutError, ConnectionError):
            self.c["conn_rejected"] += 1
            return None
        magic, sender, receiver, _nonce = HELLO.unpack_from(body)
        name = self.names[sender] if sender < len(self.names) else None
        p = self.peers.get(name) if name else None
        if magic != HELLO_MAGIC or receiver != self.idx or p is None:
            self.c["frames_malformed"] += 1
            self.c["conn_rejected"] += 1
            return None
        self.c["auth_tags_checked"] += 1
        if not tag_ok(p.mac_rx, body[:HELLO.size], body[HELLO.size:]):
            self.c["frames_bad_tag"] += 1
            self.c["conn_rejected"] += 1
            return None
        self.c["hello_ok"] += 1
        return p

    async def _serve_peer(self, p: Peer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        old = p.writer
        p.writer = writer
        p.connections += 1
        p.down_at_s = None
        if old is not None and old is not writer:
            old.close()
        sock = writer.get_extra_info("socket")
        if sock is not None:
            import socket
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            await self._read_frames(p, reader)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            if p.writer is writer:
                p.writer = None
                p.down_at_s = self.now() if self.started else None
            writer.close()

    async def _read_frames(self, p: Peer, reader: asyncio.StreamReader) -> None:
        c = self.c
        unpack_len = wire.LENGTH.unpack
        minimum = wire.HEADER_BYTES + wire.TAG_BYTES
        mono = time.monotonic
        while True:
            n = unpack_len(await reader.readexactly(4))[0]
            if n > wire.MAX_FRAME:
                c["frames_oversized"] += 1
                return  # the stream cannot be resynchronised: close this connection
            body = await reader.readexactly(n)
            t_rx = mono()
            c["frames_rx"] += 1
            if n < minimum:
                c["frames_malformed"] += 1
                continue
            signed = body[:-32]
            c["auth_tags_checked"] += 1
            if not tag_ok(p.mac_rx, signed, body[-32:]):
                c["frames_bad_tag"] += 1
                continue
            try:
                frame, key_index, payload, _ = wire.decode(body, self.names)
            except wire.WireError:
                c["frames_malformed"] += 1
                continue
            target = None
            if frame[0] == DATA:
                plain = await self._decrypt(p, key_index, payload)
                if plain is None:
                    continue
                fs = (frame[1], frame[2])
                if frame[4] == self.me:
                    ok = plain == e2e_key(self.secret, frame[1], frame[2], len(plain))
                    c["e2e_keys_ok" if ok else "e2e_keys_bad"] += 1
                    if ok and self.kme is not None:
                        self.dest_plain[fs] = plain
                else:
                    self.relay_plain[fs] = plain
            elif frame[0] == KEY_HANDOUT:
                t = E2E_TARGET.unpack_from(payload)[0] if len(payload) > E2E_TARGET.size else len(self.names)
                if t >= len(self.names):
                    c["frames_malformed"] += 1
                    continue
                target = self.names[t]
            elif len(payload) == E2E_TARGET.size:
                t = E2E_TARGET.unpack(payload)[0]
                if t >= len(self.names):
                    c["frames_malformed"] += 1
                    continue
                target = self.names[t]
            elif payload:
                c["frames_malformed"] += 1
                continue
            self._enqueue_rx(p, t_rx, frame, target, signed)

    async def _decrypt(self, p: Peer, key_index: int, payload: bytes) -> bytes | None:
        rx = p.keys.rx
        if len(payload) != rx.unit_bytes:
            self.c["frames_malformed"] += 1
            return None
        if key_index < rx.floor:
            self.c["frames_replayed"] += 1
            return None
        if not rx.has(key_index):
            deadline = time.monotonic() + KEY_WAIT_S
            while not rx.has(key_index) and time.monotonic() < deadline:
                p.key_event.clear()
                try:
                    await asyncio.wait_for(p.key_event.wait(), max(0.0, deadline - time.monotonic()))
                except asyncio.TimeoutError:
                    break
            if not rx.has(key_index):
                self.c["frames_no_key"] += 1
                return None
        return xor(payload, rx.take(key_index))

    # ---------------------------------------------------------------------------------------------- link FIFO
    def _enqueue_rx(self, p: Peer, t_rx: float, frame: tuple, target: str | None, signed: bytes) -> None:
        delay = p.cfg["delay_s"] + (0.0 if self.shaped else self.node.ports[p.name].overhead_s)
        due = t_rx + delay
        p.fifo.append((due, frame, target, signed))
        if p.timer is None:
            p.timer = self.loop.call_at(self._loop_time(due), self._release, p)

    def _loop_time(self, mono: float) -> float:
        return self.loop.time() + (mono - time.monotonic())

    def _release(self, p: Peer) -> None:
        p.timer = None
        fifo = p.fifo
        t = time.monotonic()
        while fifo and fifo[0][0] <= t:
            _, frame, target, signed = fifo.popleft()
            if frame[0] == KEY_HANDOUT:  # key service: also before the start and after the end of a run
                if target != self.me:
                    self.c["e2e_forwarded"] += 1
                    self._route_e2e(target, signed)
                elif self.kme is not None:
                    self.kme.handout_received(frame[3], signed[wire.HEADER_BYTES + E2E_TARGET.size:])
                else:
                    self.c["frames_unroutable"] += 1
                continue
            if not self.started or self.finished:
                continue
            if target is None:
                now = self.now()
                self.node.frame_received(now, p.name, frame)
                if self.node.out:
                    self._drain(now)
            elif target == self.me:
                now = self.now()
                self.node.frame_received(now, None, frame)
                if self.node.out:
                    self._drain(now)
            else:
                self.c["e2e_forwarded"] += 1
                self._route_e2e(target, signed)
        if fifo:
            p.timer = self.loop.call_at(self._loop_time(fifo[0][0]), self._release, p)

    # ---------------------------------------------------------------------------------------------- sending
    def _write(self, peer: str, signed: bytes) -> bool:
        p = self.peers[peer]
        w = p.writer
        if w is None or w.is_closing():
            self.c["tx_link_down"] += 1
            return False
        if w.transport.get_write_buffer_size() > MAX_TX_BUFFER_BYTES:
            self.c["tx_backlog_drops"] += 1
            return False
        w.write(wire.LENGTH.pack(len(signed) + 32) + signed + tag(p.mac_tx, signed))
        self.c["frames_tx"] += 1
        self.c["auth_tags_made"] += 1
        return True

    def _route_e2e(self, target: str, signed: bytes) -> None:
        hop = self.cfg["next_hop"].get(target)
        if hop is None or not self._write(hop, signed):
            self.c["frames_unroutable"] += 1

    def _send_handout(self, dst: str, payload: bytes) -> None:
        """One KEY_HANDOUT frame toward KME `dst`; raises if it cannot leave this node (the KME answers 503)."""
        hop = self.cfg["next_hop"].get(dst)
        if hop is None:
            raise RuntimeError(f"no route to {dst}")
        self.handout_seq += 1
        frame = (KEY_HANDOUT, 0, self.handout_seq, self.me, dst, self.now(), 0.0)
        body = wire.encode(frame, self.ids, -1, E2E_TARGET.pack(self.ids[dst]) + payload)
        if not self._write(hop, body[:-32]):
            raise RuntimeError(f"link to {hop} (next hop toward {dst}) is down or backlogged")

    def _drain(self, now: float) -> None:
        """Carry out the node's actions in order (the simulator's `_drain`, with sockets)."""
        node = self.node
        out = node.out
        node.out = []
        rows = self.rows
        me = self.me
        idx = self.ids
        for act in out:
            code = act[0]
            if code == A.SEND:
                peer, frame = act[1], act[2]
                if frame[0] == DATA:
                    key_index = act[4]
                    fs = (frame[1], frame[2])
                    plain = self.relay_plain.pop(fs, None)
                    if plain is None:  # we are the source: a fresh end-to-end key unit
                        plain = e2e_key(self.secret, frame[1], frame[2], self.peers[peer].keys.tx.unit_bytes)
                    unit = self.peers[peer].keys.tx.take(key_index)
                    if unit is None:  # the node believed it had a key we do not hold: never send in clear
                        self.c["frames_no_key"] += 1
                        rows["drops"].append((now, idx[me], frame[1], frame[2], A.DROP_NO_STATE))
                        continue
                    body = wire.encode(frame, idx, key_index, xor(plain, unit))
                    if self.cfg.get("record_sends", True):
                        rows["sends"].append((now, idx[me], idx[peer], frame[1], frame[2], key_index))
                    if not self._write(peer, body[:-32]):
                        rows["drops"].append((now, idx[me], frame[1], frame[2], A.DROP_LINK_DOWN))
                else:
                    body = wire.encode(frame, idx)
                    rows["control"].append((now, idx[me], idx[peer], frame[1], frame[0], frame[6]))
                    self._write(peer, body[:-32])
            elif code == A.TIMER:
                when = act[1]
                self.loop.call_at(self._loop_time(self.mono0 + when), self._timer, when, act[2])
            elif code == A.DELIVER:
                f = act[1]
                rows["deliveries"].append((now, f[1], f[2], f[5]))
                if self.kme is not None:
                    plain = self.dest_plain.pop((f[1], f[2]), None)
                    if plain is not None:
                        self.kme.unit_delivered(f[3], f[1], f[2], plain)
            elif code == A.SEND_E2E:
                dst, frame = act[1], act[2]
                if frame[0] != ACK:
                    rows["control"].append((now, idx[me], -1, frame[1], frame[0], frame[6]))
                if dst == me:
                    self.loop.call_soon(self._local_e2e, frame)
                else:
                    body = wire.encode(frame, idx, -1, E2E_TARGET.pack(idx[dst]))
                    self._route_e2e(dst, body[:-32])
            elif code == A.ACKED:
                f = act[1]
                rows["acks"].append((now, f[1], f[2]))
                if self.kme is not None:
                    sf = self.node.flows.get(f[1])
                    if sf is not None:
                        ub = self.peers[sf.port].keys.tx.unit_bytes
                        self.kme.unit_acked(f[3], f[1], f[2], e2e_key(self.secret, f[1], f[2], ub))
            elif code == A.DROP:
                f = act[1]
                if f[0] == DATA:
                    self.relay_plain.pop((f[1], f[2]), None)
                rows["drops"].append((now, idx[me], f[1], f[2], act[2]))
            elif code == A.SAMPLE:
                if now < self.duration_s:
                    rows["pool"].append((now, idx[me], idx[act[1]], act[2], act[3], act[4], act[5]))
            elif code == A.CONTROL:
                rows["control"].append((now, idx[me], idx.get(act[1], -1), act[2], act[3], 0.0))

    def _local_e2e(self, frame: tuple) -> None:
        if self.started and not self.finished:
            now = self.now()
            self.node.frame_received(now, None, frame)
            if self.node.out:
                self._drain(now)

    def _timer(self, when: float, key: tuple) -> None:
        if not self.started or self.finished:
            return
        now = self.now()
        if now < when:  # never hand the node a time before the one it asked for
            now = when
        self.node.timer_fired(now, key)
        if self.node.out:
            self._drain(now)

    # ---------------------------------------------------------------------------------------------- injector
    async def _injector(self) -> None:
        inj = self.cfg["injector"]
        while not self.stop.is_set():
            try:
                reader, writer = await asyncio.open_connection(inj["host"], inj["port"])
            except OSError:
                await asyncio.sleep(DIAL_RETRY_S)
                continue
            writer.write(INJ_HELLO.pack(b"QKINJ1", self.idx))
            self.injector_up = True
            try:
                while True:
                    n = wire.LENGTH.unpack(await reader.readexactly(4))[0]
                    body = await reader.readexactly(n)
                    self._supplied(body)
            except (asyncio.IncompleteReadError, ConnectionError):
                pass
            finally:
                self.injector_up = False
                writer.close()
            await asyncio.sleep(0.2)

    def _supplied(self, body: bytes) -> None:
        peer_i, _event, units, _t_sched, unit_bytes = INJ_EVENT.unpack_from(body)
        p = self.peers.get(self.names[peer_i]) if peer_i < len(self.names) else None
        if p is None:
            return
        p.keys.supply(body[INJ_EVENT.size:], units, unit_bytes)
        p.key_event.set()
        self.c["key_events"] += 1
        self.c["key_units_rx"] += units
        if self.finished:
            return
        if not self.started:  # arrived a hair before our start callback ran: apply it at the start
            self.pending_supply.append((p, units))
            return
        self._apply_supply(p, units)

    def _apply_supply(self, p: Peer, units: int) -> None:
        now = self.now()
        if p.cfg["i_am_a"]:
            self.rows["supply"].append((now, p.cfg["link_index"], units))
        self.node.keys_supplied(now, p.name, units)
        if self.node.out:
            self._drain(now)

    # ---------------------------------------------------------------------------------------------- run control
    def start(self, req: dict) -> None:
        """Arm the run: flows of this node, the shared start instant, the end of the run and its drain."""
        if self.started:
            raise RuntimeError("already started")
        self.mono0 = time.monotonic() + (float(req["start_unix"]) - time.time())
        self.duration_s = float(req["duration_s"])
        self.end_s = self.duration_s + float(req.get("drain_s", 1.0))
        for f in req.get("flows", []):
            self.node.add_flow(int(f["fid"]), f["dst"], None, float(f.get("weight", 1.0)), finite=False)
        for fid, w in (req.get("weights") or {}).items():
            self.node.set_weight(int(fid), float(w))
        at = self._loop_time(self.mono0)
        self.loop.call_at(at, self._begin, req.get("flows", []))
        self.loop.call_at(self._loop_time(self.mono0 + self.end_s), self._finish)

    def _begin(self, flows: list[dict]) -> None:
        self.started = True
        self.node.start(0.0)
        self._drain(0.0)
        for p, units in self.pending_supply:
            self._apply_supply(p, units)
        self.pending_supply.clear()
        period = float(self.cfg.get("sample_period_s") or 0)
        if period:
            self._sample(0, period)
        for f in flows:
            offers = [float(t) for t in f["offers"] if t < self.duration_s]
            if offers:
                self._offer(int(f["fid"]), offers, 0)
            else:
                self.node.flows[int(f["fid"])].finite = True

    def _sample(self, k: int, period: float) -> None:
        if self.finished or k * period >= self.duration_s:
            return
        now = max(self.now(), k * period)
        self.node.sample(now)
        self._drain(now)
        self.loop.call_at(self._loop_time(self.mono0 + (k + 1) * period), self._sample, k + 1, period)

    def _offer(self, fid: int, offers: list[float], i: int) -> None:
        if self.finished:
            return
        now = self.now()
        j = bisect_right(offers, now, i)
        if j == i:
            j = i + 1  # fired a hair early: the offer is due
            now = max(now, offers[i])
        self.node.request_offered(now, fid, j - i)
        self._drain(now)
        if j < len(offers):
            self.loop.call_at(self._loop_time(self.mono0 + offers[j]), self._offer, fid, offers, j)
        else:
            self.node.flows[fid].finite = True

    def _finish(self) -> None:
        self.finished = True
        print(f"agent {self.me}: run finished at {self.now():.3f} s", flush=True)

    def events_npz(self) -> bytes:
        """This agent's part of the event log: the `record.py` tables, as an npz archive."""
        import numpy as np

        from ..record import SCHEMA

        buf = io.BytesIO()
        np.savez(buf, **{k: np.array(self.rows[k], dtype=np.dtype(cols)) for k, cols in SCHEMA.items()})
        return buf.getvalue()

    # ---------------------------------------------------------------------------------------------- control API
    def health(self) -> dict:
        up = sum(p.up for p in self.peers.values())
        return {"node": self.me, "testbed": self.cfg["testbed"], "pid": os.getpid(),
                "ready": up == len(self.peers) and self.injector_up, "peers_up": up,
                "peers_total": len(self.peers), "injector": self.injector_up, "started": self.started,
                "finished": self.finished, "t_s": self.now(),
                "kme": self.kme.url if self.kme is not None else None, "kme_error": self.kme_error,
                "peers_down": {p.name: p.down_at_s for p in self.peers.values() if p.down_at_s is not None}}

    def stats(self) -> dict[str, float]:
        out: dict[str, float] = dict(self.node.stats())
        out.update(self.c)
        for p in self.peers.values():
            k = f"peer_{p.name}_"
            out[k + "up"] = int(p.up)
            out[k + "connections"] = p.connections
            out[k + "key_units_tx_available"] = p.keys.tx.available
            out[k + "key_units_rx_available"] = p.keys.rx.available
            out[k + "delay_emulated_s"] = p.cfg["delay_s"]
        out["auth_key_bytes"] = 64 * len(self.peers)  # one 32-byte HMAC key per direction of each link
        out["auth_key_bytes_wc_equiv"] = 32 * (self.c["auth_tags_made"] + self.c["auth_tags_checked"])
        out["ready"] = int(self.health()["ready"])
        out["started"] = int(self.started)
        out["finished"] = int(self.finished)
        out["t_s"] = self.now()
        out["uptime_s"] = time.monotonic() - self.t_boot
        if self.kme is not None:
            out.update(self.kme.stats())
        return out

    async def _http(self, method: str, path: str, query: dict, body: bytes):
        self.c["http_requests"] += 1
        if path == "/health" and method == "GET":
            return httpd.json_response(self.health())
        if path == "/stats" and method == "GET":
            st = self.stats()
            if query.get("format") == "prometheus":
                return httpd.text_response(prometheus(st, {"node": self.me, "testbed": self.cfg["testbed"]}))
            return httpd.json_response(st)
        if path == "/start" and method == "POST":
            if self.started or self.mono0 is not None:
                return httpd.json_response({"error": "already started"}, 409)
            self.start(json.loads(body or b"{}"))
            return httpd.json_response({"ok": True})
        if path == "/events" and method == "GET":
            if not self.finished:
                return httpd.json_response({"error": "run not finished"}, 409)
            return 200, "application/octet-stream", self.events_npz()
        if path == "/shutdown" and method == "POST":
            self.loop.call_later(0.05, self.stop.set)
            return httpd.json_response({"ok": True})
        return httpd.json_response({"error": f"no route {method} {path}"}, 404)


def prometheus(stats: dict[str, float], labels: dict[str, str]) -> str:
    """Prometheus text exposition of a flat name -> number map (one gauge per name)."""
    lab = ",".join(f'{k}="{v}"' for k, v in labels.items())
    lines = []
    for name, v in stats.items():
        metric = "qkdbed_" + "".join(ch if ch.isalnum() else "_" for ch in name)
        lines.append(f"{metric}{{{lab}}} {float(v):.17g}")
    return "\n".join(lines) + "\n"


def run(config_path: str) -> None:
    with open(config_path) as fh:
        cfg = json.load(fh)
    asyncio.run(Agent(cfg).main())


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="qkdbed agent", description="Run one node agent.")
    ap.add_argument("--config", required=True)
    a = ap.parse_args(argv)
    run(a.config)


if __name__ == "__main__":
    main(sys.argv[1:])
