"""Seed 001's figures on USNET: Fig. 2 (routes) and Fig. 3(a)-(d) (cost structure, comparison with CO-QBN).

Settings follow planning.md A.8 (the seed's own instances were lost); each figure is a PNG and a PDF, and every
number plotted goes to one long-format CSV (figure, series, x, y) so figures can be redrawn without re-solving.
"""

from __future__ import annotations

import csv
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..network import Topology, load_topology
from .fl_baselines import co_qbn
from .fl_eval import evaluate, route_links
from .fl_model import solve_sp
from .fl_params import Caps, FLParams, link_costs
from .fl_provision import plan_fl
from .fl_requests import build_scenarios, make_request, random_requests

ORACLE_PAIRS = (("1", "23"), ("2", "4"), ("5", "10"))  # planning.md A.5-6
FIG2_PAIRS = (("1", "23"), ("1", "9"), ("6", "12"))  # experiments/fl/fig2.yaml
LEVELS_BPS = (1000.0, 3000.0, 5000.0)
COLOURS = ("tab:red", "tab:blue", "tab:green", "tab:purple", "tab:orange")


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, outdir: Path, stem: str, written: list[str]) -> None:
    for ext in ("png", "pdf"):
        fig.savefig(outdir / f"{stem}.{ext}", dpi=150, bbox_inches="tight")
        written.append(str(outdir / f"{stem}.{ext}"))
    _plt().close(fig)


def _requests(pairs, levels=LEVELS_BPS):
    return [make_request(s, d, levels) for s, d in pairs]


# -- Fig. 2 -----------------------------------------------------------------------------------------------------

def fig2(t: Topology, params: FLParams, outdir: Path, rows: list, written: list[str]) -> str:
    reqs = _requests(FIG2_PAIRS)
    p = replace(params, caps=Caps(qkd_reserved=15, km_reserved=5))
    plan = plan_fl(t, reqs, build_scenarios(reqs, "correlated"), p, ws=False)
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 4.8))
    pos = {n: (v.x or 0.0, v.y or 0.0) for n, v in t.nodes.items()}
    for l in t.links:
        (x1, y1), (x2, y2) = pos[l.a], pos[l.b]
        ax.plot([x1, x2], [y1, y2], color="0.8", lw=1, zorder=1)
    ondemand = {e for e in plan.rp_eval.ondemand_qkd if plan.rp_eval.ondemand_qkd[e].any()}
    for i, r in enumerate(reqs):
        route = plan.rp.first.routes[r.name]
        off = (i - 1) * 0.035
        for a, b in zip(route, route[1:]):
            e = t.link(a, b).name
            (x1, y1), (x2, y2) = pos[a], pos[b]
            ax.plot([x1 + off, x2 + off], [y1 + off, y2 + off], color=COLOURS[i], lw=2.2, zorder=2,
                    ls="--" if e in ondemand else "-", label=r.name if a == route[0] else None)
        rows.append(("fig2", r.name, "-".join(route), plan.rp_eval.total))
    for n, (x, y) in pos.items():
        ax.scatter([x], [y], s=140, color="white", edgecolor="k", zorder=3)
        ax.annotate(n, (x, y), ha="center", va="center", fontsize=7, zorder=4)
    ax.plot([], [], color="k", ls="--", label="on-demand wavelengths used in some scenario")
    ax.legend(fontsize=8, loc="lower left")
    ax.set_axis_off()
    ax.set_title("Fig. 2: SP routes on USNET (reserve <= 15 QKD / 5 KM wavelengths per link)", fontsize=9)
    _save(fig, outdir, "fig2_routes", written)
    r0 = plan.rp.first.routes["1->23"]
    return f"fig2: 1->23 via {'-'.join(r0)}; on-demand on {', '.join(sorted(ondemand)) or 'no link'}"


# -- Fig. 3(a), 3(b): cost versus total reserved wavelengths ---------------------------------------------------------

def _sweep(t, params, reqs, sc, key: str, values, other: int, rows, label):
    first, second, total = [], [], []
    for v in values:
        kw = {"total_qkd_reserved": v, "total_km_reserved": other} if key == "qkd" else \
            {"total_qkd_reserved": other, "total_km_reserved": v}
        res = solve_sp(t, reqs, sc, params, **kw)
        ev = evaluate(t, reqs, res.first, sc, link_costs(t, params), params)
        first.append(ev.first_stage_cost)
        second.append(ev.second_stage_cost)
        total.append(ev.total)
        for s, y in (("first_stage", ev.first_stage_cost), ("second_stage", ev.second_stage_cost),
                     ("total", ev.total)):
            rows.append((label, s, v, y))
    return np.array(first), np.array(second), np.array(total)


def fig3ab(t, params, outdir, rows, written, quick: bool) -> list[str]:
    reqs = _requests(ORACLE_PAIRS)
    sc = build_scenarios(reqs, "correlated")
    plt = _plt()
    notes = []
    step_q, step_k = (30, 20) if quick else (15, 10)
    for label, key, values, other, xl in (("fig3a", "qkd", range(0, 241, step_q), 50, "reserved QKD wavelengths"),
                                          ("fig3b", "km", range(0, 81, step_k), 150, "reserved KM wavelengths")):
        values = list(values)
        f, s, tot = _sweep(t, params, reqs, sc, key, values, other, rows, label)
        fig, ax = plt.subplots(figsize=(5, 3.6))
        ax.plot(values, tot / 1e6, "k-o", ms=3, label="total")
        ax.plot(values, f / 1e6, "b-s", ms=3, label="first stage")
        ax.plot(values, s / 1e6, "r-^", ms=3, label="second stage")
        best = values[int(np.argmin(tot))]
        ax.axvline(best, color="0.6", ls=":")
        ax.set_xlabel(xl + (" (KM fixed at 50)" if key == "qkd" else " (QKD fixed at 150)"))
        ax.set_ylabel("cost (M$)")
        ax.legend(fontsize=8)
        ax.set_title(f"Fig. 3({label[-1]}): optimum at {best}", fontsize=9)
        _save(fig, outdir, f"{label}_cost_vs_reserved_{key}", written)
        notes.append(f"{label}: minimum total {tot.min():,.0f} $ at {best} reserved {key.upper()} wavelengths "
                     f"(second stage there {s[int(np.argmin(tot))]:,.0f} $)")
    return notes


# -- Fig. 3(c): wavelengths of each stage versus the required key rate -------------------------------------------------

def fig3c(t, params, outdir, rows, written) -> str:
    p = replace(params, caps=Caps(qkd_reserved=15, km_reserved=3))
    rates = list(range(1, 11))
    series = {k: [] for k in ("reserved_qkd", "reserved_km", "ondemand_qkd", "ondemand_km")}
    for r_kbps in rates:
        reqs = _requests(ORACLE_PAIRS, (1000.0 * r_kbps,))
        routes = {r.name: t.path(r.src, r.dst, "km") for r in reqs}
        sc = build_scenarios(reqs, "product")
        res = solve_sp(t, reqs, sc, p, fixed_routes=routes)
        ev = evaluate(t, reqs, res.first, sc, link_costs(t, p), p)
        vals = {"reserved_qkd": sum(res.first.reserved_qkd.values()),
                "reserved_km": sum(res.first.reserved_km.values()),
                "ondemand_qkd": sum(float(v @ sc.probs) for v in ev.ondemand_qkd.values()),
                "ondemand_km": sum(float(v @ sc.probs) for v in ev.ondemand_km.values())}
        for k, v in vals.items():
            series[k].append(v)
            rows.append(("fig3c", k, r_kbps, v))
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 3.6))
    for (k, v), st in zip(series.items(), ("b-s", "g-o", "r-^", "m-v")):
        ax.plot(rates, v, st, ms=3, label=k.replace("_", " ").replace("qkd", "QKD").replace("km", "KM"))
    ax.set_xlabel("required key rate (kbps), every request")
    ax.set_ylabel("wavelengths (all links)")
    ax.set_title("Fig. 3(c): reserve caps 15 QKD / 3 KM per link", fontsize=9)
    ax.legend(fontsize=8)
    _save(fig, outdir, "fig3c_wavelengths_vs_rate", written)
    kink_q = next((r for r, v in zip(rates, series["ondemand_qkd"]) if v > 0), None)
    kink_k = next((r for r, v in zip(rates, series["ondemand_km"]) if v > 0), None)
    return (f"fig3c: reserved QKD flat from {rates[series['reserved_qkd'].index(max(series['reserved_qkd']))]} kbps "
            f"({max(series['reserved_qkd']):g}), KM from {rates[series['reserved_km'].index(max(series['reserved_km']))]}"
            f" kbps ({max(series['reserved_km']):g}); on-demand starts at {kink_q} / {kink_k} kbps")


# -- Fig. 3(d): SP versus CO-QBN over the number of requests -------------------------------------------------------------

def fig3d(t, params, outdir, rows, written, counts, seeds, n_scen) -> str:
    p = replace(params, formulation="path")
    sp = np.zeros((len(seeds), len(counts)))
    co = np.zeros_like(sp)
    optimal = True
    for i, seed in enumerate(seeds):
        pool = random_requests(t, max(counts), seed)
        for j, k in enumerate(counts):
            reqs = pool[:k]
            sc = build_scenarios(reqs, "saa", n_scen, seed)
            res = solve_sp(t, reqs, sc, p)
            optimal &= res.proven_optimal
            sp[i, j] = evaluate(t, reqs, res.first, sc, link_costs(t, p), p).total
            co[i, j] = co_qbn(t, reqs, sc, p).evaluation.total
            rows += [("fig3d", f"sp_seed{seed}", k, sp[i, j]), ("fig3d", f"co_qbn_seed{seed}", k, co[i, j])]
    gap = 100 * (co - sp) / co
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 3.6))
    x = np.arange(len(counts))
    ax.bar(x - 0.2, sp.mean(0) / 1e6, 0.4, label="SP (this model)")
    ax.bar(x + 0.2, co.mean(0) / 1e6, 0.4, label="CO-QBN (reconstructed)")
    for j in range(len(counts)):
        ax.annotate(f"-{gap[:, j].mean():.1f}%", (x[j], co.mean(0)[j] / 1e6), ha="center", va="bottom", fontsize=7)
        rows.append(("fig3d", "reduction_pct_mean", counts[j], gap[:, j].mean()))
    ax.set_xticks(x, [str(k) for k in counts])
    ax.set_xlabel("number of FL chain requests")
    ax.set_ylabel("expected deployment cost (M$)")
    ax.set_title(f"Fig. 3(d): U{{1..5}} kbps, SAA {n_scen} scenarios, {len(seeds)} seed(s)", fontsize=9)
    ax.legend(fontsize=8)
    _save(fig, outdir, "fig3d_cost_vs_requests", written)
    per = ", ".join(f"{k}: {g:.2f}%" for k, g in zip(counts, gap.mean(0)))
    return f"fig3d: SP cheaper than CO-QBN by {per}" + ("" if optimal else " (some solves hit the time limit)")


def make_all(outdir: Path, topology: str = "usnet-24", quick: bool = False, seeds: int | None = None) -> list[str]:
    t0 = time.perf_counter()
    outdir.mkdir(parents=True, exist_ok=True)
    t = load_topology(topology)
    params = FLParams(time_limit_s=45.0, gap_rel=5e-3)  # 0.5 % gap: small against the ~8 % effect
    rows: list = []
    written: list[str] = []
    notes = [fig2(t, params, outdir, rows, written)]
    notes += fig3ab(t, params, outdir, rows, written, quick)
    notes.append(fig3c(t, params, outdir, rows, written))
    counts = [10, 20, 30] if quick else [10, 20, 30, 40, 50, 60]
    n_seeds = seeds or 1
    notes.append(fig3d(t, params, outdir, rows, written, counts, list(range(n_seeds)), 10 if quick else 20))
    with open(outdir / "fl_figures.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(("figure", "series", "x", "y"))
        w.writerows(rows)
    written.append(str(outdir / "fl_figures.csv"))
    return notes + [f"wrote {len(written)} files to {outdir} in {time.perf_counter() - t0:.1f} s"]
