"""Wire format: round trips and refusal of every kind of malformed frame."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, strategies as st

from testbed.node import frames as F
from testbed.node import wire as W

NAMES = ["A", "B", "C"]
IDS = {n: i for i, n in enumerate(NAMES)}


@given(kind=st.sampled_from(sorted(F.KINDS)), flow=st.integers(0, 2**32 - 1), seq=st.integers(-2**63, 2**63 - 1),
       src=st.sampled_from(NAMES), dst=st.sampled_from(NAMES), t0=st.floats(allow_nan=False),
       value=st.floats(allow_nan=False), key_index=st.integers(-1, 2**62), payload=st.binary(max_size=600))
def test_round_trip(kind, flow, seq, src, dst, t0, value, key_index, payload):
    frame = (kind, flow, seq, src, dst, t0, value)
    body = W.encode(frame, IDS, key_index, payload, b"\x01" * 32)
    assert len(body) == W.HEADER_BYTES + len(payload) + W.TAG_BYTES
    got, ki, pl, tag = W.decode(body, NAMES)
    assert got == frame and ki == key_index and pl == payload and tag == b"\x01" * 32


def test_data_frame_is_46_plus_512_plus_32_bytes():
    body = W.encode((F.DATA, 1, 0, "A", "C", 0.0, 0.0), IDS, 7, bytes(512))
    assert len(body) == 590 and W.HEADER_BYTES == 46


@pytest.mark.parametrize("mutate, message", [
    (lambda b: b"XX" + b[2:], "bad magic"),
    (lambda b: b[:2] + bytes([9]) + b[3:], "wire version"),
    (lambda b: b[:3] + bytes([200]) + b[4:], "unknown frame kind"),
    (lambda b: b[:-1], "does not match"),
    (lambda b: b + b"\x00", "does not match"),
    (lambda b: b[:10], "shorter"),
    (lambda b: b[:16] + struct.pack("!H", 77) + b[18:], "out of range"),
    (lambda b: b + bytes(W.MAX_FRAME), "exceeds"),
])
def test_malformed_frames_are_refused(mutate, message):
    body = W.encode((F.DATA, 1, 0, "A", "C", 0.0, 0.0), IDS, 0, bytes(512))
    with pytest.raises(W.WireError, match=message):
        W.decode(mutate(body), NAMES)


def test_oversized_payload_refused_on_encode():
    with pytest.raises(W.WireError):
        W.encode((F.DATA, 1, 0, "A", "C", 0.0, 0.0), IDS, 0, bytes(W.MAX_PAYLOAD + 1))
