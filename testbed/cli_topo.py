"""`qkdbed topo …`: inspect topologies."""

from __future__ import annotations

import click

from .network import load_topology


@click.group()
def topo() -> None:
    """Inspect and render topologies."""


@topo.command("show")
@click.argument("topology")
@click.option("--metric", type=click.Choice(["hops", "km"]), default="hops", show_default=True)
def show(topology: str, metric: str) -> None:
    """Print nodes, links and the route between every pair of users."""
    t = load_topology(topology)
    click.echo(f"{t.name}: {len(t.nodes)} nodes, {len(t.links)} links ({t.source})")
    for n in t.nodes.values():
        click.echo(f"  node {n.name:<8} {n.role}")
    for l in t.links:
        click.echo(f"  link {l.a}-{l.b}: {l.distance_km:g} km, {l.loss_db:.2f} dB, "
                   f"{l.bandwidth_bps / 1e6:g} Mbps, {l.delay_s * 1e3:g} ms")
    users = t.users()
    for s in users:
        for d in users:
            if s < d:
                click.echo(f"  route {s}->{d}: {' '.join(t.path(s, d, metric))}")


@topo.command("render")
@click.argument("topology")
@click.option("--format", "fmt", type=click.Choice(["compose", "mininet", "k8s"]), required=True)
@click.option("--name", default=None, help="Testbed name (default: the topology's name).")
@click.option("-o", "--output", "output", default=None, type=click.Path(file_okay=False),
              help="Write the file and the agents' configurations into this folder (default: print the file).")
def render_cmd(topology: str, fmt: str, name: str | None, output: str | None) -> None:
    """Render TOPOLOGY as a Compose file, a standalone Mininet script or Kubernetes manifests."""
    from pathlib import Path

    from .emu.render import render

    text = render(topology, fmt, name, Path(output) if output else None)
    if output:
        click.echo(f"wrote {fmt} testbed and agent configurations to {output}")
    else:
        click.echo(text, nl=False)
