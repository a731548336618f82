"""Where a run's results go and what they hold: `results/<recipe>/<UTC time>/`.

- `manifest.json`: the fully resolved recipe, seed, git revision, package versions, platform, wall time, events;
- `events.npz` + `events.json`: the event log (`record.py`);
- `metrics.json`: `metrics.summarize` of the log;
- `summary.csv`: a tidy table, one row per flow;
- `figures/*.png|pdf`.

Every file is written to a temporary name and renamed, so an interrupted run never leaves a half-written file
that looks complete; `manifest.json` is written last and marks a finished run.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from . import __version__
from .record import write_json_atomic, write_text_atomic

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("numpy", "matplotlib", "click", "PyYAML", "jinja2", "pulp")


def default_run_dir(recipe_name: str, root: Path | None = None) -> Path:
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
    return (root or REPO / "results") / recipe_name / stamp


def git_revision() -> str:
    try:
        rev = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=5).stdout.strip()
        # REPRODUCTION.md is an output of `make demo`, not an input: its own changes do not make a run dirty
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no", "--",
                                ".", ":(exclude)REPRODUCTION.md"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return (rev or "unknown") + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def environment() -> dict[str, Any]:
    versions = {"qkdbed": __version__}
    for p in PACKAGES:
        try:
            versions[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            versions[p] = None
    return {"python": sys.version.split()[0], "platform": platform.platform(), "machine": platform.machine(),
            "packages": versions}


def write_summary_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    if not rows:
        write_text_atomic(path, "")
        return
    buf = io.StringIO()
    keys: list[str] = []
    for r in rows:
        for k in r:
            if k not in keys:
                keys.append(k)
    w = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow(r)
    write_text_atomic(path, buf.getvalue())


def write_manifest(run_dir: Path, manifest: dict[str, Any]) -> None:
    write_json_atomic(run_dir / "manifest.json", manifest)


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())
