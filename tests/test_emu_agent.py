"""One node agent against a hostile neighbour: garbage, oversized and unauthenticated frames are dropped and counted
in /stats and the agent stays up. The test itself plays the agent's only neighbour (it knows the link secret)."""

from __future__ import annotations

import socket
import struct
import subprocess
import sys
import time

import pytest

from testbed.emu import httpd
from testbed.emu.agent import HELLO, HELLO_MAGIC
from testbed.emu.backends.local import plan_for
from testbed.emu.keystore import DirectionKeys, LinkKeys, mac_key, tag, xor
from testbed.emu.lab import PEER_PORT, agent_configs, lab_from_topology, write_configs
from testbed.network import line
from testbed.node import wire
from testbed.node.frames import DATA, PAUSE


def test_keystore_units_are_used_once_and_in_order():
    d = DirectionKeys(4)
    d.add(b"aaaabbbbcccc")
    d.add(b"dddd")
    assert d.take(1) == b"bbbb"
    assert d.take(0) is None  # below the floor: a replay
    assert d.take(3) == b"dddd" and d.take(4) is None  # not supplied yet
    a, b = LinkKeys(True, 4), LinkKeys(False, 4)
    batch = b"ABABBABA"  # one unit per direction: a->b first, then b->a
    a.supply(batch, 1, 4)
    b.supply(batch, 1, 4)
    assert a.tx.take(0) == b.rx.take(0) == b"ABAB" and b.tx.take(0) == a.rx.take(0) == b"BABA"
    assert xor(xor(b"key!", b"pad."), b"pad.") == b"key!"


@pytest.fixture
def agent(tmp_path):
    """Agent N1 of a two-node line, whose neighbour N2 is this test."""
    lab = lab_from_topology(line(2), f"hostile-{time.time_ns() % 10**6}", duration_s=60)
    plan = plan_for(lab)
    configs, injector = agent_configs(lab, plan)
    paths = write_configs(tmp_path, configs, injector)
    n2 = plan.link_addr[("N2", "N1")]
    srv = socket.create_server((n2, PEER_PORT))
    srv.settimeout(10)
    proc = subprocess.Popen([sys.executable, "-m", "testbed.emu.agent", "--config", str(paths["N1"])],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://{plan.control_host['N1']}:7401"
    try:
        for _ in range(200):
            if httpd.try_json(url + "/health", 0.2):
                break
            time.sleep(0.02)
        yield {"url": url, "cfg": configs["N1"], "srv": srv, "proc": proc,
               "psk": bytes.fromhex(configs["N1"]["neighbours"]["N2"]["psk"]),
               "addr": (plan.link_addr[("N1", "N2")], PEER_PORT)}
    finally:
        proc.terminate()
        proc.wait(5)
        srv.close()


def _stats(a) -> dict:
    return httpd.get_json(a["url"] + "/stats")


def _until(fn, timeout_s: float = 5.0) -> bool:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        if fn():
            return True
        time.sleep(0.02)
    return False


def test_garbage_on_a_fresh_connection_is_rejected(agent):
    for junk in (b"\x00\x00\x00\x05hello", b"GET / HTTP/1.1\r\n\r\n", struct.pack("!I", 10**9) + b"x" * 64):
        with socket.create_connection(agent["addr"], timeout=5) as s:
            s.sendall(junk)
            s.shutdown(socket.SHUT_WR)
            s.recv(1)  # the agent closes the connection
    st = _stats(agent)
    # "GET " read as a length prefix is 1.2 GB: oversized, like the explicit one
    assert st["conn_rejected"] == 3 and st["frames_oversized"] == 2 and st["frames_malformed"] == 1
    assert httpd.get_json(agent["url"] + "/health")["node"] == "N1"
    assert agent["proc"].poll() is None


def test_unauthenticated_malformed_and_oversized_frames_on_a_live_link(agent):
    conn, _ = agent["srv"].accept()  # N1 dials us (lower index dials)
    conn.settimeout(5)
    n = struct.unpack("!I", conn.recv(4, socket.MSG_WAITALL))[0]
    conn.recv(n, socket.MSG_WAITALL)  # N1's hello
    me_to_n1 = mac_key(agent["psk"], "N2", "N1")
    body = HELLO.pack(HELLO_MAGIC, 1, 0, bytes(16))
    conn.sendall(wire.with_length(body + tag(me_to_n1, body)))
    assert _until(lambda: httpd.get_json(agent["url"] + "/health")["peers_up"] == 1)
    ids = {"N1": 0, "N2": 1}
    good = wire.encode((PAUSE, 1, 0, "N2", "N1", 0.0, 0.0), ids)
    forged = good[:-32] + tag(b"wrong key" * 4, good[:-32])  # unauthenticated
    junk = b"QK" + bytes(60)
    junk_tagged = junk[:-32] + tag(me_to_n1, junk[:-32])  # authentic but malformed
    data = wire.encode((DATA, 1, 0, "N2", "N1", 0.0, 0.0), ids, 0, bytes(512))
    data_tagged = data[:-32] + tag(me_to_n1, data[:-32])  # names key unit 0, which was never supplied
    for b in (forged, junk_tagged):
        conn.sendall(wire.with_length(b))
    assert _until(lambda: _stats(agent)["frames_bad_tag"] == 1 and _stats(agent)["frames_malformed"] == 1)
    conn.sendall(wire.with_length(data_tagged))
    conn.sendall(struct.pack("!I", wire.MAX_FRAME + 1) + b"x" * 100)  # oversized: framing lost, link closed
    assert _until(lambda: _stats(agent)["frames_oversized"] == 1, 10)
    st = _stats(agent)
    assert st["frames_no_key"] == 1  # the DATA frame waited for its key, then was dropped
    assert st["port_N2_rx_keys"] == 0  # nothing reached the node
    assert agent["proc"].poll() is None
    assert httpd.get_json(agent["url"] + "/health")["node"] == "N1"
    prom = httpd.request(agent["url"] + "/stats?format=prometheus").decode()
    assert 'qkdbed_frames_bad_tag{node="N1"' in prom
    conn.close()
