"""Metrics computed from an event log only (never from live state), so figures can be redrawn from stored results.

Definitions (units in names; one message = one key unit = 4096 bits):

- **throughput** of a flow: delivered messages x 4096 bit per time bin (`throughput_series`); its mean
  (`throughput_bps`) is taken over the flow's *active period*, from its first offer to its last delivery (or the
  end of the run while messages are still outstanding) -- so a flow that finishes early is not diluted by the idle
  tail, and one that starves is charged for its whole wait.
- **latency** of a message: delivery time minus the time its application offered it (source queueing included,
  as the paper's send-time files do); p50/p95/p99/max over delivered messages, and the empirical CDF.
- **loss rate**: dropped / (delivered + dropped) messages of the flow.
- **Jain's fairness index** J = (sum x)^2 / (n sum x^2) over per-flow throughputs x measured on the *common
  interval* during which all the flows compared are active: from the latest first offer to the earliest end of
  activity (last offer or last delivery, whichever is later, capped at the run's end). The interval is reported.
- **key storage** of an egress port: its master pool in bits over time (`pool` samples x 4096).
- **degree of elasticity** (seed 000 Definition 1): DoE(t) = (L(t) - Lambda(t_i)) / mean(Lambda) for t in
  [t_i, t_i+1], where L is the port's master pool, Lambda(t_i) the amount of the last key-generation event and the
  mean is over all events so far. DoE < 0 is the paper's cliff effect (Definition 2).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .record import EventLog

UNIT_BITS = 4096


def _flow_rows(table: np.ndarray, fid: int) -> np.ndarray:
    return table[table["flow"] == fid]


def active_period(log: EventLog, fid: int) -> tuple[float, float]:
    f = log.flow(fid)
    if len(f.offer_t) == 0:
        return (0.0, 0.0)
    start = float(f.offer_t[0])
    d = _flow_rows(log["deliveries"], fid)
    dropped = int(np.count_nonzero(log["drops"]["flow"] == fid))
    complete = len(d) + dropped >= len(f.offer_t)
    end = float(d["t_s"].max()) if (complete and len(d)) else float(log.duration_s)
    return start, max(end, start)


def throughput_series(log: EventLog, fid: int, bin_s: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """(bin start times, throughput in bps per bin) of delivered messages."""
    edges = np.arange(0.0, log.duration_s + bin_s, bin_s)
    d = _flow_rows(log["deliveries"], fid)
    counts, _ = np.histogram(d["t_s"], bins=edges)
    return edges[:-1], counts * UNIT_BITS / bin_s


def latencies_s(log: EventLog, fid: int) -> np.ndarray:
    d = _flow_rows(log["deliveries"], fid)
    return d["t_s"] - d["t0_s"]


def cdf(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = np.sort(np.asarray(values, dtype=float))
    return x, np.arange(1, len(x) + 1) / max(len(x), 1)


def jain(values) -> float:
    x = np.asarray(values, dtype=float)
    if len(x) == 0 or not np.any(x):
        return float("nan")
    return float(x.sum() ** 2 / (len(x) * np.square(x).sum()))


def common_interval(log: EventLog, fids: list[int]) -> tuple[float, float]:
    starts, ends = [], []
    for fid in fids:
        f = log.flow(fid)
        if len(f.offer_t) == 0:
            continue
        s, e = active_period(log, fid)
        starts.append(s)
        ends.append(max(e, float(f.offer_t[-1])))
    if not starts:
        return (0.0, 0.0)
    return max(starts), min(min(ends), log.duration_s)


def throughput_in(log: EventLog, fid: int, t0: float, t1: float) -> float:
    if t1 <= t0:
        return float("nan")
    t = _flow_rows(log["deliveries"], fid)["t_s"]
    n = np.count_nonzero((t >= t0) & (t < t1))
    return n * UNIT_BITS / (t1 - t0)


def jain_common(log: EventLog, fids: list[int] | None = None) -> dict[str, float]:
    fids = fids if fids is not None else [f.fid for f in log.flows]
    t0, t1 = common_interval(log, fids)
    x = [throughput_in(log, fid, t0, t1) for fid in fids]
    return {"jain": jain(x) if t1 > t0 else float("nan"), "from_s": t0, "to_s": t1}


def flow_summary(log: EventLog, fid: int) -> dict[str, Any]:
    f = log.flow(fid)
    d = _flow_rows(log["deliveries"], fid)
    drops = int(np.count_nonzero(log["drops"]["flow"] == fid))
    acks = int(np.count_nonzero(log["acks"]["flow"] == fid))
    lat = d["t_s"] - d["t0_s"]
    start, end = active_period(log, fid)
    out: dict[str, Any] = {
        "flow": fid, "name": f.name, "src": f.src, "dst": f.dst, "group": f.group,
        "offered": int(len(f.offer_t)), "delivered": int(len(d)), "dropped": drops, "acked": acks,
        "active_from_s": start, "active_to_s": end,
        "throughput_bps": len(d) * UNIT_BITS / (end - start) if end > start else float("nan"),
        "loss_rate": drops / (len(d) + drops) if (len(d) + drops) else 0.0,
    }
    if len(lat):
        p50, p95, p99 = np.percentile(lat, [50, 95, 99])
        out.update(latency_mean_s=float(lat.mean()), latency_p50_s=float(p50), latency_p95_s=float(p95),
                   latency_p99_s=float(p99), latency_max_s=float(lat.max()))
    else:
        out.update(latency_mean_s=float("nan"), latency_p50_s=float("nan"), latency_p95_s=float("nan"),
                   latency_p99_s=float("nan"), latency_max_s=float("nan"))
    return out


def port_series(log: EventLog, node: str, peer: str) -> dict[str, np.ndarray]:
    """Samples of one egress port: time, key storage (bits), rate (bps, -1 = unlimited), queued, DoE."""
    ni, pi = log.node_index(node), log.node_index(peer)
    p = log["pool"]
    s = p[(p["node"] == ni) & (p["peer"] == pi)]
    return {"t_s": s["t_s"], "keys_bits": s["keys"] * UNIT_BITS, "rate_bps": s["rate_bps"],
            "queued": s["queued"], "doe": doe_at(log, node, peer, s["t_s"], s["keys"])}


def link_index(log: EventLog, a: str, b: str) -> int:
    for i, (x, y) in enumerate(log.links):
        if {x, y} == {a, b}:
            return i
    raise KeyError(f"no link {a}-{b}")


def supply_events(log: EventLog, a: str, b: str) -> tuple[np.ndarray, np.ndarray]:
    s = log["supply"]
    s = s[s["link"] == link_index(log, a, b)]
    return s["t_s"], s["units"]


def doe_at(log: EventLog, node: str, peer: str, t_s: np.ndarray, keys_units: np.ndarray) -> np.ndarray:
    """Definition 1 evaluated at sample times (NaN before the first key-generation event)."""
    et, eu = supply_events(log, node, peer)
    out = np.full(len(t_s), np.nan)
    if len(et) == 0:
        return out
    i = np.searchsorted(et, t_s, side="right") - 1
    ok = i >= 0
    cum_mean = np.cumsum(eu) / np.arange(1, len(eu) + 1)
    ii = i[ok]
    out[ok] = (keys_units[ok] - eu[ii]) / cum_mean[ii]
    return out


def summarize(log: EventLog) -> dict[str, Any]:
    """Everything `metrics.json` holds: per-flow summaries, fairness, and per-port key storage / DoE stats."""
    flows = [flow_summary(log, f.fid) for f in log.flows]
    ports = []
    p = log["pool"]
    pairs = sorted(set(zip(p["node"].tolist(), p["peer"].tolist())))
    used = set(zip(log["sends"]["node"].tolist(), log["sends"]["peer"].tolist())) if len(log["sends"]) else None
    for ni, pi in pairs:
        node, peer = log.node_names[ni], log.node_names[pi]
        s = port_series(log, node, peer)
        doe = s["doe"][~np.isnan(s["doe"])]
        ports.append({
            "node": node, "peer": peer, "carries_data": (used is None) or ((ni, pi) in used),
            "key_storage_mean_bits": float(s["keys_bits"].mean()) if len(s["keys_bits"]) else 0.0,
            "key_storage_min_bits": float(s["keys_bits"].min()) if len(s["keys_bits"]) else 0.0,
            "doe_min": float(doe.min()) if len(doe) else float("nan"),
            "doe_mean": float(doe.mean()) if len(doe) else float("nan"),
            "cliff_fraction": float(np.mean(doe < 0)) if len(doe) else float("nan"),
        })
    groups: dict[str, list[int]] = {}
    for f in log.flows:
        groups.setdefault(f.group or "all", []).append(f.fid)
    # Jain over each flow's mean throughput across its own active period: what a user experiences over its whole
    # flow, so an early entrant's head start shows (seed 000 Fig. 12); and over the common interval.
    means = {f["flow"]: f["throughput_bps"] for f in flows}
    fairness = {"all": jain_common(log), "flow_means": {"jain": jain([means[f.fid] for f in log.flows])}}
    for g, fids in groups.items():
        if len(fids) > 1:
            fairness[f"group:{g}"] = {"jain": jain([means[i] for i in fids])}
    totals = {
        "offered": int(sum(f["offered"] for f in flows)), "delivered": int(sum(f["delivered"] for f in flows)),
        "dropped": int(sum(f["dropped"] for f in flows)),
        "key_units_supplied_per_direction": int(log["supply"]["units"].sum()) if len(log["supply"]) else 0,
        "key_units_consumed": int(len(log["sends"])),
    }
    return {"duration_s": log.duration_s, "flows": flows, "fairness": fairness, "ports": ports, "totals": totals}
