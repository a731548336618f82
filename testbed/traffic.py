"""Key-request traffic: when each flow's application offers messages (one message = one key unit, 512 bytes).

Every model turns a validated flow spec into a sorted numpy array of offer times in seconds, vectorised and
seeded by the flow's own random stream. The node then releases offered messages into the network as the scheme's
congestion control allows, so an offer time is when the *application* asked, and latency is measured from it.

Models here: `cbr` (constant rate), `burst` (a request list entry: N messages all offered at `start_s`, i.e. a
greedy sender with a backlog), `steps` (piecewise-constant rates, e.g. an accelerated phase), `file` (replay of
a request-arrival file). PPBP and ON-OFF come with the traffic issue; their names are reserved and refused
clearly until then.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import NotYetError, QkdbedError
from .schema import Reader

MESSAGE_BITS = 4096
MODELS = ("cbr", "burst", "steps", "file", "ppbp", "onoff")


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
    elif model == "file":
        ref = r.str("file")
        p = Path(ref)
        if base_dir is not None and not p.is_absolute() and (base_dir / p).is_file():
            p = base_dir / p
        if not p.is_file():
            raise r.fail("file", "an existing request-arrival file (one offer time in seconds per line)", ref)
        params["file"] = str(p)
    else:
        raise NotYetError(f"traffic model {model!r} ({r.where}: {r.path}.model)", issue=6)
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
    else:  # pragma: no cover - refused at parse time
        raise NotYetError(f"traffic model {spec.model!r}", issue=6)
    if spec.messages is not None and len(t) > spec.messages:
        t = t[: spec.messages]
    return np.ascontiguousarray(t, dtype=float)


def _constant_rate(start_s: float, end_s: float, rate_bps: float) -> np.ndarray:
    gap = MESSAGE_BITS / rate_bps
    n = int(math.floor((end_s - start_s) / gap - 1e-9)) + 1 if end_s > start_s else 0
    return start_s + gap * np.arange(max(n, 0), dtype=float)
