"""Key supply: the synthetic fit against the real trace statistics, trace/keyfile replay, the rate models, the
carry rule's exact totals, determinism, and one-line validation errors."""

from __future__ import annotations

import math
import time
import uuid

import numpy as np
import pytest

from testbed.errors import QkdbedError, ValidationError
from testbed.keysupply import (TRACE_STATS, SupplySchedule, build_schedule, fit_summary, key_bytes, key_ids,
                               parse_supply_spec, read_keyfile, read_trace_text, write_keyfile)
from testbed.network import Link

LINK_10KM = Link("A", "B", distance_km=10, attenuation_db=3.33)
LINK_20KM = Link("B", "C", distance_km=20, attenuation_db=5.35)
HOURS3_S = 3 * 3600.0


def sched(raw, duration_s, seed=0, link=LINK_10KM, base_dir=None):
    return build_schedule(parse_supply_spec(raw, "recipe.yaml", "key_supply", base_dir), link, duration_s,
                          np.random.default_rng(seed))


def assert_well_formed(s: SupplySchedule, duration_s: float):
    assert s.times_s.dtype == np.float64 and s.units.dtype == np.int64
    assert len(s.times_s) == len(s.units)
    assert np.all(np.diff(s.times_s) >= 0)
    assert len(s) == 0 or (s.times_s[0] >= 0 and s.times_s[-1] < duration_s)
    assert np.all(s.units >= 1)


def hand_read(path, n):
    """An independent reading of the first n trace lines: gap in microseconds, count."""
    rows = [line.split("\t") for line in path.read_text().splitlines()[:n]]
    return [float(g) / 1e6 for g, _ in rows], [int(c) for _, c in rows]


# -- synthetic ---------------------------------------------------------------------------------------------------

def test_synthetic_matches_real_trace_statistics():
    # A day of events: the sd is carried by rare stalls (~0.7 % of events), so 3 hours (~45 stalls) would leave it
    # +-15 % noisy; over 24 hours it is within +-6 % for any seed.
    day_s = 24 * 3600.0
    raw = sched({"per_end": "full", "scale": 1}, day_s, seed=7)  # device counts as recorded
    assert_well_formed(raw, day_s)
    f = fit_summary(raw, day_s)
    real = TRACE_STATS["interval_ms"]
    iv = f["interval_ms"]
    assert abs(iv["mean"] / real["mean"] - 1) < 0.015
    assert abs(iv["sd"] / real["sd"] - 1) < 0.15
    assert iv["min"] >= 1457.0
    for q in ("median", "p5", "p95"):
        assert abs(iv[q] / real[q] - 1) < 0.01, q
    assert iv["max"] > 3000  # the stall tail exists
    real_hist = TRACE_STATS["count_histogram"]
    assert set(f["units_histogram"]) <= set(real_hist)
    n_real, n_syn = sum(real_hist.values()), f["events"]
    diffs = [abs(f["units_histogram"].get(c, 0) / n_syn - k / n_real) for c, k in real_hist.items()]
    assert max(diffs) < 0.02
    # the default model (count // 2 per end, scale 10) gives the paper's ~500 kbps (549 kbps measured)
    default = sched(None, HOURS3_S, seed=7)
    assert abs(default.mean_rate_bps(HOURS3_S) / 549e3 - 1) < 0.03
    assert set(np.unique(default.units)) <= {c // 2 * 10 for c in real_hist}


def test_synthetic_small_batches_take_longer_as_in_the_trace():
    s = sched({"per_end": "full", "scale": 1}, HOURS3_S, seed=3)
    iv = np.diff(s.times_s)
    body = iv < 2.0  # leave out stalls
    assert np.corrcoef(iv[body], s.units[1:][body])[0, 1] < -0.4  # the trace measures -0.54


def test_synthetic_phase_first_event_and_offset():
    s = sched(None, 60, seed=1)
    assert 1.45 < s.times_s[0] < 6.0  # one interval after the start, as the original injector
    f = sched({"first_event_s": 0.25}, 60, seed=1)
    assert f.times_s[0] == pytest.approx(0.25)
    n = min(len(f), len(s)) - 1
    np.testing.assert_allclose(np.diff(f.times_s)[:n], np.diff(s.times_s)[:n])
    o = sched({"offset_s": 100}, 160, seed=1)
    np.testing.assert_allclose(o.times_s, s.times_s + 100)
    np.testing.assert_array_equal(o.units, s.units)


def test_same_seed_same_schedule_different_seed_differs():
    a, b, c = (sched(None, 600, seed=k) for k in (5, 5, 6))
    np.testing.assert_array_equal(a.times_s, b.times_s)
    np.testing.assert_array_equal(a.units, b.units)
    assert len(a) != len(c) or not np.array_equal(a.times_s, c.times_s)
    d = sched({"model": "distance", "rate0_bps": 1e6, "jitter_s": 0.2}, 600, seed=5)
    e = sched({"model": "distance", "rate0_bps": 1e6, "jitter_s": 0.2}, 600, seed=5)
    np.testing.assert_array_equal(d.times_s, e.times_s)


def test_longer_run_with_same_seed_starts_with_the_same_events():
    short, long = sched(None, 300, seed=9), sched(None, 3000, seed=9)
    np.testing.assert_array_equal(long.times_s[: len(short)], short.times_s)
    np.testing.assert_array_equal(long.units[: len(short)], short.units)
    assert long.times_s[len(short)] >= 300


def test_generation_is_fast_for_a_100_node_network():
    spec = parse_supply_spec(None, "recipe.yaml")
    t0 = time.perf_counter()
    for k in range(130):
        s = build_schedule(spec, LINK_10KM, 600.0, np.random.default_rng(k))
    assert time.perf_counter() - t0 < 1.0
    assert 330 < len(s) < 370  # ~350 events in 10 minutes


# -- trace replay ------------------------------------------------------------------------------------------------

def test_trace_first_events_equal_hand_reading(keytrace_dir):
    gaps_s, counts = hand_read(keytrace_dir / "PC1_PC2.txt", 5)
    s = sched({"model": "trace", "file": "PC1_PC2.txt"}, 60, base_dir=keytrace_dir)
    np.testing.assert_allclose(s.times_s[:5], np.cumsum(gaps_s), rtol=0, atol=1e-9)
    assert s.units[:5].tolist() == [c // 2 * 10 for c in counts]
    assert 1.45 < s.times_s[0] < 6.0  # gaps are microseconds, not nanoseconds
    full = sched({"model": "trace", "file": "PC1_PC2.txt", "per_end": "full", "scale": 1}, 60,
                 base_dir=keytrace_dir)
    assert full.units[:5].tolist() == counts


def test_trace_reader_and_rate(keytrace_dir):
    gaps_s, counts = read_trace_text(keytrace_dir / "PC1_PC2.txt")
    assert len(gaps_s) == 1733 and gaps_s.sum() == pytest.approx(2940.1, abs=0.1)
    assert dict(zip(*np.unique(counts, return_counts=True))) == TRACE_STATS["count_histogram"]
    s = sched({"model": "trace", "file": str(keytrace_dir / "PC1_PC2.txt"), "loop": False}, 3000)
    assert len(s) == 1733
    assert abs(s.mean_rate_bps(gaps_s.sum()) / 549e3 - 1) < 0.01
    f = fit_summary(s)
    assert f["interval_ms"]["mean"] == pytest.approx(1696.5, abs=1.0)  # intervals between events (row 0 excluded)
    assert f["interval_ms"]["p95"] == pytest.approx(1797.0, abs=1.0)


def test_trace_loops_and_offsets(keytrace_dir):
    gaps_s, counts = read_trace_text(keytrace_dir / "PC1_PC6.txt")
    span_s = gaps_s.sum()
    spec = {"model": "trace", "file": "PC1_PC6.txt"}
    s = sched(spec, 2 * span_s + 10, base_dir=keytrace_dir)
    n = len(gaps_s)
    assert len(s) > 2 * n
    np.testing.assert_allclose(s.times_s[n:2 * n], s.times_s[:n] + span_s, atol=1e-6)
    np.testing.assert_array_equal(s.units[n:2 * n], s.units[:n])
    once = sched({**spec, "loop": False}, 2 * span_s, base_dir=keytrace_dir)
    assert len(once) == n
    o = sched({**spec, "offset_s": 30}, 600, base_dir=keytrace_dir)
    base = sched(spec, 570, base_dir=keytrace_dir)
    np.testing.assert_allclose(o.times_s, base.times_s + 30)
    r = sched({**spec, "start_row": 3}, 60, base_dir=keytrace_dir)
    assert r.times_s[0] == pytest.approx(gaps_s[3]) and r.units[0] == counts[3] // 2 * 10


def test_trace_distance_adjust_keeps_batches_and_scales_totals(keytrace_dir):
    spec = {"model": "trace", "file": "PC2_PC3.txt", "distance_adjust": True}
    near = sched(spec, 600, link=LINK_10KM, base_dir=keytrace_dir)  # 3.33 dB: the reference, unchanged
    far = sched(spec, 600, link=LINK_20KM, base_dir=keytrace_dir)
    plain = sched({**spec, "distance_adjust": False}, 600, link=LINK_20KM, base_dir=keytrace_dir)
    np.testing.assert_array_equal(near.units, plain.units)
    np.testing.assert_array_equal(far.times_s, plain.times_s)  # every batch kept (all amounts >= 1 unit)
    factor = 10 ** (-(5.35 - 3.33) / 10)
    exact = plain.units.sum() * factor
    assert exact - 1 < far.total_units() <= exact
    assert np.all(np.abs(far.units - plain.units * factor) < 1)  # each batch within one unit of its share


# -- keyfile -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("order", ["little", "big"])
def test_keyfile_round_trip_and_replay(tmp_path, order):
    times_s = np.array([10.0, 11.5, 13.25, 14.0])
    lengths = np.array([1024, 768, 256, 2048])
    path = tmp_path / "keys.bin"
    write_keyfile(path, times_s, lengths, byteorder=order)
    assert path.stat().st_size == 4 * 10 + lengths.sum()
    t, n = read_keyfile(path, order)
    np.testing.assert_allclose(t, times_s - 10.0, atol=1e-9)
    np.testing.assert_array_equal(n, lengths)
    raw = {"model": "trace", "format": "keyfile", "file": "keys.bin", "byteorder": order, "scale": 1}
    s = sched(raw, 8.0, base_dir=tmp_path)  # amounts 2, 1.5, 0.5, 4 units: carried to 2, 1, 1, 4
    np.testing.assert_allclose(s.times_s[:4], [0, 1.5, 3.25, 4.0])
    assert s.units[:4].tolist() == [2, 1, 1, 4]
    assert s.times_s[4] == pytest.approx(4.0 + 4.0 / 3)  # loop: the wrap gap is the file's mean gap
    half = sched({**raw, "per_end": "half", "loop": False}, 8.0, base_dir=tmp_path)
    assert half.units.tolist() == [1, 1, 2] and half.total_units() == 4  # 1, .75, .25, 2 carried


def test_keyfile_truncated_is_one_line_error(tmp_path):
    path = tmp_path / "bad.bin"
    write_keyfile(path, [0.0, 1.0], [512, 512])
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(QkdbedError, match="bad.bin: record at byte 522"):
        read_keyfile(path)


# -- rate models -------------------------------------------------------------------------------------------------

def test_constant_model_hand_computed():
    s = sched({"model": "constant", "rate_bps": 10_000}, 10.0)  # 10000/4096 = 2.44140625 units per second
    np.testing.assert_allclose(s.times_s, np.arange(1, 10))
    assert s.units.tolist() == [2, 2, 3, 2, 3, 2, 3, 2, 2]  # floor(k * 2.4414) differenced
    assert s.total_units() == math.floor(9 * 10_000 / 4096)
    small = sched({"model": "constant", "rate_bps": 1024, "interval_s": 0.5, "unit_bytes": 64}, 3.1)
    assert small.units.tolist() == [1] * 6  # 64 B units, 512 bits per batch: exactly one unit


def test_distance_model_ratio_and_exact_totals():
    raw = {"model": "distance", "rate0_bps": 2e6}
    duration_s = 3600.0
    near, far = sched(raw, duration_s, link=LINK_10KM), sched(raw, duration_s, link=LINK_20KM)
    per_batch_near = 2e6 * 10 ** (-0.333) * 1.6965 / 4096
    per_batch_far = 2e6 * 10 ** (-0.535) * 1.6965 / 4096
    assert near.total_units() == math.floor(len(near) * per_batch_near + 1e-6)
    assert far.total_units() == math.floor(len(far) * per_batch_far + 1e-6)
    assert len(near) == len(far) == int(duration_s / 1.6965)
    assert far.total_units() / near.total_units() == pytest.approx(10 ** (-(5.35 - 3.33) / 10), rel=1e-3)
    assert near.times_s[0] == pytest.approx(1.6965)
    direct = sched({"model": "distance", "rate_bps": 2e6 * 10 ** (-0.535)}, duration_s, link=LINK_10KM)
    np.testing.assert_array_equal(direct.units, far.units)  # rate_bps ignores the link's loss
    jit = sched({**raw, "jitter_s": 0.5}, duration_s, seed=2)
    assert_well_formed(jit, duration_s)
    assert np.max(np.abs(jit.times_s - np.arange(1, len(jit) + 1) * 1.6965)) <= 0.5
    assert not np.allclose(jit.times_s, near.times_s[: len(jit)])


def test_rate_steps_halve_the_rate_with_exact_totals():
    s = sched({"model": "constant", "rate_bps": 3 * 4096, "rate_steps": [{"at_s": 50, "factor": 0.5}]}, 100.5)
    before, after = s.units[s.times_s < 50], s.units[s.times_s >= 50]
    assert before.tolist() == [3] * 49
    assert after.sum() == math.floor(51 * 1.5)  # 1.5 units per batch from t = 50 s on
    assert set(after.tolist()) == {1, 2}
    tr = sched({"rate_steps": [{"at_s": 300, "factor": 0.5}, {"at_s": 400, "factor": 1}]}, 600, seed=4)
    ref = sched(None, 600, seed=4)
    mid = (ref.times_s >= 300) & (ref.times_s < 400)
    np.testing.assert_array_equal(tr.units[~mid], ref.units[~mid])  # factor 1 again from 400 s
    np.testing.assert_array_equal(tr.units[mid], ref.units[mid] // 2)  # all synthetic amounts are multiples of 10
    off = sched({"model": "constant", "rate_bps": 4096, "rate_steps": [{"at_s": 5, "factor": 0}]}, 10)
    assert off.times_s.tolist() == [1, 2, 3, 4]  # no zero-unit events


def test_offset_beyond_duration_gives_empty_schedule():
    s = sched({"offset_s": 100}, 50)
    assert len(s) == 0 and s.total_units() == 0 and s.mean_rate_bps(50) == 0


def test_to_dict_round_trips():
    for raw in (None, {"model": "distance", "rate0_bps": 1e6, "jitter_s": 0.1},
                {"model": "constant", "rate_bps": 5e4, "rate_steps": [{"at_s": 1, "factor": 2}]}):
        spec = parse_supply_spec(raw, "recipe.yaml")
        assert parse_supply_spec(spec.to_dict(), "recipe.yaml") == spec


# -- validation --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("raw, path, expected", [
    ({"model": "poisson"}, "links[2].key_supply.model", "one of synthetic, trace, distance, constant"),
    ({"scale": -1}, "links[2].key_supply.scale", "a number > 0"),
    ({"sclae": 10}, "links[2].key_supply.sclae", "no such field"),
    ({"model": "constant", "rate_bps": 1, "jitter_s": 0.1}, "links[2].key_supply.jitter_s", "no such field"),
    ({"model": "trace", "file": "nowhere.txt"}, "links[2].key_supply.file", "an existing trace file"),
    ({"model": "trace"}, "links[2].key_supply.file", "a value (field is required)"),
    ({"model": "distance"}, "links[2].key_supply.rate0_bps", "exactly one of rate0_bps"),
    ({"model": "distance", "rate0_bps": 1e6, "interval_s": 1, "jitter_s": 0.6},
     "links[2].key_supply.jitter_s", "a number <= 0.5"),
    ({"rate_steps": [{"at_s": 5, "factor": 1}, {"at_s": 2, "factor": 1}]},
     "links[2].key_supply.rate_steps[1].at_s", "steps in time order"),
    ({"per_end": "third"}, "links[2].key_supply.per_end", "one of half, full"),
    ("synthetic", "links[2].key_supply", "a mapping"),
])
def test_validation_errors_are_one_line(tmp_path, raw, path, expected):
    with pytest.raises(ValidationError) as info:
        parse_supply_spec(raw, "topo.yaml", "links[2].key_supply", tmp_path)
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith(f"topo.yaml: {path}: expected {expected}")


def test_bad_trace_line_names_file_and_line(tmp_path):
    (tmp_path / "t.txt").write_text("1700000\t48\n1700000 forty\n")
    with pytest.raises(QkdbedError, match=r"t.txt:2: expected 'gap_us<TAB>count'"):
        parse_supply_spec({"model": "trace", "file": "t.txt"}, "r.yaml", "key_supply", tmp_path)
    (tmp_path / "u.txt").write_text("1000000\t10\n")
    with pytest.raises(ValidationError, match="start_row: expected an integer < 1"):
        parse_supply_spec({"model": "trace", "file": "u.txt", "start_row": 1}, "r.yaml", "key_supply", tmp_path)


# -- key material ------------------------------------------------------------------------------------------------

def test_key_material_is_deterministic_and_distinct():
    k = key_bytes(42, "R1-R2", 7, 3)
    assert len(k) == 3 * 512 and k == key_bytes(42, "R1-R2", 7, 3)
    assert k[:512] == key_bytes(42, "R1-R2", 7, 1)  # a unit does not depend on how many were asked for
    assert k != key_bytes(43, "R1-R2", 7, 3) and k != key_bytes(42, "R1-R3", 7, 3)
    assert k != key_bytes(42, "R1-R2", 8, 3)
    ids = key_ids(42, "R1-R2", 7, 230)
    assert ids == key_ids(42, "R1-R2", 7, 230) and len(set(ids)) == 230
    assert all(uuid.UUID(i).version == 4 for i in ids)
    assert set(ids).isdisjoint(key_ids(42, "R1-R2", 8, 230))
