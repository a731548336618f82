"""QKD resource provisioning for federated learning under uncertain key demand (seed 001; planning.md Part A).

`plan_fl` is the one entry point: it solves the two-stage stochastic program (RP), the baselines (EV, CO-QBN)
and the wait-and-see bound, and returns everything a report needs. The pieces live in small modules:
fl_params (prices, caps, choices), fl_requests (requests, scenarios), fl_model (the MILP), fl_eval (closed-form
cost of a fixed plan), fl_baselines (EV, CO-QBN, WS, VSS, EVPI), fl_figures (the seed's figures).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..network import Topology
from .fl_baselines import CoQbn, Measures, baseline_cost, co_qbn, expected_value, wait_and_see
from .fl_eval import ITEMS, Evaluation, evaluate, route_links
from .fl_model import SolveResult, solve_sp
from .fl_params import FLParams, link_costs, params_to_dict
from .fl_requests import Request, ScenarioSet, build_scenarios, validate_requests

__all__ = ["FLPlan", "plan_fl", "plan_to_dict", "format_plan", "export_recipe"]


@dataclass
class FLPlan:
    topology: Topology
    topology_ref: str
    requests: list[Request]
    scenarios: ScenarioSet
    params: FLParams
    rp: SolveResult
    rp_eval: Evaluation
    ev: SolveResult | None
    ev_eval: Evaluation | None
    co: CoQbn | None
    ws: float | None
    measures: Measures
    out_of_sample: dict | None = None


def plan_fl(topology: Topology, requests: list[Request], scenarios: ScenarioSet, params: FLParams, *,
            topology_ref: str | None = None, baselines: bool = True, ws: bool = True,
            out_of_sample: int = 0, oos_seed: int = 1) -> FLPlan:
    validate_requests(requests, topology)
    costs = link_costs(topology, params)
    rp = solve_sp(topology, requests, scenarios, params)
    rp_eval = evaluate(topology, requests, rp.first, scenarios, costs, params)
    ev = ev_eval = co = None
    ws_value = None
    if baselines:
        ev, ev_eval = expected_value(topology, requests, scenarios, params)
        co = co_qbn(topology, requests, scenarios, params)
    if ws:
        ws_value = wait_and_see(topology, requests, scenarios, params)[0]
    measures = Measures(rp=rp_eval.total, eev=baseline_cost(ev_eval), ws=ws_value,
                        co_qbn=baseline_cost(co.evaluation) if co else None)
    plan = FLPlan(topology, topology_ref or topology.name, requests, scenarios, params, rp, rp_eval, ev, ev_eval,
                  co, ws_value, measures)
    if out_of_sample:
        plan.out_of_sample = _out_of_sample(plan, out_of_sample, oos_seed)
    return plan


def _out_of_sample(plan: FLPlan, n: int, seed: int) -> dict:
    """Each method's first stage priced on n fresh scenarios: mean and a 95 % normal interval (SAA noise)."""
    fresh = build_scenarios(plan.requests, "saa", n, seed)
    costs = link_costs(plan.topology, plan.params)
    out = {}
    for label, first in (("RP", plan.rp.first), ("EV", plan.ev.first if plan.ev else None),
                         ("CO_QBN", plan.co.first if plan.co else None)):
        if first is None:
            continue
        ev = evaluate(plan.topology, plan.requests, first, fresh, costs, plan.params)
        c = ev.scenario_costs
        half = 1.96 * float(c.std(ddof=1)) / np.sqrt(len(c)) if len(c) > 1 else 0.0
        out[label] = {"mean": float(c.mean()), "ci95_half_width": half, "feasible": ev.feasible}
    return {"scenarios": n, "seed": seed, "costs": out}


# -- reporting -------------------------------------------------------------------------------------------------

def _link_rows(plan: FLPlan) -> list[dict]:
    e_ = plan.rp_eval
    p = plan.scenarios.probs
    costs = link_costs(plan.topology, plan.params)
    rows = []
    for l in plan.topology.links:
        e = l.name
        rq, rk = plan.rp.first.reserved_qkd[e], plan.rp.first.reserved_km[e]
        if not (rq or rk or e_.demand_qkd[e].any()):
            continue
        rows.append({"link": e, "length_km": l.distance_km, "segments": costs[e].segments,
                     "reserved_qkd_wavelengths": rq, "reserved_km_wavelengths": rk,
                     "demand_qkd_max": float(e_.demand_qkd[e].max()), "demand_km_max": float(e_.demand_km[e].max()),
                     "expected_ondemand_qkd": float(p @ e_.ondemand_qkd[e]),
                     "expected_ondemand_km": float(p @ e_.ondemand_km[e]),
                     "ondemand_probability": float(p @ ((e_.ondemand_qkd[e] + e_.ondemand_km[e]) > 0))})
    return rows


def plan_to_dict(plan: FLPlan) -> dict:
    rp = plan.rp
    d = {
        "planner": "qkdbed plan fl (seed 001, two-stage stochastic program; planning.md Part A)",
        "topology": plan.topology_ref,
        "params": params_to_dict(plan.params),
        "requests": [{"name": r.name, "src": r.src, "dst": r.dst, "rates_bps": list(r.rates_bps),
                      "probs": list(r.probs), "mean_bps": r.mean_bps} for r in plan.requests],
        "scenarios": {"mode": plan.scenarios.mode, "count": len(plan.scenarios)},
        "solver": {"name": rp.solver, "formulation": rp.formulation, "proven_optimal": rp.proven_optimal,
                   "integer_wavelengths": rp.integer_wavelengths, "time_s": round(rp.time_s, 3),
                   "variables": rp.n_variables, "binaries": rp.n_binaries, "constraints": rp.n_constraints},
        "routes": {name: route for name, route in rp.first.routes.items()},
        "links": _link_rows(plan),
        "cost": {"first_stage": plan.rp_eval.first_stage_cost,
                 "second_stage_expected": plan.rp_eval.second_stage_cost, "total": plan.rp_eval.total,
                 "solver_objective": rp.objective,
                 "by_item": {i: {"first_stage": plan.rp_eval.items[i][0], "second_stage": plan.rp_eval.items[i][1]}
                             for i in ITEMS},
                 "device_counts": {i: {"reserved": plan.rp_eval.counts[i][0],
                                       "expected_on_demand": plan.rp_eval.counts[i][1]}
                                   for i in ("mdi_qtx", "mdi_qrx", "lkm", "si", "mux_pair")}},
        "reserved_total": {"qkd_wavelengths": sum(rp.first.reserved_qkd.values()),
                           "km_wavelengths": sum(rp.first.reserved_km.values())},
        "measures": plan.measures.to_dict(),
    }
    if plan.ev_eval is not None:
        d["expected_value_solution"] = {"routes": plan.ev.first.routes,
                                        "first_stage": plan.ev_eval.first_stage_cost,
                                        "second_stage_expected": plan.ev_eval.second_stage_cost,
                                        "feasible": plan.ev_eval.feasible}
    if plan.co is not None:
        d["co_qbn"] = ({"blocked": plan.co.blocked} if plan.co.first is None else
                       {"routes": plan.co.first.routes, "first_stage": plan.co.evaluation.first_stage_cost,
                        "second_stage_expected": plan.co.evaluation.second_stage_cost,
                        "feasible": plan.co.evaluation.feasible})
    if plan.out_of_sample:
        d["out_of_sample"] = plan.out_of_sample
    return d


def _money(x: float | None) -> str:
    if x is None:
        return "n/a"
    return "infeasible" if not np.isfinite(x) else f"{x:,.0f} $"


def format_plan(plan: FLPlan) -> str:
    rp, ev = plan.rp, plan.rp_eval
    lines = [f"FL key provisioning on {plan.topology.name}: {len(plan.requests)} request(s), "
             f"{len(plan.scenarios)} scenario(s) ({plan.scenarios.mode}); {rp.solver} {rp.formulation} formulation, "
             f"{rp.time_s:.2f} s{'' if rp.proven_optimal else ' (time limit: best found, not proven optimal)'}",
             "routes:"]
    for r in plan.requests:
        route = rp.first.routes[r.name]
        km = sum(plan.topology.link(a, b).distance_km for a, b in zip(route, route[1:]))
        lines.append(f"  {r.name:<12} {'-'.join(route)}  ({km:g} km; mean {r.mean_bps:g} bps, "
                     f"max {r.max_bps:g} bps)")
    lines.append("reservations per link (QKD / KM wavelengths; expected on-demand; P(on-demand)):")
    for row in _link_rows(plan):
        lines.append(f"  {row['link']:<8} {row['length_km']:>6g} km  reserved {row['reserved_qkd_wavelengths']:>4g} /"
                     f" {row['reserved_km_wavelengths']:<4g} on-demand {row['expected_ondemand_qkd']:>6.2f} / "
                     f"{row['expected_ondemand_km']:<6.2f} p={row['ondemand_probability']:.2f}")
    lines.append(f"reserved in total: {sum(rp.first.reserved_qkd.values()):g} QKD, "
                 f"{sum(rp.first.reserved_km.values()):g} KM wavelengths")
    lines.append(f"cost: first stage {_money(ev.first_stage_cost)}, expected second stage "
                 f"{_money(ev.second_stage_cost)}, total {_money(ev.total)}")
    m = plan.measures
    lines.append(f"compare: RP {_money(m.rp)} | EEV {_money(m.eev)} | CO-QBN {_money(m.co_qbn)} | "
                 f"WS {_money(m.ws)}")
    parts = []
    if m.vss is not None and np.isfinite(m.vss):
        parts.append(f"VSS {_money(m.vss)} ({m.reduction_vs_ev_pct:.2f} % of EEV)")
    if m.evpi is not None:
        parts.append(f"EVPI {_money(m.evpi)}")
    if m.reduction_vs_co_qbn_pct is not None:
        parts.append(f"SP saves {m.reduction_vs_co_qbn_pct:.2f} % vs CO-QBN")
    if plan.co is not None and plan.co.blocked:
        parts.append(f"CO-QBN blocks {', '.join(plan.co.blocked)}")
    if parts:
        lines.append("  " + "; ".join(parts))
    return "\n".join(lines)


def export_recipe(plan: FLPlan, rate: str = "mean", start_s: float = 5.0) -> dict:
    """DRAFT: the plan as a testbed recipe fragment (flows on the planned routes at the planned key rates).

    The simulator's recipe format is still being designed; this function is the only place that knows it.
    rate = "mean" (expected requirement) or "max" (the peak the plan provisions for in every scenario).
    """
    flows, routes = [], {}
    for r in plan.requests:
        route = plan.rp.first.routes[r.name]
        flows.append({"src": r.src, "dst": r.dst, "rate_bps": float(r.mean_bps if rate == "mean" else r.max_bps),
                      "start_s": start_s})
        routes[f"{r.src}->{r.dst}"] = list(route)
    return {"topology": plan.topology_ref, "traffic": {"flows": flows}, "routes": routes}


def plan_links(plan: FLPlan, name: str) -> list[str]:
    return route_links(plan.topology, plan.rp.first.routes[name])
