"""`qkdbed plan key-servers` through click's CliRunner: table, JSON, topology output, one-line errors."""

from __future__ import annotations

import json

import pytest
import yaml
from click.testing import CliRunner

from testbed.cli import cli
from testbed.network import load_topology


def run(*args: str):
    return CliRunner().invoke(cli, ["plan", "key-servers", *args])


def test_table_json_and_topology_output(tmp_path):
    out_json, out_topo = tmp_path / "r.json", tmp_path / "t.yaml"
    r = run("china-metro-12", "-p", "3", "--metric", "km", "--json", str(out_json),
            "--write-topology", str(out_topo))
    assert r.exit_code == 0, r.output
    assert "R2      R2, U4, U5, U6  30" in r.output and "objective 90" in r.output
    doc = json.loads(out_json.read_text())
    assert doc["servers"] == ["R1", "R2", "R3"] and doc["assignment"]["U7"] == "R3" and doc["method"] == "enum"
    topo = load_topology(str(out_topo))
    assert sorted(n for n, v in topo.nodes.items() if v.role == "group-key-server") == ["R1", "R2", "R3"]
    assert yaml.safe_load(out_topo.read_text())["links"][0]["distance_km"] == 20


def test_drop_steps_reach_the_json(tmp_path):
    out = tmp_path / "r.json"
    r = run("gen:line:5", "-p", "2", "--method", "drop", "--json", str(out))
    assert r.exit_code == 0, r.output
    assert [s["node"] for s in json.loads(out.read_text())["steps"]] == ["N1", "N3", "N4"]


def test_weights_inline_and_from_a_file(tmp_path):
    r = run("gen:line:5", "-p", "1", "--weights", "N1=10")
    assert r.exit_code == 0 and "N1 " in r.output.splitlines()[3] and "objective 10" in r.output
    wf = tmp_path / "w.yaml"
    wf.write_text("N5: 10\n")
    r = run("gen:line:5", "-p", "1", "--weights", str(wf), "--candidates", "N3,N4,N5")
    assert r.exit_code == 0 and "objective 10 " in r.output  # N5: 4+3+2+1 = 10


def test_unknown_p_with_opening_cost_and_the_literal_rule():
    r = run("gen:line:5", "--unknown-p", "--opening-cost", "1.5", "--method", "enum")
    assert r.exit_code == 0 and "p = 2, objective 6 = 1.5 x 2 opening + 3 distance" in r.output
    r = run("gen:line:5", "--unknown-p", "--opening-cost", "1.5", "--method", "drop", "--literal-stop")
    assert r.exit_code == 0 and "p = 5, objective 7.5" in r.output


@pytest.mark.parametrize("args, message", [
    (["gen:line:5", "-p", "9"], "p = 9 is larger than the 5 candidate nodes"),
    (["gen:line:5", "-p", "0"], "must be an integer >= 1"),
    (["gen:line:5", "-p", "2", "--candidates", "N1,N7"], "unknown candidate node N7"),
    (["gen:line:5", "-p", "2", "--demand", "Q"], "unknown demand node Q"),
    (["gen:line:5", "-p", "2", "--weights", "N1:3"], "--weights: expected NAME=NUMBER"),
    (["gen:line:5", "-p", "2", "--weights", "N1=inf"], "--weights: expected NAME=NUMBER"),
    (["gen:line:5", "-p", "2", "--weights", "N1=-2"], "weight of N1 must be a finite number >= 0"),
    (["gen:line:5", "-p", "2", "--weights", "N9=2"], "not a demand node"),
    (["gen:line:5"], "give -p N"),
    (["gen:line:5", "-p", "2", "--unknown-p"], "exclude each other"),
    (["gen:line:5", "--unknown-p", "--method", "interchange"], "--unknown-p supports --method"),
    (["gen:line:5", "-p", "2", "--opening-cost", "3"], "only apply with --unknown-p"),
    (["no-such-topology", "-p", "2"], "no such file"),
    ([], "give a TOPOLOGY"),
])
def test_bad_input_exits_2_with_one_line(args, message):
    r = run(*args)
    assert r.exit_code == 2, r.output
    lines = [l for l in r.output.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("qkdbed: ") and message in lines[0], r.output


def test_disconnected_topology_exits_2(tmp_path):
    f = tmp_path / "split.yaml"
    f.write_text(yaml.safe_dump({"name": "split", "nodes": ["A", "B", "C"], "links": [{"a": "A", "b": "B"}]}))
    r = run(str(f), "-p", "1")
    assert r.exit_code == 2 and r.output.strip() == (
        "qkdbed: split: the network is disconnected: no path from demand node A to candidate C")


def test_bad_weights_file(tmp_path):
    f = tmp_path / "w.yaml"
    f.write_text("- just\n- a list\n")
    r = run("gen:line:5", "-p", "1", "--weights", str(f))
    assert r.exit_code == 2 and "expected a mapping of node name to weight" in r.output
