"""Sweeps: deterministic tables, failing runs recorded, and an interrupted sweep resumed without redoing work."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from testbed.runner import run_path

BASE = {
    "name": "sw", "topology": "barbell-7", "duration_s": 15, "seed": 3, "scheme": "ondemand",
    "traffic": {"flows": [{"name": "a", "src": "PC4", "dst": "PC6", "model": "ppbp", "lam_per_s": 1,
                           "shape": 1.4, "start_s": 2}]},
    "outputs": {"figures": ["throughput"]},
    "sweep": {"grid": {"traffic.flows.0.lam_per_s": [1, 2, 3]}, "repeat": 2},
}


def _write(tmp_path: Path, data=BASE) -> str:
    f = tmp_path / "sweep.yaml"
    f.write_text(yaml.safe_dump(data))
    return str(f)


def test_same_sweep_same_seeds_identical_table(tmp_path):
    rec = _write(tmp_path)
    a = run_path(rec, output=str(tmp_path / "a"), jobs=2, echo=lambda s: None)
    b = run_path(rec, output=str(tmp_path / "b"), jobs=1, echo=lambda s: None)
    ta, tb = (a / "table.csv").read_text(), (b / "table.csv").read_text()
    assert ta == tb and ta.count("\n") == 1 + 6  # header + 3 points x 2 seeds x 1 flow
    plan = json.loads((a / "sweep.json").read_text())
    assert sorted(plan["status"].values()) == ["ok"] * 6


def test_failing_run_is_recorded_and_others_finish(tmp_path):
    data = dict(BASE)
    data["sweep"] = {"grid": {"outputs.figures": [["throughput"], [{"name": "key_storage", "ports": ["PC9->PC1"]}]]}}
    root = run_path(_write(tmp_path, data), output=str(tmp_path / "f"), jobs=2, echo=lambda s: None)
    plan = json.loads((root / "sweep.json").read_text())
    assert sorted(plan["status"].values()) == ["failed", "ok"]
    failed = [d for d in (root / "runs").iterdir() if json.loads((d / "manifest.json").read_text())["status"] != "ok"]
    assert len(failed) == 1 and "PC9->PC1" in json.loads((failed[0] / "manifest.json").read_text())["error"]


def test_interrupted_sweep_resumes_without_redoing_finished_runs(tmp_path):
    data = dict(BASE, duration_s=40)
    data["sweep"] = {"grid": {"traffic.flows.0.lam_per_s": [1, 1.5, 2, 2.5, 3, 3.5]}, "repeat": 1}
    rec = _write(tmp_path, data)
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "testbed.cli", "run", rec, "-o", str(out), "-j", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            done = list((out / "runs").glob("*/manifest.json")) if (out / "runs").exists() else []
            if len(done) >= 2:
                break
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)  # the hardest interruption: no cleanup at all
    finally:
        proc.wait(timeout=10)
    finished = {p.parent.name: p.stat().st_mtime_ns for p in (out / "runs").glob("*/manifest.json")}
    assert 2 <= len(finished) < 6, "the test must interrupt the sweep midway"
    lines = []
    run_path(None, resume=str(out), echo=lines.append, jobs=2)
    assert any("already finished" in l for l in lines)
    plan = json.loads((out / "sweep.json").read_text())
    assert sorted(plan["status"].values()) == ["ok"] * 6
    for name, mtime in finished.items():  # finished runs were not redone
        assert (out / "runs" / name / "manifest.json").stat().st_mtime_ns == mtime
    fresh = run_path(rec, output=str(tmp_path / "fresh"), jobs=2, echo=lambda s: None)
    assert (fresh / "table.csv").read_text() == (out / "table.csv").read_text()


def test_bad_grid_is_refused_before_anything_runs(tmp_path):
    from testbed.errors import QkdbedError

    data = dict(BASE)
    data["sweep"] = {"grid": {"traffic.flows.0.lam_per_s": [1, -2]}}
    with pytest.raises(QkdbedError, match="lam_per_s"):
        run_path(_write(tmp_path, data), output=str(tmp_path / "x"), echo=lambda s: None)
    assert not (tmp_path / "x" / "runs").exists()
