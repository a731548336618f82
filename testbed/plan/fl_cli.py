"""`qkdbed plan fl`: placeholder until the FL provisioning planner lands (issue 11)."""

import click

from ..errors import NotYetError


@click.command("fl", context_settings={"ignore_unknown_options": True})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def fl(args: tuple[str, ...]) -> None:
    """Provision QKD resources for federated learning (not yet)."""
    raise NotYetError("qkdbed plan fl", issue=11)
