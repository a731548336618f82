"""The CLI: runs end to end, and bad input is one line on stderr with exit code 2 (never a traceback)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml
from click.testing import CliRunner

from testbed.cli import cli


def _run(args):
    return CliRunner().invoke(cli, args)


def test_run_smoke_writes_results(tmp_path):
    out = tmp_path / "smoke"
    r = _run(["run", "experiments/smoke.yaml", "-o", str(out), "--set", "duration_s=15"])
    assert r.exit_code == 0, r.output
    man = json.loads((out / "manifest.json").read_text())
    assert man["status"] == "ok" and man["recipe"]["duration_s"] == 15 and man["seed"] == 1
    assert len(man["event_log_sha256"]) == 64 and man["git_revision"]
    assert (out / "summary.csv").read_text().count("\n") == 3
    assert (out / "figures" / "throughput.png").is_file() and (out / "figures" / "throughput.pdf").is_file()
    # the same seed gives the same event log through the CLI too
    r2 = _run(["run", "experiments/smoke.yaml", "-o", str(tmp_path / "again"), "--set", "duration_s=15"])
    assert json.loads((tmp_path / "again" / "manifest.json").read_text())["event_log_sha256"] == \
        man["event_log_sha256"]
    r3 = _run(["run", "experiments/smoke.yaml", "-o", str(tmp_path / "seed2"), "--set", "duration_s=15",
               "--seed", "2"])
    assert json.loads((tmp_path / "seed2" / "manifest.json").read_text())["event_log_sha256"] != \
        man["event_log_sha256"]
    assert r2.exit_code == 0 and r3.exit_code == 0


@pytest.mark.parametrize("mutate, expect", [
    (lambda d: d.update(duration_s="long"), "duration_s: expected a number"),
    (lambda d: d["traffic"]["flows"][0].update(dst="PC99"), "traffic.flows[0].dst: expected a node of topology"),
    (lambda d: d.update(topology="no-such-topology"), "no such file"),
    (lambda d: d.update(scheme={"name": "tcp-cubic"}), "scheme.name: expected one of"),
    (lambda d: d.update(sched="rr"), "sched: expected no such field"),
    (lambda d: d["traffic"]["flows"][0].update(model="ppbp"), "lam_per_s: expected a value"),
])
def test_bad_recipe_is_one_line_exit_2(tmp_path, mutate, expect):
    data = yaml.safe_load(open("experiments/smoke.yaml"))
    mutate(data)
    f = tmp_path / "bad.yaml"
    f.write_text(yaml.safe_dump(data))
    p = subprocess.run([sys.executable, "-m", "testbed.cli", "run", str(f), "-o", str(tmp_path / "o")],
                       capture_output=True, text=True)
    assert p.returncode == 2
    assert p.stderr.startswith("qkdbed: ") and expect in p.stderr, p.stderr
    assert p.stderr.count("\n") == 1 and "Traceback" not in p.stderr
    assert not (tmp_path / "o" / "manifest.json").exists()


def test_bad_set_and_missing_recipe(tmp_path):
    r = _run(["run", "experiments/smoke.yaml", "--set", "noequals"])
    assert r.exit_code == 2 and "KEY=VALUE" in r.output
    r = _run(["run", str(tmp_path / "nope.yaml")])
    assert r.exit_code == 2 and "no such file" in r.output


def test_topo_show_and_report(tmp_path):
    r = _run(["topo", "show", "china-metro-12"])
    assert r.exit_code == 0 and "route U1->U4: U1 R1 R2 U4" in r.output
    out = tmp_path / "s"
    assert _run(["run", "experiments/smoke.yaml", "-o", str(out), "--set", "duration_s=10"]).exit_code == 0
    (out / "figures" / "throughput.png").unlink()
    r = _run(["plot", str(out)])
    assert r.exit_code == 0 and (out / "figures" / "throughput.png").is_file()
    r = _run(["report", str(out)])
    assert r.exit_code == 0 and "| PC4->PC6 |" in (out / "report.md").read_text()
    r = _run(["report", str(tmp_path)])
    assert r.exit_code == 2 and "not a results folder" in r.output
