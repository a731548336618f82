"""FL provisioning MILP (seed 001): hand-worked small networks, the USNET oracle, and the SP bounds as properties."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from testbed.network import Link, Node, Topology, load_topology
from testbed.plan.fl_baselines import co_qbn, expected_value, wait_and_see
from testbed.plan.fl_eval import evaluate
from testbed.plan.fl_model import solve_sp
from testbed.plan.fl_params import Caps, FLParams, link_costs, params_from_dict
from testbed.plan.fl_paths import k_shortest_paths, path_km
from testbed.plan.fl_provision import plan_fl
from testbed.plan.fl_requests import ScenarioSet, build_scenarios, make_request

P = FLParams(time_limit_s=30)


def topo(edges: list[tuple[str, str, float]]) -> Topology:
    names = sorted({n for a, b, _ in edges for n in (a, b)})
    return Topology("t", {n: Node(n, "user") for n in names}, [Link(a, b, distance_km=d) for a, b, d in edges])


def one(rate_bps: float) -> list[float]:
    return [rate_bps]


# -- hand-worked: a line ----------------------------------------------------------------------------------------
# A -100 km- B -200 km- C, S(160 km) = 1 kbps. Devices of one MDI segment at reservation prices:
# 2 QTx (3000) + 1 QRx (2250) + LKM (1200) + SI (150) + 2 MUX pairs (600) = 7200 $.
# One parallel QKD link (+ its KM link) costs, at reservation prices:
#   A-B: 1 segment: 7200 + 3 wavelengths x 100 km x 1 $ + 1 x 100 km x 1 $ = 7600
#   B-C: 2 segments (200/160 -> 2): 14400 + 600 + 200 = 15200
LINE = [("A", "B", 100.0), ("B", "C", 200.0)]


def test_line_deterministic_cost_by_hand():
    t = topo(LINE)
    reqs = [make_request("A", "C", one(2000))]  # N = 2 parallel links
    res = solve_sp(t, reqs, build_scenarios(reqs, "product"), P)
    assert res.first.routes["A->C"] == ["A", "B", "C"]
    assert res.objective == pytest.approx(2 * (7600 + 15200))  # 45,600
    assert res.first.reserved_qkd == {"A-B": 6, "B-C": 6}
    assert res.first.reserved_km == {"A-B": 2, "B-C": 2}


def test_line_two_scenarios_newsvendor_by_hand():
    # R = 1 kbps (p 0.8) or 3 kbps (p 0.2): QKD demand 3 or 9 wavelengths per link, KM 1 or 3.
    # Per-wavelength prices: alpha_r(A-B) = 7500/3, alpha_o(A-B) = (26300 + 1200)/3 = 27500/3 (ratio 0.273);
    # B-C: 15000/3 and (52600 + 2400)/3 = 55000/3; KM beta = 1 $/km reserved, 4 $/km on demand (ratio 0.25).
    # Reserving the top level pays only if P(top) >= ratio; 0.2 < 0.25 < 0.273, so reserve the low level:
    # first stage 3 x (2500 + 5000) + 1 x (100 + 200) = 22,800;
    # second stage 0.2 x [6 x 27500/3 + 6 x 55000/3 + 2 x 400 + 2 x 800] = 0.2 x 167,400 = 33,480.
    t = topo(LINE)
    reqs = [make_request("A", "C", [1000, 3000], [0.8, 0.2])]
    sc = build_scenarios(reqs, "product")
    res = solve_sp(t, reqs, sc, P)
    assert res.first.reserved_qkd == {"A-B": 3, "B-C": 3}
    assert res.first.reserved_km == {"A-B": 1, "B-C": 1}
    assert res.objective == pytest.approx(22_800 + 33_480)
    ev = evaluate(t, reqs, res.first, sc, link_costs(t, P), P)
    assert ev.first_stage_cost == pytest.approx(22_800)
    assert ev.second_stage_cost == pytest.approx(33_480)
    # The item breakdown adds up to the same totals.
    assert sum(v[0] for v in ev.items.values()) == pytest.approx(22_800)
    assert sum(v[1] for v in ev.items.values()) == pytest.approx(33_480)


# -- hand-worked: a triangle where the cheapest route is not the km-shortest ----------------------------------------
# A-B 170 km, B-C 170 km (2 segments each), A-C 400 km (3 segments). For 1 kbps (N = 1):
#   via B: 4 segments x 7200 + 4 wavelengths x 340 km = 28,800 + 1,360 = 30,160
#   direct: 3 segments x 7200 + 4 x 400 km = 21,600 + 1,600 = 23,200   <- the MILP's choice
# CO-QBN routes by km (340 < 400) and pays 30,160.
TRIANGLE = [("A", "B", 170.0), ("B", "C", 170.0), ("A", "C", 400.0)]


@pytest.mark.parametrize("formulation", ["arc", "path"])
def test_triangle_route_and_cost_by_hand(formulation):
    t = topo(TRIANGLE)
    reqs = [make_request("A", "C", one(1000))]
    sc = build_scenarios(reqs, "product")
    res = solve_sp(t, reqs, sc, replace(P, formulation=formulation))
    assert res.first.routes["A->C"] == ["A", "C"]
    assert res.objective == pytest.approx(23_200)
    co = co_qbn(t, reqs, sc, P)
    assert co.first.routes["A->C"] == ["A", "B", "C"]
    assert co.evaluation.total == pytest.approx(30_160)


def test_triangle_capacity_forces_detour():
    # Direct link limited to 3 QKD wavelengths in total: a 2 kbps request (6 wavelengths) must go via B:
    # 2 x 30,160 = 60,320.
    t = topo(TRIANGLE)
    params = replace(P, link_caps={"A-C": Caps(qkd_total=3)})
    reqs = [make_request("A", "C", one(2000))]
    res = solve_sp(t, reqs, build_scenarios(reqs, "product"), params)
    assert res.first.routes["A->C"] == ["A", "B", "C"]
    assert res.objective == pytest.approx(60_320)


def test_explicit_utilisation_variables_give_same_optimum():
    t = topo(LINE + [("A", "C", 400.0)])
    reqs = [make_request("A", "C", [1000, 2000, 4000], [0.5, 0.3, 0.2]), make_request("B", "C", [1000, 3000])]
    sc = build_scenarios(reqs, "product")
    a = solve_sp(t, reqs, sc, P)
    b = solve_sp(t, reqs, sc, replace(P, explicit_utilisation=True))
    assert a.objective == pytest.approx(b.objective)


# -- the USNET oracle of planning.md A.5-6 ------------------------------------------------------------------------

def oracle_requests():
    return [make_request(s, d, [1000, 3000, 5000]) for s, d in (("1", "23"), ("2", "4"), ("5", "10"))]


def test_usnet_oracle_rp_eev_ws():
    t = load_topology("usnet-24")
    reqs = oracle_requests()
    plan = plan_fl(t, reqs, build_scenarios(reqs, "correlated"), P)
    assert plan.rp.first.routes == {"1->23": ["1", "6", "9", "12", "16", "22", "23"], "2->4": ["2", "3", "4"],
                                   "5->10": ["5", "8", "10"]}
    m = plan.measures
    assert m.rp == pytest.approx(2_375_000)
    assert plan.rp_eval.second_stage_cost == pytest.approx(0)
    assert sum(plan.rp.first.reserved_qkd.values()) == 150
    assert sum(plan.rp.first.reserved_km.values()) == 50
    assert m.eev == pytest.approx(2_590_000)
    assert m.vss == pytest.approx(215_000)
    assert m.ws == pytest.approx(1_425_000)
    assert m.evpi == pytest.approx(950_000)
    assert m.co_qbn == pytest.approx(2_590_000)


def test_usnet_fixed_routes_with_caps_kink():
    # planning.md A.8 Fig. 3(c): caps 15 QKD / 3 KM reserved per link, R = 7 kbps, 10 link uses:
    # reserved QKD 150 (cap), KM 30 (cap); on demand QKD 30 x (7 - 5) = 60, KM 10 x (7 - 3) = 40.
    t = load_topology("usnet-24")
    reqs = [make_request(s, d, one(7000)) for s, d in (("1", "23"), ("2", "4"), ("5", "10"))]
    routes = {r.name: t.path(r.src, r.dst, "km") for r in reqs}
    params = replace(P, caps=Caps(qkd_reserved=15, km_reserved=3))
    sc = build_scenarios(reqs, "product")
    res = solve_sp(t, reqs, sc, params, fixed_routes=routes)
    ev = evaluate(t, reqs, res.first, sc, link_costs(t, params), params)
    assert sum(res.first.reserved_qkd.values()) == 150
    assert sum(res.first.reserved_km.values()) == 30
    assert sum(float(v.sum()) for v in ev.ondemand_qkd.values()) == 60
    assert sum(float(v.sum()) for v in ev.ondemand_km.values()) == 40


def test_sweep_constraint_minimum_at_150():
    t = load_topology("usnet-24")
    reqs = oracle_requests()
    sc = build_scenarios(reqs, "correlated")
    at = {w: solve_sp(t, reqs, sc, P, total_qkd_reserved=w, total_km_reserved=50).objective for w in (135, 150, 165)}
    assert at[150] == pytest.approx(2_375_000)
    assert at[135] > at[150] < at[165]


def test_k_shortest_paths_usnet():
    t = load_topology("usnet-24")
    paths = k_shortest_paths(t, "1", "23", 5)
    assert paths[0] == ["1", "6", "9", "12", "16", "22", "23"] and path_km(t, paths[0]) == 5600
    kms = [path_km(t, p) for p in paths]
    assert len(paths) == 5 and kms == sorted(kms) and len({tuple(p) for p in paths}) == 5
    assert all(len(set(p)) == len(p) for p in paths)


def test_params_from_yaml_mapping():
    p = params_from_dict({"max_key_rate_bps": 2000, "caps": {"qkd_reserved": 15},
                          "reservation_prices": {"mdi_qtx": 1000}}, "x.yaml")
    assert p.max_key_rate_bps == 2000 and p.caps.qkd_reserved == 15 and p.caps.km_reserved is None
    assert p.reservation.mdi_qtx == 1000 and p.reservation.mdi_qrx == 2250
    assert p.parallel_links(4500) == 3


# -- properties over random small instances ------------------------------------------------------------------------

@st.composite
def instances(draw, max_levels: int = 3):
    n = draw(st.integers(3, 5))
    names = [f"N{i}" for i in range(n)]
    edges = {(names[i], names[draw(st.integers(0, i - 1))]) for i in range(1, n)}  # a random spanning tree
    for a, b in draw(st.lists(st.tuples(st.sampled_from(names), st.sampled_from(names)), max_size=3)):
        if a != b and (a, b) not in edges and (b, a) not in edges:
            edges.add((a, b))
    t = topo([(a, b, float(draw(st.integers(20, 500)))) for a, b in sorted(edges)])
    reqs = []
    for i in range(draw(st.integers(1, 3))):
        s, d = draw(st.lists(st.sampled_from(names), min_size=2, max_size=2, unique=True))
        levels = draw(st.lists(st.integers(0, 4), min_size=1, max_size=max_levels, unique=True))
        w = np.array(draw(st.lists(st.integers(1, 5), min_size=len(levels), max_size=len(levels))), float)
        reqs.append(make_request(s, d, [1000.0 * x for x in levels], list(w / w.sum()), name=f"r{i}"))
    return t, reqs


FAST = settings(max_examples=20, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@FAST
@given(instances(), st.sampled_from([None, 3, 6]))
def test_bounds_ws_le_rp_le_eev_and_co_qbn(inst, cap):
    t, reqs = inst
    params = replace(P, caps=Caps(qkd_reserved=cap, km_reserved=None if cap is None else cap // 3))
    sc = build_scenarios(reqs, "product")
    rp = solve_sp(t, reqs, sc, params)
    rp_eval = evaluate(t, reqs, rp.first, sc, link_costs(t, params), params)
    assert rp_eval.total == pytest.approx(rp.objective, rel=1e-6, abs=1e-6)  # closed form agrees with the MILP
    _, eev = expected_value(t, reqs, sc, params)
    ws, _ = wait_and_see(t, reqs, sc, params)
    co = co_qbn(t, reqs, sc, params)
    tol = 1e-6 * max(1.0, rp.objective)
    assert ws <= rp.objective + tol
    assert rp.objective <= eev.total + tol
    assert rp.objective <= co.evaluation.total + tol


@FAST
@given(instances(max_levels=1))
def test_single_scenario_sp_equals_deterministic(inst):
    t, reqs = inst
    sc = build_scenarios(reqs, "product")
    assert len(sc) == 1
    rp = solve_sp(t, reqs, sc, P)
    ws, _ = wait_and_see(t, reqs, sc, P)  # without caps: an independent cheapest-path computation
    _, eev = expected_value(t, reqs, sc, P)
    assert rp.objective == pytest.approx(ws, rel=1e-9, abs=1e-6)
    assert eev.total == pytest.approx(ws, rel=1e-9, abs=1e-6)
    assert rp_second_stage_zero(t, reqs, rp, sc)


def rp_second_stage_zero(t, reqs, rp, sc: ScenarioSet) -> bool:
    """Knowing the demand, everything is reserved at the cheaper price: no on-demand cost."""
    return evaluate(t, reqs, rp.first, sc, link_costs(t, P), P).second_stage_cost == pytest.approx(0)
