"""The `mininet` backend: Mininet's Python API, one host per node, host-to-host links, no switch, no controller.

Mininet's objects live in the process that built them, and a testbed must outlive `qkdbed up`; so `up` starts a
small supervisor process (this module's `main`) that builds the network, starts the injector and the agents,
records everything in the testbed state and waits; `down` sends it SIGTERM and it stops the agents and calls
`net.stop()`. If the supervisor is gone, `down` removes the recorded processes and our tagged interfaces itself.

Links: `Link` (plain veth) by default; a topology link whose classical bandwidth is below 1 Gbit/s becomes a
`TCLink` with `bw` (htb), so the kernel serialises frames and the agents skip their own serialisation delay.
Propagation delay and loss would need netem, which this kind of kernel lacks (`Specified qdisc kind is unknown`):
delay is emulated by the agents (every backend), and we never pass `delay`/`loss` to TCLink, so nothing is
silently dropped on the floor.

Hazards we avoid on purpose: never `mn -c`, `mininet.clean.cleanup()` or `net.iperf()` (machine-wide kills and
deletes); only our own tagged interfaces and recorded processes are ever removed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time

from ...errors import QkdbedError
from ..lab import Lab
from ..state import State
from .base import Backend, agent_argv, injector_argv, pid_alive, spawn, stop_pids
from .netplan import delete_root_interfaces, plan_netns, root_interfaces_with_prefix, taken_mgmt_octets

FULL_RATE_BPS = 1e9  # links at or above this are not shaped (Mininet's htb tops out around here anyway)
SUPERVISOR_READY_S = 30.0


def available() -> tuple[bool, str]:
    if os.geteuid() != 0:
        return False, "the mininet backend needs root"
    if shutil.which("mnexec") is None:
        return False, "mnexec not found (apt-get install mininet)"
    try:
        import mininet.net  # noqa: F401
    except ImportError:
        return False, "the mininet Python package is not importable (pip install mininet, or the emu extra)"
    return True, ""


class MininetBackend(Backend):
    name = "mininet"

    def up(self, lab: Lab) -> None:
        ok, why = available()
        if not ok:
            raise QkdbedError(f"backend mininet: {why}")
        shaped = any(l.bandwidth_bps < FULL_RATE_BPS for l in lab.links)
        plan, wiring = plan_netns(lab, shaped, taken_mgmt_octets())
        paths = self.write_configs(lab, plan)
        for l in wiring["links"]:
            l["shape_mbit"] = l["bandwidth_bps"] / 1e6 if l["bandwidth_bps"] < FULL_RATE_BPS else None
        self.state.update(wiring=wiring, config_paths={k: str(v) for k, v in paths.items()},
                          python=sys.executable)
        sup = spawn([sys.executable, "-m", "testbed.emu.backends.mininet", "--name", self.state.name],
                    self.state.log_dir / "supervisor.log")
        self.state.update(supervisor=[sup.pid, "testbed.emu.backends.mininet"])
        deadline = time.monotonic() + SUPERVISOR_READY_S
        while time.monotonic() < deadline:
            phase = State(self.state.name).data.get("phase")
            if phase == "up":
                self.state.data = State(self.state.name).data
                return
            if phase == "failed" or not pid_alive(sup.pid):
                break
            time.sleep(0.02)
        tail = _tail(self.state.log_dir / "supervisor.log")
        raise QkdbedError(f"backend mininet: the network did not come up ({tail})")

    def down(self) -> None:
        st = State(self.state.name)
        data = st.data or self.state.data
        sup = data.get("supervisor")
        if sup and pid_alive(sup[0]):
            os.kill(sup[0], signal.SIGTERM)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and pid_alive(sup[0]):
                time.sleep(0.01)
        # Whatever the supervisor did not get to: recorded processes, then our tagged root interfaces.
        pids = {int(v[0]): v[1] for v in data.get("pids", {}).values()}
        pids.update({int(p): "mininet:" for p in data.get("host_pids", {}).values()})
        if sup:
            pids[int(sup[0])] = sup[1]
        stop_pids(pids)
        tag = (data.get("wiring") or {}).get("tag")
        if tag:
            delete_root_interfaces(root_interfaces_with_prefix(tag))

    def status(self) -> dict[str, dict]:
        data = State(self.state.name).data or self.state.data
        return {k: {"alive": pid_alive(int(v[0])), "pid": int(v[0])} for k, v in data.get("pids", {}).items()}

    def exec(self, node: str, argv: list[str]) -> int:
        data = State(self.state.name).data
        hp = data.get("host_pids", {}).get(node)
        if hp is None:
            raise QkdbedError(f"testbed {self.state.name}: no node {node!r}")
        return subprocess.call(["mnexec", "-a", str(hp)] + argv)


def _tail(path, n: int = 3) -> str:
    try:
        lines = [l for l in path.read_text(errors="replace").splitlines() if l.strip()]
    except OSError:
        return "no supervisor log"
    return " | ".join(lines[-n:]) or "no output"


# -- the supervisor process ---------------------------------------------------------------------------------

def supervise(name: str) -> None:
    from mininet.link import Link, TCLink
    from mininet.log import setLogLevel
    from mininet.net import Mininet

    setLogLevel("warning")
    state = State(name)
    w = state.data["wiring"]
    tag, nodes = w["tag"], state.data["node_names"]
    paths = state.data["config_paths"]
    stop = {"flag": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(flag=True))
    net = Mininet(topo=None, controller=None, build=False, waitConnected=False, autoSetMacs=False)
    procs: dict[str, subprocess.Popen] = {}
    try:
        hosts = {n: net.addHost(f"{tag}n{w['mgmt'][n]['index']}", ip=None) for n in nodes}
        root = net.addHost(f"{tag}r", inNamespace=False, ip=None)
        for l in w["links"]:
            kw = {"cls": TCLink, "bw": l["shape_mbit"]} if l.get("shape_mbit") else {"cls": Link}
            net.addLink(hosts[l["a"]], hosts[l["b"]], params1={"ip": f"{l['addr_a']}/30"},
                        params2={"ip": f"{l['addr_b']}/30"}, **kw)
        for n, m in w["mgmt"].items():
            net.addLink(root, hosts[n], params1={"ip": f"{m['root_addr']}/30"},
                        params2={"ip": f"{m['node_addr']}/30"})
        net.build()
        net.start()
        state.update(host_pids={n: h.pid for n, h in hosts.items()})
        logs = state.log_dir
        procs["injector"] = spawn(injector_argv(paths["injector"]), logs / "injector.log")
        for n, h in hosts.items():
            fh = open(logs / f"{n}.log", "ab")
            procs[n] = h.popen(agent_argv(paths[n]), stdout=fh, stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL)
            fh.close()
        state.update(pids={k: [p.pid, paths[k]] for k, p in procs.items()}, phase="up")
        while not stop["flag"]:
            time.sleep(0.1)
            for p in procs.values():
                p.poll()  # reap agents that die (a killed agent must not linger as a zombie)
    except Exception as e:
        print(f"mininet supervisor: {type(e).__name__}: {e}", flush=True)
        state.update(phase="failed")
    finally:
        stop_pids({p.pid: paths[k] for k, p in procs.items()})
        try:
            net.stop()
        except Exception as e:  # keep going: down sweeps our interfaces by tag afterwards
            print(f"mininet supervisor: stop: {e}", flush=True)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m testbed.emu.backends.mininet")
    ap.add_argument("--name", required=True)
    a = ap.parse_args(argv)
    supervise(a.name)


if __name__ == "__main__":
    main(sys.argv[1:])
