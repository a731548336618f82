"""Frames exchanged between nodes, as plain tuples (the simulator's hot path creates millions of them).

A frame is `(kind, flow, seq, src, dst, t0_s, value)`:

- `kind`   one of the constants below;
- `flow`   the flow id (int) the frame belongs to (0 for frames of no flow);
- `seq`    the message's sequence number within its flow (DATA, ACK) or a counter (probes);
- `src`, `dst`  the flow's end nodes by name (not the hop addresses), as the original code does;
- `t0_s`   when the message was offered at the source (measurement only: latency = delivery time - t0);
- `value`  a number whose meaning depends on the kind (probe capacity in bps, reservation amount, ...).

Only DATA frames carry key material: each DATA frame is one key-request message and consumes one key unit of the
sending port's master pool and of the receiving port's slave pool per hop (seed 000 §III-A). Control frames are
authenticated but draw no key unit in the model (their authentication-key use is accounted separately by the
emulator). The byte layout for the emulator is in `wire.py`.
"""

from __future__ import annotations

from typing import NamedTuple

DATA = 0  # one key-request message (consumes a key unit per hop)
ACK = 1  # end-to-end acknowledgement dst -> src; releases the reserved end-to-end key (seed 000 §III-C)
PAUSE = 2  # backpressure: stop sending `flow` toward me (CP-BFC, Alg. 3)
RESUME = 3  # backpressure: resume `flow`
ECN = 4  # congestion / key-shortage notification to the flow's source (QKD-TL, RED)
PROBE = 5  # source probe carrying the bottleneck capacity seen so far (CP-BFC, Alg. 2)
PROBE_REPLY = 6  # the destination returns the probe to the source
PATH = 7  # RSVP reservation request src -> dst
RESV = 8  # RSVP reservation commit dst -> src, hop by hop
TEARDOWN = 9  # RSVP release of a reservation
GROUP_KEY = 10  # group-key delivery from a group-key server to a member
KEY_HANDOUT = 11  # emulator only: ETSI 014 key handout, master KME -> slave KME, end to end (JSON payload)

KIND_NAMES = {DATA: "data", ACK: "ack", PAUSE: "pause", RESUME: "resume", ECN: "ecn", PROBE: "probe",
              PROBE_REPLY: "probe_reply", PATH: "path", RESV: "resv", TEARDOWN: "teardown", GROUP_KEY: "group_key",
              KEY_HANDOUT: "key_handout"}
KINDS = frozenset(KIND_NAMES)


class Frame(NamedTuple):
    """Named view of a frame tuple; the hot path uses plain tuples with the same field order."""

    kind: int
    flow: int
    seq: int
    src: str
    dst: str
    t0_s: float
    value: float = 0.0


# Field positions, for code that indexes plain tuples.
F_KIND, F_FLOW, F_SEQ, F_SRC, F_DST, F_T0, F_VALUE = range(7)
