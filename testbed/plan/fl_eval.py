"""The cost of a fixed first stage (routes + reservations) over a scenario set, in closed form (planning.md A.5-5).

Once routes and reservations are fixed, the second stage is separable by link: in every scenario a link uses
min(reserved, demand) reserved wavelengths and buys (demand - reserved)^+ on demand. So baselines, the
expected-value solution and out-of-sample scenarios are all priced here without a solver, and the MILP's own
objective is re-derived from its first stage as a consistency check.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..network import Topology
from .fl_params import FLParams, LinkCost
from .fl_requests import Request, ScenarioSet

ITEMS = ("mdi_qtx", "mdi_qrx", "lkm", "si", "mux_pair", "qkd_link_wavelength_km", "km_link_wavelength_km",
         "utilisation")


@dataclass
class FirstStage:
    """The decisions taken before the key-rate requirement is known."""

    routes: dict[str, list[str]]  # request name -> node list
    reserved_qkd: dict[str, float]  # link name -> reserved QKD wavelengths
    reserved_km: dict[str, float]  # link name -> reserved KM wavelengths


@dataclass
class Evaluation:
    first_stage_cost: float
    second_stage_cost: float  # expectation over the scenarios
    demand_qkd: dict[str, np.ndarray]  # link -> wavelengths needed in each scenario
    demand_km: dict[str, np.ndarray]
    ondemand_qkd: dict[str, np.ndarray]
    ondemand_km: dict[str, np.ndarray]
    items: dict[str, tuple[float, float]]  # item -> (first-stage cost, expected second-stage cost)
    counts: dict[str, tuple[float, float]]  # item -> (reserved count, expected on-demand count)
    scenario_costs: np.ndarray = field(default_factory=lambda: np.zeros(0))  # first + second stage, per scenario
    over_capacity: list[str] = field(default_factory=list)  # "link L in scenario w: ..." when W_e is exceeded

    @property
    def total(self) -> float:
        return self.first_stage_cost + self.second_stage_cost

    @property
    def feasible(self) -> bool:
        return not self.over_capacity


def route_links(topology: Topology, route: list[str]) -> list[str]:
    return [topology.link(a, b).name for a, b in zip(route, route[1:])]


def link_demands(topology: Topology, requests: list[Request], routes: dict[str, list[str]],
                 scenarios: ScenarioSet, params: FLParams) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Wavelengths each link needs in each scenario: D^Q = m_Q sum_k N_k(w), D^K = m_K sum_k N_k(w) (A.4)."""
    n = scenarios.links_needed(params.max_key_rate_bps)
    per_link = {l.name: np.zeros(len(scenarios)) for l in topology.links}
    for k, req in enumerate(requests):
        for name in route_links(topology, routes[req.name]):
            per_link[name] += n[:, k]
    dq = {e: params.qkd_wavelengths_per_link * v for e, v in per_link.items()}
    dk = {e: params.km_wavelengths_per_link * v for e, v in per_link.items()}
    return dq, dk


def _item_counts(cost: LinkCost, w_qkd: float, w_km: float, params: FLParams) -> dict[str, float]:
    """Devices and wavelength·km behind w_qkd QKD and w_km KM wavelengths on one link (seed eqs. 3-8, A.2)."""
    z = w_qkd / params.qkd_wavelengths_per_link  # parallel QKD links
    n = cost.segments
    return {"mdi_qtx": 2 * n * z, "mdi_qrx": n * z, "lkm": n * z, "si": n * z, "mux_pair": 2 * n * z,
            "qkd_link_wavelength_km": w_qkd * cost.length_km, "km_link_wavelength_km": w_km * cost.length_km}


def _price(item: str, prices) -> float:
    return prices.wavelength_km if item.endswith("wavelength_km") else getattr(prices, item)


def evaluate(topology: Topology, requests: list[Request], first: FirstStage, scenarios: ScenarioSet,
             costs: dict[str, LinkCost], params: FLParams) -> Evaluation:
    dq, dk = link_demands(topology, requests, first.routes, scenarios, params)
    p = scenarios.probs
    first_cost = second_cost = 0.0
    items = {i: [0.0, 0.0] for i in ITEMS}
    counts = {i: [0.0, 0.0] for i in ITEMS}
    oq_all, ok_all, over = {}, {}, []
    per_scenario = np.zeros(len(scenarios))
    for link in topology.links:
        e, c = link.name, costs[link.name]
        rq, rk = first.reserved_qkd.get(e, 0.0), first.reserved_km.get(e, 0.0)
        oq, ok = np.maximum(dq[e] - rq, 0.0), np.maximum(dk[e] - rk, 0.0)
        uq, uk = np.minimum(dq[e], rq), np.minimum(dk[e], rk)
        oq_all[e], ok_all[e] = oq, ok
        util = c.util_per_wavelength * float(p @ (uq + uk))
        first_cost += c.alpha_r * rq + c.beta_r * rk
        per_scenario += c.alpha_r * rq + c.beta_r * rk + c.alpha_o * oq + c.beta_o * ok
        per_scenario += c.util_per_wavelength * (uq + uk)
        second_cost += float(p @ (c.alpha_o * oq + c.beta_o * ok)) + util
        items["utilisation"][1] += util
        for stage, (wq, wk), prices in ((0, (rq, rk), params.reservation),
                                        (1, (float(p @ oq), float(p @ ok)), params.on_demand)):
            for item, count in _item_counts(c, wq, wk, params).items():
                counts[item][stage] += count
                items[item][stage] += count * _price(item, prices)
        caps = params.caps_for(link)
        for tag, cap, dem in (("QKD", caps.qkd_total, dq[e]), ("KM", caps.km_total, dk[e])):
            if cap is not None and dem.max() > cap + 1e-9:
                w = int(np.argmax(dem))
                over.append(f"link {e} in scenario {w}: {dem[w]:g} {tag} wavelengths > capacity {cap}")
    return Evaluation(first_cost, second_cost, dq, dk, oq_all, ok_all,
                      {i: tuple(v) for i, v in items.items()}, {i: tuple(v) for i, v in counts.items()}, per_scenario, over)
