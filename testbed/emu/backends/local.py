"""The `local` backend (default; no root): every agent a local process on its own loopback address.

Linux routes all of 127.0.0.0/8 to `lo`, so node i listens on 127.X.(1 + i // 250).(1 + i % 250) with no setup
at all, X derived from the testbed name so that two testbeds on one machine do not collide; the injector sits on
127.X.0.1. There are no links to shape: the agents emulate each link's delay and serialisation themselves.
"""

from __future__ import annotations

import subprocess
from typing import Iterator

from ...errors import QkdbedError
from ..lab import AddressPlan, Lab, name_octet
from .base import Backend, agent_argv, injector_argv, pid_alive, spawn, stop_pids


def plan_for(lab: Lab) -> AddressPlan:
    x = name_octet(lab.name, 16, 250)
    host = {n: f"127.{x}.{1 + i // 250}.{1 + i % 250}" for i, n in enumerate(lab.node_names)}
    inj = f"127.{x}.0.1"
    return AddressPlan(
        link_addr={(n, p): host[n] for n in lab.node_names for p in lab.neighbours(n)},
        control_host=host, injector_listen=[inj], injector_for={n: inj for n in lab.node_names},
        injector_control=inj)


class LocalBackend(Backend):
    name = "local"

    def up(self, lab: Lab) -> None:
        plan = plan_for(lab)
        paths = self.write_configs(lab, plan)
        logs = self.state.log_dir
        procs = {"injector": spawn(injector_argv(paths["injector"]), logs / "injector.log")}
        self.state.update(pids={"injector": [procs["injector"].pid, str(paths["injector"])]})
        for n in lab.node_names:
            procs[n] = spawn(agent_argv(paths[n]), logs / f"{n}.log")
        self.state.update(pids={k: [p.pid, str(paths[k])] for k, p in procs.items()}, phase="up")

    def down(self) -> None:
        pids = {int(v[0]): v[1] for v in self.state.data.get("pids", {}).values()}
        stop_pids(pids)

    def status(self) -> dict[str, dict]:
        return {k: {"alive": pid_alive(int(v[0])), "pid": int(v[0])}
                for k, v in self.state.data.get("pids", {}).items()}

    def exec(self, node: str, argv: list[str]) -> int:
        if node not in self.state.data.get("pids", {}):
            raise QkdbedError(f"testbed {self.state.name}: no node {node!r}")
        # A local agent shares the host's namespaces: the command simply runs here.
        return subprocess.call(argv)

    def logs(self, node: str, follow: bool = False) -> Iterator[str]:
        return super().logs(node, follow)
