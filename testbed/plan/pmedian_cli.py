"""`qkdbed plan key-servers`: place group-key service nodes (p-median, seed 002). Parsing and printing only."""

from __future__ import annotations

import json
import math
from pathlib import Path

import click
import yaml

from ..errors import QkdbedError
from ..network import load_topology
from .pmedian import PMEDIAN_METHODS, UNKNOWN_P_METHODS, PlacementResult, solve_pmedian, solve_unknown_p, with_servers
from .pmedian_paths import METRICS


def _names(text: str | None, option: str) -> list[str] | None:
    if text is None:
        return None
    names = [t.strip() for t in text.split(",") if t.strip()]
    if not names:
        raise QkdbedError(f"{option}: expected comma-separated node names, got {text!r}")
    return names


def parse_weights(text: str | None) -> dict[str, float] | None:
    """`A=2,B=1` inline, or a YAML/JSON file holding a mapping node -> weight."""
    if text is None:
        return None
    path = Path(text)
    if path.is_file():
        try:
            data = yaml.safe_load(path.read_text())
        except yaml.YAMLError as e:
            raise QkdbedError(f"--weights {text}: not valid YAML ({getattr(e, 'problem', e)})") from None
        if not isinstance(data, dict) or not data:
            raise QkdbedError(f"--weights {text}: expected a mapping of node name to weight")
        out = {}
        for k, v in data.items():
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise QkdbedError(f"--weights {text}: weight of {k} must be a number, got {v!r}")
            out[str(k)] = float(v)
        return out
    out = {}
    for part in text.split(","):
        name, sep, value = part.partition("=")
        name = name.strip()
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if not sep or not name or not math.isfinite(number):
            raise QkdbedError(f"--weights: expected NAME=NUMBER[,NAME=NUMBER...] or a YAML file, got {part!r}")
        if name in out:
            raise QkdbedError(f"--weights: {name} given twice")
        out[name] = number
    return out


def render(result: PlacementResult, unit: str) -> str:
    """The placement as a table: one row per server with its members and their total distance."""
    rows = []
    for s in result.servers:
        members = result.members(s)
        total = sum(result.distance_to_server[m] for m in members)
        rows.append((s, ", ".join(members), f"{total:g}"))
    w0 = max(6, *(len(r[0]) for r in rows))
    w1 = max(7, *(len(r[1]) for r in rows))
    head = f"{'server':<{w0}}  {'members':<{w1}}  distance ({unit})"
    lines = [head, "-" * len(head)] + [f"{a:<{w0}}  {b:<{w1}}  {c}" for a, b, c in rows]
    cost = (f" = {result.opening_cost:g} x {result.p} opening + {result.distance:g} distance"
            if result.opening_cost is not None else "")
    exact = "optimal" if result.proven_optimal else "heuristic"
    lines.append(f"p = {result.p}, objective {result.objective:g}{cost} ({result.method}, {exact}, "
                 f"{1e3 * result.time_s:.2f} ms + {1e3 * result.floyd_time_s:.2f} ms shortest paths)")
    return "\n".join(lines)


@click.command("key-servers")
@click.argument("topology", required=False)
@click.option("-p", "p", type=int, help="Number of group-key servers to place.")
@click.option("--method", default="auto", show_default=True,
              type=click.Choice(sorted(set(PMEDIAN_METHODS) | set(UNKNOWN_P_METHODS))),
              help="enum (exact), drop (the seed's greedy), add, interchange (add + Teitz-Bart), "
                   "ilp (exact, CBC), ilp-full (ILP without reduction); auto = enum if small else ilp.")
@click.option("--metric", type=click.Choice(METRICS), default="hops", show_default=True,
              help="Path length: hops (relay key spent per delivered key) or km.")
@click.option("--candidates", help="Comma-separated nodes that may host a server (default: all).")
@click.option("--demand", help="Comma-separated nodes that need group keys (default: all).")
@click.option("--weights", help="Demand weights: A=2,B=1 or a YAML file {node: weight}; unlisted nodes weigh 1.")
@click.option("--unknown-p", is_flag=True, help="Improved model: choose the number of servers too.")
@click.option("--opening-cost", type=float, help="Cost of one server in metric units (default: mean path length).")
@click.option("--literal-stop", is_flag=True, help="Greedy drop with the seed's extracted (swapped) stopping rule.")
@click.option("--json", "json_out", type=click.Path(dir_okay=False), help="Write the result as JSON here.")
@click.option("--write-topology", type=click.Path(dir_okay=False),
              help="Write the topology with the chosen nodes' role set to group-key-server.")
@click.option("--time-limit", type=float, help="Time limit for the ILP solver (s).")
@click.option("--benchmark", is_flag=True, help="Run the seed's experiment (Tables 1-2) instead.")
@click.option("--quick", is_flag=True, help="With --benchmark: a small grid (a few seconds).")
@click.option("--out", type=click.Path(file_okay=False), default="results/pmedian-bench", show_default=True,
              help="With --benchmark: output folder.")
def key_servers(topology, p, method, metric, candidates, demand, weights, unknown_p, opening_cost, literal_stop,
                json_out, write_topology, time_limit, benchmark, quick, out) -> None:
    """Place group-key service nodes: p-median over shortest paths (seed 002).

    Every demand node is served by its nearest server; the total (weighted) path length is minimised. With
    --unknown-p the number of servers is chosen as well, each costing --opening-cost.
    """
    if benchmark:
        if topology is not None:
            raise QkdbedError("--benchmark generates its own graphs; do not give a TOPOLOGY")
        from .pmedian_bench import markdown_table, run_benchmark

        res = run_benchmark(Path(out), quick=quick, progress=lambda m: click.echo(m, err=True))
        click.echo(markdown_table(res["summary"]))
        click.echo(f"wall time {res['wall_time_s']:.1f} s; CSV, summary.md and pmedian_bench.png/.pdf in {out}")
        return
    if quick:
        raise QkdbedError("--quick only applies with --benchmark")
    if topology is None:
        raise QkdbedError("give a TOPOLOGY (file, name in topologies/, or gen:...), or --benchmark")
    topo = load_topology(topology)
    kw = dict(metric=metric, demand=_names(demand, "--demand"), candidates=_names(candidates, "--candidates"),
              weights=parse_weights(weights))
    if unknown_p:
        if p is not None:
            raise QkdbedError("-p and --unknown-p exclude each other (--unknown-p chooses p)")
        if method not in UNKNOWN_P_METHODS:
            raise QkdbedError(f"--unknown-p supports --method {', '.join(UNKNOWN_P_METHODS)}, not {method}")
        result = solve_unknown_p(topo, opening_cost, method, literal_stop=literal_stop, time_limit_s=time_limit, **kw)
    else:
        if p is None:
            raise QkdbedError("give -p N (the number of servers) or --unknown-p")
        if opening_cost is not None or literal_stop:
            raise QkdbedError("--opening-cost and --literal-stop only apply with --unknown-p")
        result = solve_pmedian(topo, p, method, time_limit_s=time_limit, **kw)
    click.echo(f"{topo.name}: {len(topo.nodes)} nodes, metric {metric}")
    click.echo(render(result, metric))
    if json_out:
        doc = {"topology": topo.name, "source": topo.source, **result.to_dict()}
        Path(json_out).write_text(json.dumps(doc, indent=2) + "\n")
        click.echo(f"wrote {json_out}")
    if write_topology:
        Path(write_topology).write_text(yaml.safe_dump(with_servers(topo, result.servers).to_dict(),
                                                       sort_keys=False))
        click.echo(f"wrote {write_topology}")
