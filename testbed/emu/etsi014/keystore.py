"""The KME's key store: end-to-end key units shared with peer KMEs, cut into ETSI GS QKD 014 keys.

Where the units come from
-------------------------
The relay network delivers 512-byte end-to-end key units between two user nodes, each named by its (flow, seq).
Seed 000 §III-C releases a unit with an acknowledgement: the destination stores it when the DATA frame arrives,
the source only when the end-to-end ACK comes back. The agent calls `add_unit` at exactly those two moments, so
both KMEs end up holding the same bytes under the same unit identity.

Who may hand a unit out (roles)
-------------------------------
Both KMEs hold every unit, so something must stop them from handing out the same bytes twice (Alice's KME to
Alice, Bob's KME to Bob, each as *master*). We partition without talking: each unit has exactly one **owner**
(role "master") that may cut it into keys for enc_keys, and the other KME holds it as role "slave" and only
serves it through dec_keys after the owner says so. The convention the agent should use is: **the flow's
source owns the unit.** That is the safe choice under §III-C, because the source releases a unit only on the
ACK, which proves the destination has it already; the owner can therefore never hand out bytes the slave KME is
missing. (A lost ACK leaves an orphan unit at the destination: harmless, it is never used.) Keys toward a peer
in the other direction need flows in that direction.

How keys are cut, and how the slave KME learns the key_IDs
----------------------------------------------------------
The owner keeps its units toward a peer in arrival order and cuts keys from the front: a key of `size_bits`
takes the next `size_bits / 8` bytes, crossing into the next unit when one runs out. Each key is recorded as
segments `(unit, start_byte, end_byte)` and gets a random UUID4 key_ID (random, so an SAE cannot guess IDs of
keys it was not given). `take_enc_keys` returns the keys *and* a `Handout` that lists, per key, its key_ID,
the SAEs it was issued to and its segments. The server sends the handout to the slave KME (the agent's
`on_handout` hook, a small control message over the relay network), and the slave KME calls
`register_remote_handout(message)`: it copies exactly those byte ranges out of its own copies of the units, so
both sides hold identical bytes under identical key_IDs, and marks the ranges used. Nothing but unit names and
offsets crosses the network; the key bytes never do.

Guarantees: every request is validated completely before the store changes (a refused request changes
nothing); a key is handed out once to its master SAE and once to each slave SAE named for it, then forgotten; all
methods are thread-safe (one lock, held for microseconds) and never block, so the asyncio server may call them
directly.
"""

from __future__ import annotations

import threading
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Literal

# --- limits (named, with the reason for each value) ----------------------------------------------------------
#: One end-to-end key unit of the relay network (design.md: "one key unit is 512 bytes by default").
UNIT_BYTES = 512
#: Default key size: an AES-256 key, the common use of ETSI 014 keys.
DEFAULT_KEY_SIZE_BITS = 256
#: Smallest key served: 64 bits; anything smaller is not a useful symmetric key.
MIN_KEY_SIZE_BITS = 64
#: Largest key served: 8192 bits = two units, so keys spanning units are exercised but one request cannot drain
#: a pool with a single huge key.
MAX_KEY_SIZE_BITS = 8192
#: Keys per request: enough for batching, small enough that one answer stays a few kilobytes.
MAX_KEYS_PER_REQUEST = 128
#: Additional slave SAEs one request may name (multicast, served by the same slave KME).
MAX_SAE_ID_COUNT = 4
#: Bytes of owned key the store is sized for toward one peer (2048 units = 1 MiB); reported as max_key_count and
#: used by the agent to decide whether to ask the relay network for more units (`room_bytes`). The store never
#: drops a unit on its own: dropping one side's copy would break the symmetry the key_IDs depend on.
DEFAULT_CAPACITY_BYTES = 2048 * UNIT_BYTES
#: Handouts that may wait for units not received yet. In the source-owns convention a handout never waits
#: (the ACK came first); the bound only stops a misbehaving peer from growing the list without end.
MAX_PARKED_HANDOUTS = 10_000
#: Version of the handout control message, so agents of different versions refuse each other plainly.
HANDOUT_VERSION = 1

Role = Literal["master", "slave"]
UnitId = str | tuple | list | int


class KeyStoreError(Exception):
    """A refused request: the HTTP status, the standard's Error `message`, and optional `details` objects."""

    status = 400

    def __init__(self, message: str, details: list[dict[str, Any]] | None = None):
        super().__init__(message)
        self.message = message
        self.details = details or []


class BadRequest(KeyStoreError):
    status = 400


class Unauthorized(KeyStoreError):
    status = 401


class Unavailable(KeyStoreError):
    status = 503


class UnknownKeyIds(BadRequest):
    """Key IDs this KME does not know (yet): the server may wait briefly for a handout still on its way."""

    def __init__(self, key_ids: list[str]):
        super().__init__("unknown key_ID", [{"key_ID": k} for k in key_ids])
        self.key_ids = key_ids


def unit_key(unit_id: UnitId) -> str:
    """Canonical text name of a unit: (flow, seq) → "flow:seq"; a string stays as it is.

    Text, because the name travels in JSON handouts, where a tuple would come back as a list."""
    if isinstance(unit_id, str):
        return unit_id
    if isinstance(unit_id, (tuple, list)):
        return ":".join(str(p) for p in unit_id)
    if isinstance(unit_id, int) and not isinstance(unit_id, bool):
        return str(unit_id)
    raise TypeError(f"unit id must be a str or a (flow, seq) tuple, got {unit_id!r}")


# --- handout: the message the owner KME sends to the slave KME --------------------------------------------------
@dataclass(frozen=True)
class HandedKey:
    key_id: str
    size_bits: int
    segments: tuple[tuple[str, int, int], ...]  # (unit key, start byte, end byte), in key order


@dataclass(frozen=True)
class Handout:
    """What one enc_keys answer handed out: sent by the owner (master) KME to the slave KME."""

    master_kme: str
    slave_kme: str
    master_sae: str
    slave_saes: tuple[str, ...]  # the slave SAE first, then any additional slave SAEs
    keys: tuple[HandedKey, ...]

    def to_message(self) -> dict[str, Any]:
        """A JSON-ready dict (a few dozen bytes per key) for the agent's control frame."""
        return {
            "type": "etsi014.handout",
            "v": HANDOUT_VERSION,
            "master_kme": self.master_kme,
            "slave_kme": self.slave_kme,
            "master_sae": self.master_sae,
            "slave_saes": list(self.slave_saes),
            "keys": [{"key_ID": k.key_id, "size_bits": k.size_bits, "segments": [list(s) for s in k.segments]}
                     for k in self.keys],
        }

    @classmethod
    def from_message(cls, msg: dict[str, Any]) -> "Handout":
        """Parse and check a handout message; raises ValueError on anything malformed."""
        try:
            if msg.get("type") != "etsi014.handout" or msg.get("v") != HANDOUT_VERSION:
                raise ValueError(f"not an etsi014.handout v{HANDOUT_VERSION} message")
            keys = []
            for k in msg["keys"]:
                segs = tuple((str(u), int(a), int(b)) for u, a, b in k["segments"])
                size_bits = int(k["size_bits"])
                if sum(b - a for _, a, b in segs) * 8 != size_bits or any(not 0 <= a < b for _, a, b in segs):
                    raise ValueError(f"segments of key {k['key_ID']} do not add up to {size_bits} bits")
                keys.append(HandedKey(str(uuid.UUID(k["key_ID"])), size_bits, segs))
            return cls(str(msg["master_kme"]), str(msg["slave_kme"]), str(msg["master_sae"]),
                       tuple(str(s) for s in msg["slave_saes"]), tuple(keys))
        except (KeyError, TypeError) as e:
            raise ValueError(f"malformed handout message: {e!r}") from e


# --- internal state ------------------------------------------------------------------------------------------
@dataclass
class _OwnedPool:
    """Units this KME owns toward one peer, cut from the front."""

    units: deque = field(default_factory=deque)  # of (unit key, bytearray)
    head_offset: int = 0  # bytes of units[0] already cut
    available_bytes: int = 0
    names: set = field(default_factory=set)  # unit keys ever added (duplicates are refused)


@dataclass
class _HeldUnit:
    """A unit held as slave: bytes plus the byte ranges the owner has already handed out."""

    data: bytearray
    used: list = field(default_factory=list)  # of (start, end)
    used_bytes: int = 0


@dataclass
class _RemoteKey:
    master_sae: str
    master_kme: str
    pending_slaves: set  # slave SAEs that have not fetched it yet
    data: bytes


class KeyStore:
    """Key store of one KME (one user node). See the module docstring for the design.

    `sae_map` maps every SAE ID of the testbed to the KME (node) that serves it; the store needs it to find the
    peer KME of a slave SAE and to refuse SAEs it does not serve.
    """

    def __init__(self, kme_id: str, sae_map: dict[str, str], *, key_size_bits: int = DEFAULT_KEY_SIZE_BITS,
                 min_key_size_bits: int = MIN_KEY_SIZE_BITS, max_key_size_bits: int = MAX_KEY_SIZE_BITS,
                 max_keys_per_request: int = MAX_KEYS_PER_REQUEST, max_sae_id_count: int = MAX_SAE_ID_COUNT,
                 capacity_bytes: int = DEFAULT_CAPACITY_BYTES,
                 on_handout: Callable[[Handout], Any] | None = None):
        for name, v in (("key_size_bits", key_size_bits), ("min_key_size_bits", min_key_size_bits),
                        ("max_key_size_bits", max_key_size_bits)):
            if v <= 0 or v % 8:
                raise ValueError(f"{name} must be a positive multiple of 8, got {v}")
        if not min_key_size_bits <= key_size_bits <= max_key_size_bits:
            raise ValueError("need min_key_size_bits <= key_size_bits <= max_key_size_bits")
        self.kme_id = kme_id
        self.sae_map = dict(sae_map)
        self.key_size_bits = key_size_bits
        self.min_key_size_bits = min_key_size_bits
        self.max_key_size_bits = max_key_size_bits
        self.max_keys_per_request = max_keys_per_request
        self.max_sae_id_count = max_sae_id_count
        self.capacity_bytes = capacity_bytes
        #: Called by the server with each Handout after enc_keys cut keys, before it answers the master SAE. The
        #: agent sends `handout.to_message()` to the KME `handout.slave_kme`. Returning None once the message is
        #: queued is the fast path (a dec_keys that overtakes it waits for it); returning an awaitable makes the
        #: server answer only when it completes (e.g. when the peer confirmed). Raising says the peer cannot be
        #: told: the keys are then burnt, never served, and the master SAE gets 503.
        self.on_handout = on_handout
        self._lock = threading.Lock()
        self._owned: dict[str, _OwnedPool] = {}
        self._held: dict[str, dict[str, _HeldUnit]] = {}  # peer → unit key → held unit
        self._held_names: dict[str, set[str]] = {}  # peer → every unit key ever held (refuses duplicates)
        self._remote: dict[str, _RemoteKey] = {}  # key_ID → key waiting for its slave SAE(s)
        self._parked: list[Handout] = []  # handouts naming units not received yet
        self._listeners: list[Callable[[], None]] = []
        self._counters: dict[str, int] = {
            "units_added_master": 0, "units_added_slave": 0, "units_duplicate": 0,
            "keys_handed_out_master": 0, "bytes_handed_out_master": 0,
            "handouts_registered": 0, "handouts_parked": 0, "handouts_rejected": 0,
            "keys_served_slave": 0,
        }

    # -- feeding (the agent) ------------------------------------------------------------------------------------
    def add_unit(self, peer_kme: str, unit_id: UnitId, key_bytes: bytes, role: Role) -> bool:
        """Store one end-to-end key unit shared with `peer_kme`.

        Call it at the §III-C release points: on the ACK at the flow's source with role "master", on receipt at
        the destination with role "slave". Returns False (and stores nothing) for a unit already added, so a
        retransmitted frame cannot make keys from the same bytes twice."""
        if role not in ("master", "slave"):
            raise ValueError(f"role must be 'master' or 'slave', got {role!r}")
        if peer_kme == self.kme_id:
            raise ValueError("a KME does not share units with itself")
        if not key_bytes:
            raise ValueError("empty key unit")
        name = unit_key(unit_id)
        wake = False
        with self._lock:
            if role == "master":
                pool = self._owned.setdefault(peer_kme, _OwnedPool())
                if name in pool.names:
                    self._counters["units_duplicate"] += 1
                    return False
                pool.names.add(name)
                pool.units.append((name, bytearray(key_bytes)))
                pool.available_bytes += len(key_bytes)
                self._counters["units_added_master"] += 1
            else:
                held = self._held.setdefault(peer_kme, {})
                names = self._held_names.setdefault(peer_kme, set())
                if name in names:
                    self._counters["units_duplicate"] += 1
                    return False
                names.add(name)
                held[name] = _HeldUnit(bytearray(key_bytes))
                self._counters["units_added_slave"] += 1
                if self._parked:
                    wake = self._retry_parked_locked()
        if wake:
            self._notify_listeners()
        return True

    def room_bytes(self, peer_kme: str) -> int:
        """Owned bytes the store is still sized for toward `peer_kme` (the agent's cue to ask for more units)."""
        with self._lock:
            pool = self._owned.get(peer_kme)
            return max(0, self.capacity_bytes - (pool.available_bytes if pool else 0))

    # -- status -------------------------------------------------------------------------------------------------
    def status(self, master_sae: str, slave_sae: str) -> dict[str, Any]:
        """The standard's Status object for the pair (master SAE is the caller)."""
        peer = self._check_pair(master_sae, slave_sae)
        key_bytes = self.key_size_bits // 8
        with self._lock:
            pool = self._owned.get(peer)
            available = pool.available_bytes if pool else 0
        return {
            "source_KME_ID": self.kme_id,
            "target_KME_ID": peer,
            "master_SAE_ID": master_sae,
            "slave_SAE_ID": slave_sae,
            "key_size": self.key_size_bits,
            "stored_key_count": available // key_bytes,
            "max_key_count": self.capacity_bytes // key_bytes,
            "max_key_per_request": self.max_keys_per_request,
            "max_key_size": self.max_key_size_bits,
            "min_key_size": self.min_key_size_bits,
            "max_SAE_ID_count": self.max_sae_id_count,
        }

    # -- enc_keys (master side) ---------------------------------------------------------------------------------
    def take_enc_keys(self, master_sae: str, slave_sae: str, number: int | None = None,
                      size_bits: int | None = None,
                      additional_slave_sae_ids: Iterable[str] | None = None) -> tuple[list[tuple[str, bytes]], Handout]:
        """Cut `number` keys of `size_bits` for the master SAE; returns [(key_ID, key bytes)] and the Handout the
        slave KME must receive. Raises BadRequest / Unauthorized / Unavailable without touching the store."""
        peer = self._check_pair(master_sae, slave_sae)
        number = 1 if number is None else number
        size_bits = self.key_size_bits if size_bits is None else size_bits
        if not _is_int(number) or number < 1:
            raise BadRequest("number must be a positive integer", [{"number": number}])
        if number > self.max_keys_per_request:
            raise BadRequest(f"number exceeds max_key_per_request ({self.max_keys_per_request})",
                             [{"number": number, "max_key_per_request": self.max_keys_per_request}])
        if not _is_int(size_bits):
            raise BadRequest("size must be an integer number of bits", [{"size": size_bits}])
        if size_bits % 8:
            raise BadRequest("size must be a multiple of 8 bits", [{"size": size_bits}])
        if not self.min_key_size_bits <= size_bits <= self.max_key_size_bits:
            raise BadRequest(f"size out of range [{self.min_key_size_bits}, {self.max_key_size_bits}] bits",
                             [{"size": size_bits, "min_key_size": self.min_key_size_bits,
                               "max_key_size": self.max_key_size_bits}])
        extra = list(additional_slave_sae_ids or [])
        if len(extra) > self.max_sae_id_count:
            raise BadRequest(f"too many additional_slave_SAE_IDs (max_SAE_ID_count is {self.max_sae_id_count})",
                             [{"additional_slave_SAE_IDs": len(extra)}])
        for sae in extra:
            if not isinstance(sae, str) or sae not in self.sae_map:
                raise BadRequest("unknown SAE in additional_slave_SAE_IDs", [{"SAE_ID": sae}])
            if self.sae_map[sae] != peer:
                # Multicast to SAEs of another KME would need the key relayed to that KME too: not provided.
                raise BadRequest("additional slave SAEs must be served by the slave SAE's KME",
                                 [{"SAE_ID": sae, "KME_ID": self.sae_map[sae], "expected_KME_ID": peer}])
            if sae in (slave_sae, master_sae) or extra.count(sae) > 1:
                raise BadRequest("additional_slave_SAE_IDs repeats an SAE of the request", [{"SAE_ID": sae}])
        need_bytes_each = size_bits // 8
        out: list[tuple[str, bytes]] = []
        handed: list[HandedKey] = []
        with self._lock:
            pool = self._owned.get(peer)
            available = pool.available_bytes if pool else 0
            if available < number * need_bytes_each:
                raise Unavailable("not enough keys stored for this SAE pair",
                                  [{"requested_keys": number, "size": size_bits,
                                    "stored_key_count": available // need_bytes_each}])
            for _ in range(number):
                key, segments = self._cut_locked(pool, need_bytes_each)
                key_id = str(uuid.uuid4())
                out.append((key_id, key))
                handed.append(HandedKey(key_id, size_bits, tuple(segments)))
            self._counters["keys_handed_out_master"] += number
            self._counters["bytes_handed_out_master"] += number * need_bytes_each
        return out, Handout(self.kme_id, peer, master_sae, (slave_sae, *extra), tuple(handed))

    def _cut_locked(self, pool: _OwnedPool, nbytes: int) -> tuple[bytes, list[tuple[str, int, int]]]:
        """Take the next `nbytes` from the front of the pool; fully used units are zeroed and dropped."""
        parts, segments = [], []
        while nbytes:
            name, data = pool.units[0]
            start = pool.head_offset
            end = min(len(data), start + nbytes)
            parts.append(bytes(data[start:end]))
            segments.append((name, start, end))
            nbytes -= end - start
            pool.available_bytes -= end - start
            if end == len(data):
                data[:] = bytes(len(data))  # best-effort wipe of used key material
                pool.units.popleft()
                pool.head_offset = 0
            else:
                pool.head_offset = end
        return b"".join(parts), segments

    # -- handouts (slave side) ----------------------------------------------------------------------------------
    def register_remote_handout(self, message: dict[str, Any] | Handout) -> int:
        """The slave KME's side of the hook: the owner KME handed these keys out; make them available to dec_keys.

        Returns the number of keys made available now (0 if the handout had to wait for units not received yet; it
        is completed by a later `add_unit`). Raises ValueError, changing nothing, for a handout that is not for
        this KME or reuses bytes already handed out."""
        h = message if isinstance(message, Handout) else Handout.from_message(message)
        if h.slave_kme != self.kme_id:
            raise ValueError(f"handout for KME {h.slave_kme!r} delivered to {self.kme_id!r}")
        with self._lock:
            try:
                ready = self._apply_locked(h)
            except ValueError:
                self._counters["handouts_rejected"] += 1
                raise
            if ready:
                self._counters["handouts_registered"] += 1
            elif len(self._parked) >= MAX_PARKED_HANDOUTS:
                self._counters["handouts_rejected"] += 1
                raise ValueError("too many handouts waiting for units; refusing this one")
            else:
                self._parked.append(h)
                self._counters["handouts_parked"] += 1
        if ready:
            self._notify_listeners()
        return len(h.keys) if ready else 0

    def _apply_locked(self, h: Handout) -> bool:
        """Apply a handout atomically: all checks first; False if some unit has not arrived yet."""
        held = self._held.get(h.master_kme, {})
        ever = self._held_names.get(h.master_kme, set())
        planned: dict[str, list[tuple[int, int]]] = {}
        for k in h.keys:
            if k.key_id in self._remote:
                raise ValueError(f"key_ID {k.key_id} handed out twice")
            for name, a, b in k.segments:
                unit = held.get(name)
                if unit is None:
                    if name in ever:  # held once, every byte since handed out
                        raise ValueError(f"segment {name}[{a}:{b}] reuses a unit already handed out")
                    return False
                if b > len(unit.data):
                    raise ValueError(f"segment {name}[{a}:{b}] is beyond the unit's {len(unit.data)} bytes")
                for x, y in (*unit.used, *planned.get(name, ())):
                    if a < y and x < b:
                        raise ValueError(f"segment {name}[{a}:{b}] overlaps bytes already handed out")
                planned.setdefault(name, []).append((a, b))
        for k in h.keys:
            data = b"".join(bytes(held[name].data[a:b]) for name, a, b in k.segments)
            self._remote[k.key_id] = _RemoteKey(h.master_sae, h.master_kme, set(h.slave_saes), data)
        for name, ranges in planned.items():
            unit = held[name]
            unit.used.extend(ranges)
            unit.used_bytes += sum(b - a for a, b in ranges)
            if unit.used_bytes >= len(unit.data):
                unit.data[:] = bytes(len(unit.data))
                del held[name]
        return True

    def _retry_parked_locked(self) -> bool:
        progressed = False
        still = []
        for h in self._parked:
            try:
                ok = self._apply_locked(h)
            except ValueError:
                self._counters["handouts_rejected"] += 1
                continue
            if ok:
                self._counters["handouts_registered"] += 1
                progressed = True
            else:
                still.append(h)
        self._parked = still
        return progressed

    def add_listener(self, fn: Callable[[], None]) -> None:
        """Call `fn()` (from whichever thread registered it) whenever handed-out keys become available; the
        server uses it to wake dec_keys requests that arrived before their handout."""
        self._listeners.append(fn)

    def remove_listener(self, fn: Callable[[], None]) -> None:
        if fn in self._listeners:
            self._listeners.remove(fn)

    def _notify_listeners(self) -> None:
        for fn in list(self._listeners):
            fn()

    # -- dec_keys (slave side) ----------------------------------------------------------------------------------
    def take_dec_keys(self, master_sae: str, slave_sae: str, key_ids: list[str]) -> list[tuple[str, bytes]]:
        """Serve keys by key_ID to `slave_sae` (the caller). All-or-nothing: unknown IDs → UnknownKeyIds (400);
        IDs not issued to this (master, slave) pair → Unauthorized (401); the store changes only on success."""
        if slave_sae not in self.sae_map:
            raise Unauthorized("unknown SAE", [{"SAE_ID": slave_sae}])
        if self.sae_map[slave_sae] != self.kme_id:
            raise Unauthorized("SAE is not served by this KME", [{"SAE_ID": slave_sae, "KME_ID": self.kme_id}])
        if master_sae not in self.sae_map:
            raise BadRequest("unknown master_SAE_ID", [{"master_SAE_ID": master_sae}])
        if not key_ids:
            raise BadRequest("no key_ID given")
        if len(key_ids) > self.max_keys_per_request:
            raise BadRequest(f"more key_IDs than max_key_per_request ({self.max_keys_per_request})")
        canon = []
        for k in key_ids:
            try:
                canon.append(str(uuid.UUID(k)) if isinstance(k, str) else None)
            except ValueError:
                canon.append(None)
            if canon[-1] is None:
                raise BadRequest("key_ID is not a UUID", [{"key_ID": k}])
        if len(set(canon)) != len(canon):
            raise BadRequest("key_ID repeated in the request")
        with self._lock:
            unknown = [k for k in canon if k not in self._remote]
            if unknown:
                raise UnknownKeyIds(unknown)
            refused = [k for k in canon if self._remote[k].master_sae != master_sae
                       or slave_sae not in self._remote[k].pending_slaves]
            if refused:
                raise Unauthorized("key_ID not issued to this SAE pair", [{"key_ID": k} for k in refused])
            out = []
            for k in canon:
                rk = self._remote[k]
                rk.pending_slaves.discard(slave_sae)
                out.append((k, rk.data))
                if not rk.pending_slaves:
                    del self._remote[k]
            self._counters["keys_served_slave"] += len(out)
        return out

    # -- introspection ------------------------------------------------------------------------------------------
    def _check_pair(self, master_sae: str, slave_sae: str) -> str:
        """Check the caller (master SAE) is ours and the slave SAE is known and remote; return the peer KME."""
        if master_sae not in self.sae_map:
            raise Unauthorized("unknown SAE", [{"SAE_ID": master_sae}])
        if self.sae_map[master_sae] != self.kme_id:
            raise Unauthorized("SAE is not served by this KME", [{"SAE_ID": master_sae, "KME_ID": self.kme_id}])
        peer = self.sae_map.get(slave_sae)
        if peer is None:
            raise BadRequest("unknown slave_SAE_ID", [{"slave_SAE_ID": slave_sae}])
        if peer == self.kme_id:
            raise BadRequest("slave SAE is served by this same KME; no QKD keys are shared with it",
                             [{"slave_SAE_ID": slave_sae}])
        return peer

    def snapshot(self) -> dict[str, Any]:
        """Everything that a request may change, as plain values: tests compare it before and after a refusal."""
        with self._lock:
            return {
                "owned": {p: (pool.available_bytes, len(pool.units), pool.head_offset)
                          for p, pool in self._owned.items()},
                "held": {p: {n: (u.used_bytes, len(u.data)) for n, u in units.items()}
                         for p, units in self._held.items()},
                "remote": {k: (rk.master_sae, tuple(sorted(rk.pending_slaves)), len(rk.data))
                           for k, rk in self._remote.items()},
                "parked": len(self._parked),
            }

    def counters(self) -> dict[str, int]:
        """Flat name → number map (ready for the agent's control endpoint / Prometheus text format)."""
        with self._lock:
            out = dict(self._counters)
            out["owned_bytes"] = sum(p.available_bytes for p in self._owned.values())
            out["held_units"] = sum(len(u) for u in self._held.values())
            out["remote_keys_waiting"] = len(self._remote)
            out["handouts_waiting_for_units"] = len(self._parked)
        return out


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)

