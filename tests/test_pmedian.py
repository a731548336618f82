"""p-median planner (seed 002) against hand-worked examples (planning.md §B.7 and the cases worked out below)."""

from __future__ import annotations

import numpy as np
import pytest

from testbed.errors import QkdbedError
from testbed.network import Link, Node, Topology, line, load_topology, star
from testbed.plan.pmedian import PlacementProblem, solve_pmedian, solve_unknown_p, with_servers
from testbed.plan.pmedian_graphs import edge_count, trial_seed, waxman_adjacency
from testbed.plan.pmedian_paths import floyd_warshall, topology_distances

PATH5 = line(5)  # N1 - N2 - N3 - N4 - N5, unit hops


def test_floyd_warshall_on_a_weighted_square_with_a_diagonal():
    inf = np.inf
    adj = np.array([[0, 1, inf, 4], [1, 0, 2, inf], [inf, 2, 0, 1], [4, inf, 1, 0]], dtype=float)
    d = floyd_warshall(adj)
    # 0->3 directly costs 4, around via 1 and 2 costs 1 + 2 + 1 = 4; 0->2 = 3; 1->3 = 3
    assert d.tolist() == [[0, 1, 3, 4], [1, 0, 2, 3], [3, 2, 0, 1], [4, 3, 1, 0]]


def test_distances_in_km_and_hops_on_china_metro():
    names, km = topology_distances(load_topology("china-metro-12"), "km")
    _, hops = topology_distances(load_topology("china-metro-12"), "hops")
    i, j = names.index("U1"), names.index("U4")
    assert km[i, j] == 10 + 20 + 10 and hops[i, j] == 3


def test_path_p1_and_p2_optimum_by_enumeration():
    r1 = solve_pmedian(PATH5, 1, "enum")
    assert r1.servers == ["N3"] and r1.objective == 6
    r2 = solve_pmedian(PATH5, 2, "enum")
    # Z = 3 is attained by {1,4}, {2,4}, {2,5}; lexicographic enumeration with lowest-index ties returns {1,4}
    assert r2.objective == 3 and r2.servers == ["N1", "N4"]
    assert r2.assignment == {"N1": "N1", "N2": "N1", "N3": "N4", "N4": "N4", "N5": "N4"}
    assert r2.proven_optimal


def test_greedy_drop_reproduces_the_worked_path_example_step_by_step():
    r = solve_pmedian(PATH5, 2, "drop")
    # every first removal costs 1 -> remove N1 (Z=1); then N3 (Z=2); then N4 (Z=3); ends at {N2, N5}
    assert [s["node"] for s in r.steps] == ["N1", "N3", "N4"]
    assert [s["objective"] for s in r.steps] == [1.0, 2.0, 3.0]
    assert [s["delta"] for s in r.steps] == [1.0, 1.0, 1.0]
    assert [s["p"] for s in r.steps] == [4, 3, 2]
    assert r.servers == ["N2", "N5"] and r.objective == 3


def test_greedy_drop_to_p1_on_the_path():
    # continuing the example: from {N2, N5}, Delta(N2) = 3 + 3 + 1 = 7 (N1, N2, N3 move to N5) and Delta(N5) =
    # 1 + 3 = 4 (N4, N5 move to N2): N5 goes and {N2} remains with Z = 1+0+1+2+3 = 7 (the optimum {N3} has 6)
    r = solve_pmedian(PATH5, 1, "drop")
    assert [s["node"] for s in r.steps] == ["N1", "N3", "N4", "N5"]
    assert r.steps[-1]["delta"] == 4 and r.servers == ["N2"] and r.objective == 7


def test_greedy_add_and_interchange_on_the_path():
    add = solve_pmedian(PATH5, 2, "add")
    assert [s["node"] for s in add.steps] == ["N3", "N1"] and add.objective == 4
    tb = solve_pmedian(PATH5, 2, "interchange")
    assert tb.objective == 3  # one swap (N3 out, N4 in) reaches the optimum
    swaps = [s for s in tb.steps if s["action"] == "swap"]
    assert [(s["out"], s["node"]) for s in swaps] == [("N3", "N4")]


@pytest.mark.parametrize("method", ["enum", "add", "interchange", "ilp", "ilp-full"])
def test_star_p1_is_the_centre(method):
    r = solve_pmedian(star(4), 1, method)
    assert r.servers == ["H"] and r.objective == 4
    assert set(r.assignment.values()) == {"H"}


def test_greedy_drop_misses_the_star_centre():
    # From all five open every removal costs 1 and H has the lowest index, so H goes first and never returns;
    # then each leaf costs 2 (it and H move one leaf over): L1, L2, L3 go, leaving L4 with Z = 1 + 3 * 2 = 7.
    r = solve_pmedian(star(4), 1, "drop")
    assert [s["node"] for s in r.steps] == ["H", "L1", "L2", "L3"]
    assert [s["delta"] for s in r.steps] == [1, 2, 2, 2]
    assert r.servers == ["L4"] and r.objective == 7


# -- improved model (p unknown) --------------------------------------------------------------------------------

def test_star_with_cheap_servers_opens_everything():
    m = 4
    for method in ("enum", "ilp"):
        r = solve_unknown_p(star(m), 0.5, method)
        assert r.p == m + 1 and r.objective == pytest.approx(0.5 * (m + 1))
    drop = solve_unknown_p(star(m), 0.5, "drop")
    # the greedy drop stops at once: dropping H (Delta = 1) would give 0.5*4 + 1 = 3 > 2.5
    assert drop.p == m + 1 and drop.objective == pytest.approx(2.5)
    assert [s["accepted"] for s in drop.steps if s["action"] == "drop"] == [False]
    assert drop.steps[1]["node"] == "H" and drop.steps[1]["objective"] == pytest.approx(3.0)


def test_star_with_dear_servers_opens_only_the_centre():
    m = 3
    for method in ("enum", "ilp"):
        r = solve_unknown_p(star(m), 5.0, method)
        assert r.servers == ["H"] and r.objective == pytest.approx(5.0 + m)
    # The greedy drop cannot get back to H once it is dropped. By hand (f = 5, leaves L1..L3):
    #   {H,L1,L2,L3}: Z4 = 20; dropping H costs 1 -> Z3 = 15 + 1 = 16 <= 20, drop
    #   {L1,L2,L3}: H goes to L1; Delta = 2 for each leaf -> drop L1: Z2 = 10 + 3 = 13 <= 16, drop
    #   {L2,L3}: H, L1 go to L2; Delta(L2) = 2, Delta(L3) = 2 -> drop L2: Z1 = 5 + 5 = 10 <= 13, drop; p = 1 stops
    drop = solve_unknown_p(star(m), 5.0, "drop")
    assert [s["node"] for s in drop.steps[1:]] == ["H", "L1", "L2"]
    assert [s["objective"] for s in drop.steps] == pytest.approx([20, 16, 13, 10])
    assert drop.servers == ["L3"] and drop.objective == pytest.approx(10)


def test_path_stopping_rules_worked_by_hand():
    # Path N1..N5, hops, f = 1.5. Optimal distances f*(p) = 6, 3, 2, 1, 0, so Z_p = 1.5p + f*(p) =
    # 7.5, 6, 6.5, 7, 7.5. Enumeration rule (3.2.1): Z1 = 7.5 > Z2 = 6, go on; Z2 = 6 <= Z3 = 6.5, stop at
    # p = 2 with {N1, N4}. Greedy drop rule (3.2.2) from all five (Z = 7.5): drop N1 -> 6 + 1 = 7; drop N3 ->
    # 4.5 + 2 = 6.5; drop N4 -> 3 + 3 = 6; then the best drop (N5, Delta 4) gives 1.5 + 7 = 8.5 > 6: stop at
    # {N2, N5}, Z = 6. The literal (swapped) reading stops at once, since Z5 = 7.5 >= Z4 = 7: all five open.
    enum = solve_unknown_p(PATH5, 1.5, "enum")
    assert [s["objective"] for s in enum.steps] == pytest.approx([7.5, 6.0, 6.5])
    assert enum.servers == ["N1", "N4"] and enum.objective == pytest.approx(6.0)
    drop = solve_unknown_p(PATH5, 1.5, "drop")
    assert [(s.get("node"), s["objective"]) for s in drop.steps] == [
        (None, 7.5), ("N1", 7.0), ("N3", 6.5), ("N4", 6.0), ("N5", 8.5)]
    assert drop.steps[-1]["accepted"] is False and drop.servers == ["N2", "N5"]
    literal = solve_unknown_p(PATH5, 1.5, "drop", literal_stop=True)
    assert literal.p == 5 and literal.objective == pytest.approx(7.5) and literal.method == "drop-literal"
    assert solve_unknown_p(PATH5, 1.5, "ilp").objective == pytest.approx(6.0)


def test_enumeration_rule_stops_at_a_local_minimum_the_drop_escapes():
    # Star H - L1, L2, L3 (hops), leaf weight 2, centre weight 1, f = 2.2. Optimal distances: f*(1) = 6 ({H}),
    # f*(2) = 4 ({H, L1}: L2, L3 at 1 each, weight 2), f*(3) = 1 ({L1, L2, L3}: H at 1), f*(4) = 0 - not convex.
    # Z_p = 2.2p + f*(p) = 8.2, 8.4, 7.6, 8.8. The enumeration rule stops at p = 1 (8.2 <= 8.4); the optimum is
    # p = 3 (7.6). The greedy drop: Z4 = 8.8; dropping H costs w_H * 1 = 1 -> 6.6 + 1 = 7.6, drop; then every leaf
    # costs 2 * 2 = 4 -> 4.4 + 1 + 4 = 9.4 > 7.6, stop at {L1, L2, L3}.
    w = {"L1": 2, "L2": 2, "L3": 2}
    enum = solve_unknown_p(star(3), 2.2, "enum", weights=w)
    assert enum.servers == ["H"] and enum.objective == pytest.approx(8.2)
    assert [s["objective"] for s in enum.steps] == pytest.approx([8.2, 8.4])
    drop = solve_unknown_p(star(3), 2.2, "drop", weights=w)
    assert drop.servers == ["L1", "L2", "L3"] and drop.objective == pytest.approx(7.6)
    assert [s["objective"] for s in drop.steps] == pytest.approx([8.8, 7.6, 9.4])
    ilp = solve_unknown_p(star(3), 2.2, "ilp", weights=w)
    assert ilp.servers == ["L1", "L2", "L3"] and ilp.proven_optimal


def test_default_opening_cost_is_the_mean_path_length():
    # path of 5: ordered pairs at distance 1, 2, 3, 4 number 8, 6, 4, 2 -> mean = (8+12+12+8)/20 = 2
    r = solve_unknown_p(PATH5, method="ilp")
    assert r.opening_cost == pytest.approx(2.0)
    # Z_p = 2p + f*(p) = 8, 7, 8, 9, 10 -> p = 2
    assert r.p == 2 and r.objective == pytest.approx(7.0)


# -- demand, candidates, weights --------------------------------------------------------------------------------

def test_candidates_demand_and_weights_are_respected():
    r = solve_pmedian(PATH5, 1, "enum", candidates=["N1", "N5"], demand=["N4", "N5"])
    assert r.servers == ["N5"] and r.objective == 1 and set(r.assignment) == {"N4", "N5"}
    heavy = solve_pmedian(PATH5, 1, "enum", weights={"N1": 10})
    # N1 weighs 10: at N1 the cost is 1+2+3+4 = 10; at N2 10+0+1+2+3 = 16
    assert heavy.servers == ["N1"] and heavy.objective == 10


def test_km_metric_changes_the_answer():
    nodes = {n: Node(n) for n in "ABC"}
    t = Topology("v", nodes, [Link("A", "B", distance_km=1), Link("B", "C", distance_km=100)])
    assert solve_pmedian(t, 1, "enum", metric="hops").servers == ["B"]
    # km: at A 1 + 101 = 102, at B 1 + 100 = 101, at C 101 + 100 = 201
    assert solve_pmedian(t, 1, "enum", metric="km").objective == 101


def test_with_servers_marks_roles_and_keeps_the_rest():
    t = with_servers(load_topology("china-metro-12"), ["R1", "U5"])
    assert t.nodes["R1"].role == "group-key-server" and t.nodes["U5"].role == "group-key-server"
    assert t.nodes["U1"].role == "user" and len(t.links) == 12
    assert t.to_dict()["nodes"][0] == {"name": "R1", "role": "group-key-server", "x": 0.0, "y": 1.0}


def test_result_to_dict_lists_groups():
    d = solve_pmedian(load_topology("china-metro-12"), 3, "ilp").to_dict()
    assert d["servers"] == ["R1", "R2", "R3"] and d["objective"] == 9
    assert d["groups"]["R2"] == ["R2", "U4", "U5", "U6"]


# -- bad input --------------------------------------------------------------------------------------------------

def _disconnected() -> Topology:
    nodes = {n: Node(n) for n in "ABCD"}
    return Topology("split", nodes, [Link("A", "B"), Link("C", "D")])


@pytest.mark.parametrize("call, message", [
    (lambda: solve_pmedian(PATH5, 6), "p = 6 is larger than the 5 candidate nodes"),
    (lambda: solve_pmedian(PATH5, 2, candidates=["N1"]), "p = 2 is larger than the 1 candidate node"),
    (lambda: solve_pmedian(PATH5, 0), "must be an integer >= 1"),
    (lambda: solve_pmedian(_disconnected(), 1), "disconnected: no path from demand node A to candidate C"),
    (lambda: solve_pmedian(PATH5, 1, candidates=["N1", "X"]), "unknown candidate node X"),
    (lambda: solve_pmedian(PATH5, 1, demand=["Y", "Z"]), "unknown demand nodes Y, Z"),
    (lambda: solve_pmedian(PATH5, 1, weights={"N1": -1}), "weight of N1 must be a finite number >= 0"),
    (lambda: solve_pmedian(PATH5, 1, weights={"Q": 1}), "weight given for 'Q', which is not a demand node"),
    (lambda: solve_pmedian(PATH5, 1, "magic"), "method must be one of"),
    (lambda: solve_pmedian(line(30), 15, "enum", max_subsets=1000), "use --method ilp"),
    (lambda: solve_unknown_p(PATH5, -1.0), "opening cost must be a finite number >= 0"),
    (lambda: solve_unknown_p(PATH5, 1.0, "ilp", literal_stop=True), "only applies to the greedy drop"),
])
def test_bad_input_is_one_line(call, message):
    with pytest.raises(QkdbedError) as e:
        call()
    assert message in str(e.value) and "\n" not in str(e.value)


def test_disconnected_parts_are_fine_when_demand_and_candidates_share_a_component():
    r = solve_pmedian(_disconnected(), 1, demand=["A", "B"], candidates=["A", "B"])
    assert r.servers == ["A"] and r.objective == 1


# -- benchmark graphs -------------------------------------------------------------------------------------------

def test_waxman_graphs_are_connected_seeded_and_of_the_documented_density():
    a = waxman_adjacency(15, trial_seed(15, 3))
    assert np.array_equal(a, waxman_adjacency(15, trial_seed(15, 3)))
    assert np.isfinite(floyd_warshall(a)).all()
    # planning.md §B.6: about 16.5 edges on average at N = 15 (25 at N = 20)
    assert 15 <= np.mean([edge_count(waxman_adjacency(15, trial_seed(15, t))) for t in range(50)]) <= 18


def test_problem_from_matrix_names_default_to_indices():
    d = floyd_warshall(waxman_adjacency(10, trial_seed(10, 0)))
    pr = PlacementProblem.from_matrix(d)
    assert pr.names[:3] == ["0", "1", "2"]
    assert solve_pmedian(pr, 2, "enum").objective == pytest.approx(solve_pmedian(pr, 2, "ilp-full").objective)


def test_benchmark_instance_rows_and_summary():
    from testbed.plan.pmedian_bench import Cell, markdown_table, run_instance, summarise

    rows = run_instance(Cell(12, 2, 1, "seed"), 0, repeats=1)
    by = {r["method"]: r for r in rows}
    assert set(by) == {"enum", "drop", "add", "interchange", "ilp", "ilp-full"}
    assert all(by[m]["ratio"] == pytest.approx(1.0) for m in ("enum", "ilp", "ilp-full"))
    assert all(r["ratio"] >= 1 - 1e-12 and r["time_s"] >= 0 for r in rows)
    summary = summarise(rows)
    assert [s["method"] for s in summary] == ["enum", "drop", "add", "interchange", "ilp", "ilp-full"]
    assert "| seed | 12 | 2 | drop | 1 |" in markdown_table(summary)
