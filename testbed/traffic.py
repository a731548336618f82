"""Key-request traffic: when each flow's application offers messages (one message = one key unit, 512 bytes).

Every model turns a validated flow spec into a sorted numpy array of offer times in seconds, vectorised and
seeded by the flow's own random stream. The node then releases offered messages into the network as the scheme's
congestion control allows, so an offer time is when the *application* asked, and latency is measured from it.

Models:

- `cbr`: constant rate `rate_bps`.
- `burst`: a request-list entry: `messages` offered at once at `start_s` (a greedy sender with a backlog).
- `steps`: piecewise-constant rates `steps: [{at_s, rate_bps}]` (e.g. an accelerated phase).
- `file`: replay of a request-arrival file (one offer time in seconds per line).
- `ppbp`: Poisson Pareto Burst Process. Bursts arrive as a Poisson process of rate `lam_per_s`; each lasts a
  Pareto time (shape `shape`, or `hurst` H giving shape = 3 - 2H; scale `burst_scale_s`) and while it lasts adds
  messages at `burst_rate_bps`; overlapping bursts superpose. Mean offered load = lam · E[duration] · rate with
  E[duration] = shape·scale/(shape-1). The paper states both H = 0.8 (shape 1.4) and shape 1.2; both are
  expressible, `shape` wins when given. `variant: serialised` is the original code's generator (reference §6):
  a burst ends a Pareto draw (whole ms) after its arrival, and an arrival during a burst re-draws its end from
  that arrival, so bursts never overlap.
- `periodic`: `burst` messages at once every `period_s` (group-key generation, see `groupkeys.py`).
- `onoff`: alternating ON and OFF periods (`on: {dist: pareto|exponential, mean_s | scale_s, shape}`, same for
  `off`), `rate_bps` during ON; with `size_bits`/`messages` the flow stops once that much was offered.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import QkdbedError
from .schema import Reader

MESSAGE_BITS = 4096
MODELS = ("cbr", "burst", "steps", "file", "ppbp", "onoff", "periodic")


@dataclass
class FlowSpec:
    name: str
    src: str
    dst: str
    model: str
    start_s: float = 0.0
    stop_s: float | None = None
    messages: int | None = None  # cap on the number of messages (from `messages` or `size_bits`)
    weight: float = 1.0
    group: str = ""
    params: dict[str, Any] = field(default_factory=dict)


def parse_flow(r: Reader, index: int, base_dir: Path | None) -> FlowSpec:
    model = r.str("model", "cbr", choices=MODELS)
    src, dst = r.str("src"), r.str("dst")
    if src == dst:
        raise r.fail("dst", "a node other than src", dst)
    name = r.str("name", f"{src}->{dst}")
    start = r.num("start_s", 0.0, min=0)
    stop = r.num("stop_s", None, min=0) if r.has("stop_s") else None
    if stop is not None and stop <= start:
        raise r.fail("stop_s", f"a time after start_s ({start:g})", stop)
    messages = r.int("messages", None, min=1) if r.has("messages") else None
    if r.has("size_bits"):
        if messages is not None:
            raise r.fail("size_bits", "either messages or size_bits, not both")
        messages = int(math.ceil(r.num("size_bits", min=1) / MESSAGE_BITS))
    weight = r.num("weight", 1.0, min=0, strict_min=True)
    group = r.str("group", "")
    params: dict[str, Any] = {}
    if model == "cbr":
        params["rate_bps"] = r.num("rate_bps", min=0, strict_min=True)
    elif model == "burst":
        if messages is None:
            raise r.fail("messages", "the number of messages (or size_bits) of a burst flow")
    elif model == "steps":
        steps = r.list("steps")
        if not steps:
            raise r.fail("steps", "at least one {at_s, rate_bps} step")
        parsed = []
        for i in range(len(steps)):
            sr = r.item("steps", i)
            at, rate = sr.num("at_s", min=0), sr.num("rate_bps", min=0)
            sr.reject_unknown()
            if parsed and at <= parsed[-1][0]:
                raise sr.fail("at_s", f"a time after the previous step ({parsed[-1][0]:g})", at)
            parsed.append((at, rate))
        params["steps"] = parsed
    elif model == "ppbp":
        params["lam_per_s"] = r.num("lam_per_s", min=0, strict_min=True)
        if r.has("shape"):
            params["shape"] = r.num("shape", min=1, strict_min=True)
            if r.has("hurst"):
                r.num("hurst", min=0.5, max=1.0)  # validated but shape wins
        else:
            h = r.num("hurst", 0.8, min=0.5, max=1.0, strict_min=True)
            if h >= 1.0:
                raise r.fail("hurst", "a Hurst parameter in (0.5, 1)", h)
            params["shape"] = 3.0 - 2.0 * h
        params["burst_scale_s"] = r.num("burst_scale_s", 0.12, min=0, strict_min=True)
        params["burst_rate_bps"] = r.num("burst_rate_bps", 800_000.0, min=0, strict_min=True)
        params["variant"] = r.str("variant", "superposed", choices=("superposed", "serialised"))
    elif model == "onoff":
        params["rate_bps"] = r.num("rate_bps", min=0, strict_min=True)
        for part, mean_default in (("on", 1.0), ("off", 1.0)):
            pr = r.sub(part, {})
            dist = pr.str("dist", "exponential", choices=("exponential", "pareto"))
            d = {"dist": dist}
            if dist == "pareto":
                d["shape"] = pr.num("shape", 1.5, min=1, strict_min=True)
                if pr.has("scale_s"):
                    d["scale_s"] = pr.num("scale_s", min=0, strict_min=True)
                else:
                    mean = pr.num("mean_s", mean_default, min=0, strict_min=True)
                    d["scale_s"] = mean * (d["shape"] - 1.0) / d["shape"]
            else:
                d["mean_s"] = pr.num("mean_s", mean_default, min=0, strict_min=True)
            pr.reject_unknown()
            params[part] = d
    elif model == "periodic":
        params["period_s"] = r.num("period_s", min=0, strict_min=True)
        params["burst"] = r.int("burst", 1, min=1)
    elif model == "file":
        ref = r.str("file")
        p = Path(ref)
        if base_dir is not None and not p.is_absolute() and (base_dir / p).is_file():
            p = base_dir / p
        if not p.is_file():
            raise r.fail("file", "an existing request-arrival file (one offer time in seconds per line)", ref)
        params["file"] = str(p)
    r.reject_unknown()
    return FlowSpec(name, src, dst, model, start, stop, messages, weight, group, params)


def offer_times(spec: FlowSpec, duration_s: float, rng: np.random.Generator) -> np.ndarray:
    """Offer times (s) of `spec` within [start_s, min(stop_s, duration_s)), at most `messages` of them."""
    end = min(spec.stop_s if spec.stop_s is not None else duration_s, duration_s)
    if spec.model == "cbr":
        t = _constant_rate(spec.start_s, end, spec.params["rate_bps"])
    elif spec.model == "burst":
        t = np.full(spec.messages if spec.start_s < end else 0, spec.start_s, dtype=float)
    elif spec.model == "steps":
        parts = []
        steps = spec.params["steps"]
        for i, (at, rate) in enumerate(steps):
            seg_end = steps[i + 1][0] if i + 1 < len(steps) else end
            lo, hi = max(at, spec.start_s), min(seg_end, end)
            if rate > 0 and hi > lo:
                parts.append(_constant_rate(lo, hi, rate))
        t = np.concatenate(parts) if parts else np.zeros(0)
    elif spec.model == "file":
        try:
            t = np.loadtxt(spec.params["file"], dtype=float, ndmin=1, comments="#")
        except ValueError as e:
            raise QkdbedError(f"{spec.params['file']}: expected one offer time in seconds per line ({e})") from None
        t = np.sort(t[(t >= spec.start_s) & (t < end)])
    elif spec.model == "ppbp":
        pp = spec.params
        if pp["variant"] == "serialised":
            t = ppbp_serialised(spec.start_s, end, pp["lam_per_s"], pp["shape"], pp["burst_scale_s"],
                                pp["burst_rate_bps"], rng)
        else:
            starts, durs = ppbp_bursts(spec.start_s, end, pp["lam_per_s"], pp["shape"], pp["burst_scale_s"], rng)
            t = bursts_to_offers(starts, durs, pp["burst_rate_bps"], end)
    elif spec.model == "onoff":
        t = onoff_offers(spec.start_s, end, spec.params, rng, spec.messages)
    elif spec.model == "periodic":
        n = int(math.floor((end - spec.start_s) / spec.params["period_s"] - 1e-9)) + 1 if end > spec.start_s else 0
        t = np.repeat(spec.start_s + spec.params["period_s"] * np.arange(max(n, 0)), spec.params["burst"])
    else:  # pragma: no cover - refused at parse time
        raise QkdbedError(f"traffic model {spec.model!r} is not known")
    if spec.messages is not None and len(t) > spec.messages:
        t = t[: spec.messages]
    return np.ascontiguousarray(t, dtype=float)


def _constant_rate(start_s: float, end_s: float, rate_bps: float) -> np.ndarray:
    gap = MESSAGE_BITS / rate_bps
    n = int(math.floor((end_s - start_s) / gap - 1e-9)) + 1 if end_s > start_s else 0
    return start_s + gap * np.arange(max(n, 0), dtype=float)


# -- bursty models -------------------------------------------------------------------------------------------

def pareto(rng: np.random.Generator, shape: float, scale_s: float, n: int) -> np.ndarray:
    """Pareto (type I) draws: P(X > x) = (scale/x)**shape for x >= scale."""
    return scale_s * (1.0 + rng.pareto(shape, n))


def ppbp_bursts(start_s: float, end_s: float, lam_per_s: float, shape: float, scale_s: float,
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Burst start times (a Poisson process of rate lam on [start, end)) and their Pareto durations."""
    span = end_s - start_s
    if span <= 0:
        return np.zeros(0), np.zeros(0)
    n_guess = int(lam_per_s * span + 6 * math.sqrt(lam_per_s * span) + 10)
    gaps = rng.exponential(1.0 / lam_per_s, n_guess)
    starts = start_s + np.cumsum(gaps)
    while starts[-1] < end_s:  # rare: extend until the window is covered
        more = starts[-1] + np.cumsum(rng.exponential(1.0 / lam_per_s, n_guess))
        starts = np.concatenate([starts, more])
    starts = starts[starts < end_s]
    return starts, pareto(rng, shape, scale_s, len(starts))


def bursts_to_offers(starts: np.ndarray, durations: np.ndarray, rate_bps: float, end_s: float) -> np.ndarray:
    """Superpose the bursts: burst i offers floor(d_i / gap) messages spaced `gap` from its start."""
    gap = MESSAGE_BITS / rate_bps
    counts = np.floor(durations / gap).astype(np.int64)
    total = int(counts.sum())
    if total == 0:
        return np.zeros(0)
    first = np.repeat(starts, counts)
    idx = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
    t = first + gap * idx
    t = t[t < end_s]
    t.sort(kind="stable")
    return t


def ppbp_serialised(start_s: float, end_s: float, lam_per_s: float, shape: float, scale_s: float,
                    rate_bps: float, rng: np.random.Generator) -> np.ndarray:
    """The original code's PPBP (reference §6): no overlap; an arrival during a burst re-draws its end."""
    gap = MESSAGE_BITS / rate_bps
    out = []
    t = start_s + rng.exponential(1.0 / lam_per_s)
    while t < end_s:
        b_start = t
        b_end = t + math.floor(pareto(rng, shape, scale_s, 1)[0] * 1000.0) / 1000.0
        nxt = t + rng.exponential(1.0 / lam_per_s)
        while nxt < b_end:  # the next arrival falls inside: its own draw sets the end
            b_end = nxt + math.floor(pareto(rng, shape, scale_s, 1)[0] * 1000.0) / 1000.0
            nxt = nxt + rng.exponential(1.0 / lam_per_s)
        b_end = min(b_end, end_s)
        n = int(math.floor((b_end - b_start) / gap))
        if n > 0:
            out.append(b_start + gap * np.arange(n))
        t = nxt
    return np.concatenate(out) if out else np.zeros(0)


def _period(rng: np.random.Generator, d: dict[str, Any], n: int) -> np.ndarray:
    if d["dist"] == "pareto":
        return pareto(rng, d["shape"], d["scale_s"], n)
    return rng.exponential(d["mean_s"], n)


def onoff_offers(start_s: float, end_s: float, params: dict[str, Any], rng: np.random.Generator,
                 max_messages: int | None) -> np.ndarray:
    """ON periods at `rate_bps` separated by OFF periods, from start_s (the flow starts ON)."""
    gap = MESSAGE_BITS / params["rate_bps"]
    parts = []
    t, total = start_s, 0
    while t < end_s and (max_messages is None or total < max_messages):
        on = _period(rng, params["on"], 64)
        off = _period(rng, params["off"], 64)
        for a, b in zip(on, off):
            hi = min(t + a, end_s)
            n = int(math.floor((hi - t) / gap - 1e-12)) + 1 if hi > t else 0
            if n > 0:
                parts.append(t + gap * np.arange(n))
                total += n
            t = t + a + b
            if t >= end_s or (max_messages is not None and total >= max_messages):
                break
    return np.concatenate(parts) if parts else np.zeros(0)
