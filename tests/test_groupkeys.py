"""Group keys on the simulated network: relay key consumption equals the p-median objective (hops) x key size."""

from __future__ import annotations

import json

import numpy as np
import pytest

from testbed.errors import QkdbedError, ValidationError
from testbed.groupkeys import group_key_summary
from testbed.plan.pmedian import solve_pmedian
from testbed.network import load_topology
from testbed.recipe import recipe_from_dict
from testbed.sim.run import simulate


def _recipe(topology="china-metro-12", **gk):
    data = {"name": "gk", "topology": topology, "duration_s": 40, "seed": 2,
            "key_supply": {"model": "synthetic", "scale": 10},
            "group_keys": {"key_units": 3, "rate_per_s": 1.0, "start_s": 3, **gk}}
    return recipe_from_dict(data, "gk.yaml")


@pytest.mark.parametrize("topology", ["china-metro-12", "gen:metro:6:3:5"])
@pytest.mark.parametrize("servers", [{"method": "pmedian", "p": 2}, {"method": "random", "p": 2, "seed": 4},
                                     {"method": "central"}, ["R1"]])
def test_relay_consumption_equals_sum_of_member_hops_times_key_size(topology, servers):
    r = _recipe(topology, servers=servers)
    res = simulate(r)
    g = group_key_summary(res.log, r.group_keys)
    assert g["rounds_completed"] >= 30
    # an independent count: the hop count of every member's route to its assigned server, from the topology
    topo = load_topology(topology)
    hops = sum(len(topo.path(r.group_keys["assignment"][m], m)) - 1 for m in topo.users())
    assert g["relay_units_per_round"] == pytest.approx(hops * 3)
    assert g["objective_hops"] == hops


def test_pmedian_placement_is_the_planner_optimum_and_the_cheapest():
    topo = "gen:metro:8:3:2"
    costs = {}
    for name, servers in (("pmedian", {"method": "pmedian", "p": 3}),
                          ("random", {"method": "random", "p": 3, "seed": 9}), ("central", {"method": "central"})):
        r = _recipe(topo, servers=servers)
        costs[name] = group_key_summary(simulate(r).log, r.group_keys)["relay_units_per_round"]
        if name == "pmedian":
            opt = solve_pmedian(load_topology(topo), 3, method="enum", demand=load_topology(topo).users())
            assert r.group_keys["objective_hops"] == pytest.approx(opt.objective)
    assert costs["pmedian"] <= costs["random"] and costs["pmedian"] <= costs["central"]


def test_hand_worked_line():
    # N1 - N2 - N3 - N4 - N5, server N3, members all five: hops 2 + 1 + 0 + 1 + 2 = 6 per key unit
    r = _recipe("gen:line:5", servers=["N3"], members=["N1", "N2", "N3", "N4", "N5"], key_units=1)
    assert r.group_keys["objective_hops"] == 6
    assert len([f for f in r.flows if f.group == "group-key"]) == 4  # N3 serves itself locally
    g = group_key_summary(simulate(r).log, r.group_keys)
    assert g["relay_units_per_round"] == pytest.approx(6.0)


@pytest.mark.parametrize("gk, message", [
    ({"servers": ["R9"]}, "group_keys.servers"),
    ({"servers": {"method": "pmedian", "p": 99}}, "group_keys.servers.p"),
    ({"servers": {"method": "best"}}, "group_keys.servers.method"),
    ({"servers": ["R1"], "members": ["U1", "Z"]}, "group_keys.members"),
    ({"servers": ["R1"], "colour": 1}, "group_keys.colour"),
])
def test_group_key_validation(gk, message):
    with pytest.raises(ValidationError, match=message.replace(".", r"\.")):
        _recipe(**gk)
