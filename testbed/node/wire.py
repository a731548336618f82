"""The byte layout of frames on the emulator's TCP connections, with strict validation.

Each frame travels as `u32 length` + body. The body (big-endian):

| offset | size | field        | meaning                                                                  |
|-------:|-----:|--------------|--------------------------------------------------------------------------|
| 0      | 2    | magic        | b"QK"                                                                    |
| 2      | 1    | version      | WIRE_VERSION                                                             |
| 3      | 1    | kind         | frames.DATA, ACK, PAUSE, ... (unknown kinds are refused)                 |
| 4      | 4    | flow         | flow id                                                                  |
| 8      | 8    | seq          | sequence number (signed: probes carry a share here)                     |
| 16     | 2    | src          | index of the flow's source node in the testbed's node list               |
| 18     | 2    | dst          | index of the flow's destination node                                     |
| 20     | 8    | key_index    | DATA: index of the link key unit that encrypts the payload (-1: none)   |
| 28     | 8    | t0           | offer time of the message, s (measurement only)                          |
| 36     | 8    | value        | kind-specific number                                                     |
| 44     | 2    | payload_len  | bytes of payload that follow (DATA: one key unit, 512 by default)        |
| 46     | n    | payload      | DATA: the end-to-end key unit, one-time-pad encrypted with the link key  |
| 46+n   | 32   | tag          | HMAC-SHA256 over bytes [0, 46+n) with this hop's authentication key      |

The simulator passes frame tuples; the emulator encodes exactly the same tuple plus the hop's key material. The
node names travel as indices so that a header has a fixed size (HEADER_BYTES + payload + TAG_BYTES).
"""

from __future__ import annotations

import struct

from .frames import KINDS

MAGIC = b"QK"
WIRE_VERSION = 1
HEADER = struct.Struct("!2sBBIqHHqddH")
HEADER_BYTES = HEADER.size  # 46
TAG_BYTES = 32
MAX_PAYLOAD = 4096  # refuse anything larger: a key unit is 512 bytes by default
MAX_FRAME = HEADER_BYTES + MAX_PAYLOAD + TAG_BYTES
LENGTH = struct.Struct("!I")


class WireError(ValueError):
    """A frame that is malformed, of an unknown kind or version, or oversized. The agent drops and counts it."""


def encode(frame: tuple, node_ids: dict[str, int], key_index: int = -1, payload: bytes = b"",
           tag: bytes | None = None) -> bytes:
    """Body of `frame` (without the length prefix). `tag` defaults to zeros, for callers that sign afterwards
    with `body[:-TAG_BYTES]`."""
    kind, flow, seq, src, dst, t0, value = frame
    if len(payload) > MAX_PAYLOAD:
        raise WireError(f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD}")
    head = HEADER.pack(MAGIC, WIRE_VERSION, kind, flow, int(seq), node_ids.get(src, 0xFFFF),
                       node_ids.get(dst, 0xFFFF), key_index, float(t0), float(value), len(payload))
    return head + payload + (tag if tag is not None else bytes(TAG_BYTES))


def decode(body: bytes, node_names: list[str]) -> tuple[tuple, int, bytes, bytes]:
    """Parse and validate a body: returns (frame tuple, key_index, payload, tag). Raises WireError."""
    if len(body) < HEADER_BYTES + TAG_BYTES:
        raise WireError(f"frame of {len(body)} bytes is shorter than the {HEADER_BYTES + TAG_BYTES}-byte minimum")
    if len(body) > MAX_FRAME:
        raise WireError(f"frame of {len(body)} bytes exceeds {MAX_FRAME}")
    magic, ver, kind, flow, seq, src, dst, key_index, t0, value, plen = HEADER.unpack_from(body)
    if magic != MAGIC:
        raise WireError("bad magic")
    if ver != WIRE_VERSION:
        raise WireError(f"unsupported wire version {ver}")
    if kind not in KINDS:
        raise WireError(f"unknown frame kind {kind}")
    if HEADER_BYTES + plen + TAG_BYTES != len(body):
        raise WireError(f"payload length {plen} does not match a {len(body)}-byte frame")
    n = len(node_names)

    def name(i: int) -> str:
        if i == 0xFFFF:
            return ""
        if i >= n:
            raise WireError(f"node index {i} out of range")
        return node_names[i]

    frame = (kind, flow, seq, name(src), name(dst), t0, value)
    payload = body[HEADER_BYTES:HEADER_BYTES + plen]
    tag = body[HEADER_BYTES + plen:]
    return frame, key_index, payload, tag


def signed_part(body: bytes) -> bytes:
    """The bytes the authentication tag covers."""
    return body[:-TAG_BYTES]


def with_length(body: bytes) -> bytes:
    return LENGTH.pack(len(body)) + body
