"""What planning for uncertainty is worth: baselines and the standard measures of stochastic programming.

- EV: solve with every request at its mean requirement, keep its routes and reservations, price them on the real
  scenarios (EEV). VSS = EEV - RP is what the stochastic solution saves over planning for the average.
- WS (wait-and-see): the expected cost if the requirement were known before reserving. EVPI = RP - WS is what
  perfect forecasts would be worth. WS <= RP <= EEV (Birge & Louveaux; planning.md A.5-4).
- CO-QBN: the seed's baseline (Cao et al. 2021) as reconstructed in planning.md A.7 - per request, in input order,
  the km-shortest route that still has capacity, provisioned at a nominal rate at reservation prices.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import QkdbedError
from ..network import Topology
from .fl_eval import Evaluation, FirstStage, evaluate, route_links
from .fl_model import SolveResult, solve_sp
from .fl_params import FLParams, link_costs
from .fl_paths import cheapest_path, k_shortest_paths
from .fl_requests import Request, ScenarioSet, expected_value_scenario


def expected_value(topology: Topology, requests: list[Request], scenarios: ScenarioSet,
                   params: FLParams) -> tuple[SolveResult, Evaluation]:
    """The EV problem's solution and its evaluation on the real scenarios (EEV = evaluation.total)."""
    ev = solve_sp(topology, requests, expected_value_scenario(requests), params)
    return ev, evaluate(topology, requests, ev.first, scenarios, link_costs(topology, params), params)


@dataclass
class CoQbn:
    first: FirstStage | None
    blocked: list[str] = field(default_factory=list)
    evaluation: Evaluation | None = None


def co_qbn(topology: Topology, requests: list[Request], scenarios: ScenarioSet, params: FLParams) -> CoQbn:
    """Route and provision each request at its nominal rate (mean or max), reservation prices only."""
    mq, mk = params.qkd_wavelengths_per_link, params.km_wavelengths_per_link
    used_q = {l.name: 0.0 for l in topology.links}
    used_k = dict(used_q)
    routes, blocked = {}, []
    by_name = {l.name: l for l in topology.links}
    for req in requests:
        nominal = req.mean_bps if params.co_qbn_nominal == "mean" else req.max_bps
        n = params.parallel_links(nominal)
        for path in k_shortest_paths(topology, req.src, req.dst, params.co_qbn_candidates):
            links = route_links(topology, path)
            if all(_room(by_name[e], used_q, used_k, mq * n, mk * n, params) for e in links):
                for e in links:
                    used_q[e] += mq * n
                    used_k[e] += mk * n
                routes[req.name] = path
                break
        else:
            blocked.append(req.name)
    if blocked:
        return CoQbn(None, blocked)
    # A static planner reserves what it allocated; a provider's reservation cap clips it (the rest is on demand).
    res_q, res_k = {}, {}
    for l in topology.links:
        caps = params.caps_for(l)
        res_q[l.name] = min(used_q[l.name], caps.qkd_reserved if caps.qkd_reserved is not None else np.inf)
        res_k[l.name] = min(used_k[l.name], caps.km_reserved if caps.km_reserved is not None else np.inf)
    first = FirstStage(routes, res_q, res_k)
    return CoQbn(first, [], evaluate(topology, requests, first, scenarios, link_costs(topology, params), params))


def _room(link, used_q, used_k, need_q, need_k, params: FLParams) -> bool:
    e, caps = link.name, params.caps_for(link)
    return ((caps.qkd_total is None or used_q[e] + need_q <= caps.qkd_total)
            and (caps.km_total is None or used_k[e] + need_k <= caps.km_total))


def _uncapped(topology: Topology, params: FLParams) -> bool:
    return all(params.caps_for(l) == type(params.caps)() for l in topology.links)


def wait_and_see(topology: Topology, requests: list[Request], scenarios: ScenarioSet,
                 params: FLParams) -> tuple[float, np.ndarray]:
    """WS and the optimal cost of each scenario when it is known in advance.

    Without caps the perfect-information problem is linear in each request's demand, so it splits into one
    cheapest-path problem per request under the per-wavelength price min(reserve + use, on-demand); with caps it
    couples the requests and each distinct scenario is solved as a MILP.
    """
    n = scenarios.links_needed(params.max_key_rate_bps)
    per_scenario = np.zeros(len(scenarios))
    if _uncapped(topology, params):
        costs = link_costs(topology, params)
        mq, mk = params.qkd_wavelengths_per_link, params.km_wavelengths_per_link

        def unit(link) -> float:
            c = costs[link.name]
            return (mq * min(c.alpha_r + c.util_per_wavelength, c.alpha_o)
                    + mk * min(c.beta_r + c.util_per_wavelength, c.beta_o))

        unit_cost = np.array([cheapest_path(topology, r.src, r.dst, unit)[0] for r in requests])
        per_scenario = n @ unit_cost
    else:
        cache: dict[tuple, float] = {}
        for w in range(len(scenarios)):
            key = tuple(n[w])
            if key not in cache:
                cache[key] = solve_sp(topology, requests, scenarios.single(w), params).objective
            per_scenario[w] = cache[key]
    return float(scenarios.probs @ per_scenario), per_scenario


@dataclass
class Measures:
    """The cost comparison the CLI prints and the JSON records (all in $, percentages of the baseline)."""

    rp: float
    eev: float | None
    ws: float | None
    co_qbn: float | None

    @property
    def vss(self) -> float | None:
        return None if self.eev is None else self.eev - self.rp

    @property
    def evpi(self) -> float | None:
        return None if self.ws is None else self.rp - self.ws

    @staticmethod
    def _pct(base: float | None, value: float) -> float | None:
        return None if not base or not np.isfinite(base) else 100.0 * (base - value) / base

    @property
    def reduction_vs_ev_pct(self) -> float | None:
        return self._pct(self.eev, self.rp)

    @property
    def reduction_vs_co_qbn_pct(self) -> float | None:
        return self._pct(self.co_qbn, self.rp)

    def to_dict(self) -> dict:
        def clean(x):
            return None if x is None or not np.isfinite(x) else round(float(x), 4)

        return {"RP": clean(self.rp), "EEV": clean(self.eev), "WS": clean(self.ws), "CO_QBN": clean(self.co_qbn),
                "VSS": clean(self.vss), "EVPI": clean(self.evpi),
                "reduction_vs_ev_pct": clean(self.reduction_vs_ev_pct),
                "reduction_vs_co_qbn_pct": clean(self.reduction_vs_co_qbn_pct)}


def baseline_cost(evaluation: Evaluation | None) -> float | None:
    """A baseline whose routes cannot carry some scenario under the total capacities costs +inf (infeasible)."""
    if evaluation is None:
        return None
    return evaluation.total if evaluation.feasible else float("inf")


def check_bounds(m: Measures, rel_tol: float = 1e-6) -> None:
    """Sanity check used by tests and the CLI: WS <= RP <= EEV up to solver tolerance."""
    tol = rel_tol * max(1.0, abs(m.rp))
    if m.eev is not None and m.rp > m.eev + tol:
        raise QkdbedError(f"internal: RP {m.rp:.2f} > EEV {m.eev:.2f} (solver gap?)")
    if m.ws is not None and m.ws > m.rp + tol:
        raise QkdbedError(f"internal: WS {m.ws:.2f} > RP {m.rp:.2f} (solver gap?)")
