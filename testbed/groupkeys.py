"""Group-key service (seed 002): servers generate group keys and deliver them to their members over the members'
end-to-end keys, i.e. one-time-pad over the relayed path, one key unit per hop per unit of group key.

A recipe's `group_keys:` section

```yaml
group_keys:
  servers: {method: pmedian, p: 2}       # or a list [R1, R3], or {method: random, p: 2, seed: 7},
                                         # or {method: central} (the 1-median)
  members: [U1, U2, ...]                 # default: every user node
  metric: hops                           # how members are assigned to their nearest server (hops | km)
  key_units: 1                           # size of one group key, in key units (512 bytes each)
  rate_per_s: 0.5                        # group keys each server generates per second
  start_s: 5
  stop_s: 300                            # optional
```

is expanded into ordinary flows `gk:<server>-><member>` (group `group-key`) that offer `key_units` messages every
1/rate seconds: the node model carries them like any key request, so both runtimes deliver group keys the same way,
each delivered unit is acknowledged end to end (members acknowledge), and the event log measures what they cost.
`group_key_summary(log)` turns the log into the service's numbers: group keys completed, relay key units consumed
per group key (which, with the hops metric, equals the p-median objective times `key_units`), and delivery latency
(from generation to the last member's last unit).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .errors import QkdbedError
from .network import Topology
from .schema import Reader
from .traffic import FlowSpec

GROUP = "group-key"
PREFIX = "gk:"


def parse_and_expand(r: Reader, topology: Topology, seed: int) -> tuple[list[FlowSpec], dict[str, Any]]:
    """Validate the `group_keys` section and return the flows it stands for, plus the resolved plan."""
    from .plan.pmedian import solve_pmedian

    metric = r.str("metric", "hops", choices=("hops", "km"))
    users = topology.users()
    raw_members = r.raw("members", None)
    if raw_members is None:
        members = users
        if not members:
            raise r.fail("members", "a list of member nodes (the topology has no user nodes)")
    else:
        if not isinstance(raw_members, list) or not raw_members:
            raise r.fail("members", "a non-empty list of node names", raw_members)
        members = [str(m) for m in raw_members]
        for m in members:
            if m not in topology.nodes:
                raise r.fail("members", f"names of nodes of topology {topology.name}", m)
    key_units = r.int("key_units", 1, min=1)
    rate = r.num("rate_per_s", 0.5, min=0, strict_min=True)
    start = r.num("start_s", 5.0, min=0)
    stop = r.num("stop_s", None, min=0) if r.has("stop_s") else None
    if stop is not None and stop <= start:
        raise r.fail("stop_s", f"a time after start_s ({start:g})", stop)
    srv = r.raw("servers")
    plan: dict[str, Any]
    if isinstance(srv, list):
        servers = [str(s) for s in srv]
        for s in servers:
            if s not in topology.nodes:
                raise r.fail("servers", f"names of nodes of topology {topology.name}", s)
        if not servers or len(set(servers)) != len(servers):
            raise r.fail("servers", "a non-empty list of distinct node names", srv)
        plan = {"method": "given"}
    elif isinstance(srv, dict):
        sr = r.sub("servers")
        method = sr.str("method", choices=("pmedian", "random", "central"))
        if method == "central":
            p = 1
        else:
            p = sr.int("p", min=1, max=len(topology.nodes))
        s_seed = sr.int("seed", seed, min=0) if method == "random" else None
        sr.reject_unknown()
        if method == "random":
            rng = np.random.default_rng(s_seed)
            names = list(topology.nodes)
            servers = [names[i] for i in sorted(rng.choice(len(names), p, replace=False))]
        else:
            res = solve_pmedian(topology, p, method="auto", metric=metric, demand=members)
            servers = list(res.servers)
        plan = {"method": method, "p": p, **({"seed": s_seed} if s_seed is not None else {})}
    else:
        raise r.fail("servers", "a list of node names or {method: pmedian|random|central, p: N}", srv)
    r.reject_unknown()
    assignment, hops = assign(topology, servers, members, metric)
    flows = []
    period = 1.0 / rate
    for m in members:
        s = assignment[m]
        if s == m:
            continue  # a member that is its own server gets the key without relaying
        flows.append(FlowSpec(name=f"{PREFIX}{s}->{m}", src=s, dst=m, model="periodic", start_s=start,
                              stop_s=stop, group=GROUP, params={"period_s": period, "burst": key_units}))
    plan.update({"servers": servers, "assignment": assignment, "metric": metric, "key_units": key_units,
                 "rate_per_s": rate, "hops": hops,
                 "objective_hops": float(sum(hops[m] for m in members))})
    return flows, plan


def assign(topology: Topology, servers: list[str], members: list[str], metric: str) -> tuple[dict[str, str],
                                                                                         dict[str, int]]:
    """Each member to its nearest server by `metric` (ties: the server listed first); also its hop count."""
    from_server = {s: topology.shortest_paths_from(s, metric) for s in servers}

    def cost(path: list[str]) -> float:
        if metric == "hops":
            return len(path) - 1
        return sum(topology.link(a, b).distance_km for a, b in zip(path, path[1:]))

    assignment, hops = {}, {}
    for m in members:
        best = None
        for s in servers:
            path = from_server[s].get(m)
            if path is None:
                raise QkdbedError(f"group_keys: member {m} cannot reach server {s} (disconnected)")
            c = cost(path)
            if best is None or c < best[0] - 1e-12:
                best = (c, s, len(path) - 1)
        assignment[m], hops[m] = best[1], best[2]
    return assignment, hops


def group_key_summary(log, plan: dict[str, Any]) -> dict[str, Any]:
    """Group keys completed, relay key units per round, and delivery latency, from the event log.

    Round i is the i-th group key of every server (all servers generate on the same schedule); it is complete
    when every member holds all `key_units` units of its server's key i. The units a complete round consumed are
    the sends of its units on every hop: with the hops metric this must equal the p-median objective x key_units.
    """
    ku = plan["key_units"]
    flows = [f for f in log.flows if f.group == GROUP]
    if not flows:
        return {"group_keys_completed": 0, "rounds_completed": 0}
    d, s = log["deliveries"], log["sends"]
    n_rounds = min(len(f.offer_t) for f in flows) // ku
    done = np.ones(n_rounds, dtype=bool)
    last = np.full(n_rounds, -np.inf)
    for f in flows:
        r = d[d["flow"] == f.fid]
        k = r["seq"] // ku
        ok = k < n_rounds
        done &= np.bincount(k[ok], minlength=n_rounds) >= ku
        np.maximum.at(last, k[ok], r["t_s"][ok])
    idx = np.flatnonzero(done)
    units = 0
    for f in flows:
        sk = s[s["flow"] == f.fid]["seq"] // ku
        units += int(np.count_nonzero(np.isin(sk, idx)))
    gen = np.array([flows[0].offer_t[i * ku] for i in range(n_rounds)])
    lat = (last - gen)[done]
    n_servers = len({f.src for f in flows})
    return {
        "rounds_completed": int(done.sum()),
        "group_keys_completed": int(done.sum()) * n_servers,
        "relay_units_per_round": units / len(idx) if len(idx) else float("nan"),
        "expected_units_per_round": plan["objective_hops"] * ku,
        "latency_mean_s": float(lat.mean()) if len(lat) else float("nan"),
        "latency_p99_s": float(np.percentile(lat, 99)) if len(lat) else float("nan"),
        "servers": plan["servers"],
        "objective_hops": plan["objective_hops"],
    }
