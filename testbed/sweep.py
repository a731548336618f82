"""Sweeps: one recipe run over a grid of field values and seeds, in parallel, resumable.

A recipe declares

```yaml
sweep:
  grid:                                   # any dotted recipe field -> list of values
    scheme.name: [auto-cpbfc, qkdtl-ecn]
    traffic.flows.0.lam_per_s: [1, 2, 3, 4]
  repeat: 3                               # seeds seed, seed+1, seed+2 for every grid point
```

Every (grid point, seed) is a pure job -- the base recipe with overrides in, a results folder out -- handed to a
`concurrent.futures` executor (a process pool by default; a Dask `distributed` client's executor takes the same
jobs). The sweep folder holds `sweep.json` (the plan: base recipe, jobs, their status), `runs/<job>/` (one
ordinary run folder each, with its own manifest), `table.csv` (one row per (run, flow), sorted, so the same sweep
with the same seeds gives an identical table) and `table.parquet` when pyarrow is installed. A failing job is
recorded with its error and does not stop the others; `--resume DIR` runs only the jobs without a finished
manifest.
"""

from __future__ import annotations

import concurrent.futures as cf
import csv
import io
import itertools
import json
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable

import yaml

from .errors import QkdbedError
from .record import write_json_atomic, write_text_atomic
from .results import git_revision


def plan_jobs(data: dict[str, Any], where: str) -> list[dict[str, Any]]:
    sw = data.get("sweep")
    if not isinstance(sw, dict):
        raise QkdbedError(f"{where}: sweep: expected a mapping with grid and/or repeat")
    unknown = set(sw) - {"grid", "repeat", "jobs"}
    if unknown:
        raise QkdbedError(f"{where}: sweep.{sorted(unknown)[0]}: no such field (known: grid, jobs, repeat)")
    grid = sw.get("grid") or {}
    if not isinstance(grid, dict) or not all(isinstance(v, list) and v for v in grid.values()):
        raise QkdbedError(f"{where}: sweep.grid: expected a mapping of dotted field -> non-empty list of values")
    repeat = sw.get("repeat", 1)
    if not isinstance(repeat, int) or isinstance(repeat, bool) or repeat < 1:
        raise QkdbedError(f"{where}: sweep.repeat: expected an integer >= 1, got {repeat!r}")
    base_seed = int(data.get("seed", 1))
    keys = list(grid)
    jobs = []
    for values in itertools.product(*(grid[k] for k in keys)) if keys else [()]:
        point = dict(zip(keys, values))
        for r in range(repeat):
            seed = base_seed + r
            label = ",".join(f"{k.split('.')[-1] if k.count('.') else k}={_short(v)}" for k, v in point.items())
            job_id = (label + "," if label else "") + f"seed={seed}"
            jobs.append({"id": _safe(job_id), "point": point, "seed": seed,
                         "overrides": [f"{k}={json.dumps(v)}" for k, v in point.items()]})
    ids = [j["id"] for j in jobs]
    if len(set(ids)) != len(ids):  # two grid keys ending in the same name: fall back to full names
        for j in jobs:
            j["id"] = _safe(",".join(f"{k}={_short(v)}" for k, v in j["point"].items()) + f",seed={j['seed']}")
    return jobs


def _short(v: Any) -> str:
    """A readable label for a grid value: scalars as they are, mappings and lists by their leaf values."""
    if isinstance(v, dict):
        return "-".join(_short(x) for x in v.values() if x not in ({}, [], None))
    if isinstance(v, list):
        return "+".join(_short(x) for x in v)
    return str(v)


def _safe(s: str) -> str:
    return "".join(c if c.isalnum() or c in "=,.-_+" else "_" for c in s)


def run_job(recipe_file: str, overrides: list[str], seed: int, run_dir: str) -> dict[str, Any]:
    """One job, in a worker process: load + override + run; never raises (errors are returned)."""
    from .recipe import load_recipe
    from .runner import run_recipe

    t0 = time.perf_counter()
    try:
        recipe = load_recipe(recipe_file, overrides, seed)
        m = run_recipe(recipe, Path(run_dir))
        return {"status": "ok", "wall_s": time.perf_counter() - t0, "events": m.get("events")}
    except Exception as e:  # noqa: BLE001 - a failing job is recorded, the sweep goes on
        msg = f"{type(e).__name__}: {e}"
        Path(run_dir).mkdir(parents=True, exist_ok=True)
        write_json_atomic(Path(run_dir) / "manifest.json", {"status": "failed", "error": msg,
                                                              "traceback": traceback.format_exc(limit=5),
                                                              "seed": seed, "overrides": overrides})
        return {"status": "failed", "error": msg, "wall_s": time.perf_counter() - t0}


def _finished(run_dir: Path) -> bool:
    m = run_dir / "manifest.json"
    if not m.is_file():
        return False
    try:
        return json.loads(m.read_text()).get("status") == "ok"
    except (OSError, ValueError):
        return False


def apply_quick(data: dict[str, Any], where: str) -> tuple[dict[str, Any], list[str]]:
    """The recipe's `quick:` variant: `set` (dotted overrides), `repeat` and `grid` (replace grid axes)."""
    q = data.get("quick")
    if not q:
        return data, []
    if not isinstance(q, dict) or set(q) - {"set", "repeat", "grid"}:
        raise QkdbedError(f"{where}: quick: expected a mapping with set, repeat and/or grid")
    data = json.loads(json.dumps(data))
    sw = data.get("sweep") or {}
    if "repeat" in q:
        sw["repeat"] = q["repeat"]
    for k, v in (q.get("grid") or {}).items():
        if k not in (sw.get("grid") or {}):
            raise QkdbedError(f"{where}: quick.grid.{k}: not an axis of sweep.grid")
        sw["grid"][k] = v
    if sw:
        data["sweep"] = sw
    return data, [f"{k}={json.dumps(v)}" for k, v in (q.get("set") or {}).items()]


def run_sweep(recipe_file: str, root: Path, jobs_n: int | None, extra_overrides: tuple[str, ...] = (),
              echo: Callable[[str], None] = print, resume: bool = False,
              executor_factory: Callable[[int], cf.Executor] | None = None, quick: bool = False) -> Path:
    """Run (or finish) the sweep of `recipe_file` into `root`."""
    if resume:
        plan = json.loads((root / "sweep.json").read_text())
        recipe_file = plan["recipe_file"]
        extra_overrides = tuple(plan.get("extra_overrides", []))
        jobs = plan["jobs"]
    else:
        data = yaml.safe_load(Path(recipe_file).read_text())
        if quick:
            data, q_over = apply_quick(data, recipe_file)
            extra_overrides = tuple(q_over) + tuple(extra_overrides)
        jobs = plan_jobs(data, recipe_file)
        # validate every job before running any: a typo in the grid fails now, in one line
        from .recipe import load_recipe

        for j in jobs:
            load_recipe(recipe_file, list(extra_overrides) + j["overrides"], j["seed"])
        plan = {"recipe_file": str(Path(recipe_file).resolve()), "extra_overrides": list(extra_overrides),
                "git_revision": git_revision(), "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "jobs": jobs}
        root.mkdir(parents=True, exist_ok=True)
        write_json_atomic(root / "sweep.json", plan)
    todo = [j for j in jobs if not _finished(root / "runs" / j["id"])]
    done = len(jobs) - len(todo)
    if done:
        echo(f"resuming: {done} of {len(jobs)} runs already finished")
    if jobs_n is None:
        data = yaml.safe_load(Path(recipe_file).read_text())
        jobs_n = int((data.get("sweep") or {}).get("jobs", 0)) or None
    workers = max(1, min(jobs_n or _cpus(), len(todo) or 1))
    failures = 0
    t0 = time.perf_counter()
    make = executor_factory or (lambda n: cf.ProcessPoolExecutor(max_workers=n))
    if todo:
        with make(workers) as ex:
            futs = {ex.submit(run_job, recipe_file, list(extra_overrides) + j["overrides"], j["seed"],
                              str(root / "runs" / j["id"])): j for j in todo}
            for k, fut in enumerate(cf.as_completed(futs), start=1):
                j = futs[fut]
                res = fut.result()
                if res["status"] != "ok":
                    failures += 1
                _progress(echo, done + k, len(jobs), j["id"], res, time.perf_counter() - t0)
    table = collect_table(root, jobs)
    status = {j["id"]: ("ok" if _finished(root / "runs" / j["id"]) else "failed") for j in jobs}
    plan["status"] = status
    plan["finished_utc"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    write_json_atomic(root / "sweep.json", plan)
    n_fail = sum(1 for s in status.values() if s != "ok")
    echo(f"sweep: {len(jobs) - n_fail} of {len(jobs)} runs ok, {len(table)} table rows -> {root}")
    if n_fail:
        echo(f"sweep: {n_fail} runs failed (see runs/*/manifest.json); rerun with --resume {root}")
    return root


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _progress(echo, k: int, n: int, job_id: str, res: dict[str, Any], elapsed_s: float) -> None:
    width = 24
    filled = int(width * k / n)
    bar = "#" * filled + "." * (width - filled)
    tail = "ok" if res["status"] == "ok" else f"FAILED ({res.get('error', '')[:80]})"
    echo(f"[{bar}] {k}/{n} {elapsed_s:6.1f}s {job_id}: {tail}")


def collect_table(root: Path, jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The tidy table: one row per (run, flow), with the grid point's values as columns."""
    rows = []
    for j in sorted(jobs, key=lambda j: j["id"]):
        run_dir = root / "runs" / j["id"]
        if not _finished(run_dir):
            continue
        metrics = json.loads((run_dir / "metrics.json").read_text())
        manifest = json.loads((run_dir / "manifest.json").read_text())
        fair = metrics.get("fairness", {}).get("all", {})
        gk = metrics.get("group_keys") or {}
        gk_cols = {f"gk_{k}": v for k, v in gk.items() if k not in ("plan", "servers")}
        if gk:
            gk_cols["gk_servers"] = " ".join(gk.get("servers", []))
        for f in metrics["flows"]:
            row = {"run": j["id"], "seed": j["seed"], "scheme": manifest.get("scheme"),
                   "profile": manifest.get("profile")}
            row.update({k: _short(v) if isinstance(v, (dict, list)) else v for k, v in j["point"].items()})
            row.update(f)
            row["jain_all"] = fair.get("jain")
            row.update(gk_cols)  # a group-key run's service numbers, repeated on each of its flows' rows
            rows.append(row)
    keys: list[str] = []
    for r in rows:
        for k in r:
            if k not in keys:
                keys.append(k)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow(r)
    write_text_atomic(root / "table.csv", buf.getvalue())
    try:
        import pyarrow as pa  # optional
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(rows), str(root / "table.parquet"))
    except ImportError:
        pass
    return rows


if __name__ == "__main__":  # pragma: no cover
    sys.exit("use: qkdbed run RECIPE (a recipe with a sweep: section)")
