"""The seed's experiment (Tables 1–2): solution quality and run time of each method on random connected graphs.

Grid (planning.md §B.6): Waxman graphs with N = 10, 12, 15, 20, 25, 30 nodes, every node both demand and
candidate, km distances, p = 2, 50 seeded trials per N; then p = 3 and 5 on the same sizes (fewer trials) and
N = 100 and 500 to show how the methods scale. Quality = method's objective / optimum, the optimum coming from the
ILP (Lagrangian-reduced) and checked against enumeration and the unreduced ILP wherever those run. Times are the median of several repeats of the method
alone; the shortest-path step is reported separately (the seed counted it in both algorithms).
"""

from __future__ import annotations

import csv
import json
import math
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .pmedian import PlacementProblem, solve_pmedian
from .pmedian_graphs import trial_seed, waxman_adjacency, waxman_distances, edge_count
from .pmedian_paths import floyd_warshall

HEURISTICS = ("drop", "add", "interchange")
METHODS = ("enum",) + HEURISTICS + ("ilp", "ilp-full")
ENUM_LIMIT = 1_000_000  # subsets; beyond this the benchmark leaves enumeration out (C(500,3) = 20.7 million)
ILP_FULL_MAX_N = 30  # unreduced: seconds to minutes per instance at N = 100 and 8.5 min at N = 500 (measured)


@dataclass(frozen=True)
class Cell:
    n: int
    p: int
    trials: int
    part: str  # "seed" (Tables 1-2) or "scaling"


def grid(quick: bool) -> list[Cell]:
    small = (10, 12, 15, 20, 25, 30)
    if quick:
        return ([Cell(n, 2, 10, "seed") for n in small] + [Cell(30, 5, 3, "scaling")]
                + [Cell(100, p, 2, "scaling") for p in (2, 5)])
    return ([Cell(n, 2, 50, "seed") for n in small]
            + [Cell(n, p, 10, "scaling") for p in (3, 5) for n in small]
            + [Cell(100, p, 10, "scaling") for p in (2, 3, 5)]
            + [Cell(500, p, 5, "scaling") for p in (2, 3, 5)])


def _median_time(fn: Callable[[], object], repeats: int) -> tuple[object, float]:
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return out, statistics.median(times)


def run_instance(cell: Cell, trial: int, repeats: int) -> list[dict]:
    """All methods on one graph; one row per method."""
    adj = waxman_adjacency(cell.n, trial_seed(cell.n, trial))
    dist, floyd_s = _median_time(lambda: floyd_warshall(adj), repeats)
    problem = PlacementProblem.from_matrix(dist, name=f"waxman-{cell.n}-t{trial}", floyd_time_s=floyd_s)
    results = {}
    for method in METHODS:
        if method == "enum" and math.comb(cell.n, cell.p) > ENUM_LIMIT:
            continue
        if method == "ilp-full" and cell.n > ILP_FULL_MAX_N:
            continue
        reps = 1 if method == "ilp" else repeats  # CBC runs as a subprocess; its time dwarfs the jitter
        times = []
        for _ in range(reps):
            res = solve_pmedian(problem, cell.p, method)
            times.append(res.time_s)
        results[method] = (res, statistics.median(times))
    optimum = results["ilp"][0].objective
    for other in ("enum", "ilp-full"):
        if other in results and abs(results[other][0].objective - optimum) > 1e-6 * max(1.0, optimum):
            raise AssertionError(f"{other} and the reduced ILP disagree on {problem.name} p={cell.p}")
    rows = []
    for method, (res, t_s) in results.items():
        ratio = res.objective / optimum if optimum > 0 else 1.0
        rows.append({"part": cell.part, "n": cell.n, "p": cell.p, "trial": trial, "edges": edge_count(adj),
                     "method": method, "objective_km": round(res.objective, 6), "optimum_km": round(optimum, 6),
                     "ratio": ratio, "exact": ratio <= 1 + 1e-9, "time_s": t_s, "floyd_s": floyd_s,
                     "time_with_floyd_s": t_s + floyd_s, "proven_optimal": res.proven_optimal})
    return rows


def summarise(rows: list[dict]) -> list[dict]:
    """Table 1 + Table 2 in one: per (N, p, method) the quality ratio and the median time."""
    keys = sorted({(r["part"], r["n"], r["p"], r["method"]) for r in rows},
                  key=lambda k: (k[0] != "seed", k[2], k[1], METHODS.index(k[3])))
    out = []
    for part, n, p, method in keys:
        sel = [r for r in rows if (r["part"], r["n"], r["p"], r["method"]) == (part, n, p, method)]
        ratios = [r["ratio"] for r in sel]
        out.append({"part": part, "n": n, "p": p, "method": method, "trials": len(sel),
                    "mean_ratio": statistics.fmean(ratios), "max_ratio": max(ratios),
                    "share_exact": sum(r["exact"] for r in sel) / len(sel),
                    "median_time_s": statistics.median(r["time_s"] for r in sel),
                    "median_time_with_floyd_s": statistics.median(r["time_with_floyd_s"] for r in sel),
                    "mean_edges": statistics.fmean(r["edges"] for r in sel)})
    return out


def _write_csv(path: Path, rows: list[dict]) -> None:
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def markdown_table(summary: list[dict]) -> str:
    lines = ["| part | N | p | method | trials | mean ratio | max ratio | exact | median time (ms) |",
             "|---|---:|---:|---|---:|---:|---:|---:|---:|"]
    for s in summary:
        lines.append(f"| {s['part']} | {s['n']} | {s['p']} | {s['method']} | {s['trials']} | "
                     f"{s['mean_ratio']:.4f} | {s['max_ratio']:.4f} | {100 * s['share_exact']:.0f} % | "
                     f"{1e3 * s['median_time_s']:.3f} |")
    return "\n".join(lines)


def plot(summary: list[dict], out_dir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    seed = [s for s in summary if s["part"] == "seed"]
    ax = axes[0]
    for method in HEURISTICS:
        sel = [s for s in seed if s["method"] == method]
        ax.plot([s["n"] for s in sel], [s["mean_ratio"] for s in sel], "o-", label=f"{method} (mean)")
        ax.plot([s["n"] for s in sel], [s["max_ratio"] for s in sel], "x:", color=ax.lines[-1].get_color(),
                label=f"{method} (max)")
    ax.set(xlabel="N (nodes = candidates)", ylabel="objective / optimum", title="Table 1: quality, p = 2")
    ax.legend(fontsize=7)
    ax = axes[1]
    p2 = [s for s in summary if s["p"] == 2]
    for method in METHODS:
        sel = sorted((s for s in p2 if s["method"] == method), key=lambda s: s["n"])
        ax.loglog([s["n"] for s in sel], [s["median_time_s"] for s in sel], "o-", label=method)
    ax.set(xlabel="N", ylabel="median time (s)", title="Table 2: run time, p = 2")
    ax.legend(fontsize=7)
    ax = axes[2]
    for p in sorted({s["p"] for s in summary}):
        for method, style in (("enum", "o-"), ("ilp", "s--"), ("ilp-full", "^:")):
            sel = sorted((s for s in summary if s["p"] == p and s["method"] == method), key=lambda s: s["n"])
            if sel:
                ax.loglog([s["n"] for s in sel], [s["median_time_s"] for s in sel], style, label=f"{method} p={p}")
    ax.set(xlabel="N", ylabel="median time (s)", title="exact methods: enumeration vs ILP")
    ax.legend(fontsize=7)
    fig.tight_layout()
    paths = [out_dir / "pmedian_bench.png", out_dir / "pmedian_bench.pdf"]
    for path in paths:
        fig.savefig(path, dpi=130)
    plt.close(fig)
    return paths


def run_benchmark(out_dir: Path, quick: bool = False, progress: Callable[[str], None] | None = None) -> dict:
    """Run the grid, write trials.csv, summary.csv, summary.md, meta.json and the figure; return the summary."""
    out_dir.mkdir(parents=True, exist_ok=True)
    repeats = 3 if quick else 5
    t_start = time.perf_counter()
    rows: list[dict] = []
    for cell in grid(quick):
        t0 = time.perf_counter()
        for trial in range(cell.trials):
            rows.extend(run_instance(cell, trial, repeats))
        if progress:
            progress(f"N={cell.n:<4} p={cell.p} trials={cell.trials:<3} {time.perf_counter() - t0:6.1f} s")
    summary = summarise(rows)
    _write_csv(out_dir / "trials.csv", rows)
    _write_csv(out_dir / "summary.csv", summary)
    (out_dir / "summary.md").write_text(markdown_table(summary) + "\n")
    figures = plot(summary, out_dir)
    wall_s = time.perf_counter() - t_start
    meta = {"quick": quick, "repeats": repeats, "wall_time_s": wall_s, "instances": sum(c.trials for c in grid(quick)), "rows": len(rows),
            "grid": [cell.__dict__ for cell in grid(quick)], "graph": "waxman beta=0.4 alpha=0.25, 100 km square, "
            "seed 1000*N+trial, redrawn until connected", "figures": [str(p) for p in figures]}
    (out_dir / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    return {"summary": summary, "wall_time_s": wall_s, "out_dir": str(out_dir)}


__all__ = ["run_benchmark", "grid", "run_instance", "summarise", "markdown_table", "waxman_distances"]
