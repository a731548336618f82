"""`qkdbed plot DIR` and `qkdbed report DIR`: redraw figures and write reports from stored results only."""

from __future__ import annotations

import json
from pathlib import Path

import click

from .errors import QkdbedError


def _kind(root: Path) -> str:
    if (root / "suite.json").is_file():
        return "suite"
    if (root / "sweep.json").is_file():
        return "sweep"
    if (root / "events.json").is_file():
        return "run"
    raise QkdbedError(f"{root}: not a results folder (expected manifest.json and events.*, sweep.json or "
                      f"suite.json)")


def _redraw_run(run: Path) -> list[str]:
    from .figures import draw_all
    from .record import EventLog

    man = json.loads((run / "manifest.json").read_text())
    if man.get("status") != "ok":
        return []
    outputs = (man.get("recipe") or {}).get("outputs") or {}
    specs = outputs.get("figures", ["throughput", "latency_cdf", "key_storage"])
    return draw_all(EventLog.load(run), specs, run / "figures", float(outputs.get("bin_s", 1.0)))


def redraw(root: Path) -> int:
    kind = _kind(root)
    n = 0
    if kind == "run":
        n += len(_redraw_run(root))
    elif kind == "sweep":
        for run in sorted((root / "runs").iterdir()):
            if (run / "events.json").is_file():
                n += len(_redraw_run(run))
    else:
        suite = json.loads((root / "suite.json").read_text())
        for name in suite["recipes"]:
            if (root / name).is_dir():
                n += redraw(root / name)
        if suite.get("report") == "paper":
            from .paperfigs import build_paper

            build_paper(root)
            n += len(list((root / "paper").glob("*.png")))
    return n


@click.command("plot")
@click.argument("results_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
def plot(results_dir: Path) -> None:
    """Redraw the figures of a run, sweep or suite from its stored results (no rerun)."""
    n = redraw(results_dir)
    click.echo(f"{n} figures redrawn under {results_dir}")


@click.command("report")
@click.argument("results_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--reproduction", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the reproduction table (e.g. REPRODUCTION.md at the repository root).")
def report(results_dir: Path, reproduction: Path | None) -> None:
    """Write a Markdown report (figures, key numbers, manifest summary) from stored results."""
    from . import metrics
    from .record import EventLog, write_text_atomic

    kind = _kind(results_dir)
    if kind == "suite" and json.loads((results_dir / "suite.json").read_text()).get("report") == "paper":
        from .paperfigs import build_paper
        from .report import write_reproduction

        build_paper(results_dir)
        nums = json.loads((results_dir / "paper" / "numbers.json").read_text())
        if reproduction is not None:
            write_reproduction(results_dir, nums, reproduction)
            click.echo(f"wrote {reproduction}")
        click.echo(f"wrote {results_dir / 'report.md'}")
        return
    if reproduction is not None:
        raise QkdbedError("--reproduction needs the results folder of experiments/paper.yaml")
    runs = [results_dir] if kind == "run" else sorted(p.parent for p in results_dir.glob("**/events.json"))
    lines = [f"# qkdbed report: {results_dir}", ""]
    for run in runs:
        man = json.loads((run / "manifest.json").read_text())
        if man.get("status") != "ok":
            lines += [f"## {run.name}: failed", "", f"`{man.get('error')}`", ""]
            continue
        m = metrics.summarize(EventLog.load(run))
        rel = run.relative_to(results_dir) if run != results_dir else Path(".")
        lines += [f"## {man['name']} ({rel})", "",
                  f"scheme {man['scheme']}/{man['profile']}, seed {man['seed']}, {man['simulated_s']:g} s simulated "
                  f"in {man['sim_wall_s']:.2f} s, git {man['git_revision']}", "",
                  "| flow | offered | delivered | dropped | throughput (kbps) | p50 (ms) | p99 (ms) | loss |",
                  "|---|---|---|---|---|---|---|---|"]
        for f in m["flows"]:
            lines.append(f"| {f['name']} | {f['offered']} | {f['delivered']} | {f['dropped']} | "
                         f"{f['throughput_bps'] / 1e3:.1f} | {f['latency_p50_s'] * 1e3:.2f} | "
                         f"{f['latency_p99_s'] * 1e3:.1f} | {f['loss_rate']:.4f} |")
        j = m["fairness"]["all"]
        lines += ["", f"Jain's index {j['jain']:.4f} over [{j['from_s']:.1f}, {j['to_s']:.1f}] s", ""]
        for fig in sorted((run / "figures").glob("*.png")):
            lines.append(f"![{fig.stem}]({fig.relative_to(results_dir)})")
        lines.append("")
    write_text_atomic(results_dir / "report.md", "\n".join(lines) + "\n")
    click.echo(f"wrote {results_dir / 'report.md'}")
