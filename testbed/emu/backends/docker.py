"""The `docker` backend: one container per node (docker SDK), links wired per topology with veth pairs.

Containers start with `--network none`; we then give each one a veth per topology link and one management veth
to the root namespace (`netplan.py`), from the root namespace with pyroute2 via `/proc/<pid>/ns/net`. No Docker
network, bridge or iptables rule is involved, so the host's firewall is left alone and no container has a path to
the outside. Every container is named `qkdbed-<testbed>-<node>` and labelled `qkdbed.testbed=<testbed>`; `down`
removes by that label. The key injector runs on the host, in the root namespace, reached over the management
links.

Images (no registry needed):
- `qkdbed/agent:latest`, built by users from `images/agent/Dockerfile` (`FROM python:3.11-slim`, self-contained);
  used whenever it exists (or name another with $QKDBED_AGENT_IMAGE);
- otherwise `qkdbed/agent:hostfs`, built here from `images/agent/Dockerfile.hostfs` on top of `qkdbed/base:hostfs`,
  an image we import from an empty root file system (usr-merge symlinks only; no registry, no download). Its
  containers bind-mount the host's /usr, this Python installation and the project read-only and run the host's
  interpreter: what CI uses, since it has no registry access.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ...errors import QkdbedError
from ..lab import Lab
from .base import Backend, injector_argv, pid_alive, spawn, stop_pids
from .netplan import (delete_root_interfaces, plan_netns, root_interfaces_with_prefix, taken_mgmt_octets,
                      wire_namespaces)

LABEL = "qkdbed.testbed"
REPO = Path(__file__).resolve().parents[3]
IMAGES = REPO / "images" / "agent"
FULL_IMAGE = "qkdbed/agent:latest"
HOSTFS_IMAGE = "qkdbed/agent:hostfs"
HOSTFS_BASE = "qkdbed/base:hostfs"


def client():
    try:
        import docker
    except ImportError:
        raise QkdbedError("backend docker: the docker Python package is missing (pip install docker)") from None
    try:
        c = docker.from_env(timeout=60)
        c.ping()
        return c
    except Exception as e:
        raise QkdbedError(f"backend docker: no Docker engine reachable ({type(e).__name__}); start dockerd") from None


def available() -> tuple[bool, str]:
    if os.geteuid() != 0:
        return False, "the docker backend wires container namespaces and needs root"
    try:
        client()
    except QkdbedError as e:
        return False, str(e)
    try:
        import pyroute2  # noqa: F401
    except ImportError:
        return False, "pyroute2 is missing (pip install pyroute2, or the emu extra)"
    return True, ""


def empty_rootfs_tar() -> bytes:
    """A root file system with nothing but directories and the usr-merge symlinks (the host's /usr is mounted)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for d in ("tmp", "etc", "proc", "sys", "dev", "usr", "root", "run", "var", "var/tmp"):
            ti = tarfile.TarInfo(d)
            ti.type, ti.mode = tarfile.DIRTYPE, 0o1777 if d in ("tmp", "var/tmp") else 0o755
            tar.addfile(ti)
        for link in ("bin", "sbin", "lib", "lib64"):
            ti = tarfile.TarInfo(link)
            ti.type, ti.linkname = tarfile.SYMTYPE, f"usr/{link}"
            tar.addfile(ti)
        data = b"root:x:0:0:root:/root:/bin/sh\n"
        ti = tarfile.TarInfo("etc/passwd")
        ti.size = len(data)
        tar.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def build_hostfs_image(c=None) -> str:
    """Import the empty base and build the agent image from images/agent/Dockerfile.hostfs (no registry)."""
    c = c or client()
    repo, tag = HOSTFS_BASE.split(":")
    c.api.import_image_from_data(empty_rootfs_tar(), repository=repo, tag=tag)
    c.images.build(path=str(IMAGES), dockerfile="Dockerfile.hostfs", tag=HOSTFS_IMAGE, pull=False, rm=True,
                   buildargs={"BASE": HOSTFS_BASE}, labels={"org.qkdbed.image": "agent-hostfs"})
    return HOSTFS_IMAGE


def _has_image(c, name: str) -> bool:
    try:
        c.images.get(name)
        return True
    except Exception:
        return False


def choose_image(c) -> tuple[str, bool]:
    """(image, hostfs?) -- $QKDBED_AGENT_IMAGE, else the self-contained image if built, else the hostfs one."""
    want = os.environ.get("QKDBED_AGENT_IMAGE")
    if want:
        return want, want == HOSTFS_IMAGE
    if _has_image(c, FULL_IMAGE):
        return FULL_IMAGE, False
    if not _has_image(c, HOSTFS_IMAGE):
        build_hostfs_image(c)
    return HOSTFS_IMAGE, True


def _host_mounts() -> dict[str, dict]:
    """Read-only mounts that let the hostfs image run this very interpreter and package."""
    paths = {"/usr", sys.base_prefix, sys.prefix, str(REPO), os.path.dirname(os.path.realpath(sys.executable))}
    return {p: {"bind": p, "mode": "ro"} for p in sorted(paths) if os.path.isdir(p)}


class DockerBackend(Backend):
    name = "docker"

    def up(self, lab: Lab) -> None:
        ok, why = available()
        if not ok:
            raise QkdbedError(f"backend docker: {why}")
        c = client()
        image, hostfs = choose_image(c)
        plan, wiring = plan_netns(lab, False, taken_mgmt_octets())
        paths = self.write_configs(lab, plan)
        self.state.update(wiring=wiring, image=image)
        cfg_dir = str(self.state.config_dir)
        volumes = {cfg_dir: {"bind": cfg_dir, "mode": "ro"}}
        if self.state.data.get("kme_dir") and not lab.insecure_http:  # the KMEs' certificates (testbed PKI)
            pki = str(self.state.dir / "pki")
            volumes[pki] = {"bind": pki, "mode": "ro"}
        python = "python3"
        env = {"PYTHONUNBUFFERED": "1"}
        if hostfs:
            volumes.update(_host_mounts())
            python = sys.executable
            env["PYTHONPATH"] = str(REPO)
        name = self.state.name

        def run(n: str):
            return c.containers.run(
                image, [python, "-m", "testbed.emu.agent", "--config", str(paths[n])], entrypoint=[],
                name=f"qkdbed-{name}-{n}", hostname=n, network_mode="none", detach=True,
                labels={LABEL: name, "qkdbed.node": n}, volumes=volumes, environment=env, working_dir="/tmp")

        with ThreadPoolExecutor(max_workers=min(16, len(lab.node_names))) as ex:
            containers = dict(zip(lab.node_names, ex.map(run, lab.node_names)))
        self.state.update(containers={n: ct.id for n, ct in containers.items()})
        ns_of = {}
        for n, ct in containers.items():
            ct.reload()
            pid = ct.attrs["State"]["Pid"]
            if not pid:
                raise QkdbedError(f"backend docker: container of {n} is not running ({ct.status}); "
                                  f"see `docker logs qkdbed-{name}-{n}`")
            ns_of[n] = f"/proc/{pid}/ns/net"
        wire_namespaces(wiring, ns_of)
        inj = spawn(injector_argv(paths["injector"]), self.state.log_dir / "injector.log")
        self.state.update(pids={"injector": [inj.pid, str(paths["injector"])]}, phase="up")

    def down(self) -> None:
        data = self.state.data
        stop_pids({int(v[0]): v[1] for v in data.get("pids", {}).values()})
        try:
            c = client()
        except QkdbedError:
            c = None
        if c is not None:
            mine = c.containers.list(all=True, filters={"label": f"{LABEL}={self.state.name}"})

            def rm(ct) -> None:
                try:
                    ct.remove(force=True)
                except Exception:  # already gone
                    pass

            with ThreadPoolExecutor(max_workers=16) as ex:
                list(ex.map(rm, mine))
            for net in c.networks.list(filters={"label": f"{LABEL}={self.state.name}"}):
                net.remove()
        tag = (data.get("wiring") or {}).get("tag")
        if tag:
            delete_root_interfaces(root_interfaces_with_prefix(tag))

    def status(self) -> dict[str, dict]:
        out = {k: {"alive": pid_alive(int(v[0])), "pid": int(v[0])} for k, v in self.state.data.get("pids", {}).items()}
        try:
            c = client()
            for ct in c.containers.list(all=True, filters={"label": f"{LABEL}={self.state.name}"}):
                out[ct.labels.get("qkdbed.node", ct.name)] = {"alive": ct.status == "running", "container": ct.name}
        except QkdbedError:
            pass
        return out

    def _container(self, node: str):
        c = client()
        found = c.containers.list(all=True, filters={"label": [f"{LABEL}={self.state.name}", f"qkdbed.node={node}"]})
        if not found:
            raise QkdbedError(f"testbed {self.state.name}: no container for node {node!r}")
        return found[0]

    def exec(self, node: str, argv: list[str]) -> int:
        res = self._container(node).exec_run(argv)
        sys.stdout.write(res.output.decode(errors="replace"))
        return res.exit_code

    def logs(self, node: str, follow: bool = False):
        if node == "injector":
            return super().logs(node, follow)
        ct = self._container(node)
        if follow:
            return (chunk.decode(errors="replace") for chunk in ct.logs(stream=True, follow=True))
        return iter([ct.logs().decode(errors="replace")])


def docker_cli_build(dockerfile: str = "Dockerfile", tag: str = FULL_IMAGE) -> int:
    """Build the self-contained image with the docker CLI (needs a registry for python:3.11-slim)."""
    return subprocess.call(["docker", "build", "-f", str(IMAGES / dockerfile), "-t", tag, str(REPO)])


def wait_for_engine(timeout_s: float = 15.0) -> bool:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        try:
            client()
            return True
        except QkdbedError:
            time.sleep(0.25)
    return False
