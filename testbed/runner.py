"""Run one recipe as a job: a resolved recipe (with its seed) in, a results folder out.

Jobs are pure (they read nothing but the recipe and write only their own folder), so a sweep can hand them to any
`concurrent.futures`-style executor. A *suite* recipe (`suite: [a.yaml, b.yaml]`) runs several recipes one after
another into sub-folders of one results folder.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import yaml

from . import figures, metrics
from .errors import NotYetError, QkdbedError
from .recipe import Recipe, load_recipe
from .results import default_run_dir, environment, git_revision, write_manifest, write_summary_csv
from .record import write_json_atomic


def run_recipe(recipe: Recipe, run_dir: Path) -> dict[str, Any]:
    """Simulate `recipe`, write its results into `run_dir`, return the manifest."""
    if recipe.runtime != "sim":
        raise NotYetError("the emulated runtime (runtime: emu)", issue=7)
    from .sim.run import simulate

    t0 = time.perf_counter()
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    run_dir.mkdir(parents=True, exist_ok=True)
    res = simulate(recipe)
    sim_wall = time.perf_counter() - t0
    log = res.log
    log.save(run_dir)
    summary = metrics.summarize(log)
    write_json_atomic(run_dir / "metrics.json", summary)
    rows = []
    for f in summary["flows"]:
        rows.append({"recipe": recipe.name, "scheme": recipe.scheme, "profile": recipe.profile, "seed": recipe.seed,
                     **f})
    write_summary_csv(run_dir / "summary.csv", rows)
    drawn = figures.draw_all(log, recipe.figures, run_dir / "figures", recipe.bin_s)
    manifest = {
        "recipe": recipe.raw, "recipe_file": recipe.source, "name": recipe.name, "seed": recipe.seed,
        "scheme": recipe.scheme, "profile": recipe.profile, "runtime": recipe.runtime,
        "git_revision": git_revision(), "environment": environment(), "started_utc": started,
        "events": res.events, "simulated_s": recipe.duration_s, "sim_wall_s": sim_wall,
        "wall_s": time.perf_counter() - t0, "event_log_sha256": log.digest(), "figures": drawn,
        "status": "ok",
    }
    write_manifest(run_dir, manifest)
    return manifest


def is_suite(path: Path) -> bool:
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return False
    return isinstance(data, dict) and "suite" in data


def run_path(path: str | None, overrides: tuple[str, ...] = (), seed: int | None = None, output: str | None = None,
             echo=print, jobs: int | None = None, resume: str | None = None) -> Path:
    """What `qkdbed run` does for a recipe, a sweep or a suite file; returns the results folder."""
    from .sweep import is_sweep, run_sweep

    if resume:
        root = Path(resume)
        if not (root / "sweep.json").is_file():
            raise QkdbedError(f"--resume {resume}: no sweep.json there (expected the folder of an earlier sweep)")
        return run_sweep("", root, jobs, echo=echo, resume=True)
    if path is None:
        raise QkdbedError("qkdbed run: expected a RECIPE (or --resume DIR)")
    p = Path(path)
    if not p.is_file() and (Path(__file__).resolve().parent.parent / "experiments" / path).is_file():
        p = Path(__file__).resolve().parent.parent / "experiments" / path
    if p.is_file() and is_sweep(p):
        name = (yaml.safe_load(p.read_text()) or {}).get("name", p.stem)
        root = Path(output) if output else default_run_dir(name)
        if seed is not None:
            overrides = tuple(overrides) + (f"seed={seed}",)
        return run_sweep(str(p), root, jobs, overrides, echo=echo)
    if p.is_file() and is_suite(p):
        data = yaml.safe_load(p.read_text())
        items = data.get("suite")
        if not isinstance(items, list) or not items or not all(isinstance(i, str) for i in items):
            raise QkdbedError(f"{p}: suite: expected a list of recipe files")
        name = data.get("name", p.stem)
        root = Path(output) if output else default_run_dir(name)
        recipes = [load_recipe(p.parent / i, overrides, seed) for i in items]  # validate all before running any
        for r in recipes:
            m = run_recipe(r, root / r.name)
            echo(f"{r.name}: {m['events']} events, {m['simulated_s']:g} s simulated in {m['sim_wall_s']:.2f} s "
                 f"-> {root / r.name}")
        write_json_atomic(root / "suite.json", {"name": name, "recipes": [r.name for r in recipes],
                                                "git_revision": git_revision()})
        return root
    recipe = load_recipe(path, overrides, seed)
    run_dir = Path(output) if output else default_run_dir(recipe.name)
    m = run_recipe(recipe, run_dir)
    echo(f"{recipe.name}: {m['events']} events, {m['simulated_s']:g} s simulated in {m['sim_wall_s']:.2f} s "
         f"-> {run_dir}")
    return run_dir
