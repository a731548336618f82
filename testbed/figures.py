"""Figures drawn from stored results only (an event log and its metrics), in the paper's axes and units.

A recipe's `outputs.figures` lists figure names, or mappings `{name: ..., <options>}`:

| name            | shows                                                         | options                         |
|-----------------|---------------------------------------------------------------|---------------------------------|
| throughput      | per-flow throughput (kbps) over time                          | flows, bin_s, title             |
| latency         | per-message latency (ms) over offer time                      | flows                           |
| latency_cdf     | CDF of per-message latency (ms)                               | flows                           |
| key_storage     | key storage (Mb) of egress ports over time                    | ports: ["R1->R2", ...]          |
| doe             | degree of elasticity of egress ports over time                | ports                           |
| keygen_events   | key-generation events (kbit per event) on a link              | link: "A-B"                     |
| storage_and_throughput | key storage and flow throughput on one time axis       | port, flows                     |

Each figure is written as PNG and PDF under `figures/`. Colours per flow come from a fixed cycle; colours per scheme
from the scheme registry, so every figure shows a scheme the same way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from . import metrics as M  # noqa: E402
from .errors import QkdbedError  # noqa: E402
from .record import EventLog  # noqa: E402

FLOW_COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22"]

FigureFn = Callable[[EventLog, dict[str, Any]], plt.Figure]
REGISTRY: dict[str, FigureFn] = {}


def figure(name: str):
    def deco(fn: FigureFn) -> FigureFn:
        REGISTRY[name] = fn
        return fn
    return deco


def _flows(log: EventLog, opts: dict[str, Any]):
    names = opts.get("flows")
    if not names:
        return log.flows
    out = [f for f in log.flows if f.name in names]
    if len(out) != len(names):
        known = ", ".join(f.name for f in log.flows)
        raise QkdbedError(f"figure {opts.get('name')}: flows {names} not all found (known: {known})")
    return out


def _ports(log: EventLog, opts: dict[str, Any]) -> list[tuple[str, str]]:
    ports = opts.get("ports") or ([opts["port"]] if opts.get("port") else None)
    if not ports:
        sends = log["sends"]
        if len(sends):
            pairs = sorted(set(zip(sends["node"].tolist(), sends["peer"].tolist())))
            return [(log.node_names[a], log.node_names[b]) for a, b in pairs]
        return []
    out = []
    for p in ports:
        if "->" not in p:
            raise QkdbedError(f"figure {opts.get('name')}: port {p!r}: expected NODE->PEER")
        a, b = p.split("->", 1)
        if a not in log.node_names or b not in log.node_names:
            raise QkdbedError(f"figure {opts.get('name')}: port {p!r}: unknown node")
        out.append((a, b))
    return out


def _colour(i: int) -> str:
    return FLOW_COLOURS[i % len(FLOW_COLOURS)]


@figure("throughput")
def fig_throughput(log: EventLog, opts: dict[str, Any]) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    bin_s = float(opts.get("bin_s", 1.0))
    for i, f in enumerate(_flows(log, opts)):
        t, bps = M.throughput_series(log, f.fid, bin_s)
        ax.plot(t, bps / 1e3, color=_colour(i), lw=1.2, label=f.name)
    ax.set_xlabel("Time (s)")
    ax.set_ylabel("Throughput (kbps)")
    ax.set_title(opts.get("title", "Per-flow throughput"))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


@figure("latency")
def fig_latency(log: EventLog, opts: dict[str, Any]) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    d = log["deliveries"]
    for i, f in enumerate(_flows(log, opts)):
        r = d[d["flow"] == f.fid]
        ax.plot(r["t0_s"], (r["t_s"] - r["t0_s"]) * 1e3, ".", ms=1.5, color=_colour(i), label=f.name)
    ax.set_xlabel("Time (s)")
    ax.set_ylabel("Latency (ms)")
    ax.set_yscale("log")
    ax.set_title(opts.get("title", "Per-message latency"))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, markerscale=6)
    return fig


@figure("latency_cdf")
def fig_latency_cdf(log: EventLog, opts: dict[str, Any]) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(5.2, 3.6))
    for i, f in enumerate(_flows(log, opts)):
        x, y = M.cdf(M.latencies_s(log, f.fid) * 1e3)
        if len(x):
            ax.step(x, y, where="post", color=_colour(i), label=f.name)
    ax.set_xscale("log")
    ax.set_xlabel("Latency (ms)")
    ax.set_ylabel("CDF")
    ax.set_title(opts.get("title", "Latency CDF"))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


@figure("key_storage")
def fig_key_storage(log: EventLog, opts: dict[str, Any]) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    for i, (a, b) in enumerate(_ports(log, opts)):
        s = M.port_series(log, a, b)
        ax.plot(s["t_s"], s["keys_bits"] / 1e6, color=_colour(i), lw=1.2, label=f"{a}->{b}")
    ax.set_xlabel("Time (s)")
    ax.set_ylabel("Key storage (Mb)")
    ax.set_title(opts.get("title", "Key storage of egress ports"))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


@figure("doe")
def fig_doe(log: EventLog, opts: dict[str, Any]) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    for i, (a, b) in enumerate(_ports(log, opts)):
        s = M.port_series(log, a, b)
        ax.plot(s["t_s"], s["doe"], color=_colour(i), lw=1.2, label=f"{a}->{b}")
    ax.axhline(0.0, color="k", lw=0.8, ls="--")
    ax.set_xlabel("Time (s)")
    ax.set_ylabel("Degree of elasticity")
    ax.set_title(opts.get("title", "DoE of egress ports (Definition 1)"))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


@figure("keygen_events")
def fig_keygen_events(log: EventLog, opts: dict[str, Any]) -> plt.Figure:
    link = opts.get("link")
    if not link or "-" not in link:
        raise QkdbedError("figure keygen_events: option link: expected A-B")
    a, b = link.split("-", 1)
    t, u = M.supply_events(log, a, b)
    fig, ax = plt.subplots(figsize=(6.4, 3.2))
    ax.stem(t, u * M.UNIT_BITS / 1e3, basefmt=" ", markerfmt=".", linefmt="C0-")
    ax.set_xlabel("Time (s)")
    ax.set_ylabel("Secret key per event (kbit)")
    rate = u.sum() * M.UNIT_BITS / log.duration_s / 1e3 if len(u) else 0.0
    ax.set_title(opts.get("title", f"Key-generation events on {a}-{b} (mean {rate:.1f} kbps per direction)"))
    ax.grid(alpha=0.3)
    return fig


@figure("storage_and_throughput")
def fig_storage_and_throughput(log: EventLog, opts: dict[str, Any]) -> plt.Figure:
    fig, ax1 = plt.subplots(figsize=(6.4, 3.6))
    bin_s = float(opts.get("bin_s", 1.0))
    for i, f in enumerate(_flows(log, opts)):
        t, bps = M.throughput_series(log, f.fid, bin_s)
        ax1.plot(t, bps / 1e3, color=_colour(i), lw=1.2, label=f"throughput {f.name}")
    ax1.set_xlabel("Time (s)")
    ax1.set_ylabel("Throughput (kbps)")
    ax2 = ax1.twinx()
    for a, b in _ports(log, opts):
        s = M.port_series(log, a, b)
        ax2.plot(s["t_s"], s["keys_bits"] / 1e6, color="k", lw=1.0, ls="--", label=f"key storage {a}->{b}")
    ax2.set_ylabel("Key storage (Mb)")
    h1, l1 = ax1.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax1.legend(h1 + h2, l1 + l2, fontsize=8, loc="upper right")
    ax1.set_title(opts.get("title", "Throughput and key storage"))
    ax1.grid(alpha=0.3)
    return fig


def normalise_specs(specs: list[Any]) -> list[dict[str, Any]]:
    out = []
    for i, s in enumerate(specs):
        if isinstance(s, str):
            s = {"name": s}
        if not isinstance(s, dict) or "name" not in s:
            raise QkdbedError(f"outputs.figures[{i}]: expected a figure name or a mapping with name")
        if s["name"] not in REGISTRY:
            raise QkdbedError(f"outputs.figures[{i}].name: expected one of {', '.join(sorted(REGISTRY))}, "
                              f"got {s['name']!r}")
        out.append(dict(s))
    return out


def draw_all(log: EventLog, specs: list[Any], outdir: Path, bin_s: float = 1.0) -> list[str]:
    """Draw every figure of `specs` into `outdir` (PNG and PDF); return the file stems written."""
    outdir.mkdir(parents=True, exist_ok=True)
    written = []
    for spec in normalise_specs(specs):
        spec.setdefault("bin_s", bin_s)
        fig = REGISTRY[spec["name"]](log, spec)
        stem = spec.get("file", spec["name"])
        save_figure(fig, outdir, stem)
        written.append(stem)
    return written


def save_figure(fig: plt.Figure, outdir: Path, stem: str, dpi: int = 150) -> str:
    """Write `fig` as PNG and PDF atomically (temporary name, then rename) and close it."""
    outdir.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    for ext in ("png", "pdf"):
        tmp = outdir / f".{stem}.tmp.{ext}"
        fig.savefig(tmp, dpi=dpi)
        tmp.replace(outdir / f"{stem}.{ext}")
    plt.close(fig)
    return f"{stem}.png"
