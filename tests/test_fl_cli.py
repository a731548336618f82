"""`qkdbed plan fl`: output, JSON, recipe export, and one-line errors naming the request (exit code 2)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from testbed.cli import cli
from testbed.network import load_topology

REPO = Path(__file__).resolve().parent.parent
ORACLE = str(REPO / "experiments" / "fl" / "oracle.yaml")


def run(*args: str):
    return CliRunner().invoke(cli, ["plan", "fl", *args])


def write(tmp_path: Path, name: str, data) -> str:
    p = tmp_path / name
    p.write_text(yaml.safe_dump(data))
    return str(p)


def one_line_error(res, *fragments: str) -> str:
    assert res.exit_code == 2, res.output
    out = res.output.strip()
    assert "Traceback" not in out
    assert res.exception is None or isinstance(res.exception, SystemExit)
    assert len(out.splitlines()) == 1, out
    assert out.startswith("qkdbed: ")
    for f in fragments:
        assert f in out, out
    return out


def test_usnet_topology_file():
    t = load_topology("usnet-24")
    assert len(t.nodes) == 24 and len(t.links) == 43 and t.is_connected()
    assert sum(l.distance_km for l in t.links) == 42_600
    assert {n.role for n in t.nodes.values()} == {"user"}
    assert t.path("1", "23", "km") == ["1", "6", "9", "12", "16", "22", "23"]


def test_topo_show_accepts_usnet():
    res = CliRunner().invoke(cli, ["topo", "show", "usnet-24", "--metric", "km"])
    assert res.exit_code == 0, res.output
    assert "route 1->23: 1 6 9 12 16 22 23" in res.output


def test_oracle_prints_costs_and_writes_json_and_recipe(tmp_path):
    js, rec = tmp_path / "plan.json", tmp_path / "recipe.yaml"
    res = run("usnet-24", "--requests", ORACLE, "--json", str(js), "--export-recipe", str(rec))
    assert res.exit_code == 0, res.output
    assert "1-6-9-12-16-22-23" in res.output
    assert "total 2,375,000 $" in res.output and "EEV 2,590,000 $" in res.output
    d = json.loads(js.read_text())
    assert d["measures"]["RP"] == 2_375_000 and d["measures"]["VSS"] == 215_000 and d["measures"]["EVPI"] == 950_000
    assert d["reserved_total"] == {"qkd_wavelengths": 150, "km_wavelengths": 50}
    assert d["cost"]["second_stage_expected"] == 0
    r = yaml.safe_load(rec.read_text())
    assert r["topology"] == "usnet-24"
    assert r["traffic"]["flows"][0] == {"src": "1", "dst": "23", "rate_bps": 3000.0, "start_s": 5.0}
    assert r["routes"]["1->23"] == ["1", "6", "9", "12", "16", "22", "23"]


def test_random_requests_saa(tmp_path):
    res = run("usnet-24", "--random", "4", "--scenarios", "5", "--seed", "3", "--json", str(tmp_path / "p.json"))
    assert res.exit_code == 0, res.output
    d = json.loads((tmp_path / "p.json").read_text())
    assert len(d["routes"]) == 4 and d["scenarios"]["count"] == 5
    m = d["measures"]
    assert m["WS"] <= m["RP"] <= m["EEV"] + 1e-6


def test_unknown_node_names_the_request(tmp_path):
    f = write(tmp_path, "r.yaml", {"requests": [{"src": 1, "dst": 99, "rates_bps": [1000]}]})
    one_line_error(run("usnet-24", "--requests", f), "request '1->99'", "unknown node '99'")


def test_disconnected_pair_names_the_request(tmp_path):
    topo = write(tmp_path, "two.yaml", {"name": "two", "nodes": ["A", "B", "C", "D"],
                                        "links": [{"a": "A", "b": "B", "distance_km": 50},
                                                  {"a": "C", "b": "D", "distance_km": 50}]})
    f = write(tmp_path, "r.yaml", {"requests": [{"name": "fl-job", "src": "A", "dst": "D", "rates_bps": [1000]}]})
    one_line_error(run(topo, "--requests", f), "request 'fl-job'", "no path from A to D")


def test_demand_above_capacity_names_the_request(tmp_path):
    f = write(tmp_path, "r.yaml", {"requests": [{"src": 1, "dst": 23, "rates_bps": [1000, 5000]}],
                                   "params": {"caps": {"qkd_total": 6}}})
    one_line_error(run("usnet-24", "--requests", f), "request '1->23'", "5000 bps", "capacity")


def test_jointly_infeasible_names_the_request_that_breaks_it(tmp_path):
    # A line: both requests need link A-B; 9 + 3 QKD wavelengths > 9.
    topo = write(tmp_path, "line.yaml", {"name": "l", "nodes": ["A", "B", "C"],
                                         "links": [{"a": "A", "b": "B", "distance_km": 50},
                                                   {"a": "B", "b": "C", "distance_km": 50}]})
    f = write(tmp_path, "r.yaml", {"requests": [{"src": "A", "dst": "C", "rates_bps": [3000]},
                                                {"src": "A", "dst": "B", "rates_bps": [1000]}],
                                   "params": {"caps": {"qkd_total": 9}}})
    one_line_error(run(topo, "--requests", f), "request 'A->B'", "together with")


@pytest.mark.parametrize("args,fragment", [
    ((), "exactly one of --requests"),
    (("--random", "3", "--requests", ORACLE), "exactly one of --requests"),
    (("--random", "0"), "--random must be >= 1"),
    (("--requests", "/nonexistent.yaml"), "no such file"),
])
def test_bad_cli_usage(args, fragment):
    one_line_error(run("usnet-24", *args), fragment)


def test_bad_request_field_is_one_line(tmp_path):
    f = write(tmp_path, "r.yaml", {"requests": [{"src": 1, "dst": 2, "rates_bps": [1000], "probs": [0.5]}]})
    one_line_error(run("usnet-24", "--requests", f), "requests[0].probs")
    g = write(tmp_path, "p.yaml", {"solver": "gurobi"})
    one_line_error(run("usnet-24", "--requests", ORACLE, "--params", g), "solver")
