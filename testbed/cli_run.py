"""`qkdbed run RECIPE`: run an experiment recipe (simulator by default)."""

from __future__ import annotations

import click

from .runner import run_path


@click.command("run")
@click.argument("recipe", required=False)
@click.option("--seed", type=int, default=None, help="Override the recipe's seed.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a recipe field by dotted path, e.g. --set traffic.flows.0.rate_bps=1e5 (repeatable).")
@click.option("-o", "--output", "output", default=None,
              help="Results folder (default results/<recipe>/<UTC time>/).")
@click.option("-j", "--jobs", type=int, default=None, help="Parallel runs of a sweep (default: all cores).")
@click.option("--resume", type=click.Path(file_okay=False), default=None,
              help="Finish an interrupted sweep in this results folder without redoing finished runs.")
@click.option("--quick", is_flag=True, help="Run each recipe's `quick:` variant (shorter, fewer points).")
@click.option("--runtime", type=click.Choice(["sim", "emu"]), default=None,
              help="sim: the discrete-event simulator; emu: node agents on an emulated testbed (default: recipe's).")
@click.option("--backend", type=click.Choice(["local", "mininet", "docker"]), default="local", show_default=True,
              help="Where an emulated testbed runs (with --runtime emu).")
def run_cmd(recipe: str | None, seed: int | None, overrides: tuple[str, ...], output: str | None,
            jobs: int | None, resume: str | None, quick: bool, runtime: str | None, backend: str) -> None:
    """Run an experiment RECIPE (a single run, a sweep, or a suite of recipes) and write results and figures."""
    run_path(recipe, overrides, seed, output, echo=click.echo, jobs=jobs, resume=resume, quick=quick,
             runtime=runtime, backend=backend)
