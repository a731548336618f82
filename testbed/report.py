"""Markdown reports from stored results: `report.md` (figures, key numbers, manifest summary) and
`REPRODUCTION.md` (each paper claim, our numbers for both profiles, whether it holds and why not).

Everything is computed from `paper/numbers.json` (written by `paperfigs.build_paper`) and the run manifests, so
`qkdbed report DIR --reproduction REPRODUCTION.md` regenerates the repository's file from any results folder.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from .record import write_text_atomic
from .schemes import info as scheme_info

PROFILES = ("paper", "original")


def _n(x: Any, scale: float = 1.0, d: int = 1, unit: str = "") -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return f"{x * scale:.{d}f}{unit}"


def _yes(v) -> str:
    """A verdict: one bool, or one per profile ("paper: yes; original: **no**")."""
    word = {True: "yes", False: "**no**", None: "n/a"}
    if isinstance(v, dict):
        return "; ".join(f"{p}: {word[x]}" for p, x in v.items()) if v else "n/a"
    return word[v]


def _all(vs: dict[str, bool] | None):
    """Per-profile verdicts, kept apart so that a claim holding in one profile only shows as such."""
    if not vs:
        return None
    return {p: bool(x) for p, x in vs.items()}


def _manifest_summary(root: Path) -> list[str]:
    lines = []
    runs = sorted(root.glob("**/manifest.json"))
    ok = [json.loads(p.read_text()) for p in runs]
    good = [m for m in ok if m.get("status") == "ok"]
    if not good:
        return ["(no finished runs)"]
    revs = sorted({m.get("git_revision", "?") for m in good})
    wall = sum(m.get("wall_s", 0.0) for m in good)
    sim = sum(m.get("simulated_s", 0.0) for m in good)
    env = good[0].get("environment", {})
    lines.append(f"- runs: {len(good)} finished, {len(ok) - len(good)} failed")
    lines.append(f"- simulated {sim:,.0f} s in {wall:,.0f} s of run wall time (summed over runs)")
    lines.append(f"- git revision(s): {', '.join(revs)}")
    lines.append(f"- Python {env.get('python')} on {env.get('platform')}; packages: "
                 + ", ".join(f"{k} {v}" for k, v in (env.get("packages") or {}).items()))
    return lines


def _fig7_rows(n: dict[str, Any]) -> list[str]:
    out = ["| scheme | profile | λ | throughput (kbps) | mean latency (ms) | p99 latency (ms) | loss (%) | seeds |",
           "|---|---|---|---|---|---|---|---|"]
    for scheme, v in n["table"].items():
        for prof, rows in v.items():
            for lam, thr, thr_sd, lat, lat_sd, p99, loss, seeds in rows:
                out.append(f"| {scheme_info(scheme)['display_name']} | {prof} | {lam:g} | {thr / 1e3:.1f} ± "
                           f"{thr_sd / 1e3:.1f} | {lat * 1e3:.2f} ± {lat_sd * 1e3:.2f} | {p99 * 1e3:.1f} | "
                           f"{loss * 100:.3f} | {seeds} |")
    return out


def write_report(root: Path, nums: dict[str, Any]) -> Path:
    lines = [f"# qkdbed report: {root.name}", "", "## Runs", ""]
    lines += _manifest_summary(root)
    figs = sorted((root / "paper").glob("*.png"))
    if "fig7" in nums:
        lines += ["", "## Fig. 7: single user, PPBP", "", "![fig7](paper/fig7-single-user.png)", ""]
        lines += _fig7_rows(nums["fig7"])
    if "fig9" in nums:
        lines += ["", "## Fig. 9: latency at mean arrival rate 1.5", "", "![fig9](paper/fig9-latency.png)", "",
                  "| profile | scheme | p50 (ms) | p99 (ms) | max (ms) |", "|---|---|---|---|---|"]
        for prof, d in nums["fig9"]["latency"].items():
            for s, v in d.items():
                lines.append(f"| {prof} | {scheme_info(s)['display_name']} | {_n(v['p50_ms'], d=2)} | "
                             f"{_n(v['p99_ms'], d=1)} | {_n(v['max_ms'], d=1)} |")
    if "fig10_12" in nums:
        f = nums["fig10_12"]
        lines += ["", "## Figs. 10-12: multi-user, early entry", ""]
        lines += [f"![{p.stem}](paper/{p.name})" for p in figs if p.stem.startswith(("fig10", "fig11", "fig12"))]
        lines += ["", "| scheme | profile | early entry (s) | Jain (per subnetwork) | aggressive/normal throughput |",
                  "|---|---|---|---|---|"]
        for s, v in f["jain"].items():
            for prof, rows in v.items():
                adv = {r[0]: r for r in f["advantage"].get(s, {}).get(prof, [])}
                for e, j, jsd in rows:
                    a = adv.get(e, [e, float("nan"), 0])
                    lines.append(f"| {scheme_info(s)['display_name']} | {prof} | {e:g} | {_n(j, d=3)} | "
                                 f"{_n(a[1], d=2)} |")
        lines += ["", "| scheme | profile | min DoE at R1->R2 | min DoE after all users start | "
                      "share of samples in cliff (DoE < 0) | mean storage (Mb) |", "|---|---|---|---|---|---|"]
        for s, v in f["doe_min"].items():
            for prof, d in v.items():
                lines.append(f"| {scheme_info(s)['display_name']} | {prof} | {_n(d['doe_min'], d=2)} | "
                             f"{_n(d['doe_min_after_all_start'], d=2)} | {_n(d['cliff_share'], 100, 1, '%')} | "
                             f"{_n(f['storage'][s][prof], d=2)} |")
    for key, title in (("fig13", "Fig. 13: admission control"), ("fig14", "Fig. 14: key-rate drop")):
        if key not in nums:
            continue
        lines += ["", f"## {title}", ""]
        lines += [f"![{p.stem}](paper/{p.name})" for p in figs if p.stem.startswith(key)]
        lines += ["", "| profile | scheme | flow | start (s) | first delivery (s) | mean throughput (kbps) | "
                      "CoV during drop |", "|---|---|---|---|---|---|---|"]
        for prof in PROFILES:
            for s, fl in nums[key].get(prof, {}).items():
                for name, v in fl.items():
                    lines.append(f"| {prof} | {scheme_info(s)['display_name']} | {name} | {_n(v['start_s'])} | "
                                 f"{_n(v['first_delivery_s'], d=2)} | {_n(v['throughput_bps'], 1e-3)} | "
                                 f"{_n(v.get('cov_during_drop'), d=2)} |")
    mot = nums.get("motivation", {})
    if mot:
        lines += ["", "## Motivation (Figs. 1-3, on-demand supply)", ""]
        if "fig2" in mot:
            m = mot["fig2"]
            lines.append(f"- Fig. 2: requests accelerated at 150 s; the relay's pool is empty at "
                         f"{_n(m['pool_empty_at_s'])} s; throughput {_n(m['throughput_before_empty_kbps'])} kbps "
                         f"before, {_n(m['throughput_after_empty_kbps'])} kbps after (key rate "
                         f"{_n(m['key_rate_kbps'])} kbps).")
        if "fig3" in mot:
            lines.append("- Fig. 3: " + "; ".join(f"{k}: {_n(v['throughput_kbps'])} kbps, p50 latency "
                                                  f"{_n(v['latency_p50_s'], d=2)} s" for k, v in mot["fig3"].items()))
    path = root / "report.md"
    write_text_atomic(path, "\n".join(lines) + "\n")
    return path


def write_reproduction(root: Path, nums: dict[str, Any], path: Path) -> Path:
    """One row per paper claim: our numbers for both profiles, whether the claim holds, and why not."""
    rows = []

    def per_prof(fn) -> dict[str, str]:
        return {p: fn(p) for p in PROFILES}

    if "fig7" in nums:
        t = nums["fig7"]["table"]
        v = nums["fig7"]["verdicts"]

        def f7(p):
            parts = []
            for s in t:
                if p in t[s]:
                    r = t[s][p]
                    parts.append(f"{scheme_info(s)['display_name']}: thr {r[0][1] / 1e3:.0f}-{r[-1][1] / 1e3:.0f} "
                                 f"kbps, mean lat {min(x[3] for x in r) * 1e3:.1f}-{max(x[3] for x in r) * 1e3:.1f} "
                                 f"ms, loss ≤ {max(x[6] for x in r) * 100:.2f} %")
            return "; ".join(parts)

        why = []
        for p, d in v.items():
            if not d.get("latency_lowest_at_every_rate"):
                why.append(f"{p}: AUTO&CP-BFC's latency is not the lowest at every rate -- objective (3) drives "
                           f"each port's queueing delay toward C = 8 ms (and the original caps sources at 455 "
                           f"kbps), while a baseline's on-demand port serves a lone user at once")
            if not d.get("red_reno_has_loss"):
                why.append(f"{p}: RED-Reno loses nothing here: one user's queue never reaches the 200-message limit")
        rows.append(("Fig. 7", "AUTO&CP-BFC: much lower latency, similar throughput, no loss; baseline 2 loses "
                               "messages", per_prof(f7), _all({p: all(d.values()) for p, d in v.items()}),
                     "; ".join(why)))
    if "fig9" in nums:
        lat = nums["fig9"]["latency"]
        v = nums["fig9"]["verdicts"]

        def f9(p):
            return "; ".join(f"{scheme_info(s)['display_name']} p99 {d['p99_ms']:.1f} ms"
                             for s, d in lat.get(p, {}).items())

        rows.append(("Fig. 9", "AUTO&CP-BFC keeps tail latency consistently lowest (λ = 1.5)", per_prof(f9),
                     _all({p: d["auto_lowest_p99"] for p, d in v.items()}),
                     "" if all(d["auto_lowest_p99"] for d in v.values()) else
                     "a baseline's p99 is lower: with ample keys its on-demand port serves at once, while AUTO "
                     "targets C = 8 ms of queueing per hop"))
    if "fig10_12" in nums:
        f = nums["fig10_12"]
        v = f["verdicts"]

        def adv(p):
            parts = []
            for s, d in f["advantage"].items():
                if p in d:
                    r = min(d[p], key=lambda r: abs(r[0] - 100))
                    parts.append(f"{scheme_info(s)['display_name']} {r[1]:.2f}")
            return "aggressive/normal throughput at 100 s early entry: " + ", ".join(parts)

        ok10 = _all({p: d.get("auto_no_first_arrival_advantage", False) for p, d in v.items()})
        rows.append(("Figs. 10/11", "no first-arrival advantage under AUTO&CP-BFC; baselines favour the early "
                                    "user", per_prof(adv), ok10,
                     "" if ok10 and all(ok10.values()) else "AUTO's elastic window (C4) lets the early user spend the surplus stored "
                                     "before the others arrive; its per-port rate is shared fairly only once "
                                     "all flows queue at the bottleneck"))

        def jn(p):
            parts = []
            for s, d in f["jain"].items():
                if p in d:
                    parts.append(f"{scheme_info(s)['display_name']} " + "/".join(f"{y:.3f}" for _, y, _ in d[p]))
            return "Jain at early entry " + "/".join(f"{e:g}" for e, _, _ in next(iter(f["jain"].values()))["paper"]
                                                      ) + " s: " + "; ".join(parts) if f["jain"] else ""

        ok12 = _all({p: d.get("auto_jain_ge_0.95_everywhere", False) and
                     all(val for k, val in d.items() if "jain_decreases" in k or "fairer" in k)
                     for p, d in v.items()})
        ok12_all = bool(ok12) and all(ok12.values())
        failed = sorted({f"{p}: {k}" for p, d in v.items() for k, val in d.items() if val is False and
                         ("jain" in k or "fairer" in k)})
        rows.append(("Fig. 12(a)", "Jain's index: AUTO&CP-BFC near-optimal at every early-entry duration; the "
                                   "baselines' decreases with it", per_prof(jn), ok12,
                     "" if ok12_all else "failed checks: " + ", ".join(failed) + " -- AUTO&CP-BFC loses fairness "
                     "with early entry as the baselines do (the early user spends the stored surplus)"))

        def doe(p):
            return "; ".join(f"{scheme_info(s)['display_name']} min DoE {d[p]['doe_min_after_all_start']:.2f}, "
                             f"cliff {d[p]['cliff_share'] * 100:.1f} % of samples"
                             for s, d in f["doe_min"].items() if p in d)

        okb = _all({p: d.get("auto_no_cliff_after_all_start", False) for p, d in v.items()})
        rows.append(("Fig. 12(b)", "AUTO&CP-BFC keeps the bottleneck's key storage out of the cliff "
                                   "(DoE ≥ 0)", per_prof(doe), okb,
                     "" if okb and all(okb.values()) else "the port's storage dips below one key-generation batch (DoE < 0) between "
                                    "events: AUTO bounds the rate by the storage horizon C5, not by the last batch"))
    for key, claim in (("fig13", "RSVP: flow 2 waits for admission while flow 1 holds the reservation, and flow 1 "
                                 "falls to r when its bucket runs dry; AUTO&CP-BFC serves flow 2 at once"),
                       ("fig14", "with the key rate below the reserved 500 kbps, RSVP's throughput fluctuates; "
                                 "AUTO&CP-BFC's stays stable")):
        if key not in nums:
            continue
        d = nums[key]

        def f13(p, d=d, key=key):
            parts = []
            for s, fl in d.get(p, {}).items():
                for name, x in fl.items():
                    if key == "fig13":
                        parts.append(f"{scheme_info(s)['display_name']} {name}: wait "
                                     f"{_n(x['admission_delay_s'], d=1)} s, {_n(x['throughput_bps'], 1e-3)} kbps")
                    else:
                        parts.append(f"{scheme_info(s)['display_name']} {name}: CoV {_n(x['cov_during_drop'], d=2)}"
                                     f", {_n(x['mean_during_drop_bps'], 1e-3)} kbps")
            return "; ".join(parts)

        ok = _all({p: all(x.values()) for p, x in d.get("verdicts", {}).items()})
        rows.append((f"Fig. {key[3:]}", claim, per_prof(f13), ok,
                     "" if ok and all(ok.values()) else "see report.md for the series"))
    mot = nums.get("motivation", {})
    if "fig2" in mot:
        m = mot["fig2"]
        ok = (not math.isnan(m["pool_empty_at_s"])) and m["throughput_after_empty_kbps"] < 1.5 * m["key_rate_kbps"]
        rows.append(("Fig. 2", "cliff effect: after 150 s of accumulation, accelerated requests exhaust the pool "
                               "(~168 s) and throughput falls to the generation rate",
                     {"paper": f"pool empty at {_n(m['pool_empty_at_s'])} s; {_n(m['throughput_before_empty_kbps'])}"
                               f" -> {_n(m['throughput_after_empty_kbps'])} kbps (key rate "
                               f"{_n(m['key_rate_kbps'])} kbps)", "original": "(on-demand: one profile)"},
                     ok, ""))
    if "fig3" in mot:
        m = mot["fig3"]
        u1, u2 = m.get("user1", {}), m.get("user2", {})
        ok = u1.get("throughput_kbps", 0) > u2.get("throughput_kbps", 0)
        rows.append(("Fig. 3", "first-arrival advantage: user 1 gets more than user 2 under round-robin",
                     {"paper": f"user 1 {_n(u1.get('throughput_kbps'))} kbps, user 2 "
                               f"{_n(u2.get('throughput_kbps'))} kbps", "original": "(on-demand: one profile)"},
                     ok, ""))
    lines = ["# Reproduction of seed 000 (AUTO & CP-BFC) with qkdbed", "",
             f"Generated by `qkdbed report {root} --reproduction REPRODUCTION.md` from stored results; do not edit "
             "by hand. Numbers are means over seeds (± sample standard deviation where several seeds ran); the "
             "`paper` profile implements the published formulas, `original` the authors' released code.", ""]
    lines += _manifest_summary(root)
    lines += ["", "| figure | paper's claim | measured, paper profile | measured, original profile | holds? | "
                  "why not / notes |", "|---|---|---|---|---|---|"]
    for fig, claim, meas, ok, why in rows:
        lines.append(f"| {fig} | {claim} | {meas.get('paper', '')} | {meas.get('original', '')} | {_yes(ok)} | "
                     f"{why} |")
    lines += ["", "Figures: `paper/*.png` in the results folder; full tables: `report.md`; raw numbers: "
                  "`paper/numbers.json`.", ""]
    write_text_atomic(path, "\n".join(lines))
    return path
