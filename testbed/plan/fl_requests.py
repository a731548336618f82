"""FL chain requests with uncertain key-rate requirements, and the joint scenarios the planner optimises over.

A request's requirement is a discrete distribution (seed 001 eqs. 9-10: a uniform one over 1..max kbps; any
finite set of rates with probabilities here). The planner needs *joint* scenarios over all requests: the full
product (exact, only for a few requests), a sample-average approximation (SAA), or a "correlated" set where
every request takes its i-th level together (planning.md A.4; the calibrated figures use it).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import QkdbedError
from ..schema import load_yaml
from ..network import Topology
from ..schema import Reader

SCENARIO_MODES = ("auto", "product", "correlated", "saa")
DEFAULT_SAA_SCENARIOS = 20  # planning.md A.4: 20-50 joint scenarios
DEFAULT_MAX_PRODUCT = 1000  # above this many joint scenarios `auto` switches from the product to SAA


@dataclass(frozen=True)
class Request:
    """One FL chain request: key between `src` and `dst` at a rate drawn from (rates_bps, probs)."""

    name: str
    src: str
    dst: str
    rates_bps: tuple[float, ...]
    probs: tuple[float, ...]

    @property
    def mean_bps(self) -> float:
        return float(np.dot(self.rates_bps, self.probs))

    @property
    def max_bps(self) -> float:
        return max(self.rates_bps)


def make_request(src: str, dst: str, rates_bps, probs=None, name: str | None = None) -> Request:
    rates = tuple(float(r) for r in rates_bps)
    if probs is None:
        probs = [1.0 / len(rates)] * len(rates)
    return Request(name or f"{src}->{dst}", str(src), str(dst), rates, tuple(float(p) for p in probs))


def uniform_rates(max_bps: float, step_bps: float = 1000.0, min_bps: float | None = None) -> list[float]:
    """The seed's discrete uniform requirement {step, 2 step, ..., max} (kbps steps by default)."""
    lo = step_bps if min_bps is None else min_bps
    n = int(round((max_bps - lo) / step_bps)) + 1
    return [lo + i * step_bps for i in range(max(n, 0))]


@dataclass(frozen=True)
class ScenarioSet:
    """Joint scenarios: rates_bps[w, k] is request k's requirement in scenario w, with probability probs[w]."""

    rates_bps: np.ndarray
    probs: np.ndarray
    mode: str

    def __len__(self) -> int:
        return len(self.probs)

    def links_needed(self, max_key_rate_bps: float) -> np.ndarray:
        """N_k(w) = ceil(R_k(w) / S(D)) as an integer matrix (seed eq. 1)."""
        return np.maximum(0, np.ceil(self.rates_bps / max_key_rate_bps - 1e-9)).astype(int)

    def single(self, w: int) -> "ScenarioSet":
        return ScenarioSet(self.rates_bps[w:w + 1].copy(), np.array([1.0]), "single")


def expected_value_scenario(requests: list[Request]) -> ScenarioSet:
    """The expected-value problem's one scenario: every request at its mean requirement."""
    return ScenarioSet(np.array([[r.mean_bps for r in requests]]), np.array([1.0]), "expected-value")


def build_scenarios(requests: list[Request], mode: str = "auto", n: int = DEFAULT_SAA_SCENARIOS, seed: int = 0,
                    max_product: int = DEFAULT_MAX_PRODUCT) -> ScenarioSet:
    if not requests:
        raise QkdbedError("no requests to plan for")
    if mode not in SCENARIO_MODES:
        raise QkdbedError(f"scenario mode must be one of {', '.join(SCENARIO_MODES)}, got {mode!r}")
    size = int(np.prod([len(r.rates_bps) for r in requests], dtype=float))
    if mode == "auto":
        mode = "product" if size <= max_product else "saa"
    if mode == "product":
        if size > max_product:
            raise QkdbedError(f"the product of the requests' distributions has {size} scenarios (> {max_product});"
                              " use SAA (--scenarios K)")
        combos = list(itertools.product(*[range(len(r.rates_bps)) for r in requests]))
        rates = np.array([[r.rates_bps[i] for r, i in zip(requests, c)] for c in combos], dtype=float)
        probs = np.array([np.prod([r.probs[i] for r, i in zip(requests, c)]) for c in combos])
        return ScenarioSet(rates, probs / probs.sum(), "product")
    if mode == "correlated":
        first = requests[0]
        for r in requests[1:]:
            if len(r.probs) != len(first.probs) or not np.allclose(r.probs, first.probs):
                raise QkdbedError(f"request {r.name!r}: correlated scenarios need every request to have the same"
                                  f" number of levels and probabilities as {first.name!r}")
        rates = np.array([[r.rates_bps[i] for r in requests] for i in range(len(first.probs))], dtype=float)
        return ScenarioSet(rates, np.array(first.probs, dtype=float), "correlated")
    if n < 1:
        raise QkdbedError(f"SAA needs at least one scenario, got {n}")
    rng = np.random.default_rng(seed)
    cols = [rng.choice(np.array(r.rates_bps), size=n, p=np.array(r.probs) / sum(r.probs)) for r in requests]
    return ScenarioSet(np.column_stack(cols).astype(float), np.full(n, 1.0 / n), f"saa(n={n}, seed={seed})")


def validate_requests(requests: list[Request], topology: Topology) -> None:
    """One-line errors naming the request: unknown node, src == dst, bad distribution, disconnected pair."""
    seen: set[str] = set()
    for r in requests:
        if r.name in seen:
            raise QkdbedError(f"request {r.name!r}: duplicate request name (give each a distinct `name`)")
        seen.add(r.name)
        for end in (r.src, r.dst):
            if end not in topology.nodes:
                raise QkdbedError(f"request {r.name!r}: unknown node {end!r} (not in topology {topology.name})")
        if r.src == r.dst:
            raise QkdbedError(f"request {r.name!r}: source and destination are both {r.src!r}")
        if not r.rates_bps or len(r.rates_bps) != len(r.probs):
            raise QkdbedError(f"request {r.name!r}: needs as many probabilities as rates")
        if min(r.rates_bps) < 0 or min(r.probs) < 0 or abs(sum(r.probs) - 1.0) > 1e-6:
            raise QkdbedError(f"request {r.name!r}: rates must be >= 0 and probabilities >= 0 summing to 1")
        if r.dst not in topology.shortest_paths_from(r.src, "km"):
            raise QkdbedError(f"request {r.name!r}: no path from {r.src} to {r.dst} (the network is disconnected)")


# -- request files -----------------------------------------------------------------------------------------------

def _read_request(rr: Reader, index: int) -> Request:
    ends = []
    for key in ("src", "dst"):
        v = rr.raw(key)
        if isinstance(v, int) and not isinstance(v, bool):
            v = str(v)
        if not isinstance(v, str) or not v:
            raise rr.fail(key, "a node name", v)
        ends.append(v)
    name = rr.raw("name", None)
    name = f"{ends[0]}->{ends[1]}" if name is None else str(name)
    if rr.has("rates_bps") == rr.has("uniform"):
        raise rr.fail("rates_bps", "exactly one of rates_bps (a list) or uniform ({max_bps, step_bps, min_bps})")
    if rr.has("rates_bps"):
        rates = rr.list("rates_bps")
        if not rates or not all(isinstance(x, (int, float)) and not isinstance(x, bool) and x >= 0 for x in rates):
            raise rr.fail("rates_bps", "a non-empty list of rates >= 0", rates)
    else:
        u = rr.sub("uniform")
        step = u.num("step_bps", 1000.0, min=0, strict_min=True)
        rates = uniform_rates(u.num("max_bps", min=0, strict_min=True), step,
                              u.num("min_bps", step, min=0) if u.has("min_bps") else None)
        u.reject_unknown()
        if not rates:
            raise rr.fail("uniform", "min_bps <= max_bps")
    probs = rr.raw("probs", None)
    if probs is not None:
        if (not isinstance(probs, list) or len(probs) != len(rates)
                or not all(isinstance(p, (int, float)) and not isinstance(p, bool) and p >= 0 for p in probs)
                or abs(sum(probs) - 1.0) > 1e-6):
            raise rr.fail("probs", f"{len(rates)} probabilities >= 0 summing to 1", probs)
    rr.reject_unknown()
    return make_request(ends[0], ends[1], rates, probs, name)


@dataclass(frozen=True)
class RequestFile:
    requests: list[Request]
    scenario_mode: str
    scenario_count: int
    scenario_seed: int
    params: dict | None  # raw parameter overrides, read by fl_params.params_from_dict


def requests_from_dict(data: Any, where: str) -> RequestFile:
    r = Reader(data, where)
    raw = r.list("requests")
    if not raw:
        raise r.fail("requests", "at least one request")
    reqs = [_read_request(r.item("requests", i), i) for i in range(len(raw))]
    sc = r.sub("scenarios", {})
    mode = sc.str("mode", "auto", choices=SCENARIO_MODES)
    count = sc.int("count", DEFAULT_SAA_SCENARIOS, min=1)
    seed = sc.int("seed", 0)
    sc.reject_unknown()
    params = r.raw("params", None)
    if params is not None and not isinstance(params, dict):
        raise r.fail("params", "a mapping of planner parameters", params)
    r.reject_unknown()
    return RequestFile(reqs, mode, count, seed, params)


def load_requests(path: str | Path) -> RequestFile:
    p = Path(path)
    if not p.is_file():
        raise QkdbedError(f"request file {str(p)!r}: no such file")
    data = load_yaml(p)
    return requests_from_dict(data, str(p))


def random_requests(topology: Topology, n: int, seed: int = 0, max_bps: float = 5000.0,
                    step_bps: float = 1000.0) -> list[Request]:
    """`n` distinct node pairs, each uniform over {step..max} (planning.md A.8 Fig. 3(d): U{1..5} kbps).

    Nested by construction: the first n of one seeded shuffle, so n=20 extends n=10 for the same seed.
    """
    names = list(topology.nodes)
    pairs = [(a, b) for i, a in enumerate(names) for b in names[i + 1:]]
    if n > len(pairs):
        raise QkdbedError(f"--random {n}: the topology has only {len(pairs)} distinct node pairs")
    order = np.random.default_rng(seed).permutation(len(pairs))
    rates = uniform_rates(max_bps, step_bps)
    return [make_request(*pairs[i], rates) for i in order[:n]]
