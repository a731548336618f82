"""`qkdbed run RECIPE`: run an experiment recipe (simulator by default)."""

from __future__ import annotations

import click

from .errors import NotYetError


@click.command("run")
@click.argument("recipe")
@click.option("--seed", type=int, default=None, help="Override the recipe's seed.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a recipe field (dotted path).")
@click.option("-o", "--output", "output", default=None, help="Results directory (default results/<recipe>/<UTC time>/).")
def run_cmd(recipe: str, seed: int | None, overrides: tuple[str, ...], output: str | None) -> None:
    """Run an experiment recipe and write results and figures."""
    raise NotYetError("qkdbed run", issue=3)
