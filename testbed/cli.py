"""The `qkdbed` command line. Click commands only: parsing, printing, exit codes; the logic lives elsewhere.

Every user error (a `QkdbedError`) is printed as one line `qkdbed: …` with exit code 2, never a traceback.
"""

from __future__ import annotations

import sys

import click

from . import __version__
from .errors import QkdbedError


class Group(click.Group):
    """A click group whose commands report `QkdbedError` as one line and exit 2."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except QkdbedError as e:
            click.echo(f"qkdbed: {e}", err=True)
            ctx.exit(e.exit_code)


@click.group(cls=Group)
@click.version_option(__version__, prog_name="qkdbed")
def cli() -> None:
    """qkdbed: key management and service in trusted-relay QKD networks, simulated or emulated."""


# Subcommand groups live next to their logic and are attached here, so this file stays a table of contents.
from .commands import register  # noqa: E402

register(cli, Group)


def main() -> None:
    try:
        cli.main(prog_name="qkdbed", standalone_mode=True)
    except QkdbedError as e:  # raised outside invoke (e.g. while building a group lazily)
        click.echo(f"qkdbed: {e}", err=True)
        sys.exit(e.exit_code)


if __name__ == "__main__":
    main()
