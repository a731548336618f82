"""Run one recipe as a job: a resolved recipe (with its seed) in, a results folder out.

Jobs are pure (they read nothing but the recipe and write only their own folder), so a sweep can hand them to any
`concurrent.futures`-style executor. A *suite* recipe (`suite: [a.yaml, b.yaml]`) runs several recipes one after
another into sub-folders of one results folder.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any


from . import figures, metrics
from .errors import QkdbedError
from .recipe import Recipe, load_recipe
from .schema import load_yaml
from .results import default_run_dir, environment, git_revision, write_manifest, write_summary_csv
from .record import write_json_atomic


def run_recipe(recipe: Recipe, run_dir: Path, backend: str = "local") -> dict[str, Any]:
    """Run `recipe` (simulated, or emulated on `backend` when its runtime is emu), write its results into
    `run_dir`, return the manifest."""
    t0 = time.perf_counter()
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    run_dir.mkdir(parents=True, exist_ok=True)
    emu: dict[str, Any] = {}
    if recipe.runtime == "emu":
        from .emu.run import run_emulated

        log = run_emulated(recipe, backend, run_dir)
        events = sum(len(log[k]) for k in ("sends", "deliveries", "acks", "drops", "control", "supply"))
        emu = json.loads((run_dir / "emu.json").read_text())
        emu = {"backend": backend, "failures": emu.get("failures", []), "bring_up_s": emu.get("bring_up_s"),
               "teardown_s": emu.get("teardown_s"), "drain_s": emu.get("drain_s")}
    else:
        from .sim.run import simulate

        res = simulate(recipe)
        log, events = res.log, res.events
    sim_wall = time.perf_counter() - t0
    log.save(run_dir)
    summary = metrics.summarize(log)
    if recipe.group_keys is not None:
        from .groupkeys import group_key_summary

        summary["group_keys"] = {**group_key_summary(log, recipe.group_keys), "plan": recipe.group_keys}
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
        "events": events, "simulated_s": recipe.duration_s, "sim_wall_s": sim_wall,
        "wall_s": time.perf_counter() - t0, "event_log_sha256": log.digest(), "figures": drawn,
        "status": "degraded" if emu.get("failures") else "ok",
    }
    if emu:
        manifest["emu"] = emu
    write_manifest(run_dir, manifest)
    return manifest


def run_path(path: str | None, overrides: tuple[str, ...] = (), seed: int | None = None, output: str | None = None,
             echo=print, jobs: int | None = None, resume: str | None = None, quick: bool = False,
             runtime: str | None = None, backend: str = "local") -> Path:
    """What `qkdbed run` does for a recipe, a sweep or a suite file; returns the results folder. `runtime`
    overrides the recipes' runtime (sim | emu); `backend` places an emulated testbed (local | mininet | docker)."""
    from .sweep import run_sweep

    if resume:
        root = Path(resume)
        if not (root / "sweep.json").is_file():
            raise QkdbedError(f"--resume {resume}: no sweep.json there (expected the folder of an earlier sweep)")
        return run_sweep("", root, jobs, echo=echo, resume=True)
    if path is None:
        raise QkdbedError("qkdbed run: expected a RECIPE (or --resume DIR)")
    p = _resolve(path)
    data = _read(p)
    name = data.get("name", p.stem) if isinstance(data, dict) else p.stem
    root = Path(output) if output else default_run_dir(name)
    if seed is not None:
        overrides = tuple(overrides) + (f"seed={seed}",)
    if runtime is not None:
        overrides = tuple(overrides) + (f"runtime={runtime}",)
    _run_any(p, data, root, tuple(overrides), jobs, quick, echo, backend=backend)
    return root


def _resolve(path: str) -> Path:
    p = Path(path)
    if p.is_file():
        return p
    alt = Path(__file__).resolve().parent.parent / "experiments" / (path if p.suffix else path + ".yaml")
    if alt.is_file():
        return alt
    raise QkdbedError(f"recipe {path}: no such file")


def _read(p: Path):
    return load_yaml(p) or {}


def _validate_tree(p: Path, data, overrides: tuple[str, ...], quick: bool) -> None:
    """Validate a suite's recipes (recursively) before running any, so a typo fails at once."""
    from .sweep import apply_quick, plan_jobs

    if isinstance(data, dict) and "suite" in data:
        for item in _suite_items(p, data):
            _validate_tree(item, _read(item), overrides, quick)
    elif isinstance(data, dict) and "sweep" in data:
        d, q = apply_quick(data, str(p)) if quick else (data, [])
        for j in plan_jobs(d, str(p))[:1]:
            load_recipe(p, list(q) + list(overrides) + j["overrides"], j["seed"])
    else:
        d, q = _quick_set(data, p, quick)
        load_recipe(p, list(q) + list(overrides))


def _quick_set(data, p: Path, quick: bool):
    from .sweep import apply_quick

    return apply_quick(data, str(p)) if quick else (data, [])


def _suite_items(p: Path, data) -> list[Path]:
    items = data.get("suite")
    if not isinstance(items, list) or not items or not all(isinstance(i, str) for i in items):
        raise QkdbedError(f"{p}: suite: expected a list of recipe files")
    out = []
    for i in items:
        q = p.parent / i
        if not q.is_file():
            raise QkdbedError(f"{p}: suite: {i}: no such file")
        out.append(q)
    return out


def _run_any(p: Path, data, root: Path, overrides: tuple[str, ...], jobs, quick: bool, echo, top: bool = True,
             backend: str = "local"):
    from .sweep import run_sweep

    if isinstance(data, dict) and "suite" in data:
        if top:
            _validate_tree(p, data, overrides, quick)
        names = []
        for item in _suite_items(p, data):
            d = _read(item)
            nm = d.get("name", item.stem) if isinstance(d, dict) else item.stem
            names.append(nm)
            _run_any(item, d, root / nm, overrides, jobs, quick, echo, top=False, backend=backend)
        write_json_atomic(root / "suite.json", {"name": data.get("name", p.stem), "recipes": names,
                                                "git_revision": git_revision(), "quick": quick,
                                                "report": data.get("report")})
        if data.get("report") == "paper":
            from .paperfigs import build_paper

            out = build_paper(root)
            echo(f"paper figures and report -> {out}")
        return
    if isinstance(data, dict) and "sweep" in data:
        run_sweep(str(p), root, jobs, overrides, echo=echo, quick=quick)
        return
    _, q = _quick_set(data, p, quick)
    recipe = load_recipe(p, list(q) + list(overrides))
    m = run_recipe(recipe, root, backend)
    echo(f"{recipe.name}: {m['events']} events, {m['simulated_s']:g} s simulated in {m['sim_wall_s']:.2f} s "
         f"-> {root}")
