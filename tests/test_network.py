"""Topology loading, validation errors and routing, checked against hand-worked examples."""

from __future__ import annotations

import pytest
import yaml

from testbed.errors import QkdbedError, ValidationError
from testbed.network import load_topology, line, ring, star, random_metro, topology_from_dict, distance_rate_bps


def test_china_metro_shape_and_routes():
    t = load_topology("china-metro-12")
    assert len(t.nodes) == 12 and len(t.links) == 12
    assert sorted(t.users()) == [f"U{i}" for i in range(1, 10)]
    # Every cross-subnetwork route crosses exactly one backbone link (the relays form a triangle).
    assert t.path("U1", "U4") == ["U1", "R1", "R2", "U4"]
    assert t.path("U9", "U3") == ["U9", "R3", "R1", "U3"]
    assert t.path("U4", "U7") == ["U4", "R2", "R3", "U7"]
    backbone = [l for l in t.links if l.a.startswith("R") and l.b.startswith("R")]
    assert all(l.distance_km == 20 and l.attenuation_db == 5.35 for l in backbone)
    assert all(l.bandwidth_bps == 1e9 and l.delay_s == 1e-4 for l in t.links)


def test_barbell_matches_the_original_code_routes():
    t = load_topology("barbell-7")
    assert t.path("PC4", "PC6") == ["PC4", "PC2", "PC1", "PC6"]
    assert t.path("PC3", "PC7") == ["PC3", "PC2", "PC1", "PC7"]
    nh = t.next_hops()
    assert nh["PC3"]["PC7"] == "PC2" and nh["PC2"]["PC7"] == "PC1" and nh["PC1"]["PC7"] == "PC7"


def test_next_hops_follow_the_source_path_everywhere():
    t = random_metro(12, 2, seed=3)
    nh = t.next_hops("km")
    for s in t.nodes:
        for d in t.nodes:
            if s == d:
                continue
            walk, node = [s], s
            while node != d:
                node = nh[node][d]
                walk.append(node)
                assert len(walk) <= len(t.nodes)
            cost = sum(t.link(a, b).distance_km for a, b in zip(walk, walk[1:]))
            best = sum(t.link(a, b).distance_km for a, b in zip(t.path(s, d, "km"), t.path(s, d, "km")[1:]))
            assert cost == pytest.approx(best)


def test_km_metric_prefers_short_fibre_over_fewer_hops():
    data = {"name": "tri", "nodes": ["A", "B", "C"],
            "links": [{"a": "A", "b": "C", "distance_km": 50}, {"a": "A", "b": "B", "distance_km": 10},
                      {"a": "B", "b": "C", "distance_km": 10}]}
    t = topology_from_dict(data, "tri.yaml")
    assert t.path("A", "C", "hops") == ["A", "C"]
    assert t.path("A", "C", "km") == ["A", "B", "C"]


def test_generators():
    assert line(4).path("N1", "N4") == ["N1", "N2", "N3", "N4"]
    assert star(3).path("L1", "L3") == ["L1", "H", "L3"]
    assert len(ring(6).path("N1", "N4")) == 4
    m = random_metro(30, 2, seed=1)
    assert m.is_connected() and len(m.nodes) == 90


@pytest.mark.parametrize("mutate, path, expected", [
    (lambda d: d["links"][0].update(a="NOPE"), "links[0].a", "the name of a node"),
    (lambda d: d["links"][1].update(distance_km=-3), "links[1].distance_km", "a number >= 0"),
    (lambda d: d["links"][2].update(colour="red"), "links[2].colour", "no such field"),
    (lambda d: d["nodes"][0].update(role="router"), "nodes[0].role", "one of user, relay"),
    (lambda d: d["links"].append(dict(d["links"][0])), "links[12].b", "at most one link"),
])
def test_validation_errors_name_file_field_and_expectation(tmp_path, mutate, path, expected):
    data = yaml.safe_load(open(load_topology("china-metro-12").source))
    mutate(data)
    f = tmp_path / "bad.yaml"
    f.write_text(yaml.safe_dump(data))
    with pytest.raises(ValidationError) as e:
        load_topology(str(f))
    msg = str(e.value)
    assert msg.startswith(str(f)) and path in msg and expected in msg and "\n" not in msg


def test_bad_yaml_and_missing_file_are_one_line_errors(tmp_path):
    f = tmp_path / "broken.yaml"
    f.write_text("nodes: [A, B\n")
    with pytest.raises(QkdbedError, match="not valid YAML"):
        load_topology(str(f))
    with pytest.raises(QkdbedError, match="no such file"):
        load_topology("does-not-exist")


def test_distance_rate_model():
    # 10 dB of loss divides the rate by ten; 3.33 dB -> 20 km link at 5.35 dB is 10**(-0.202) of the 10 km rate.
    assert distance_rate_bps(1000.0, 10.0) == pytest.approx(100.0)
    assert distance_rate_bps(1.0, 5.35) / distance_rate_bps(1.0, 3.33) == pytest.approx(10 ** (-0.202))
