"""Real key material in an agent: per-link key stores, one-time-pad relaying and the per-hop MAC keys.

Pools. A link's key supply (one event = `units` key units per end, as in the simulator) arrives from the key
injector as `2 * units` units of bytes, identical at both ends: the first `units` serve the direction a -> b (a's
master pool, b's slave pool), the next `units` the direction b -> a, where (a, b) is the link's canonical order
(`Link.name` = "a-b"). Units of one direction are numbered 0, 1, 2, ... in supply order; that number is the
`key_index` the node puts on every DATA frame (`Port.consumed` at send time), so both ends find the same unit.

Relaying (trusted relay, seed 000 §III-A): a DATA payload is one end-to-end key unit XORed with the link key unit
of its key_index. Each hop decrypts with its copy and re-encrypts with the next link's unit; a used unit is
discarded at both ends (one-time pad: never reused; a frame naming a discarded unit is a replay and is dropped).

Authentication (our choice, documented in docs/emulator.md): HMAC-SHA256 per hop with a per-link, per-direction
32-byte key derived from the link's pre-shared authentication secret (`psk`, generated at random by `qkdbed up`
for each link, as QKD devices need an initial shared secret before their first key exchange). The MAC keys are
fixed for the session, so authentication draws **no units from the pools** and the pools evolve exactly as in the
simulator; an information-theoretic (Wegman-Carter) tag would instead consume about 32 bytes of pool key per frame,
which the agent reports as `auth_key_bytes_wc_equiv` so the cost can be accounted for.
"""

from __future__ import annotations

import hashlib
import hmac
from bisect import bisect_right

UNIT_BYTES = 512
MAC_KEY_BYTES = 32


def mac_key(psk: bytes, sender: str, receiver: str) -> bytes:
    """The HMAC key that authenticates frames from `sender` to `receiver` on their link."""
    return hmac.digest(psk, b"qkdbed-mac\x1f" + sender.encode() + b"\x1f" + receiver.encode(), "sha256")


def tag(key: bytes, data: bytes) -> bytes:
    return hmac.digest(key, data, "sha256")


def tag_ok(key: bytes, data: bytes, got: bytes) -> bool:
    return hmac.compare_digest(hmac.digest(key, data, "sha256"), got)


def xor(a: bytes, b: bytes) -> bytes:
    """One-time pad: a XOR b (equal lengths), via big integers (about a microsecond for 512 bytes)."""
    n = len(a)
    return (int.from_bytes(a, "little") ^ int.from_bytes(b, "little")).to_bytes(n, "little")


def e2e_key(secret: bytes, flow: int, seq: int, unit_bytes: int = UNIT_BYTES) -> bytes:
    """The end-to-end key unit a source relays for message (flow, seq).

    Derived from a testbed-wide secret so that the destination can check that the unit it decrypted is the one
    the source encrypted (a test oracle for the whole relay chain); it stands in for a locally generated key."""
    return hashlib.shake_256(secret + b"\x1fe2e\x1f%d\x1f%d" % (flow, seq)).digest(unit_bytes)


class DirectionKeys:
    """Key units of one direction of one link, addressed by key_index; consumed units are forgotten.

    Units arrive in batches (one per key-generation event). Lookups are mostly in order (TCP keeps frames in
    order and the sender consumes units in order), so batches below the lowest live index are dropped as a whole.
    """

    __slots__ = ("unit_bytes", "starts", "chunks", "supplied", "floor", "used")

    def __init__(self, unit_bytes: int = UNIT_BYTES):
        self.unit_bytes = unit_bytes
        self.starts: list[int] = []  # first key_index of each kept batch
        self.chunks: list[bytes] = []
        self.supplied = 0  # units received so far (next batch starts here)
        self.floor = 0  # every index below this one is used or discarded
        self.used = 0

    def add(self, material: bytes) -> None:
        n = len(material) // self.unit_bytes
        if n:
            self.starts.append(self.supplied)
            self.chunks.append(material)
            self.supplied += n

    def has(self, index: int) -> bool:
        return self.floor <= index < self.supplied

    def take(self, index: int) -> bytes | None:
        """The unit `index`, marking it used (with every lower index: units are consumed in order). None if it
        was already used (a replay) or has not arrived."""
        if not self.has(index):
            return None
        i = bisect_right(self.starts, index) - 1
        off = (index - self.starts[i]) * self.unit_bytes
        unit = self.chunks[i][off:off + self.unit_bytes]
        self.used += 1
        self.floor = index + 1
        while len(self.starts) > 1 and self.starts[1] <= self.floor:
            del self.starts[0], self.chunks[0]
        return unit

    @property
    def available(self) -> int:
        return self.supplied - self.floor


class LinkKeys:
    """Both directions of one link as seen by one end: `tx` (my master pool) and `rx` (my slave pool)."""

    __slots__ = ("tx", "rx", "first", "events")

    def __init__(self, i_am_a: bool, unit_bytes: int = UNIT_BYTES):
        self.tx = DirectionKeys(unit_bytes)
        self.rx = DirectionKeys(unit_bytes)
        self.first = i_am_a  # this end is the link's `a` (its units come first in each batch)
        self.events = 0

    def supply(self, material: bytes, units: int, unit_bytes: int = UNIT_BYTES) -> None:
        half = units * unit_bytes
        ab, ba = material[:half], material[half:2 * half]
        if self.first:
            self.tx.add(ab)
            self.rx.add(ba)
        else:
            self.tx.add(ba)
            self.rx.add(ab)
        self.events += 1
