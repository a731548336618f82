"""Attaches each command group to the `qkdbed` CLI. One import per capability; each module stays thin."""

from __future__ import annotations

import click


def register(cli: click.Group, group_cls: type[click.Group]) -> None:
    from .cli_report import plot, report
    from .cli_run import run_cmd
    from .cli_topo import topo
    from .emu.etsi014.cli import keys
    from .plan.cli import plan
    from .emu.cli import COMMANDS as EMU_COMMANDS

    cli.add_command(run_cmd)
    cli.add_command(plot)
    cli.add_command(report)
    cli.add_command(topo)
    cli.add_command(plan)
    cli.add_command(keys)
    for cmd in EMU_COMMANDS:  # up, status, logs, exec, down, agent, inject, image
        cli.add_command(cmd)
