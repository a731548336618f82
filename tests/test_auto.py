"""AUTO (seed 000 Alg. 1) and CP-BFC (Alg. 2, 3): the LP against a general solver, hand-worked constraints, and
scenario properties the design guarantees (no loss, bounded queues, alternating PAUSE/RESUME, rates within the
LP's bounds, conserved keys)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from testbed import metrics as M
from testbed.node.frames import PAUSE, RESUME
from testbed.recipe import recipe_from_dict
from testbed.schemes import auto_lp as L
from testbed.schemes.auto import AutoRate, PAPER_DEFAULTS
from testbed.sim.run import simulate
from tests.test_sim_core import check_conservation


def _random_instance(rng: np.random.Generator) -> L.LPInput:
    T = 0.008
    C = float(rng.choice([0.002, 0.004, 0.008]))
    eps = float(rng.choice([0.0, 0.001]))
    a = float(rng.uniform(1, 300))  # messages/s
    a_bar = float(rng.uniform(1, 300))
    k = int(rng.integers(0, 60))
    Q_bar = float(rng.uniform(0, 20))
    # the averaged supply sits near the queue average, so that C1/C3 leave a usable interval about half the time
    S_bar = Q_bar + float(rng.normal(0, 1)) * ((T - C + eps) * a_bar + 0.05)
    return L.LPInput(T_s=T, C_s=C, eps_s=eps, k=k, Q=float(rng.integers(0, 50)),
                     A=a * T, a=a, Q_bar=Q_bar, a_bar=a_bar, S_bar=S_bar, D_bar_s=float(rng.uniform(0, 0.05)),
                     c4_max_rate=float(rng.uniform(-50, 3000)), c5_max_rate=float(rng.uniform(0, 6000)))


def test_closed_form_agrees_with_pulp_on_1000_random_lps():
    rng = np.random.default_rng(2024)
    verdicts = {True: 0, False: 0}
    bindings = set()
    n = 0
    while n < 1000:
        x = _random_instance(rng)
        lo, hi, _ = L.bounds(x)
        if abs(lo - hi) < 1e-5 * max(1.0, abs(lo), abs(hi)):
            continue  # a degenerate interval sits within solver tolerance: the verdict is not well defined
        n += 1
        cf = L.solve_closed_form(x)
        fast = L.closed_form_fast(x.T_s, x.C_s, x.eps_s, x.k, x.Q, x.A, x.a, x.Q_bar, x.a_bar, x.S_bar,
                                  x.D_bar_s, x.c4_max_rate, x.c5_max_rate)
        lp = L.solve_pulp(x)
        assert cf.feasible == lp.feasible == fast[3], (x, cf, lp)
        verdicts[cf.feasible] += 1
        if cf.feasible:
            bindings.add(cf.binding)
            # same optimum (objective) within 1e-6 relative, and the same point: the optimum is unique
            assert lp.objective == pytest.approx(cf.objective, rel=1e-6, abs=1e-9)
            assert lp.S == pytest.approx(cf.S, rel=1e-6, abs=1e-6)
            assert fast[0] == pytest.approx(cf.S, rel=1e-12, abs=1e-12)
    # the instances exercise both verdicts and interior as well as bound optima
    assert verdicts[True] > 100 and verdicts[False] > 100
    assert "target" in bindings and len(bindings) >= 4


def _x(**kw) -> L.LPInput:
    base = dict(T_s=0.008, C_s=0.008, eps_s=0.0, k=4, Q=10.0, A=1.0, a=125.0, Q_bar=2.0, a_bar=125.0, S_bar=1.0,
                D_bar_s=0.01, c4_max_rate=1e9, c5_max_rate=1e9)
    base.update(kw)
    return L.LPInput(**base)


def test_each_constraint_by_hand():
    # T = C = 8 ms, ε = 0, k = 4 events: (k+1) = 5
    x = _x()
    lo, hi, b = L.bounds(x)
    assert b["C1"] == pytest.approx(5 * 2.0 - 4 * 1.0)  # 5·(Q̄ - 0·ā) - 4·S̄ = 6
    assert b["C2"] == pytest.approx(125 * 0.008)  # s >= a: 1 message per slot
    assert b["C3"] == pytest.approx(5 * 2.0 - 4 * 1.0)  # with T = C, C3 equals C1: 6
    assert b["C6"] == pytest.approx(10 + 1)  # Q + A
    # C4: an elastic-window cap of 250 messages/s is 2 messages per 8 ms slot
    assert L.bounds(_x(c4_max_rate=250.0))[2]["C4"] == pytest.approx(2.0)
    # C5: 40 keys and 0.5 s to the next event: 80 messages/s = 0.64 per slot
    assert L.bounds(_x(c5_max_rate=80.0))[2]["C5"] == pytest.approx(0.64)
    # with T = C the interval is the single point 6 (C1 = C3) unless a storage bound cuts it
    r = L.solve_closed_form(x)
    assert r.feasible and r.S == pytest.approx(6.0) and r.lo == pytest.approx(6.0) and r.hi == pytest.approx(6.0)
    assert not L.solve_closed_form(_x(c4_max_rate=250.0)).feasible  # 6 > 2: storage refuses


def test_one_full_decision_by_hand():
    # T = 8 ms, C = 4 ms: C1 = 5·(3 - 0.004·100) - 4·2 = 5.0; C3 = 5·(3 + 0.004·100) - 8 = 9.0; C2 = 0.8;
    # C6: S <= Q + A = 6.8. So S lies in [5, 6.8].
    # S_D = Q + A - a((k+1)C - k D̄) = 6 + 0.8 - 100·(0.020 - 0.016) = 6.4, inside: the target is feasible
    x = _x(C_s=0.004, k=4, Q=6.0, A=0.8, a=100.0, Q_bar=3.0, a_bar=100.0, S_bar=2.0, D_bar_s=0.004)
    r = L.solve_closed_form(x)
    assert (r.lo, r.hi) == (pytest.approx(5.0), pytest.approx(6.8))
    assert L.bounds(x)[2]["C3"] == pytest.approx(9.0)
    assert r.S == pytest.approx(6.4) and r.binding == "target" and r.objective == pytest.approx(0.0, abs=1e-12)
    # D̄(t+T) = (4·0.004 + (6 - 6.4 + 0.8)/100)/5 = (0.016 + 0.004)/5 = 0.004 = C
    # a storage bound (C5) of 500 messages/s = 4 per slot is below C1's 5: infeasible
    assert not L.solve_closed_form(_x(**{**x.__dict__, "c5_max_rate": 500.0})).feasible
    # C5 of 1000 messages/s = 8 per slot leaves [5, 6.8] and the target 6.4
    assert L.solve_closed_form(_x(**{**x.__dict__, "c5_max_rate": 1000.0})).S == pytest.approx(6.4)
    # C5 of 700 messages/s = 5.6 per slot binds: S = 5.6
    r3 = L.solve_closed_form(_x(**{**x.__dict__, "c5_max_rate": 700.0}))
    assert r3.S == pytest.approx(5.6) and r3.binding == "C5"
    # a high delay history pushes the target above the interval: S_D = 6.8 - 100·(0.02 - 0.2) = 24.8 -> 6.8 (C6)
    r2 = L.solve_closed_form(_x(**{**x.__dict__, "D_bar_s": 0.05}))
    assert r2.S_D == pytest.approx(24.8) and r2.S == pytest.approx(6.8) and r2.binding == "C6"


def test_doe_definition_1_by_hand():
    from testbed.schemes.auto import PortAuto

    st = PortAuto()
    st.ev_amt = [200, 240, 280]
    st.sum_amt = 720
    # mean event = 240, last event 280: DoE = (L - 280)/240
    assert st.doe_paper(760) == pytest.approx(2.0)
    assert st.doe_paper(280) == pytest.approx(0.0)
    assert st.doe_paper(160) == pytest.approx(-0.5)  # below the last batch: the cliff (Definition 2)


def _mu_recipe(topology, flows, scheme="auto-cpbfc", profile="paper", duration_s=120, seed=1, params=None):
    return recipe_from_dict({"name": "auto", "topology": topology, "duration_s": duration_s, "seed": seed,
                             "scheme": {"name": scheme, "profile": profile, "params": params or {}},
                             "key_supply": {"model": "synthetic", "scale": 10},
                             "traffic": {"flows": flows}}, "test.yaml")


BARBELL_FLOWS = [
    {"name": "a", "src": "PC4", "dst": "PC6", "model": "cbr", "rate_bps": 1e6, "size_bits": 4e7, "start_s": 3},
    {"name": "b", "src": "PC3", "dst": "PC7", "model": "cbr", "rate_bps": 1e6, "size_bits": 4e7, "start_s": 30},
]
METRO_FLOWS = [{"name": f"{s}->{d}", "src": s, "dst": d, "model": "cbr", "rate_bps": 1e6, "size_bits": 8e7,
                "start_s": 5 if s in ("U1", "U4", "U7") else 40}
               for s, d in [("U1", "U4"), ("U2", "U5"), ("U3", "U6"), ("U4", "U7"), ("U5", "U8"), ("U6", "U9"),
                            ("U7", "U1"), ("U8", "U2"), ("U9", "U3")]]


class DecisionSpy:
    """Wraps AUTO's decision to record (S/T, lo, hi, feasible) of every decision of every port."""

    def __init__(self, monkeypatch):
        self.rows = []
        orig = AutoRate.decide
        spy = self

        def decide(rate_self, node, port, now, tick=True):
            orig(rate_self, node, port, now, tick)
            st = port.state.auto
            if st.last is not None and st.decisions:
                spy.rows.append((st.last, port.rate_bps))

        monkeypatch.setattr(AutoRate, "decide", decide)


def _poor_bottleneck(tmp_path) -> str:
    """barbell-7 whose PC1-PC2 link gets keys without the x10 scaling (~55 kbps): the relays' storage stays low,
    so the per-flow limits B = L/(|F|+1) are small and backpressure must act."""
    import yaml

    from testbed.network import load_topology

    d = load_topology("barbell-7").to_dict()
    for l in d["links"]:
        if {l["a"], l["b"]} == {"PC1", "PC2"}:
            l["key_supply"] = {"model": "synthetic", "scale": 1}
    f = tmp_path / "barbell-poor.yaml"
    f.write_text(yaml.safe_dump(d))
    return str(f)


@pytest.mark.parametrize("topology, flows", [("poor-barbell", BARBELL_FLOWS), ("barbell-7", BARBELL_FLOWS),
                                             ("china-metro-12", METRO_FLOWS)])
def test_auto_cpbfc_paper_guarantees(monkeypatch, tmp_path, topology, flows):
    if topology == "poor-barbell":
        topology = _poor_bottleneck(tmp_path)
    spy = DecisionSpy(monkeypatch)
    res = simulate(_mu_recipe(topology, flows, duration_s=120))
    log = res.log
    # no message is ever lost
    assert len(log["drops"]) == 0
    for f in log.flows:
        assert int(np.count_nonzero(log["deliveries"]["flow"] == f.fid)) > 0
    check_conservation(res)
    # PAUSE / RESUME alternate per (node, upstream, flow), starting with PAUSE
    c = log["control"]
    seqs: dict[tuple, list[int]] = {}
    for row in c[(c["kind"] == PAUSE) | (c["kind"] == RESUME)]:
        seqs.setdefault((int(row["node"]), int(row["peer"]), int(row["flow"])), []).append(int(row["kind"]))
    if "poor" in topology:
        assert len(seqs) >= 2, "the poor bottleneck must exercise backpressure"
    for key, kinds in seqs.items():
        assert kinds[0] == PAUSE
        assert all(kinds[i] != kinds[i + 1] for i in range(len(kinds) - 1)), key
    # per-flow queues never exceed their limits: the maximum overshoot of B seen at any enqueue is bounded by
    # what is already on the wire when the PAUSE leaves (one hop's worth at the upstream rate, a few messages)
    for node in res.nodes.values():
        for port in node.ports.values():
            assert port.state.bp.max_overshoot <= 3, (node.name, port.peer, port.state.bp.max_overshoot)
    # every decision's rate lies within the interval it was taken from: the LP's bounds when (3) is feasible, the
    # relaxed interval (storage and queue bounds kept) when not. With the paper's T = C and ε = 0, C1 and C3
    # coincide and the feasible set is one point, so many decisions are infeasible; the closing note reports it.
    assert len(spy.rows) > 5000
    T = PAPER_DEFAULTS["T_s"]
    for (lo, hi, ok), rate_bps in spy.rows:
        S = rate_bps / 4096 * T
        assert lo - 1e-6 <= S <= hi + 1e-6 or (hi < lo and ok is False)


def test_auto_cpbfc_original_profile_runs_and_conserves_keys():
    res = simulate(_mu_recipe("barbell-7", BARBELL_FLOWS, profile="original", duration_s=90))
    log = res.log
    check_conservation(res)
    assert len(log["drops"]) == 0  # zero loss by construction (blocked sources, no drop anywhere)
    # the code's rates are quantised by ms pacing and clamped to [10, 1000] kbps on ports carrying data
    rates = set()
    for node in res.nodes.values():
        for port in node.ports.values():
            if port.rate_bps:
                rates.add(round(port.rate_bps))
    ms_rates = {round(4096 / (k / 1000.0)) for k in range(1, 500)}
    assert rates <= ms_rates | {0}
    # returned probes set every source to the hard-coded 500 kbps (the probed value is ignored)
    for name in ("PC4", "PC3"):
        for flow in res.nodes[name].flows.values():
            assert flow.cc.rate_bps == 500_000.0
    # and release one message per int(4096/500)+1 = 9 ms: over a long window a source sends at most 455 kbps
    first = log["sends"][(log["sends"]["flow"] == 1) & (log["sends"]["node"] == log.node_index("PC4"))]
    t = first["t_s"]
    n = np.count_nonzero((t >= 10) & (t < 80))
    assert n * 4096 / 70 <= 4096 / 0.009 * 1.01 + 4096 * 200 / 70  # a drained queue of <= 200 may add a burst


def test_auto_alone_uses_plain_sources(monkeypatch):
    res = simulate(_mu_recipe("barbell-7", BARBELL_FLOWS, scheme="auto", duration_s=60))
    check_conservation(res)
    assert len(res.log["drops"]) == 0
    assert len(res.log["control"]) == 0  # no probes, no backpressure


def test_unknown_parameter_is_a_one_line_error():
    from testbed.errors import QkdbedError

    with pytest.raises(QkdbedError, match="unknown parameter 'Tee_s'"):
        simulate(_mu_recipe("barbell-7", BARBELL_FLOWS, params={"Tee_s": 0.01}))
    with pytest.raises(QkdbedError, match="other profile"):
        simulate(_mu_recipe("barbell-7", BARBELL_FLOWS, params={"flow_cap": 10}))


def test_pulp_solver_gives_the_same_run():
    flows = [{"src": "N1", "dst": "N3", "model": "cbr", "rate_bps": 3e5, "start_s": 0.5}]
    a = simulate(_mu_recipe("gen:line:3", flows, duration_s=6, params={"solver": "closed-form"})).log
    b = simulate(_mu_recipe("gen:line:3", flows, duration_s=6, params={"solver": "pulp"})).log
    da, db = a["deliveries"]["t_s"], b["deliveries"]["t_s"]
    assert len(da) > 100 and len(da) == len(db)
    assert np.allclose(da, db, rtol=0, atol=1e-6)
