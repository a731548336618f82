"""`qkdbed plan key-servers`: placeholder until the p-median planner lands (issue 10)."""

import click

from ..errors import NotYetError


@click.command("key-servers", context_settings={"ignore_unknown_options": True})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def key_servers(args: tuple[str, ...]) -> None:
    """Place group-key service nodes (not yet)."""
    raise NotYetError("qkdbed plan key-servers", issue=10)
