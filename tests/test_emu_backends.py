"""The emulated testbed on each backend: the smoke recipe agrees with the simulator, a killed agent is recorded and
survived, and `down` leaves nothing of the testbed on the system.

local runs everywhere (no root); mininet and docker need root plus their software and skip with the reason why
locally (under QKDBED_REQUIRE_BACKENDS=1, as in CI, a missing backend fails instead).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import require_backend
from testbed import metrics
from testbed.emu import httpd
from testbed.emu.backends.netplan import root_interfaces_with_prefix, tag_for
from testbed.emu.run import run_emulated
from testbed.recipe import load_recipe
from testbed.sim.run import simulate

SMOKE_S = 20  # the smoke recipe shortened for test time (the issue allows it)


@pytest.fixture(autouse=True)
def _state_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("QKDBED_STATE_DIR", str(tmp_path / "state"))


def _require(backend: str) -> None:
    if backend == "local":
        return
    if backend == "mininet":
        from testbed.emu.backends.mininet import available
    else:
        from testbed.emu.backends.docker import available
    ok, why = available()
    require_backend(ok, f"{backend} backend unavailable: {why}")


def leftovers(name: str, state_root: Path) -> list[str]:
    """Everything of testbed `name` still on the system: processes, interfaces, containers, networks, state."""
    found = []
    marker = str(state_root / name).encode()
    tag = tag_for(name)
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmd = open(f"/proc/{pid}/cmdline", "rb").read()
        except OSError:
            continue
        if marker in cmd or f"mininet:{tag}".encode() in cmd:
            shown = cmd.replace(bytes(1), b" ")[:120]
            found.append(f"process {pid}: {shown!r}")
    try:
        found += [f"interface {i}" for i in root_interfaces_with_prefix(tag)]
    except Exception:  # no pyroute2: the local backend creates no interfaces
        pass
    if os.path.exists("/var/run/netns"):
        found += [f"netns {n}" for n in os.listdir("/var/run/netns") if n.startswith(tag)]
    try:
        import docker

        c = docker.from_env()
        c.ping()
        found += [f"container {ct.name}" for ct in c.containers.list(all=True, filters={"label": f"qkdbed.testbed={name}"})]
        found += [f"network {n.name}" for n in c.networks.list(filters={"label": f"qkdbed.testbed={name}"})]
    except Exception:
        pass
    if (state_root / name).exists():
        found.append(f"state dir {state_root / name}")
    return found


@pytest.mark.backend
@pytest.mark.parametrize("backend", ["local", "mininet", "docker"])
def test_smoke_recipe_matches_simulator(backend, tmp_path):
    _require(backend)
    recipe = load_recipe("experiments/smoke.yaml", [f"duration_s={SMOKE_S}"])
    sim = metrics.summarize(simulate(recipe).log)
    log = run_emulated(recipe, backend, tmp_path / "run", name=f"smoke-{backend}")
    emu = metrics.summarize(log)
    info = json.loads((tmp_path / "run" / "emu.json").read_text())
    assert info["failures"] == []
    for fs, fe in zip(sim["flows"], emu["flows"]):
        assert fe["name"] == fs["name"]
        assert fe["delivered"] == fs["delivered"], (fs["name"], fs["delivered"], fe["delivered"])
        assert fe["throughput_bps"] == pytest.approx(fs["throughput_bps"], rel=0.05)
    assert abs(emu["fairness"]["all"]["jain"] - sim["fairness"]["all"]["jain"]) <= 0.02
    # Real key material went end to end: every destination decrypted exactly the units its source encrypted.
    ok = sum(s["e2e_keys_ok"] for s in info["agent_stats"].values())
    bad = sum(s["e2e_keys_bad"] for s in info["agent_stats"].values())
    assert ok == sum(f["delivered"] for f in emu["flows"]) and bad == 0
    # The pools spent what the simulator's spent: one key unit per hop per message.
    assert emu["totals"]["key_units_consumed"] == sim["totals"]["key_units_consumed"]
    assert leftovers(f"smoke-{backend}", tmp_path / "state") == []


def _kill_agent(backend: str, state, node: str) -> None:
    if backend == "docker":
        import docker

        ct = docker.from_env().containers.get(f"qkdbed-{state.name}-{node}")
        ct.kill(signal="SIGKILL")
        return
    pid = httpd.get_json(state.data["nodes"][node]["control_url"] + "/health")["pid"]
    os.kill(pid, signal.SIGKILL)


@pytest.mark.backend
@pytest.mark.parametrize("backend", ["local", "mininet", "docker"])
def test_sigkill_one_agent_is_recorded_and_cleaned_up(backend, tmp_path):
    _require(backend)
    recipe = load_recipe("experiments/smoke.yaml", ["duration_s=9"])
    name = f"kill-{backend}"
    killed = {}

    def on_started(state, start_unix):
        time.sleep(max(0.0, start_unix + 6.0 - time.time()))  # both flows are running by then
        _kill_agent(backend, state, "PC7")
        killed["at"] = time.time() - start_unix

    log = run_emulated(recipe, backend, tmp_path / "run", name=name, on_started=on_started)
    info = json.loads((tmp_path / "run" / "emu.json").read_text())
    assert [f["node"] for f in info["failures"]] == ["PC7"]
    assert info["failures"][0]["links_down_seen_by"] == {"PC1": True}
    # The others kept running to the end and handed in their logs; the surviving flow kept being delivered.
    assert sorted(info["agent_stats"]) == ["PC1", "PC2", "PC3", "PC4", "PC6"]
    d = log["deliveries"]
    late = d[d["t_s"] > killed["at"] + 1.0]
    assert set(late["flow"].tolist()) == {1}  # PC4->PC6 alive; PC3->PC7 lost its destination
    assert (log["drops"]["reason"] == 4).any()  # frames toward the dead node dropped as link_down
    assert leftovers(name, tmp_path / "state") == []


@pytest.mark.backend
@pytest.mark.parametrize("backend", ["local", "mininet", "docker"])
def test_up_status_down_china_metro(backend, tmp_path):
    _require(backend)
    from testbed.emu.cli import bring_up, tear_down

    name = f"cm-{backend}"
    state, t = bring_up("topologies/china-metro-12.yaml", backend, name)
    try:
        assert len(state.data["nodes"]) == 12
        h = httpd.get_json(state.data["nodes"]["R1"]["control_url"] + "/health")
        assert h["ready"] and h["peers_up"] == 5
        st = httpd.get_json(state.data["nodes"]["R1"]["control_url"] + "/stats")
        assert st["peer_R2_up"] == 1
        env = dict(os.environ)
        qkdbed = [sys.executable, "-m", "testbed.cli"]  # this interpreter's qkdbed, whatever is on PATH
        out = subprocess.run(qkdbed + ["status", name], capture_output=True, text=True, env=env)
        assert out.returncode == 0 and "U9" in out.stdout and "true" in out.stdout
        out = subprocess.run(qkdbed + ["exec", "U1", "--name", name, "--", "true"], capture_output=True,
                             text=True, env=env)
        assert out.returncode == 0, out.stderr
    finally:
        dt = tear_down(name)
    assert dt < 10
    assert leftovers(name, tmp_path / "state") == []
    assert tear_down(name) == 0.0  # idempotent: nothing left to do
