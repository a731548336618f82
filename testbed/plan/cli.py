"""`qkdbed plan …`: the planners' commands. Each planner registers its own subcommand module here."""

from __future__ import annotations

import click


@click.group()
def plan() -> None:
    """Plan QKD networks: key-server placement (p-median) and FL key provisioning (stochastic programming)."""


def _attach() -> None:
    from .pmedian_cli import key_servers
    from .fl_cli import fl, fl_figures

    plan.add_command(key_servers)
    plan.add_command(fl)
    plan.add_command(fl_figures)


_attach()
