"""Baselines of seed 000 (QKD-TL, RED-AQM + Reno, RSVP): the controllers and formulas against hand-worked numbers."""

from __future__ import annotations

import heapq

import pytest

from testbed.errors import QkdbedError
from testbed.node.node import Node
from testbed.schemes import create
from testbed.schemes.red_reno import eq5_rate_bps, eq5_rate_original_bps
from testbed.schemes.reno import CA, MARK, RENO_DEFAULTS, SS, BatchReno, WindowReno
from testbed.schemes.rsvp import guaranteed_rate_bps, guaranteed_rate_original_bps


# ---------------------------------------------------------------------------------------------- window Reno
def _ack_clocked(cc: WindowReno, n_acks: int, rtt_s: float = 0.1, ecn_after: dict | None = None):
    """A greedy sender whose every message is acknowledged exactly `rtt_s` after release (ACK clocking).
    Returns the cwnd after each ACK and the number released."""
    heap: list[tuple[float, int]] = []
    released = acked = 0
    now = 0.0
    trace = []
    ecn_after = ecn_after or {}

    def fill(t):
        nonlocal released
        while True:
            k, t_next = cc.release(t, 10 ** 9, released, acked)
            if not k and t_next == float("inf"):
                return  # window full
            if k:
                heapq.heappush(heap, (t + rtt_s, released))
                released += 1
            t = max(t, t_next)  # the (1 THz) pacing: the next release a picosecond later

    fill(now)
    while len(trace) < n_acks:
        now, seq = heapq.heappop(heap)
        acked += 1
        cc.on_ack(now, seq, released, acked - 1)
        trace.append(cc.cwnd)
        for _ in range(ecn_after.get(len(trace), 0)):
            cc.on_congestion(now, MARK, released)
        if len(trace) in ecn_after:
            trace[-1] = cc.cwnd
        fill(now)
    return trace, released


def test_window_reno_slow_start_then_avoidance_then_halving_once_per_rtt():
    # Pacing off (1 THz) so only the window limits. RTT 0.1 s, so the paper's 500 kbps threshold is a window of
    # 500e3 * 0.1 / 4096 = 12.2 messages: slow start (+1 per ACK) while cwnd < 12.2, i.e. through cwnd = 13.
    cc = WindowReno(dict(RENO_DEFAULTS["paper"], max_rate_bps=1e12))
    trace, _ = _ack_clocked(cc, 15)
    assert trace[:12] == [2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0, 13.0]
    # congestion avoidance: +1/cwnd per ACK: 13 + 1/13 = 13.0769, + 1/13.0769 = 13.1534, + 1/13.1534 = 13.2294
    assert trace[12] == pytest.approx(13.0769, abs=1e-4)
    assert trace[13] == pytest.approx(13.1534, abs=1e-4)
    assert trace[14] == pytest.approx(13.2294, abs=1e-4)

    # Halving: two ECNs after ACK 15 in the same round trip halve once (13.2294 -> 6.6147), and ssthresh follows.
    cc = WindowReno(dict(RENO_DEFAULTS["paper"], max_rate_bps=1e12))
    trace, released = _ack_clocked(cc, 16, ecn_after={15: 2})
    assert trace[14] == pytest.approx(13.2294 / 2, abs=1e-4)
    assert cc.ssthresh == pytest.approx(6.6147, abs=1e-4) and cc.reductions == 1
    # The next ACK is for a message released before the reduction: still the same round trip, another ECN is ignored
    assert cc.on_congestion(2.0, MARK, released) is False
    assert trace[15] == pytest.approx(6.6147 + 1 / 6.6147, abs=1e-4)  # avoidance now (cwnd >= ssthresh)


def test_window_reno_second_halving_after_a_round_trip():
    cc = WindowReno(dict(RENO_DEFAULTS["paper"], max_rate_bps=1e12))
    # ECN after ACK 4 (cwnd 5 -> 2.5), then after ACK 5: same RTT, ignored. By ACK 12 the messages released after
    # the reduction (seq >= 5) have come back, so an ECN then halves again.
    trace, _ = _ack_clocked(cc, 12, ecn_after={4: 1, 5: 1, 12: 1})
    assert trace[3] == 2.5
    assert cc.reductions == 2
    assert trace[4] == 2.5 + 1 / 2.5  # ACK 5: avoidance growth only, the second ECN was ignored
    assert trace[11] == pytest.approx((trace[10] + 1 / trace[10]) / 2)  # ACK 12 grew, then the ECN halved


def test_window_reno_lost_message_leaves_the_window():
    cc = WindowReno(dict(RENO_DEFAULTS["paper"], max_rate_bps=1e12))
    assert cc.release(0.0, 5, released=0, acked=0)[0] == 1
    assert cc.release(0.1, 5, released=1, acked=0) == (0, float("inf"))  # window of one, one in flight
    assert cc.on_congestion(0.2, 0, released=1)  # the message was dropped: halve (min 1) and forget it
    assert cc.lost == 1 and cc.cwnd == 1.0
    assert cc.release(0.3, 5, released=1, acked=0)[0] == 1


def test_window_reno_paced_at_one_mbps():
    cc = WindowReno(dict(RENO_DEFAULTS["paper"], initial_window_msgs=100))
    assert cc.release(0.0, 10, 0, 0) == (1, pytest.approx(0.004096))  # 4096 bit at 1 Mbps
    assert cc.release(0.001, 9, 1, 0) == (0, pytest.approx(0.004096))
    assert cc.release(0.004096, 9, 1, 0)[0] == 1


# ---------------------------------------------------------------------------------------------- batch Reno
def test_batch_reno_slow_start_timeline_of_the_original():
    # r = 1, 2, 4, ..., 256 kbps: one message after 4096/r ms for r <= 40.96 kbps, else int(r*100/4096) messages
    # spaced int(4096/r) ms: 1 kbps 4.096 s, 2: 2.048, 4: 1.024, 8: 0.512, 16: 0.256, 32: 0.128, 64: 1 x 64 ms,
    # 128: 3 x 32 ms, 256: 6 x 16 ms -> 16 messages by 8.320 s, then r = 512 kbps in avoidance (12 x 8 ms batches)
    cc = BatchReno(RENO_DEFAULTS["original"])
    now, sent, times = 0.0, 0, []
    while now <= 8.32 + 1e-9:
        k, nxt = cc.release(now, 10 ** 6)
        sent += k
        times += [now] * k
        now = nxt
    assert sent == 16
    assert times[-1] == pytest.approx(8.32)
    assert cc.state == CA and cc.r_bps == 512e3 + 1e3  # the 512 kbps batch was built at 8.32 s, then +1 kbps
    assert cc.slots_left == 12 and cc.gap_s == pytest.approx(0.008)
    # An ECN halves once, at the next batch (r = int(513/2) = 256 kbps), then +1 per batch again.
    assert cc.on_congestion(now, MARK, 0) and not cc.on_congestion(now, MARK, 0)
    cc.build(now)
    assert cc.r_bps == 256e3 and cc.state == CA
    cc.build(now)
    assert cc.r_bps == 257e3


def test_batch_reno_is_shared_by_the_flows_of_a_node_in_the_original():
    node = Node("A", {"B": 1e9}, {"B": "B", "C": "B"}, create("qkdtl-ecn", {}, "original"))
    f1, f2 = node.add_flow(1, "B"), node.add_flow(2, "C")
    assert f1.cc is f2.cc and isinstance(f1.cc, BatchReno)
    node = Node("A", {"B": 1e9}, {"B": "B", "C": "B"}, create("qkdtl-ecn", {}, "paper"))
    f1, f2 = node.add_flow(1, "B"), node.add_flow(2, "C")
    assert f1.cc is not f2.cc and isinstance(f1.cc, WindowReno) and f1.cc.in_slow_start()
    assert SS == 0


# ---------------------------------------------------------------------------------------------- Eq. (5)
def test_eq5_at_and_between_the_thresholds():
    # tau_min = 800 kbit = 195.3 keys, tau_max = 16 Mbit = 3906.25 keys, s_min = 1 Mbps / 2
    assert eq5_rate_bps(0) == 500e3
    assert eq5_rate_bps(195) == 500e3  # 798 720 bit < 800 kbit
    assert eq5_rate_bps(800e3 / 4096) == pytest.approx(500e3)  # at tau_min exactly
    # halfway, L = 8.4 Mbit: 500k + 1M * 7.6M / (2 * 15.2M) = 750 kbps
    assert eq5_rate_bps(8.4e6 / 4096) == pytest.approx(750e3)
    # L = 2000 keys = 8.192 Mbit: 500k + 1M * 7.392M / 30.4M = 743 157.9 bps
    assert eq5_rate_bps(2000) == pytest.approx(743157.89, abs=0.01)
    assert eq5_rate_bps(3906) == pytest.approx(999966.3, abs=0.1)  # just below tau_max: the ramp increases
    assert eq5_rate_bps(3907) == 1e6


def test_eq5_original_thresholds_and_int32_overflow():
    # 200 / 4000 messages, C integer arithmetic: 500k + 1e6 (L - 200) / 7600
    assert eq5_rate_original_bps(200) == 500_000
    assert eq5_rate_original_bps(2100) == 750_000
    assert eq5_rate_original_bps(2347) == 782_500  # 1e6 * 2147 = 2.147e9 still fits in int32
    assert eq5_rate_original_bps(2348) == 782_631  # without the overflow
    # with it: 1e6 * 2148 - 2^32 = -2 146 967 296; / 7600 -> -282 495 (truncation); + 500 000 = 217 505
    assert eq5_rate_original_bps(2348, int32_overflow=True) == 217_505
    # L = 3999: 3.799e9 - 2^32 = -495 967 296; / 7600 -> -65 258; + 500 000 = 434 742
    assert eq5_rate_original_bps(3999, int32_overflow=True) == 434_742
    assert eq5_rate_original_bps(4000, int32_overflow=True) == 1_000_000


def test_red_scheme_sets_the_port_rate_from_the_key_store():
    def port_rate(profile, keys, **params):
        node = Node("A", {"B": 1e9}, {"B": "B"}, create("red-reno", params, profile))
        node.keys_supplied(1.0, "B", keys)
        return node.ports["B"].rate_bps

    assert port_rate("paper", 2000) == pytest.approx(743157.89, abs=0.01)
    assert port_rate("original", 2348) == 782_631
    assert port_rate("original", 2348, int32_overflow=True) == 217_505
    with pytest.raises(QkdbedError, match="int32_overflow"):
        create("red-reno", {"int32_overflow": True}, "paper")


# ---------------------------------------------------------------------------------------------- RSVP rate
def test_guaranteed_rate_for_table_iii():
    M, D = 4096.0, 1.0
    # Fig. 13 flow 1: r = 300 kbps, p = 4 Mbps, b = 10 Mb. (b-M)/(p-r) = 9 995 904 / 3.7e6 = 2.7015957 s;
    # R = (4e6 * 2.7015957 + 4096) / (1 + 2.7015957) = 10 810 478.7 / 3.7015957 = 2 920 491.5 bps
    assert guaranteed_rate_bps(300e3, 10e6, 4e6, M, D) == pytest.approx(2920491.5, abs=1)
    # Fig. 13 flow 2: r = 100 kbps, b = 5 Mb. 4 995 904 / 3.9e6 = 1.2809882 s;
    # R = (5 123 952.8 + 4096) / 2.2809882 = 2 248 179.7 bps
    assert guaranteed_rate_bps(100e3, 5e6, 4e6, M, D) == pytest.approx(2248179.7, abs=1)
    # Fig. 14 flow 1: r = 300 kbps, b = 5 Mb. 4 995 904 / 3.7e6 = 1.3502443 s; R = 5 405 073.3 / 2.3502443
    assert guaranteed_rate_bps(300e3, 5e6, 4e6, M, D) == pytest.approx(2299792.1, abs=1)
    # Fig. 14 flow 2: r = 200 kbps, b = 5 Mb. 4 995 904 / 3.8e6 = 1.3147116 s; R = 5 262 942.3 / 2.3147116
    assert guaranteed_rate_bps(200e3, 5e6, 4e6, M, D) == pytest.approx(2273692.5, abs=1)
    # every one satisfies the formula's range p > R >= r, and meets its delay bound exactly
    for r, b in ((300e3, 10e6), (100e3, 5e6), (300e3, 5e6), (200e3, 5e6)):
        R = guaranteed_rate_bps(r, b, 4e6, M, D)
        assert r <= R < 4e6
        assert (b - M) / R * (4e6 - R) / (4e6 - r) + M / R == pytest.approx(D)
    # clamp: a tiny bucket needs no more than... its delay bound gives R < r, so R = r
    assert guaranteed_rate_bps(300e3, 8192, 4e6, M, 10.0) == 300e3


def test_guaranteed_rate_original_variant():
    # main_RSVP.cpp with b = 2500 messages, r = 0.45 * 500 = 225 kbps, p = 4000 kbps, D = 1000 ms:
    # (4000 * 2499 / 3775 * 4096 + 4096) / (1 + 2499 * 4 / 3775) = 10 850 086 / 3.647947 = 2 974 299 bps
    assert guaranteed_rate_original_bps(225e3, 2500, 4e6, 1.0) == pytest.approx(2974299.5, abs=1)
    # b = 5000, r = 0.6 * 500 = 300 kbps: 3.46 Mbps (reference §5)
    assert guaranteed_rate_original_bps(300e3, 5000, 4e6, 1.0) == pytest.approx(3.457e6, rel=1e-3)
    sp = create("rsvp", {}, "original").make_spec(1, "A", "B")  # Table III left flow 1 in the code's units
    assert sp.b_keys == 5000 and sp.gap_R_s == pytest.approx(0.002) and sp.gap_r_s == pytest.approx(0.014)
    sp = create("rsvp", {}, "paper").make_spec(1, "A", "B")
    assert sp.b_keys == 2441 and sp.gap_R_s == pytest.approx(4096 / 2920491.5)


# ---------------------------------------------------------------------------------------------- parameters
@pytest.mark.parametrize("name", ["qkdtl-ecn", "red-reno", "rsvp"])
def test_unknown_parameter_is_one_clear_error(name):
    with pytest.raises(QkdbedError) as e:
        create(name, {"bogus_knob": 1}, "paper")
    msg = str(e.value)
    assert "bogus_knob" in msg and "allowed" in msg and "\n" not in msg


def test_bad_values_are_refused():
    with pytest.raises(QkdbedError, match="controller"):
        create("qkdtl-ecn", {"controller": "cubic"}, "paper")
    with pytest.raises(QkdbedError, match="flows.U1->U4.rate"):
        create("rsvp", {"flows": {"U1->U4": {"rate": 1}}}, "paper")
    with pytest.raises(QkdbedError, match="table3"):
        create("rsvp", {"table3": "middle"}, "paper")
