"""`qkdbed up | status | logs | exec | down | agent | inject | image`: the emulated testbed's commands (click only).

A testbed brought up with `up` keeps running after the command returns (its processes or containers are recorded
in the state directory, see `state.py`); it supplies keys on every link from its start for `--duration` seconds,
and carries the recipe's flows (over the same horizon) plus any `--flow SRC:DST[:RATE]`. Each user node's agent is
an ETSI GS QKD 014 KME; `up` writes the testbed's PKI and `kme.json` into the state folder (docs/etsi014.md).
Measured experiments run with `qkdbed run RECIPE --runtime emu --backend ...`, which brings its own testbed up
and down.
"""

from __future__ import annotations

import sys
import time

import click

from ..errors import QkdbedError
from . import control
from .state import State, list_testbeds


DEFAULT_FLOW_RATE_BPS = 200_000.0  # `--flow SRC:DST` without a rate: ~49 key units (25 kB of key) per second


def parse_flow(text: str):
    """`SRC:DST[:RATE]` (RATE in bit/s of key units, suffix k or M allowed) -> a constant-rate FlowSpec."""
    from ..traffic import FlowSpec

    parts = text.split(":")
    if len(parts) not in (2, 3) or not parts[0] or not parts[1] or parts[0] == parts[1]:
        raise QkdbedError(f"--flow {text!r}: expected SRC:DST[:RATE_BPS] with two different nodes")
    rate = DEFAULT_FLOW_RATE_BPS
    if len(parts) == 3:
        r = parts[2].strip()
        mult = {"k": 1e3, "K": 1e3, "M": 1e6}.get(r[-1:], 1.0)
        try:
            rate = float(r[:-1] if mult != 1.0 else r) * mult
        except ValueError:
            raise QkdbedError(f"--flow {text!r}: rate {r!r} is not a number") from None
        if rate <= 0:
            raise QkdbedError(f"--flow {text!r}: the rate must be positive")
    return FlowSpec(name=f"{parts[0]}->{parts[1]}", src=parts[0], dst=parts[1], model="cbr",
                    params={"rate_bps": rate})


def _lab_for(target: str, name: str, duration_s: float | None = None, extra_flows=(),
             insecure_http: bool = False, kme: bool = True):
    """The lab for `up`, and its traffic: (lab, flows by source node, weights). Key supply and offers run for
    `duration_s` (default: the longer of the recipe's duration and an hour), so the KMEs keep getting units."""
    import dataclasses
    from pathlib import Path

    import yaml

    from ..network import load_topology
    from ..recipe import load_recipe
    from ..sim.run import rng_for
    from ..traffic import offer_times
    from .lab import DEFAULT_UP_DURATION_S, lab_from_recipe, lab_from_topology

    p = Path(target)
    data = None
    if p.is_file():
        try:
            data = yaml.safe_load(p.read_text())
        except yaml.YAMLError:
            data = None
    if isinstance(data, dict) and "topology" in data:
        recipe = load_recipe(target)
        horizon = duration_s or max(recipe.duration_s, DEFAULT_UP_DURATION_S)
        recipe = dataclasses.replace(recipe, duration_s=horizon)
        lab, specs, seed = lab_from_recipe(recipe, name), list(recipe.flows), recipe.seed
    else:
        horizon = duration_s or DEFAULT_UP_DURATION_S
        lab = lab_from_topology(load_topology(target), name, duration_s=horizon)
        specs, seed = [], lab.seed
    lab.insecure_http, lab.kme = insecure_http, kme
    specs += list(extra_flows)
    by_node: dict[str, list[dict]] = {}
    weights: dict[int, float] = {}
    for fid, spec in enumerate(specs, start=1):
        for end in (spec.src, spec.dst):
            if end not in lab.node_names:
                raise QkdbedError(f"flow {spec.name}: no node {end!r} in the topology")
        offers = offer_times(spec, horizon, rng_for(seed, f"flow:{spec.name}"))
        by_node.setdefault(spec.src, []).append({"fid": fid, "dst": spec.dst, "weight": spec.weight,
                                                 "offers": [round(float(t), 6) for t in offers]})
        weights[fid] = spec.weight
    return lab, by_node, weights


def bring_up(target: str, backend: str, name: str, timeout_s: float = 60.0, duration_s: float | None = None,
             flows=(), insecure_http: bool = False, kme: bool = True) -> tuple[State, dict]:
    """`up` without printing: returns the state and timings (used by the CLI, the benchmark and the tests).
    `flows`: extra FlowSpecs (see `parse_flow`) on top of a recipe's."""
    from .backends import get as get_backend

    t0 = time.monotonic()
    lab, by_node, weights = _lab_for(target, name, duration_s, flows, insecure_http, kme)
    state = State(name)
    state.create(backend)
    be = get_backend(backend, state)
    try:
        be.up(lab)
        urls = {n: v["control_url"] for n, v in state.data["nodes"].items()}
        control.wait_ready(urls, state.data["injector_url"], timeout_s,
                           alive=lambda: {k: v["alive"] for k, v in be.status().items()})
        up_s = time.monotonic() - t0
        control.start(urls, state.data["injector_url"], lab.duration_s, 0.0, by_node, weights)
        state.update(phase="running", up_s=up_s, target=target, duration_s=lab.duration_s,
                     flows={str(f["fid"]): [n, f["dst"]] for n, fl in by_node.items() for f in fl})
    except BaseException:
        be.down()
        state.remove()
        raise
    return state, {"up_s": up_s}


def tear_down(name: str) -> float:
    """`down` without printing: returns the seconds it took (0 if nothing was up)."""
    from .backends import get as get_backend

    state = State(name)
    if not state.exists:
        return 0.0
    t0 = time.monotonic()
    get_backend(state.data["backend"], state).down()
    state.remove()
    return time.monotonic() - t0


def _one_name(name: str | None) -> str:
    if name:
        return name
    up = list_testbeds()
    if len(up) == 1:
        return up[0]
    if not up:
        raise QkdbedError("no testbed is up")
    raise QkdbedError(f"several testbeds are up ({', '.join(up)}); name one")


@click.command("up")
@click.argument("target")
@click.option("--backend", type=click.Choice(["local", "mininet", "docker"]), default="local", show_default=True)
@click.option("--name", default=None, help="Testbed name (default: the topology or recipe file's stem).")
@click.option("--timeout", "timeout_s", type=float, default=60.0, show_default=True,
              help="Seconds to wait for every agent and link to be ready.")
@click.option("--duration", "duration_s", type=click.FloatRange(min=1.0), default=None,
              help="Seconds of key supply and traffic (default: 3600, or a recipe's duration if longer).")
@click.option("--flow", "flows", multiple=True, metavar="SRC:DST[:RATE]",
              help="Add a constant-rate flow (RATE in bit/s, e.g. 200k; default 200k). Its end-to-end key units "
                   "feed the KMEs of SRC (enc_keys toward DST) and DST. Repeatable.")
@click.option("--insecure-http", is_flag=True,
              help="KMEs serve plain HTTP with the caller named in X-SAE-ID (experiments only; never the default).")
def up_cmd(target: str, backend: str, name: str | None, timeout_s: float, duration_s: float | None,
           flows: tuple[str, ...], insecure_http: bool) -> None:
    """Bring up a testbed for TARGET (a recipe or a topology); returns when every agent and link is ready."""
    from pathlib import Path

    name = name or Path(target).stem
    specs = [parse_flow(f) for f in flows]
    state, t = bring_up(target, backend, name, timeout_s, duration_s, specs, insecure_http)
    click.echo(f"testbed {name} up on {backend} in {t['up_s']:.2f} s ({len(state.data['nodes'])} nodes)")
    _table(state)
    _kme_note(state)
    click.echo(f"down with: qkdbed down {name}")


def _kme_note(state: State) -> None:
    d = state.data.get("kme_dir")
    if not d:
        click.echo("no ETSI 014 KMEs in this testbed (no user nodes, or the emu extra is not installed)")
        return
    flows = state.data.get("flows") or {}
    click.echo(f"ETSI GS QKD 014 KMEs: base URLs in {d}/kme.json")
    if state.data.get("kme_insecure_http"):
        click.echo("  INSECURE: plain HTTP, the caller is whatever X-SAE-ID says (--insecure-http)")
    else:
        click.echo(f"  SAE credentials: {d}/pki/ca.pem (CA), {d}/pki/sae-<NODE>.pem and .key (client certificates)")
    if flows:
        ex = next(iter(flows.values()))
        click.echo(f"  keys flow on {len(flows)} flow(s), e.g. {ex[0]}->{ex[1]}: "
                   f"qkdbed keys get --name {state.name} --from {ex[0]} --to {ex[1]}")
    else:
        click.echo("  no traffic: no end-to-end keys will arrive; bring it up with --flow SRC:DST[:RATE]")


def _table(state: State) -> None:
    nodes = state.data["nodes"]
    health = control.health_all({n: v["control_url"] for n, v in nodes.items()}, 1.0)
    click.echo(f"  {'node':<10} {'ready':<6} {'links':<6} {'addresses':<34} {'api':<26} kme")
    for n, v in nodes.items():
        h = health.get(n) or {}
        links = f"{h.get('peers_up', '-')}/{h.get('peers_total', '-')}"
        kme = v.get("kme_url", "")
        if kme and h and not h.get("kme"):
            kme += " (down: " + (h.get("kme_error") or "not started") + ")"
        click.echo(f"  {n:<10} {str(bool(h.get('ready'))).lower():<6} {links:<6} {','.join(v['addresses']):<34} "
                   f"{v['control_url']:<26} {kme}")
    click.echo(f"  {'injector':<10} {'':<6} {'':<6} {'':<34} {state.data['injector_url']}")


@click.command("status")
@click.argument("name", required=False)
def status_cmd(name: str | None) -> None:
    """Show the testbeds that are up, or one testbed's nodes in detail."""
    from .backends import get as get_backend

    if not name:
        up = list_testbeds()
        if not up:
            click.echo("no testbed is up")
        for n in up:
            st = State(n)
            click.echo(f"{n}: backend {st.data.get('backend')}, {len(st.data.get('nodes', {}))} nodes, "
                       f"phase {st.data.get('phase')}")
        return
    state = State(name)
    if not state.exists:
        raise QkdbedError(f"testbed {name!r} is not up")
    alive = get_backend(state.data["backend"], state).status()
    dead = sorted(k for k, v in alive.items() if not v.get("alive"))
    click.echo(f"testbed {name}: backend {state.data['backend']}, processes down: {', '.join(dead) or 'none'}")
    _table(state)


@click.command("logs")
@click.argument("node")
@click.option("--name", default=None, help="Testbed name (needed when several are up).")
@click.option("-f", "--follow", is_flag=True, help="Keep printing as the log grows.")
def logs_cmd(node: str, name: str | None, follow: bool) -> None:
    """Print the log of NODE (or `injector`)."""
    from .backends import get as get_backend

    state = State(_one_name(name))
    try:
        for chunk in get_backend(state.data["backend"], state).logs(node, follow):
            click.echo(chunk, nl=False)
    except KeyboardInterrupt:
        pass


@click.command("exec", context_settings={"ignore_unknown_options": True})
@click.argument("node")
@click.argument("argv", nargs=-1, required=True, type=click.UNPROCESSED)
@click.option("--name", default=None, help="Testbed name (needed when several are up).")
def exec_cmd(node: str, argv: tuple[str, ...], name: str | None) -> None:
    """Run a command in NODE's environment: qkdbed exec NODE -- CMD ..."""
    from .backends import get as get_backend

    state = State(_one_name(name))
    sys.exit(get_backend(state.data["backend"], state).exec(node, list(argv)))


@click.command("down")
@click.argument("name", required=False)
def down_cmd(name: str | None) -> None:
    """Remove a testbed: exactly its processes, namespaces, interfaces and containers (idempotent)."""
    if name is None:
        up = list_testbeds()
        if not up:
            click.echo("no testbed is up")
            return
        name = _one_name(None)
    if not State(name).exists:
        click.echo(f"testbed {name} is not up (nothing to do)")
        return
    dt = tear_down(name)
    click.echo(f"testbed {name} down in {dt:.2f} s")


@click.command("agent")
@click.option("--config", required=True, help="Agent configuration (JSON, written by `qkdbed up`).")
def agent_cmd(config: str) -> None:
    """Run one node agent (started by the backends; rarely by hand)."""
    from .agent import run

    run(config)


@click.command("inject")
@click.option("--config", required=True, help="Injector configuration (JSON, written by `qkdbed up`).")
def inject_cmd(config: str) -> None:
    """Run a testbed's key injector (started by the backends; rarely by hand)."""
    from .injector import main

    main(["--config", config])


@click.group("image")
def image() -> None:
    """Build the agent's container image."""


@image.command("build")
@click.option("--hostfs", is_flag=True, help="Build the registry-free image (empty base + host runtime mounts).")
def image_build(hostfs: bool) -> None:
    """Build qkdbed/agent:latest from images/agent/Dockerfile, or qkdbed/agent:hostfs with --hostfs."""
    from .backends import docker as dk

    if hostfs:
        click.echo(f"built {dk.build_hostfs_image()}")
        return
    rc = dk.docker_cli_build()
    if rc:
        raise QkdbedError(f"docker build failed (exit {rc}); without a registry use `qkdbed image build --hostfs`")


COMMANDS = (up_cmd, status_cmd, logs_cmd, exec_cmd, down_cmd, agent_cmd, inject_cmd, image)
