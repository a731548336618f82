"""The deterministic-equivalent MILP of seed 001's two-stage stochastic program (planning.md A.4), in PuLP.

First stage: one route per request (routing binaries) and pooled QKD/KM wavelength reservations per link.
Second stage, per scenario: wavelengths bought on demand so that reserved + on-demand covers the demand of every
request routed over the link. Two routing formulations give the same optimum when the k-path set contains it:
the seed's arc form (binaries per request and arc, flow balance, "one outgoing route per node") and a path form
over the k shortest paths by km, much smaller for many requests (A.4, A.8).

Utilised wavelengths: with no utilisation price, "utilised <= reserved, utilised + on-demand >= demand" is
equivalent to "reserved + on-demand >= demand" with utilised = min(reserved, demand) (A.5-1); the compact form is
the default and the explicit one is built when `explicit_utilisation` is set or a utilisation price is given.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass

import numpy as np
import pulp

from ..errors import QkdbedError
from ..network import Topology
from .fl_eval import FirstStage, route_links
from .fl_params import FLParams, link_costs
from .fl_paths import k_shortest_paths
from .fl_requests import Request, ScenarioSet

_INT_TOL = 1e-6


@dataclass
class SolveResult:
    first: FirstStage
    objective: float
    proven_optimal: bool
    solver: str
    formulation: str
    integer_wavelengths: bool
    time_s: float
    n_variables: int
    n_binaries: int
    n_constraints: int


def make_solver(params: FLParams):
    """CBC (bundled with PuLP) unless HiGHS is asked for or, with `auto`, installed (highspy)."""
    if params.solver in ("auto", "highs"):
        highs = pulp.HiGHS(msg=False, timeLimit=params.time_limit_s, gapRel=params.gap_rel,
                           threads=params.threads)
        if highs.available():
            return "highs", highs
        if params.solver == "highs":
            raise QkdbedError("solver 'highs' requested but HiGHS is not available (pip install highspy)")
    return "cbc", pulp.PULP_CBC_CMD(msg=False, timeLimit=params.time_limit_s, gapRel=params.gap_rel,
                                    threads=params.threads)


def choose_formulation(params: FLParams, n_requests: int) -> str:
    if params.formulation != "auto":
        return params.formulation
    return "path" if n_requests > params.path_formulation_above else "arc"


def _check_route(topology: Topology, req: Request, route: list[str]) -> None:
    if not route or route[0] != req.src or route[-1] != req.dst or len(set(route)) != len(route):
        raise QkdbedError(f"request {req.name!r}: fixed route {route} is not a loop-free path {req.src}->{req.dst}")
    for a, b in zip(route, route[1:]):
        topology.link(a, b)


def _fits(topology: Topology, route: list[str], need_q: float, need_k: float, params: FLParams) -> bool:
    for a, b in zip(route, route[1:]):
        caps = params.caps_for(topology.link(a, b))
        if (caps.qkd_total is not None and need_q > caps.qkd_total) or \
                (caps.km_total is not None and need_k > caps.km_total):
            return False
    return True


def _fitting_path_exists(topology: Topology, req: Request, need_q: float, need_k: float, params: FLParams) -> bool:
    """Is there any src->dst path on links whose total capacity holds this request's peak alone?"""
    seen, stack = {req.src}, [req.src]
    while stack:
        v = stack.pop()
        if v == req.dst:
            return True
        for nb in topology.neighbours(v):
            if nb not in seen and _fits(topology, [v, nb], need_q, need_k, params):
                seen.add(nb)
                stack.append(nb)
    return False


def _check_single_request_capacity(topology, requests, scenarios, params, candidates) -> None:
    """Name the first request whose own peak demand exceeds the capacity of every route it may take."""
    n = scenarios.links_needed(params.max_key_rate_bps)
    for k, req in enumerate(requests):
        peak = int(n[:, k].max())
        need_q, need_k = params.qkd_wavelengths_per_link * peak, params.km_wavelengths_per_link * peak
        ok = (any(_fits(topology, p, need_q, need_k, params) for p in candidates[req.name])
              if candidates is not None else _fitting_path_exists(topology, req, need_q, need_k, params))
        if not ok:
            raise QkdbedError(
                f"request {req.name!r}: peak demand {req.max_bps:g} bps needs {need_q} QKD + {need_k} KM wavelengths"
                f" on every link, more than the capacity of any route from {req.src} to {req.dst}")


def solve_sp(topology: Topology, requests: list[Request], scenarios: ScenarioSet, params: FLParams, *,
             fixed_routes: dict[str, list[str]] | None = None, total_qkd_reserved: int | None = None,
             total_km_reserved: int | None = None, integer: bool | None = None,
             diagnose: bool = True) -> SolveResult:
    # PuLP 3.x warns about the pre-4.0 API used here on purpose (it is what pulp>=2.8 supports).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return _solve_sp(topology, requests, scenarios, params, fixed_routes=fixed_routes,
                         total_qkd_reserved=total_qkd_reserved, total_km_reserved=total_km_reserved,
                         integer=integer, diagnose=diagnose)


def _solve_sp(topology: Topology, requests: list[Request], scenarios: ScenarioSet, params: FLParams, *,
              fixed_routes: dict[str, list[str]] | None, total_qkd_reserved: int | None,
              total_km_reserved: int | None, integer: bool | None, diagnose: bool) -> SolveResult:
    """Solve the deterministic equivalent over `scenarios`; with one scenario this is the deterministic problem.

    `fixed_routes` pins every request's route (Fig. 3(c)); `total_*_reserved` add the sweep constraints of
    Fig. 3(a)/(b) (sum of reservations over all links fixed). Raises QkdbedError naming a request when infeasible.
    """
    sweep = total_qkd_reserved is not None or total_km_reserved is not None
    if integer is None:
        integer = params.integer_wavelengths == "true" or (params.integer_wavelengths == "auto" and sweep)
    formulation = "fixed" if fixed_routes is not None else choose_formulation(params, len(requests))
    unknown = [k for k in params.link_caps if k not in {f"{l.a}-{l.b}" for l in topology.links}
               | {f"{l.b}-{l.a}" for l in topology.links}]
    if unknown:
        raise QkdbedError(f"link_caps: no link {unknown[0]!r} in topology {topology.name}")
    candidates: dict[str, list[list[str]]] | None = None
    if formulation == "fixed":
        candidates = {}
        for req in requests:
            if req.name not in fixed_routes:
                raise QkdbedError(f"request {req.name!r}: no fixed route given")
            _check_route(topology, req, fixed_routes[req.name])
            candidates[req.name] = [list(fixed_routes[req.name])]
    elif formulation == "path":
        candidates = {r.name: k_shortest_paths(topology, r.src, r.dst, params.candidate_paths) for r in requests}
    _check_single_request_capacity(topology, requests, scenarios, params, candidates)
    for total, tag, attr in ((total_qkd_reserved, "QKD", "qkd_reserved"), (total_km_reserved, "KM", "km_reserved")):
        caps = [getattr(params.caps_for(l), attr) for l in topology.links]
        if total is not None and None not in caps and sum(caps) < total:
            raise QkdbedError(f"cannot reserve {total} {tag} wavelengths in total: the reservation caps allow "
                              f"{sum(caps)}")

    costs = link_costs(topology, params)
    n_needed = scenarios.links_needed(params.max_key_rate_bps)
    prob = pulp.LpProblem("fl_provision", pulp.LpMinimize)
    use: dict[str, list[tuple[int, pulp.LpAffineExpression]]] = {l.name: [] for l in topology.links}
    route_vars: dict[str, object] = {}
    n_bin = 0
    if candidates is not None:
        for k, req in enumerate(requests):
            ys = [pulp.LpVariable(f"y_{k}_{j}", cat=pulp.LpBinary) for j in range(len(candidates[req.name]))]
            n_bin += len(ys)
            prob += pulp.lpSum(ys) == 1, f"one_route_{k}"
            per_link: dict[str, list] = {}
            for y, path in zip(ys, candidates[req.name]):
                for e in route_links(topology, path):
                    per_link.setdefault(e, []).append(y)
            for e, ys_e in per_link.items():
                use[e].append((k, pulp.lpSum(ys_e)))
            route_vars[req.name] = ys
    else:
        for k, req in enumerate(requests):
            x = {}
            for l in topology.links:
                x[(l.a, l.b)] = pulp.LpVariable(f"x_{k}_{l.a}_{l.b}", cat=pulp.LpBinary)
                x[(l.b, l.a)] = pulp.LpVariable(f"x_{k}_{l.b}_{l.a}", cat=pulp.LpBinary)
                use[l.name].append((k, x[(l.a, l.b)] + x[(l.b, l.a)]))
            n_bin += len(x)
            for v in topology.nodes:
                out = pulp.lpSum(x[(v, nb)] for nb in topology.neighbours(v))
                inn = pulp.lpSum(x[(nb, v)] for nb in topology.neighbours(v))
                rhs = 1 if v == req.src else (-1 if v == req.dst else 0)
                prob += out - inn == rhs, f"flow_{k}_{v}"  # seed's flow balance (source, destination, transit)
                prob += out <= 1, f"one_out_{k}_{v}"  # seed's "no loop": one outgoing route per node
                prob += inn <= 1, f"one_in_{k}_{v}"
            route_vars[req.name] = x

    cat = pulp.LpInteger if integer else pulp.LpContinuous
    explicit_u = params.explicit_utilisation or params.utilisation_price_per_wavelength_km > 0
    mq, mk = params.qkd_wavelengths_per_link, params.km_wavelengths_per_link
    p = scenarios.probs
    rq, rk, first_terms, second_terms = {}, {}, [], []
    for i, l in enumerate(topology.links):
        e, c, caps = l.name, costs[l.name], params.caps_for(l)
        rq[e] = pulp.LpVariable(f"rq_{i}", 0, caps.qkd_reserved, cat)
        rk[e] = pulp.LpVariable(f"rk_{i}", 0, caps.km_reserved, cat)
        first_terms += [c.alpha_r * rq[e], c.beta_r * rk[e]]
        if not use[e]:
            continue
        for w in range(len(scenarios)):
            load = pulp.lpSum(int(n_needed[w, k]) * u for k, u in use[e] if n_needed[w, k])
            oq = pulp.LpVariable(f"oq_{i}_{w}", 0, None, cat)
            ok = pulp.LpVariable(f"ok_{i}_{w}", 0, None, cat)
            second_terms += [p[w] * c.alpha_o * oq, p[w] * c.beta_o * ok]
            for tag, r, o, m, cap in (("q", rq[e], oq, mq, caps.qkd_total), ("k", rk[e], ok, mk, caps.km_total)):
                if explicit_u:
                    u = pulp.LpVariable(f"u{tag}_{i}_{w}", 0, None, cat)
                    prob += u <= r, f"util_le_res_{tag}_{i}_{w}"
                    prob += u + o >= m * load, f"meet_{tag}_{i}_{w}"
                    if cap is not None:
                        prob += u + o <= cap, f"cap_{tag}_{i}_{w}"
                    if c.util_per_wavelength:
                        second_terms.append(p[w] * c.util_per_wavelength * u)
                else:
                    prob += r + o >= m * load, f"meet_{tag}_{i}_{w}"
                    if cap is not None:  # utilised + on-demand = demand at the optimum, so this bounds demand
                        prob += m * load <= cap, f"cap_{tag}_{i}_{w}"
    if total_qkd_reserved is not None:
        prob += pulp.lpSum(rq.values()) == total_qkd_reserved, "sweep_qkd_reserved"
    if total_km_reserved is not None:
        prob += pulp.lpSum(rk.values()) == total_km_reserved, "sweep_km_reserved"
    prob += pulp.lpSum(first_terms) + pulp.lpSum(second_terms)

    solver_name, solver = make_solver(params)
    t0 = time.perf_counter()
    prob.solve(solver)
    elapsed = time.perf_counter() - t0
    if prob.status != pulp.LpStatusOptimal or prob.sol_status not in (1, 2):
        if prob.status == pulp.LpStatusInfeasible or prob.sol_status == -1:
            if diagnose:
                _diagnose_infeasible(topology, requests, scenarios, params, fixed_routes,
                                     total_qkd_reserved, total_km_reserved)
            raise QkdbedError("the requests cannot all be served within the link capacities (infeasible)")
        raise QkdbedError(f"solver {solver_name} found no plan within {params.time_limit_s:g} s "
                          f"(status {pulp.LpStatus[prob.status]}); raise time_limit_s or use the path formulation")

    def val(v) -> float:
        return float(v.varValue or 0.0)

    res_q = {e: val(v) for e, v in rq.items()}
    res_k = {e: val(v) for e, v in rk.items()}
    if not integer and any(abs(x - round(x)) > _INT_TOL for x in [*res_q.values(), *res_k.values()]):
        return _solve_sp(topology, requests, scenarios, params, fixed_routes=fixed_routes,
                        total_qkd_reserved=total_qkd_reserved, total_km_reserved=total_km_reserved,
                        integer=True, diagnose=diagnose)
    res_q = {e: float(round(x)) for e, x in res_q.items()}
    res_k = {e: float(round(x)) for e, x in res_k.items()}
    routes = {}
    for req in requests:
        rv = route_vars[req.name]
        if candidates is not None:
            routes[req.name] = list(candidates[req.name][int(np.argmax([val(y) for y in rv]))])
        else:
            routes[req.name] = _walk(rv, req, val)
    return SolveResult(FirstStage(routes, res_q, res_k), float(pulp.value(prob.objective) or 0.0),
                       prob.sol_status == 1, solver_name, formulation, integer, elapsed,
                       len(prob.variables()), n_bin, prob.numConstraints())


def _walk(x: dict, req: Request, val) -> list[str]:
    """Follow the chosen arcs from the source; a detached cycle (never cheaper with positive prices) is ignored."""
    nxt = {a: b for (a, b), v in x.items() if val(v) > 0.5}
    route = [req.src]
    while route[-1] != req.dst:
        step = nxt.get(route[-1])
        if step is None or step in route:
            raise QkdbedError(f"request {req.name!r}: the solver returned no connected route (internal error)")
        route.append(step)
    return route


def _diagnose_infeasible(topology, requests, scenarios, params, fixed_routes, tq, tk) -> None:
    """Add requests one at a time and name the first that makes the plan infeasible (runs only on failure)."""
    for j in range(1, len(requests) + 1):
        sub = ScenarioSet(scenarios.rates_bps[:, :j], scenarios.probs, scenarios.mode)
        try:
            solve_sp(topology, requests[:j], sub, params, fixed_routes=fixed_routes, total_qkd_reserved=tq,
                     total_km_reserved=tk, diagnose=False)
        except QkdbedError:
            req = requests[j - 1]
            others = f" together with the {j - 1} request(s) before it" if j > 1 else ""
            raise QkdbedError(f"request {req.name!r}: cannot be served{others} within the link capacities"
                              f" (peak {req.max_bps:g} bps from {req.src} to {req.dst})") from None
