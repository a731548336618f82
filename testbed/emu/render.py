"""Render a topology as a Compose file, a standalone Mininet script or Kubernetes manifests (jinja2 templates in
`testbed/templates/`), with the agents' configurations to match, so a testbed can be handed to the tool a user
already runs -- or to a cluster when one machine is not enough.

Each format has its own address plan (the same `AddressPlan` the backends produce): Compose gives every link its
own internal network; Mininet uses the backends' veth plan; Kubernetes uses Service DNS names and pods listen on
all their addresses.
"""

from __future__ import annotations

import json
from pathlib import Path

import jinja2

from ..errors import QkdbedError
from ..network import load_topology
from .backends.netplan import plan_netns
from .lab import AddressPlan, Lab, agent_configs, lab_from_topology, name_octet, write_configs

FORMATS = ("compose", "mininet", "k8s")
IMAGE = "qkdbed/agent:latest"
_ENV = jinja2.Environment(loader=jinja2.PackageLoader("testbed", "templates"), trim_blocks=True,
                          lstrip_blocks=True, keep_trailing_newline=True, undefined=jinja2.StrictUndefined)


def _svc(name: str, node: str) -> str:
    return f"qkdbed-{name}-{node}".lower().replace("_", "-")


def _compose(lab: Lab) -> tuple[dict, AddressPlan]:
    x = name_octet(lab.name, 0, 255)
    link_addr, links = {}, []
    for l in lab.links:
        base = 8 * l.index
        pre = f"10.{x}.{base // 256}"
        link_addr[(l.a, l.b)], link_addr[(l.b, l.a)] = f"{pre}.{base % 256 + 2}", f"{pre}.{base % 256 + 3}"
        links.append({"net": f"link{l.index}", "subnet": f"{pre}.{base % 256}/29", "a": l.a, "b": l.b})
    mg = {n: f"100.64.{1 + i // 250}.{2 + i % 250}" for i, n in enumerate(lab.node_names)}
    inj = "100.64.0.2"
    plan = AddressPlan(link_addr=link_addr, control_host=mg, injector_listen=[inj],
                       injector_for={n: inj for n in lab.node_names}, injector_control=inj)
    nodes = []
    for n in lab.node_names:
        las = [{"net": f"link{l.index}", "addr": link_addr[(n, l.b if l.a == n else l.a)]}
               for l in lab.links if n in (l.a, l.b)]
        nodes.append({"name": n, "service": _svc(lab.name, n), "mgmt_addr": mg[n], "link_addrs": las})
    ctx = {"nodes": nodes, "links": links, "mgmt_subnet": "100.64.0.0/16", "injector_addr": inj}
    return ctx, plan


def _mininet(lab: Lab, config_dir: str) -> tuple[dict, AddressPlan]:
    shaped = any(l.bandwidth_bps < 1e9 for l in lab.links)
    plan, w = plan_netns(lab, shaped)
    links = [{**l, "shape_mbit": l["bandwidth_bps"] / 1e6 if l["bandwidth_bps"] < 1e9 else None}
             for l in w["links"]]
    nodes = [{"name": n, "host": f"{w['tag']}n{m['index']}", "root_addr": m["root_addr"], "mgmt_addr": m["node_addr"]}
             for n, m in w["mgmt"].items()]
    return {"nodes": nodes, "links": links, "tag": w["tag"], "config_dir": config_dir,
            "script_name": "testbed.py"}, plan


def _k8s(lab: Lab) -> tuple[dict, AddressPlan]:
    svc = {n: _svc(lab.name, n) for n in lab.node_names}
    inj = _svc(lab.name, "injector")
    plan = AddressPlan(link_addr={(n, p): svc[n] for n in lab.node_names for p in lab.neighbours(n)},
                       control_host=svc, injector_listen=["0.0.0.0"], injector_for={n: inj for n in lab.node_names},
                       injector_control="0.0.0.0")
    return {"inj": inj, "svc": svc}, plan


def render(topology: str, fmt: str, name: str | None = None, out_dir: Path | None = None) -> str:
    """The rendered file's text; with `out_dir`, also write it and the agents' configurations there."""
    if fmt not in FORMATS:
        raise QkdbedError(f"render format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    topo = load_topology(topology)
    lab = lab_from_topology(topo, name or topo.name)
    config_dir = str((out_dir / "config").resolve()) if out_dir else "./config"
    if fmt == "compose":
        ctx, plan = _compose(lab)
    elif fmt == "mininet":
        ctx, plan = _mininet(lab, config_dir)
    else:
        ctx, plan = _k8s(lab)
    configs, injector = agent_configs(lab, plan)
    if fmt == "k8s":  # pods listen on every address they have; peers are reached by Service name
        for c in configs.values():
            c["listen"] = ["0.0.0.0"]
            c["control"]["host"] = "0.0.0.0"
        pods = [{"service": _svc(lab.name, n), "role": "agent",
                 "args": f'"agent", "--config", "/etc/qkdbed/{n}.json"'} for n in lab.node_names]
        pods.append({"service": ctx["inj"], "role": "injector",
                     "args": '"inject", "--config", "/etc/qkdbed/injector.json"'})
        ctx = {"pods": pods, "configs": {f"{k}.json": json.dumps(v) for k, v in
                                         list(configs.items()) + [("injector", injector)]}}
    fname = {"compose": "compose.yaml", "mininet": "testbed.py", "k8s": "k8s.yaml"}[fmt]
    text = _ENV.get_template(fname.replace("testbed.py", "mininet.py") + ".j2").render(
        name=lab.name, topology=topo.source, image=IMAGE, **ctx)
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / fname).write_text(text)
        if fmt != "k8s":
            write_configs(out_dir / "config", configs, injector)
    return text
