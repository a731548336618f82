"""Key supply: when a QKD link delivers key, and how many key units each of its two ends receives.

QKD devices do not trickle key out bit by bit; they hand over a batch after each round of post-processing (a
"key-generation event"), and both ends of the link get the same batch at the same time. The relays' key pools, and
therefore every effect the testbed studies (cliffs, first-arrival advantage, rate control), depend on that batch
structure, so every model here produces a `SupplySchedule`: event times and whole key units per event.

Models (field `model`; see docs/keysupply.md for every field, unit and default):
- `synthetic` (default): a generator fitted to the real 10 km traces, so the project needs no external data;
- `trace`: replay of the real trace text format (`gap_us<TAB>count`) or of the dataset's binary keyfile format;
- `distance`: R0 * 10**(-loss_db/10), delivered in periodic batches;
- `constant`: a fixed rate in periodic batches, for hand-checkable tests.

Fractional amounts (scaling, distance adjustment, rate steps, keyfile byte counts) become whole units by one carry
rule (`_carry`): event i gets floor(A_i) - floor(A_{i-1}) units, A_i being the exact running total. Batches keep
their times, integer amounts pass through unchanged, and the delivered total never lags the exact one by a unit.
"""

from __future__ import annotations

import functools
import hashlib
import math
import struct
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import QkdbedError
from .network import Link, distance_rate_bps
from .schema import Reader

MODELS = ("synthetic", "trace", "distance", "constant")
_COMMON = ("model", "scale", "offset_s", "rate_steps", "unit_bytes")
_COUNTED = ("per_end", "distance_adjust", "reference_loss_db")
MODEL_FIELDS = {  # the fields each model accepts (anything else is rejected as a typo)
    "synthetic": _COMMON + _COUNTED + ("first_event_s",),
    "trace": _COMMON + _COUNTED + ("file", "format", "loop", "start_row", "byteorder"),
    "distance": _COMMON + ("rate0_bps", "rate_bps", "interval_s", "jitter_s"),
    "constant": _COMMON + ("rate_bps", "interval_s"),
}
UNIT_BYTES = 512
REFERENCE_LOSS_DB = 3.33  # the traces were recorded over 10 km of fibre (paper Table II: 3.33 dB)
TRACE_MEAN_INTERVAL_S = 1.6965

# What the real traces measure (../shared/data/keytrace/README.md): the targets of the synthetic fit.
TRACE_STATS = {
    "interval_ms": {"mean": 1696.5, "sd": 197.0, "min": 1457.2, "median": 1673.0, "p5": 1594.6, "p95": 1797.0,
                    "max": 5690.8},
    "count_histogram": {16: 1, 24: 5, 32: 70, 40: 503, 48: 1040, 56: 114},
    "rate_per_end_bps_scale10": 549e3,
}

# -- the synthetic fit (derivation and measured quality in docs/keysupply.md) ------------------------------------
# Device count per event: drawn from the trace's histogram.
COUNT_VALUES = np.array(sorted(TRACE_STATS["count_histogram"]), dtype=np.int64)
COUNT_PROBS = np.array([TRACE_STATS["count_histogram"][int(c)] for c in COUNT_VALUES], float)
COUNT_PROBS /= COUNT_PROBS.sum()
_COUNT_MEAN = float(COUNT_VALUES @ COUNT_PROBS)
_COUNT_SD = math.sqrt(float(((COUNT_VALUES - _COUNT_MEAN) ** 2) @ COUNT_PROBS))
# Normal cycle ("body", 99.3 % of events): shift + lognormal, in ms. In the trace small batches take longer
# (corr(count, interval) = -0.54), so the lognormal's normal variate is tied to the count's z-score by RHO.
BODY_SHIFT_MS = 1411.6
BODY_MU_LOG_MS = 5.5706
BODY_SIGMA = 0.2220
COUNT_INTERVAL_RHO = 0.530
# Stalls (the rare long tail): a round fails with probability STALL_PROB (repeatedly, geometrically); each failed
# round costs one more body cycle plus STALL_PENALTY_MS and delivers nothing. Chosen so that the overall mean and
# sd equal the trace's 1696.5 and 197.1 ms.
STALL_PROB = 0.00708
STALL_PENALTY_MS = 528.6


@dataclass(frozen=True)
class SupplySpec:
    """A validated key-supply model description (what `parse_supply_spec` returns; units in field names)."""

    model: str = "synthetic"
    scale: float = 10.0
    per_end: str = "half"
    offset_s: float = 0.0
    rate_steps: tuple[tuple[float, float], ...] = ()  # (at_s, factor)
    unit_bytes: int = UNIT_BYTES
    distance_adjust: bool = False
    reference_loss_db: float = REFERENCE_LOSS_DB
    first_event_s: float | None = None  # synthetic
    file: str | None = None  # trace: resolved path
    format: str = "text"
    loop: bool = True
    start_row: int = 0
    byteorder: str = "little"
    rate0_bps: float | None = None  # distance
    rate_bps: float | None = None  # distance, constant
    interval_s: float | None = None
    jitter_s: float = 0.0

    def to_dict(self) -> dict:
        """The fully resolved spec (defaults filled in) for run manifests; `parse_supply_spec` accepts it back."""
        d = {k: getattr(self, k) for k in MODEL_FIELDS[self.model] if getattr(self, k) is not None}
        if self.format != "keyfile":
            d.pop("byteorder", None)
        d["rate_steps"] = [{"at_s": a, "factor": f} for a, f in self.rate_steps]
        return d


@dataclass(frozen=True)
class SupplySchedule:
    times_s: np.ndarray  # float64, non-decreasing, in [0, duration_s)
    units: np.ndarray  # int64 >= 1, delivered to EACH end of the link at times_s[i]

    def total_units(self) -> int:
        return int(self.units.sum())

    def mean_rate_bps(self, duration_s: float, unit_bits: int = UNIT_BYTES * 8) -> float:
        """Mean key rate per end over [0, duration_s)."""
        return self.total_units() * unit_bits / duration_s if duration_s > 0 else 0.0

    def __len__(self) -> int:
        return len(self.times_s)


# -- parsing -----------------------------------------------------------------------------------------------------

def parse_supply_spec(raw: dict | None, where: str, path: str = "key_supply",
                      base_dir: Path | None = None) -> SupplySpec:
    """Validate a key-supply mapping; any problem is one `ValidationError` naming `where` and the field path.

    A trace file is read here (and cached), so a bad or missing trace is reported before a run starts.
    """
    if raw is None:
        return SupplySpec()
    r = Reader(raw, where, path)
    model = r.str("model", "synthetic", choices=MODELS)
    counted = model in ("synthetic", "trace")  # amounts come from device counts, not from a rate
    kw: dict = {"model": model}
    kw["scale"] = r.num("scale", 10.0 if counted else 1.0, min=0, strict_min=True)
    kw["offset_s"] = r.num("offset_s", 0.0, min=0)
    kw["unit_bytes"] = r.int("unit_bytes", UNIT_BYTES, min=1)
    steps = []
    for i in range(len(r.list("rate_steps", []))):
        sr = r.item("rate_steps", i)
        at_s, factor = sr.num("at_s", min=0), sr.num("factor", min=0)
        sr.reject_unknown()
        if steps and at_s < steps[-1][0]:
            raise sr.fail("at_s", f"steps in time order (a number >= {steps[-1][0]:g})", at_s)
        steps.append((at_s, factor))
    kw["rate_steps"] = tuple(steps)
    if model == "trace":
        kw["format"] = r.str("format", "text", choices=("text", "keyfile"))
        if kw["format"] == "keyfile":
            kw["byteorder"] = r.str("byteorder", "little", choices=("little", "big"))
        kw["file"] = str(_resolve_file(r, base_dir))
        kw["loop"] = r.bool("loop", True)
        kw["start_row"] = r.int("start_row", 0, min=0)
        gaps_s, _ = _cycle(kw["file"], kw["format"], kw.get("byteorder", "little"))
        if kw["start_row"] >= len(gaps_s):
            raise r.fail("start_row", f"an integer < {len(gaps_s)} (the trace's row count)", kw["start_row"])
        if kw["loop"] and gaps_s.sum() <= 0:
            raise r.fail("loop", "false for a trace whose events all happen at the same time", True)
    if counted:
        kw["per_end"] = r.str("per_end", "full" if kw.get("format") == "keyfile" else "half",
                              choices=("half", "full"))
        kw["distance_adjust"] = r.bool("distance_adjust", False)
        kw["reference_loss_db"] = r.num("reference_loss_db", REFERENCE_LOSS_DB, min=0)
    if model == "synthetic" and r.has("first_event_s"):
        kw["first_event_s"] = r.num("first_event_s", min=0)
    if model == "distance":
        if r.has("rate0_bps") == r.has("rate_bps"):
            raise r.fail("rate0_bps", "exactly one of rate0_bps (at 0 dB) or rate_bps (at this link)")
        key = "rate0_bps" if r.has("rate0_bps") else "rate_bps"
        kw[key] = r.num(key, min=0)
    if model == "constant":
        kw["rate_bps"] = r.num("rate_bps", min=0)
    if model in ("distance", "constant"):
        kw["interval_s"] = r.num("interval_s", TRACE_MEAN_INTERVAL_S if model == "distance" else 1.0,
                                 min=0, strict_min=True)
        kw["jitter_s"] = r.num("jitter_s", 0.0, min=0, max=kw["interval_s"] / 2) if model == "distance" else 0.0
    allowed = set(MODEL_FIELDS[model]) - ({"byteorder"} if kw.get("format") == "text" else set())
    r.reject_unknown(allowed)
    return SupplySpec(**kw)


def _resolve_file(r: Reader, base_dir: Path | None) -> Path:
    name = r.str("file")
    p = Path(name).expanduser()
    candidates = ([base_dir / p] if base_dir is not None and not p.is_absolute() else []) + [p]
    for c in candidates:
        if c.is_file():
            return c.resolve()
    raise r.fail("file", "an existing trace file (looked in: " + ", ".join(map(str, candidates)) + ")", name)


# -- trace files -------------------------------------------------------------------------------------------------

def read_trace_text(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read `gap_us<TAB>count` lines: (gaps_s since the previous event, device counts). Blank/# lines skipped."""
    gaps_us, counts = [], []
    try:
        lines = Path(path).read_text().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise QkdbedError(f"{path}: cannot read trace ({e})") from None
    for n, line in enumerate(lines, 1):
        parts = line.split()
        if not parts or parts[0].startswith("#"):
            continue
        try:
            if len(parts) != 2:
                raise ValueError
            gap, count = float(parts[0]), int(parts[1])
            if not gap >= 0 or count < 0 or not math.isfinite(gap):
                raise ValueError
        except ValueError:
            raise QkdbedError(f"{path}:{n}: expected 'gap_us<TAB>count' (gap >= 0, integer count >= 0), "
                              f"got {line[:40]!r}") from None
        gaps_us.append(gap)
        counts.append(count)
    if not counts:
        raise QkdbedError(f"{path}: trace has no events")
    return np.array(gaps_us) * 1e-6, np.array(counts, dtype=np.int64)


def _keyfile_header(byteorder: str) -> struct.Struct:
    return struct.Struct(("<" if byteorder == "little" else ">") + "QH")


def read_keyfile(path: str | Path, byteorder: str = "little") -> tuple[np.ndarray, np.ndarray]:
    """Read the dataset's binary keyfile: (times_s relative to the first record, key lengths in bytes).

    Each record: 8-byte unsigned timestamp in ns, 2-byte unsigned key length in bytes, then the key bytes.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise QkdbedError(f"{path}: cannot read keyfile ({e})") from None
    head = _keyfile_header(byteorder)
    stamps, lengths, pos = [], [], 0
    while pos < len(data):
        if pos + head.size > len(data):
            raise QkdbedError(f"{path}: truncated record header at byte {pos}")
        ts, n = head.unpack_from(data, pos)
        if pos + head.size + n > len(data):
            raise QkdbedError(f"{path}: record at byte {pos} says {n} key bytes but the file ends first")
        if stamps and ts < stamps[-1]:
            raise QkdbedError(f"{path}: timestamps go backwards at byte {pos} (wrong byteorder?)")
        stamps.append(ts)
        lengths.append(n)
        pos += head.size + n
    if not stamps:
        raise QkdbedError(f"{path}: keyfile has no records")
    ts = np.array(stamps, dtype=np.uint64)
    return (ts - ts[0]).astype(np.float64) * 1e-9, np.array(lengths, dtype=np.int64)


def write_keyfile(path: str | Path, times_s, key_lengths_bytes, byteorder: str = "little", seed: int = 0) -> None:
    """Write a keyfile (timestamps from times_s, pseudo-random key bytes): for tests and examples."""
    head, rng = _keyfile_header(byteorder), np.random.default_rng(seed)
    with open(path, "wb") as f:
        for t, n in zip(times_s, key_lengths_bytes):
            f.write(head.pack(int(round(float(t) * 1e9)), int(n)) + rng.bytes(int(n)))


def _cycle(path: str, fmt: str, byteorder: str) -> tuple[np.ndarray, np.ndarray]:
    """A trace's replay cycle, read once per file version (every link of a run may replay the same file)."""
    try:
        stamp = Path(path).stat().st_mtime_ns
    except OSError as e:
        raise QkdbedError(f"{path}: cannot read trace ({e})") from None
    return _cycle_cached(path, fmt, byteorder, stamp)


@functools.lru_cache(maxsize=64)
def _cycle_cached(path: str, fmt: str, byteorder: str, _stamp: int) -> tuple[np.ndarray, np.ndarray]:
    """One replay cycle as (gaps_s, amounts) with gaps_s[i] the wait before row i.

    Text: the file's own gaps; amounts are device counts. Keyfile: gaps from timestamp differences, row 0's gap
    (the wrap-around when looping) is the file's mean gap; amounts are key lengths in bytes.
    """
    if fmt == "text":
        return read_trace_text(path)
    times_s, lengths = read_keyfile(path, byteorder)
    wrap_s = times_s[-1] / (len(times_s) - 1) if len(times_s) > 1 else TRACE_MEAN_INTERVAL_S
    return np.concatenate([[wrap_s], np.diff(times_s)]), lengths


# -- schedule building -------------------------------------------------------------------------------------------

def build_schedule(spec: SupplySpec, link: Link, duration_s: float, rng: np.random.Generator) -> SupplySchedule:
    """All key-generation events of `link` in [0, duration_s), deterministic given `rng` (vectorised)."""
    horizon_s = duration_s - spec.offset_s  # the model's own clock runs from the offset
    if horizon_s <= 0:
        return SupplySchedule(np.zeros(0), np.zeros(0, dtype=np.int64))
    if spec.model == "synthetic":
        t, amount = _synthetic(spec, horizon_s, rng)
    elif spec.model == "trace":
        t, amount = _replay(spec, horizon_s)
    else:
        t, amount = _periodic(spec, link, horizon_s, rng)
    if spec.model in ("synthetic", "trace") and spec.distance_adjust:
        amount = amount * 10.0 ** (-(link.loss_db - spec.reference_loss_db) / 10.0)
    t = t + spec.offset_s
    keep = (t >= 0) & (t < duration_s)
    t, amount = t[keep], amount[keep]
    if spec.rate_steps:
        at = np.array([s[0] for s in spec.rate_steps])
        factor = np.array([1.0] + [s[1] for s in spec.rate_steps])
        amount = amount * factor[np.searchsorted(at, t, side="right")]
    units = _carry(amount)
    nz = units > 0
    return SupplySchedule(t[nz].astype(np.float64), units[nz])


def _carry(amount: np.ndarray) -> np.ndarray:
    """Whole units per event: floor of the exact running total, differenced (tolerates float round-off)."""
    whole = np.floor(np.cumsum(amount, dtype=np.float64) + 1e-6)
    return np.diff(whole, prepend=0.0).astype(np.int64)


def _per_end(spec: SupplySpec, counts: np.ndarray) -> np.ndarray:
    """The original injector gives each end count // 2 of a device count; `full` gives each end the count."""
    return (counts // 2 if spec.per_end == "half" else counts).astype(np.float64)


def synthetic_events(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """n draws of the fitted device: (interval before each event in s, device count per event)."""
    counts = rng.choice(COUNT_VALUES, size=n, p=COUNT_PROBS)
    interval_ms = _body_ms(counts, rng)
    failed_rounds = rng.geometric(1.0 - STALL_PROB, size=n) - 1
    n_failed = int(failed_rounds.sum())
    if n_failed:
        lost_ms = _body_ms(rng.choice(COUNT_VALUES, size=n_failed, p=COUNT_PROBS), rng) + STALL_PENALTY_MS
        interval_ms += np.bincount(np.repeat(np.arange(n), failed_rounds), weights=lost_ms, minlength=n)
    return interval_ms * 1e-3, counts


def _body_ms(counts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    z_count = -(counts - _COUNT_MEAN) / _COUNT_SD  # small batch -> long cycle
    z = COUNT_INTERVAL_RHO * z_count + math.sqrt(1 - COUNT_INTERVAL_RHO ** 2) * rng.standard_normal(len(counts))
    return BODY_SHIFT_MS + np.exp(BODY_MU_LOG_MS + BODY_SIGMA * z)


_CHUNK_EVENTS = 256


def _synthetic(spec: SupplySpec, horizon_s: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    # Drawn in fixed-size chunks until past the horizon, so a longer run with the same seed starts with exactly
    # the events of a shorter one.
    chunks: list[tuple[np.ndarray, np.ndarray]] = []
    reach_s = 0.0  # time of the last event drawn so far
    while not chunks or reach_s < horizon_s:
        chunks.append(synthetic_events(_CHUNK_EVENTS, rng))
        reach_s += chunks[-1][0].sum()
        if len(chunks) == 1 and spec.first_event_s is not None:
            reach_s += spec.first_event_s - chunks[0][0][0]
    interval_s = np.concatenate([c[0] for c in chunks])
    counts = np.concatenate([c[1] for c in chunks])
    t = np.cumsum(interval_s)  # first event one interval after the start, as the original injector
    if spec.first_event_s is not None:
        t += spec.first_event_s - interval_s[0]
    keep = t < horizon_s
    return t[keep], _per_end(spec, counts[keep]) * spec.scale


def _replay(spec: SupplySpec, horizon_s: float) -> tuple[np.ndarray, np.ndarray]:
    gaps_s, raw = _cycle(spec.file, spec.format, spec.byteorder)
    gaps_s, raw = np.roll(gaps_s, -spec.start_row), np.roll(raw, -spec.start_row)
    if spec.format == "keyfile":
        amount = raw / spec.unit_bytes / (2 if spec.per_end == "half" else 1)
        lead_s = gaps_s[0]  # the first replayed record is at t = 0
    else:
        amount, lead_s = _per_end(spec, raw), 0.0
    cycles = 1
    if spec.loop:
        cycles = int(math.ceil((horizon_s + lead_s) / gaps_s.sum())) + 1
    t = np.cumsum(np.tile(gaps_s, cycles)) - lead_s
    keep = t < horizon_s
    return t[keep], np.tile(amount, cycles)[keep] * spec.scale


def _periodic(spec: SupplySpec, link: Link, horizon_s: float,
              rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    rate_bps = spec.rate_bps if spec.rate_bps is not None else distance_rate_bps(spec.rate0_bps, link.loss_db)
    n = int(horizon_s / spec.interval_s) + 1
    t = np.arange(1, n + 1) * spec.interval_s
    if spec.jitter_s > 0:  # |jitter| <= interval/2 keeps the batches in order
        t = t + rng.uniform(-spec.jitter_s, spec.jitter_s, size=n)
    keep = t < horizon_s
    per_batch_units = rate_bps * spec.scale * spec.interval_s / (spec.unit_bytes * 8)
    return t[keep], np.full(int(keep.sum()), per_batch_units)


# -- statistics and key material ---------------------------------------------------------------------------------

def fit_summary(schedule: SupplySchedule, duration_s: float | None = None,
                unit_bits: int = UNIT_BYTES * 8) -> dict:
    """Interval statistics (ms), units-per-event histogram and per-end rate, comparable with TRACE_STATS.

    The rate is over [0, duration_s), or up to the last event when duration_s is not given.
    """
    t = schedule.times_s
    iv = np.diff(t) * 1e3
    q = (lambda p: float(np.percentile(iv, p))) if len(iv) else (lambda p: float("nan"))
    vals, freq = np.unique(schedule.units, return_counts=True)
    span_s = duration_s if duration_s is not None else (float(t[-1]) if len(t) else 0.0)
    return {
        "events": int(len(t)),
        "interval_ms": {"mean": float(iv.mean()) if len(iv) else float("nan"),
                        "sd": float(iv.std(ddof=1)) if len(iv) > 1 else float("nan"),
                        "min": q(0), "median": q(50), "p5": q(5), "p95": q(95), "max": q(100)},
        "units_histogram": {int(v): int(f) for v, f in zip(vals, freq)},
        "units_mean": float(schedule.units.mean()) if len(t) else 0.0,
        "rate_per_end_bps": schedule.mean_rate_bps(span_s, unit_bits),
    }


def _event_tag(seed: int, link_name: str, event_index: int) -> bytes:
    return f"qkdbed\x1f{int(seed)}\x1f{link_name}\x1f{int(event_index)}".encode()


def key_bytes(seed: int, link_name: str, event_index: int, n_units: int, unit_bytes: int = UNIT_BYTES) -> bytes:
    """The key material of one event: n_units * unit_bytes bytes, identical at both ends.

    Derived (SHAKE-256) from the run seed, the link's canonical name (`Link.name`) and the event index, so the
    two ends' injectors agree without talking to each other. It stands in for QKD output and is NOT secret.
    """
    return hashlib.shake_256(_event_tag(seed, link_name, event_index)).digest(n_units * unit_bytes)


def key_ids(seed: int, link_name: str, event_index: int, n_units: int) -> list[str]:
    """Deterministic UUID strings naming each unit of one event (as the ETSI 014 key_ID), the same at both ends."""
    tag = _event_tag(seed, link_name, event_index)
    return [str(uuid.UUID(bytes=hashlib.blake2b(tag + b"\x1f%d" % i, digest_size=16).digest(), version=4))
            for i in range(n_units)]
