"""What a backend is: five operations on one named testbed, and the process helpers they share.

A backend turns a `Lab` into running agents (plus the key injector) and takes them away again; it knows how to
place processes and wire links, nothing about schemes or measurements. Everything it creates is recorded in the
testbed's `State` as it goes, and named or labelled with the testbed name, so `down` removes exactly that --
even from another process, even after a crash half-way through `up`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

from ...errors import QkdbedError
from ..lab import AddressPlan, Lab, agent_configs, control_url, kme_url, write_configs
from ..state import State


class Backend:
    name = "base"

    def __init__(self, state: State):
        self.state = state

    # The interface ------------------------------------------------------------------------------------------
    def up(self, lab: Lab) -> None:
        """Start the injector and one agent per node, wired per the topology (not health-gated: see control)."""
        raise NotImplementedError

    def down(self) -> None:
        """Remove every process, namespace, interface, container and network of this testbed (idempotent)."""
        raise NotImplementedError

    def status(self) -> dict[str, dict]:
        """node -> {"alive": bool, ...} from the system's point of view (process / container state)."""
        raise NotImplementedError

    def logs(self, node: str, follow: bool = False) -> Iterator[str]:
        return follow_file(self.state.log_dir / f"{node}.log", follow)

    def exec(self, node: str, argv: list[str]) -> int:
        raise NotImplementedError

    # Shared helpers -----------------------------------------------------------------------------------------
    def write_configs(self, lab: Lab, plan: AddressPlan) -> dict[str, Path]:
        kme_dir = self.prepare_kmes(lab, plan)
        configs, injector = agent_configs(lab, plan, kme_dir)
        paths = write_configs(self.state.config_dir, configs, injector)
        nodes = {n: {"control_url": control_url(plan.control_host[n]),
                     "addresses": sorted({plan.link_addr[(n, p)] for p in lab.neighbours(n)})}
                 for n in lab.node_names}
        for n in (lab.kme_nodes() if kme_dir else []):
            nodes[n]["kme_url"] = kme_url(lab, plan, n)
        self.state.update(nodes=nodes, node_names=lab.node_names,
                          injector_url=control_url(plan.injector_control, 7403))
        return paths

    def prepare_kmes(self, lab: Lab, plan: AddressPlan) -> str | None:
        """The ETSI 014 side of a testbed, in its state folder: the PKI (CA, a server certificate per KME for its
        address, a client certificate per SAE) and `kme.json`. Returns the folder, or None when the testbed has
        no KME (no user nodes, or KMEs switched off)."""
        kmes = lab.kme_nodes()
        if not kmes:
            return None
        import importlib.util

        missing = [m for m in ("aiohttp", "cryptography") if importlib.util.find_spec(m) is None]
        if missing:  # the emu extra is not installed: the testbed runs, without key delivery to applications
            print(f"qkdbed: no ETSI 014 KMEs ({', '.join(missing)} not installed; pip install -e '.[emu]')",
                  file=sys.stderr)
            return None
        d = self.state.dir
        if not lab.insecure_http:
            from ..etsi014.pki import ensure_testbed_pki

            ensure_testbed_pki(d, {n: [plan.control_host[n], n] for n in kmes}, kmes)
        from ..etsi014.pki import write_kme_json

        write_kme_json(d, {n: kme_url(lab, plan, n) for n in kmes})
        self.state.update(kme_dir=str(d), kme_insecure_http=lab.insecure_http)
        return str(d)


def agent_argv(config: Path, python: str | None = None) -> list[str]:
    return [python or sys.executable, "-m", "testbed.emu.agent", "--config", str(config)]


def injector_argv(config: Path, python: str | None = None) -> list[str]:
    return [python or sys.executable, "-m", "testbed.emu.injector", "--config", str(config)]


def spawn(argv: list[str], log: Path, preexec=None) -> subprocess.Popen:
    """Start a process in its own session (so it outlives `qkdbed up`), output appended to `log`."""
    fh = open(log, "ab")
    try:
        return subprocess.Popen(argv, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, preexec_fn=preexec, close_fds=True)
    finally:
        fh.close()


def pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            state = fh.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    if state == "Z":
        _reap(pid)
        return False
    return True


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def pid_matches(pid: int, marker: str) -> bool:
    """The process `pid` is still the one we started (its command line names our config file), not a reused
    pid belonging to someone else."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return marker.encode() in fh.read()
    except OSError:
        return False


def stop_pids(pids: dict[int, str], grace_s: float = 1.0) -> None:
    """SIGTERM each of our processes, wait up to `grace_s`, then SIGKILL the rest. `pids` maps pid -> marker."""
    ours = [p for p, m in pids.items() if pid_alive(p) and pid_matches(p, m)]
    for p in ours:
        try:
            os.kill(p, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and any(pid_alive(p) for p in ours):
        time.sleep(0.01)
    for p in ours:
        if pid_alive(p):
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline and any(pid_alive(p) for p in ours):
        time.sleep(0.01)


def follow_file(path: Path, follow: bool) -> Iterator[str]:
    if not path.is_file():
        raise QkdbedError(f"no log at {path}")
    with open(path, errors="replace") as fh:
        while True:
            line = fh.readline()
            if line:
                yield line
            elif not follow:
                return
            else:
                time.sleep(0.2)
