"""Parameters of the FL key-provisioning planner (seed 001) and the per-link cost coefficients they imply.

Every value the seed leaves open is a field here with the reconstruction of `planning.md` Part A as its default,
so that changing a choice never needs a code change. Tags in the comments: [S] stated by the seed, [R]
reconstructed (a choice), [D] derived. Prices are dollars; the seed's Table I lost its labels and the mapping
below is planning.md A.3's reading of it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any


from ..errors import QkdbedError
from ..schema import load_yaml
from ..network import Link, Topology
from ..schema import Reader


@dataclass(frozen=True)
class Prices:
    """Unit prices of one stage: per device, per MUX/DEMUX pair and per wavelength·km of fibre."""

    mdi_qtx: float
    mdi_qrx: float
    lkm: float
    si: float
    mux_pair: float
    wavelength_km: float

    def device_bracket(self) -> float:
        """Devices of one MDI-QKD segment of one parallel QKD link: 2 QTx, 1 QRx, 1 LKM, 1 SI, 2 MUX pairs."""
        return 2 * self.mdi_qtx + self.mdi_qrx + self.lkm + self.si + 2 * self.mux_pair


# Seed Table I, rows 1-2 (reservation, "from Cao et al.") and rows 3-4 (on-demand); item mapping [R] (A.3).
RESERVATION_PRICES = Prices(mdi_qtx=1500, mdi_qrx=2250, lkm=1200, si=150, mux_pair=300, wavelength_km=1)
ON_DEMAND_PRICES = Prices(mdi_qtx=6000, mdi_qrx=9000, lkm=3000, si=500, mux_pair=900, wavelength_km=4)


@dataclass(frozen=True)
class Caps:
    """Wavelength limits of one fibre link; None means unbounded (the seed's values were lost, A.4).

    `qkd_total`/`km_total` bound utilised + on-demand wavelengths in every scenario (W^Q_e, W^K_e);
    `qkd_reserved`/`km_reserved` bound what may be reserved in advance (W^{Q,r}_e, W^{K,r}_e), the "maximum
    available wavelengths in the reservation phase set by the QKD service provider".
    """

    qkd_total: int | None = None
    km_total: int | None = None
    qkd_reserved: int | None = None
    km_reserved: int | None = None

    @property
    def bounded_total(self) -> bool:
        return self.qkd_total is not None or self.km_total is not None


@dataclass(frozen=True)
class FLParams:
    """Everything the planner needs besides the topology and the requests. Defaults: planning.md Part A."""

    qtx_spacing_km: float = 160.0  # [S] distance between two consecutive MDI-QTxs (QRx midway, 80 km each side)
    max_key_rate_bps: float = 1000.0  # [R] S(D): key rate of one MDI-QKD link spanning qtx_spacing_km (lost)
    qkd_wavelengths_per_link: int = 3  # [S] a QKD link occupies 3 wavelengths
    km_wavelengths_per_link: int = 1  # [S] a KM link occupies 1 wavelength; one KM link per QKD link [R]
    min_segments_per_link: int = 1  # [R] even a 0 km link needs one MDI-QKD segment (keeps every link priced)
    reservation: Prices = RESERVATION_PRICES
    on_demand: Prices = ON_DEMAND_PRICES
    utilisation_price_per_wavelength_km: float = 0.0  # [R] optional c^u on utilised reserved wavelengths
    explicit_utilisation: bool = False  # build utilised-wavelength variables even when c^u = 0 (A.5-1)
    caps: Caps = Caps()  # default limits of every link
    link_caps: dict[str, Caps] = field(default_factory=dict)  # per-link overrides, keyed "A-B" (either order)
    formulation: str = "auto"  # arc | path | auto (path above `path_formulation_above` requests) [R]
    candidate_paths: int = 5  # [R] k shortest simple paths by km in the path formulation
    path_formulation_above: int = 10
    integer_wavelengths: str = "auto"  # auto: continuous, re-solved as integers if a value is fractional (A.5-2)
    solver: str = "auto"  # auto (HiGHS if highspy is installed, else CBC) | cbc | highs
    time_limit_s: float = 120.0
    gap_rel: float = 1e-4
    threads: int = 1
    co_qbn_nominal: str = "mean"  # [R] the rate CO-QBN provisions for: mean | max of each request's distribution
    co_qbn_candidates: int = 1  # [R] km-shortest routes CO-QBN tries before blocking a request

    def caps_for(self, link: Link) -> Caps:
        return self.link_caps.get(f"{link.a}-{link.b}") or self.link_caps.get(f"{link.b}-{link.a}") or self.caps

    def parallel_links(self, rate_bps: float) -> int:
        """Seed eq. (1): parallel QKD links a request needs, ceil(R / S(D)) (the ceiling is [R])."""
        return max(0, math.ceil(rate_bps / self.max_key_rate_bps - 1e-9))


@dataclass(frozen=True)
class LinkCost:
    """Per-wavelength prices of one fibre link, [D] from the device counts of seed eqs. (3)-(8) (A.2).

    alpha: per QKD wavelength (a third of one parallel QKD link with all its devices); beta: per KM wavelength.
    """

    key: str
    a: str
    b: str
    length_km: float
    segments: int
    alpha_r: float
    alpha_o: float
    beta_r: float
    beta_o: float
    util_per_wavelength: float  # c^u * L_e


def segments(length_km: float, params: FLParams) -> int:
    """MDI-QKD segments on a link: ceil(L / D) [R], at least `min_segments_per_link`."""
    return max(params.min_segments_per_link, math.ceil(length_km / params.qtx_spacing_km - 1e-9))


def link_costs(topology: Topology, params: FLParams) -> dict[str, LinkCost]:
    """Cost coefficients of every link, keyed by the link's name `A-B` as in the topology."""
    mq = params.qkd_wavelengths_per_link
    out: dict[str, LinkCost] = {}
    for link in topology.links:
        n = segments(link.distance_km, params)
        stage = {}
        for tag, pr in (("r", params.reservation), ("o", params.on_demand)):
            per_qkd_link = n * pr.device_bracket() + mq * pr.wavelength_km * link.distance_km
            stage[tag] = (per_qkd_link / mq, pr.wavelength_km * link.distance_km)
        out[link.name] = LinkCost(link.name, link.a, link.b, link.distance_km, n,
                                  alpha_r=stage["r"][0], alpha_o=stage["o"][0],
                                  beta_r=stage["r"][1], beta_o=stage["o"][1],
                                  util_per_wavelength=params.utilisation_price_per_wavelength_km * link.distance_km)
    return out


# -- loading --------------------------------------------------------------------------------------------------

_CHOICES = {"formulation": ("auto", "arc", "path"), "integer_wavelengths": ("auto", "true", "false"),
            "solver": ("auto", "cbc", "highs"), "co_qbn_nominal": ("mean", "max")}
_INTS = ("qkd_wavelengths_per_link", "km_wavelengths_per_link", "min_segments_per_link", "candidate_paths",
         "path_formulation_above", "threads", "co_qbn_candidates")
_BOOLS = ("explicit_utilisation",)
_NUMS = ("qtx_spacing_km", "max_key_rate_bps", "utilisation_price_per_wavelength_km", "time_limit_s", "gap_rel")


def _read_prices(r: Reader, key: str, default: Prices) -> Prices:
    if not r.has(key):
        r.raw(key, None)
        return default
    sub = r.sub(key)
    vals = {f.name: sub.num(f.name, getattr(default, f.name), min=0) for f in fields(Prices)}
    sub.reject_unknown()
    return Prices(**vals)


def _read_caps(r: Reader, default: Caps) -> Caps:
    vals = {}
    for f in fields(Caps):
        v = r.raw(f.name, getattr(default, f.name))
        vals[f.name] = None if v is None else r.int(f.name, min=0)
    r.reject_unknown()
    return Caps(**vals)


def params_from_dict(data: Any, where: str, base: FLParams | None = None) -> FLParams:
    """Read a (partial) parameter mapping; fields not given keep the values of `base` (default: FLParams())."""
    base = base or FLParams()
    r = Reader(data or {}, where)
    kw: dict[str, Any] = {}
    for name in _NUMS:
        if r.has(name):
            kw[name] = r.num(name, min=0, strict_min=name in ("qtx_spacing_km", "max_key_rate_bps"))
    for name in _INTS:
        if r.has(name):
            kw[name] = r.int(name, min=1 if name != "min_segments_per_link" else 0)
    for name in _BOOLS:
        if r.has(name):
            kw[name] = r.bool(name)
    for name, choices in _CHOICES.items():
        if r.has(name):
            v = r.raw(name)
            kw[name] = r.str(name, choices=choices) if not isinstance(v, bool) else str(v).lower()
    kw["reservation"] = _read_prices(r, "reservation_prices", base.reservation)
    kw["on_demand"] = _read_prices(r, "on_demand_prices", base.on_demand)
    if r.has("caps"):
        kw["caps"] = _read_caps(r.sub("caps"), base.caps)
    if r.has("link_caps"):
        lc = r.sub("link_caps")
        kw["link_caps"] = {str(k): _read_caps(lc.sub(k), Caps()) for k in list(lc.data)}
    r.reject_unknown()
    return replace(base, **kw)


def load_params(path: str | Path, base: FLParams | None = None) -> FLParams:
    p = Path(path)
    if not p.is_file():
        raise QkdbedError(f"parameter file {str(p)!r}: no such file")
    data = load_yaml(p)
    return params_from_dict(data, str(p), base)


def params_to_dict(params: FLParams) -> dict[str, Any]:
    """The inverse of params_from_dict, for the JSON report (so a run records every choice it used)."""
    out: dict[str, Any] = {}
    for f in fields(FLParams):
        v = getattr(params, f.name)
        if f.name in ("reservation", "on_demand"):
            out[f"{f.name}_prices"] = {g.name: getattr(v, g.name) for g in fields(Prices)}
        elif f.name == "caps":
            out["caps"] = {g.name: getattr(v, g.name) for g in fields(Caps)}
        elif f.name == "link_caps":
            out["link_caps"] = {k: {g.name: getattr(c, g.name) for g in fields(Caps)} for k, c in v.items()}
        else:
            out[f.name] = v
    return out
