"""Experiment recipes: load, apply overrides, validate; every error names the file, the field path and what was
expected.

A recipe (YAML) names the topology, key supply, traffic, scheme, profile, duration and outputs:

```yaml
name: smoke
topology: barbell-7                 # path (relative to this file), name in topologies/, or gen:...
duration_s: 60
seed: 1
scheme: {name: ondemand, profile: paper, params: {}}   # or just: scheme: ondemand
key_supply: {model: synthetic, scale: 10}              # default for links without their own key_supply
routing: {metric: hops}                                # hops | km
scheduler: round-robin                                 # round-robin | weighted-round-robin
traffic:
  flows:
    - {src: PC4, dst: PC6, model: cbr, rate_bps: 400000, start_s: 5}
record: {sample_period_s: 0.5, sends: true}
outputs: {bin_s: 1.0, figures: [throughput, latency_cdf, key_storage]}
```
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import QkdbedError, ValidationError
from .network import Topology, load_topology
from .schema import Reader, load_yaml
from .traffic import FlowSpec, parse_flow

RUNTIMES = ("sim", "emu")
SCHEDULERS = ("round-robin", "weighted-round-robin")
PROFILES = ("paper", "original")


@dataclass
class Recipe:
    name: str
    source: str
    base_dir: Path | None
    topology_ref: str
    topology: Topology
    duration_s: float
    seed: int
    scheme: str
    profile: str
    scheme_params: dict[str, Any]
    key_supply: dict[str, Any] | None
    routing_metric: str
    scheduler: str
    ack: bool
    flows: list[FlowSpec]
    sample_period_s: float
    record_sends: bool
    bin_s: float
    figures: list[Any]
    runtime: str
    description: str = ""
    group_keys: dict[str, Any] | None = None  # the resolved group-key plan (servers, assignment, hops)
    raw: dict[str, Any] = field(default_factory=dict)  # the fully resolved recipe, for the manifest


def load_recipe(path: str | Path, overrides: list[str] | tuple[str, ...] = (), seed: int | None = None) -> Recipe:
    p = Path(path)
    if not p.is_file():
        alt = Path(__file__).resolve().parent.parent / "experiments" / (str(path) + ("" if p.suffix else ".yaml"))
        if alt.is_file():
            p = alt
        else:
            raise QkdbedError(f"recipe {path}: no such file")
    data = load_yaml(p)
    data = apply_overrides(data, overrides, str(p))
    if seed is not None:
        data["seed"] = seed
    return recipe_from_dict(data, str(p), p.resolve().parent)


def apply_overrides(data: Any, overrides: list[str] | tuple[str, ...], where: str) -> Any:
    """`--set dotted.key=value`: value is parsed as YAML (numbers, lists, mappings); list items by index."""
    data = copy.deepcopy(data) if data is not None else {}
    for ov in overrides:
        if "=" not in ov:
            raise QkdbedError(f"--set {ov!r}: expected KEY=VALUE with a dotted key, e.g. traffic.flows.0.rate_bps=1e5")
        key, val = ov.split("=", 1)
        try:
            value = yaml.safe_load(val)
        except yaml.YAMLError:
            value = val
        parts = key.split(".")
        cur = data
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            if isinstance(cur, list):
                if not part.isdigit() or int(part) >= len(cur):
                    raise QkdbedError(f"--set {key}: {'.'.join(parts[:i]) or '(top)'} is a list of {len(cur)} "
                                      f"items, expected an index below {len(cur)}, got {part!r}")
                if last:
                    cur[int(part)] = value
                else:
                    cur = cur[int(part)]
            elif isinstance(cur, dict):
                if last:
                    cur[part] = value
                else:
                    if part not in cur or cur[part] is None:
                        cur[part] = {}
                    elif isinstance(cur[part], str) and part == "scheme":
                        cur[part] = {"name": cur[part]}
                    cur = cur[part]
            else:
                raise QkdbedError(f"--set {key}: {'.'.join(parts[:i])} is a {type(cur).__name__}, not a mapping")
    return data


def recipe_from_dict(data: Any, where: str, base_dir: Path | None = None) -> Recipe:
    from . import schemes

    if data is None:
        data = {}
    r = Reader(data, where)
    r.raw("sweep", None)  # a sweep section is read by sweep.py; each job is an ordinary recipe
    r.raw("quick", None)  # the --quick variant (sweep.apply_quick)
    name = r.str("name", Path(where).stem)
    description = r.str("description", "")
    topo_ref = r.raw("topology")
    if not isinstance(topo_ref, str):
        raise r.fail("topology", "a topology file, a name in topologies/, or gen:<kind>:<args>", topo_ref)
    try:
        topology = load_topology(topo_ref, base_dir)
    except ValidationError:
        raise
    except QkdbedError as e:
        raise QkdbedError(f"{where}: topology: {e}") from None
    if not topology.is_connected():
        raise r.fail("topology", "a connected network", topo_ref)
    duration = r.num("duration_s", min=0, strict_min=True)
    seed = r.int("seed", 1, min=0)
    runtime = r.str("runtime", "sim", choices=RUNTIMES)
    sch = r.raw("scheme", "ondemand")
    if isinstance(sch, str):
        data["scheme"] = sch = {"name": sch}
    sr = r.sub("scheme")
    scheme = sr.str("name", "ondemand", choices=schemes.names())
    profile = sr.str("profile", "paper", choices=PROFILES)
    params = sr.raw("params", {}) or {}
    if not isinstance(params, dict):
        raise sr.fail("params", "a mapping of scheme parameters", params)
    sr.reject_unknown()
    key_supply = r.raw("key_supply", None)
    if key_supply is not None and not isinstance(key_supply, dict):
        raise r.fail("key_supply", "a mapping describing a key-supply model", key_supply)
    rr = r.sub("routing", {})
    metric = rr.str("metric", "hops", choices=("hops", "km"))
    rr.reject_unknown()
    scheduler = r.str("scheduler", "round-robin", choices=SCHEDULERS)
    ack = r.bool("ack", True)
    group_flows: list = []
    group_plan = None
    if r.has("group_keys"):
        from .groupkeys import parse_and_expand

        group_flows, group_plan = parse_and_expand(r.sub("group_keys"), topology, int(data.get("seed", 1)))
    tr = r.sub("traffic", {"flows": []} if group_flows else None)
    raw_flows = tr.list("flows", [])
    if not raw_flows and not group_flows:
        raise tr.fail("flows", "at least one flow (or a group_keys section)")
    flows = []
    names = set()
    for i in range(len(raw_flows)):
        fr = tr.item("flows", i)
        f = parse_flow(fr, i, base_dir)
        for end, key in ((f.src, "src"), (f.dst, "dst")):
            if end not in topology.nodes:
                raise fr.fail(key, f"a node of topology {topology.name}", end)
        if f.name in names:
            raise fr.fail("name", "a unique flow name", f.name)
        names.add(f.name)
        flows.append(f)
    flows.extend(group_flows)
    # traffic.groups: settings applied to every flow of a group, e.g. {normal: {start_s: 105}} -- so that a sweep
    # can move the entry time of all "normal" users with one grid field (seed 000 Fig. 12's early entry)
    groups = tr.sub("groups", {})
    for g in list(groups.data):
        gr = groups.sub(g)
        members = [f for f in flows if f.group == g]
        if not members:
            raise groups.fail(g, "the name of a group some flow belongs to (flows[].group)", g)
        if gr.has("start_s"):
            start = gr.num("start_s", min=0)
            for f in members:
                if f.stop_s is not None and f.stop_s <= start:
                    raise gr.fail("start_s", f"a time before flow {f.name}'s stop_s", start)
                f.start_s = start
        if gr.has("weight"):
            w = gr.num("weight", min=0, strict_min=True)
            for f in members:
                f.weight = w
        gr.reject_unknown()
    tr.reject_unknown()
    rec = r.sub("record", {})
    sample = rec.num("sample_period_s", 0.5, min=0)
    sends = rec.bool("sends", True)
    rec.reject_unknown()
    out = r.sub("outputs", {})
    bin_s = out.num("bin_s", 1.0, min=0, strict_min=True)
    figures = out.list("figures", ["throughput", "latency_cdf", "key_storage"])
    out.reject_unknown()
    r.reject_unknown()
    return Recipe(name=name, source=where, base_dir=base_dir, topology_ref=topo_ref, topology=topology,
                  duration_s=duration, seed=seed, scheme=scheme, profile=profile, scheme_params=dict(params),
                  key_supply=key_supply, routing_metric=metric, scheduler=scheduler, ack=ack, flows=flows,
                  sample_period_s=sample, record_sends=sends, bin_s=bin_s, figures=figures, runtime=runtime,
                  description=description, group_keys=group_plan, raw=copy.deepcopy(data))
