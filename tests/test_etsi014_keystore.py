"""The ETSI 014 key store on its own: cutting keys from units, the handout that keeps two KMEs identical,
and refusals that change nothing."""

from __future__ import annotations

import json
import os
import threading
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from testbed.emu.etsi014.keystore import (
    UNIT_BYTES, BadRequest, Handout, KeyStore, Unauthorized, Unavailable, UnknownKeyIds, unit_key,
)

SAES = {"alice": "U1", "bob": "U7", "carol": "U7", "eve": "U7", "mallory": "U1", "dave": "U4"}


def pair(units: int = 4, *, seed: int = 0, **kw) -> tuple[KeyStore, KeyStore, list[bytes]]:
    """Two KMEs (U1 owns, U7 holds) fed with the same units, as the relay network would (§III-C order)."""
    a, b = KeyStore("U1", SAES, **kw), KeyStore("U7", SAES, **kw)
    a.on_handout = lambda h: b.register_remote_handout(json.loads(json.dumps(h.to_message())))
    data = [bytes((seed + i + j) % 256 for j in range(UNIT_BYTES)) for i in range(units)]
    for i, u in enumerate(data):
        assert b.add_unit("U1", (3, i), u, "slave")
        assert a.add_unit("U7", (3, i), u, "master")
    return a, b, data


def test_unit_key_is_canonical_text():
    assert unit_key((3, 17)) == unit_key([3, 17]) == "3:17"
    assert unit_key("x") == "x"
    with pytest.raises(TypeError):
        unit_key(1.5)


def test_keys_are_cut_in_order_across_units_and_both_sides_agree():
    a, b, data = pair(3)
    stream = b"".join(data)
    keys, h = a.take_enc_keys("alice", "bob", number=3, size_bits=3000 // 8 * 8)  # 375 bytes: crosses units
    nbytes = 375
    for i, (kid, k) in enumerate(keys):
        assert uuid.UUID(kid).version == 4
        assert k == stream[i * nbytes:(i + 1) * nbytes]
    assert h.keys[1].segments == (("3:0", 375, 512), ("3:1", 0, 238))
    a.on_handout(h)
    got = b.take_dec_keys("alice", "bob", [kid for kid, _ in keys])
    assert got == keys
    # Both sides consumed the same bytes: unit 3:0 is gone everywhere, 3:2 is partly used.
    assert a.snapshot()["owned"]["U7"] == (3 * 512 - 3 * 375, 1, 3 * 375 - 1024)
    assert set(b.snapshot()["held"]["U1"]) == {"3:2"}


def test_defaults_number_1_and_key_size():
    a, b, _ = pair(1)
    keys, _ = a.take_enc_keys("alice", "bob")
    assert len(keys) == 1 and len(keys[0][1]) * 8 == a.key_size_bits == 256


def test_status_fields_and_counts():
    a, _, _ = pair(2)
    st = a.status("alice", "bob")
    assert st == {"source_KME_ID": "U1", "target_KME_ID": "U7", "master_SAE_ID": "alice", "slave_SAE_ID": "bob",
                  "key_size": 256, "stored_key_count": 2 * 512 * 8 // 256, "max_key_count": st["max_key_count"],
                  "max_key_per_request": 128, "max_key_size": 8192, "min_key_size": 64, "max_SAE_ID_count": 4}
    assert st["max_key_count"] > 0
    # The slave side owns nothing toward U1: Bob as master has no keys toward Alice.
    b = KeyStore("U7", SAES)
    assert b.status("bob", "alice")["stored_key_count"] == 0


@pytest.mark.parametrize("call, exc", [
    (lambda a: a.take_enc_keys("bob", "alice"), Unauthorized),            # bob is not U1's SAE
    (lambda a: a.take_enc_keys("nobody", "bob"), Unauthorized),
    (lambda a: a.take_enc_keys("alice", "nobody"), BadRequest),
    (lambda a: a.take_enc_keys("alice", "mallory"), BadRequest),         # same KME: no shared QKD keys
    (lambda a: a.take_enc_keys("alice", "bob", number=0), BadRequest),
    (lambda a: a.take_enc_keys("alice", "bob", number=129), BadRequest),
    (lambda a: a.take_enc_keys("alice", "bob", number=True), BadRequest),
    (lambda a: a.take_enc_keys("alice", "bob", size_bits=260), BadRequest),  # not a multiple of 8
    (lambda a: a.take_enc_keys("alice", "bob", size_bits=56), BadRequest),
    (lambda a: a.take_enc_keys("alice", "bob", size_bits=8200), BadRequest),
    (lambda a: a.take_enc_keys("alice", "bob", size_bits="256"), BadRequest),
    (lambda a: a.take_enc_keys("alice", "bob", number=17, size_bits=1024), Unavailable),  # 2 units = 16 keys
    (lambda a: a.take_enc_keys("alice", "bob", additional_slave_sae_ids=["dave"]), BadRequest),  # other KME
    (lambda a: a.take_enc_keys("alice", "bob", additional_slave_sae_ids=["bob"]), BadRequest),
    (lambda a: a.take_enc_keys("alice", "bob", additional_slave_sae_ids=["carol"] * 2), BadRequest),
    (lambda a: a.take_enc_keys("alice", "bob", additional_slave_sae_ids=["carol", "eve", "x", "y", "z"]),
     BadRequest),
])
def test_refused_enc_requests_change_nothing(call, exc):
    a, b, _ = pair(2)
    before = a.snapshot(), b.snapshot()
    with pytest.raises(exc):
        call(a)
    assert (a.snapshot(), b.snapshot()) == before


def test_dec_keys_authorisation_and_once_only():
    a, b, _ = pair(2)
    keys, h = a.take_enc_keys("alice", "bob", number=2)
    b.register_remote_handout(h.to_message())
    ids = [k for k, _ in keys]
    before = b.snapshot()
    for call, exc in [
        (lambda: b.take_dec_keys("alice", "eve", ids), Unauthorized),        # third SAE at the same KME
        (lambda: b.take_dec_keys("mallory", "bob", ids), Unauthorized),     # wrong master named
        (lambda: b.take_dec_keys("alice", "alice", ids), Unauthorized),     # not an SAE of this KME
        (lambda: b.take_dec_keys("alice", "bob", ids + [str(uuid.uuid4())]), UnknownKeyIds),
        (lambda: b.take_dec_keys("alice", "bob", ["not-a-uuid"]), BadRequest),
        (lambda: b.take_dec_keys("alice", "bob", [ids[0], ids[0]]), BadRequest),
        (lambda: b.take_dec_keys("alice", "bob", []), BadRequest),
        (lambda: b.take_dec_keys("nobody", "bob", ids), BadRequest),
    ]:
        with pytest.raises(exc):
            call()
        assert b.snapshot() == before
    assert b.take_dec_keys("alice", "bob", [ids[1].upper()]) == [keys[1]]  # UUIDs compare case-insensitively
    with pytest.raises(UnknownKeyIds):
        b.take_dec_keys("alice", "bob", [ids[1]])  # served once only
    assert b.take_dec_keys("alice", "bob", [ids[0]]) == [keys[0]]


def test_multicast_key_goes_once_to_each_named_slave():
    a, b, _ = pair(1)
    keys, h = a.take_enc_keys("alice", "bob", additional_slave_sae_ids=["carol"])
    b.register_remote_handout(h)
    kid = keys[0][0]
    with pytest.raises(Unauthorized):
        b.take_dec_keys("alice", "eve", [kid])
    assert b.take_dec_keys("alice", "carol", [kid]) == keys
    assert b.take_dec_keys("alice", "bob", [kid]) == keys
    with pytest.raises(UnknownKeyIds):
        b.take_dec_keys("alice", "bob", [kid])


def test_duplicate_units_are_refused():
    a, b, data = pair(1)
    assert not a.add_unit("U7", (3, 0), data[0], "master")
    assert not b.add_unit("U1", "3:0", data[0], "slave")
    keys, h = a.take_enc_keys("alice", "bob", size_bits=4096)
    b.register_remote_handout(h)
    # Fully used at both ends and forgotten, yet a retransmitted unit cannot come back.
    assert not a.add_unit("U7", (3, 0), data[0], "master")
    assert not b.add_unit("U1", (3, 0), data[0], "slave")
    assert a.counters()["units_duplicate"] == 2 and b.counters()["units_duplicate"] == 2


def test_handout_replay_or_overlap_is_rejected_without_change():
    a, b, _ = pair(2)
    keys, h = a.take_enc_keys("alice", "bob", number=2)
    msg = h.to_message()
    b.register_remote_handout(msg)
    before = b.snapshot()
    with pytest.raises(ValueError):
        b.register_remote_handout(msg)  # same key_IDs again
    forged = json.loads(json.dumps(msg))
    for k in forged["keys"]:
        k["key_ID"] = str(uuid.uuid4())  # fresh IDs, same bytes
    with pytest.raises(ValueError):
        b.register_remote_handout(forged)
    with pytest.raises(ValueError):
        b.register_remote_handout({**msg, "slave_kme": "U4"})
    with pytest.raises(ValueError):
        b.register_remote_handout({**msg, "v": 99})
    assert b.snapshot() == before


def test_handout_before_unit_is_parked_until_the_unit_arrives():
    a = KeyStore("U1", SAES)
    b = KeyStore("U7", SAES)
    unit = os.urandom(UNIT_BYTES)
    a.add_unit("U7", "f:1", unit, "master")  # (not the source-owns order; the store copes anyway)
    keys, h = a.take_enc_keys("alice", "bob")
    woke = []
    b.add_listener(lambda: woke.append(1))
    assert b.register_remote_handout(h.to_message()) == 0
    with pytest.raises(UnknownKeyIds):
        b.take_dec_keys("alice", "bob", [keys[0][0]])
    b.add_unit("U1", "f:1", unit, "slave")
    assert woke == [1]
    assert b.take_dec_keys("alice", "bob", [keys[0][0]]) == keys


def test_concurrent_takers_never_share_bytes():
    a, b, data = pair(64)
    results: list = []
    lock = threading.Lock()

    def worker():
        got = []
        while True:
            try:
                keys, _ = a.take_enc_keys("alice", "bob", number=3, size_bits=512)
            except Unavailable:
                break
            got.extend(keys)
        with lock:
            results.extend(got)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({k for k, _ in results}) == len(results)
    assert sorted(v for _, v in results) == sorted(
        b"".join(data)[i:i + 64] for i in range(0, 64 * 512 - 64 * 512 % 192, 64))


def test_handout_message_roundtrip():
    a, _, _ = pair(1)
    _, h = a.take_enc_keys("alice", "bob", number=2, additional_slave_sae_ids=["carol"])
    assert Handout.from_message(json.loads(json.dumps(h.to_message()))) == h
    bad = h.to_message()
    bad["keys"][0]["size_bits"] = 8
    with pytest.raises(ValueError):
        Handout.from_message(bad)


# --- property: whatever the order units and handouts reach the slave KME, both sides end up identical ----------
@settings(max_examples=60, deadline=None)
@given(units=st.integers(1, 5),
       sizes=st.lists(st.integers(8, 1024).map(lambda b: b // 8 * 8), min_size=1, max_size=12),
       order_seed=st.randoms(use_true_random=False))
def test_any_arrival_order_gives_identical_keys(units, sizes, order_seed):
    a, b = KeyStore("U1", SAES), KeyStore("U7", SAES)
    data = [os.urandom(UNIT_BYTES) for _ in range(units)]
    for i, u in enumerate(data):
        a.add_unit("U7", (9, i), u, "master")
    issued, handouts = [], []
    for nbytes in sizes:
        try:
            keys, h = a.take_enc_keys("alice", "bob", size_bits=nbytes * 8)
        except Unavailable:
            continue
        issued += keys
        handouts.append(h.to_message())
    events = [("unit", i) for i in range(units)] + [("handout", j) for j in range(len(handouts))]
    order_seed.shuffle(events)
    for kind, i in events:
        if kind == "unit":
            b.add_unit("U1", (9, i), data[i], "slave")
        else:
            b.register_remote_handout(handouts[i])
    if issued:
        assert b.take_dec_keys("alice", "bob", [k for k, _ in issued]) == issued
    assert b.snapshot()["parked"] == 0 and b.snapshot()["remote"] == {}
    # The issued keys are exactly the front of the unit stream, in order.
    assert b"".join(v for _, v in issued) == b"".join(data)[:sum(len(v) for _, v in issued)]
