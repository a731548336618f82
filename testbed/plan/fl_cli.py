"""`qkdbed plan fl` and `qkdbed plan fl-figures`: parsing and printing only; the logic is in fl_provision."""

from __future__ import annotations

import json
from pathlib import Path

import click
import yaml

from ..errors import QkdbedError
from ..network import load_topology
from .fl_params import FLParams, load_params, params_from_dict
from .fl_requests import DEFAULT_SAA_SCENARIOS, build_scenarios, load_requests, random_requests


@click.command("fl")
@click.argument("topology")
@click.option("--requests", "requests_file", type=click.Path(dir_okay=False),
              help="YAML request file (see docs/planning-fl.md).")
@click.option("--random", "n_random", type=int, help="Plan N random distinct node pairs, each U{1..5} kbps.")
@click.option("--scenarios", "n_scenarios", type=int,
              help="Use K sampled joint scenarios (SAA) instead of the file's scenario setting.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of --random and of the SAA sample.")
@click.option("--params", "params_file", type=click.Path(dir_okay=False),
              help="YAML planner parameters (prices, caps, formulation, solver); overrides the request file's.")
@click.option("--formulation", type=click.Choice(["auto", "arc", "path"]), help="Override the routing formulation.")
@click.option("--time-limit", "time_limit_s", type=float, help="Solver time limit per MILP, seconds.")
@click.option("--no-baselines", is_flag=True, help="Skip the EV and CO-QBN baselines.")
@click.option("--no-ws", is_flag=True, help="Skip the wait-and-see bound (one MILP per scenario when capped).")
@click.option("--out-of-sample", "oos", type=int, default=0, help="Also price each plan on M fresh scenarios.")
@click.option("--json", "json_out", type=click.Path(dir_okay=False), help="Write the full plan as JSON here.")
@click.option("--export-recipe", "recipe_out", type=click.Path(dir_okay=False),
              help="Write a (draft) testbed recipe with the planned flows and routes.")
@click.option("--recipe-rate", type=click.Choice(["mean", "max"]), default="mean", show_default=True,
              help="Key rate of each exported flow: expected or peak requirement.")
def fl(topology, requests_file, n_random, n_scenarios, seed, params_file, formulation, time_limit_s,
       no_baselines, no_ws, oos, json_out, recipe_out, recipe_rate) -> None:
    """Route FL key requests over TOPOLOGY and reserve QKD/KM wavelengths under uncertain key demand.

    Solves the two-stage stochastic program of seed 001 (reservation, then on-demand once the key rate is known)
    and compares it with the expected-value plan (VSS), the CO-QBN heuristic and the wait-and-see bound (EVPI).
    """
    from dataclasses import replace

    from .fl_provision import export_recipe, format_plan, plan_fl, plan_to_dict

    if (requests_file is None) == (n_random is None):
        raise QkdbedError("plan fl: give exactly one of --requests FILE or --random N")
    topo = load_topology(topology)
    params = FLParams()
    if requests_file is not None:
        rf = load_requests(requests_file)
        reqs = rf.requests
        if rf.params is not None:
            params = params_from_dict(rf.params, f"{requests_file}: params")
        mode, count, sc_seed = rf.scenario_mode, rf.scenario_count, rf.scenario_seed
    else:
        if n_random < 1:
            raise QkdbedError(f"--random must be >= 1, got {n_random}")
        reqs = random_requests(topo, n_random, seed)
        mode, count, sc_seed = "saa", DEFAULT_SAA_SCENARIOS, seed
    if n_scenarios is not None:
        if n_scenarios < 1:
            raise QkdbedError(f"--scenarios must be >= 1, got {n_scenarios}")
        mode, count, sc_seed = "saa", n_scenarios, seed
    if params_file:
        params = load_params(params_file, params)
    if formulation:
        params = replace(params, formulation=formulation)
    if time_limit_s is not None:
        params = replace(params, time_limit_s=time_limit_s)
    scenarios = build_scenarios(reqs, mode, count, sc_seed)
    plan = plan_fl(topo, reqs, scenarios, params, topology_ref=topology, baselines=not no_baselines,
                   ws=not no_ws, out_of_sample=oos, oos_seed=seed + 1)
    click.echo(format_plan(plan))
    if json_out:
        _write(json_out, json.dumps(plan_to_dict(plan), indent=2))
        click.echo(f"wrote {json_out}")
    if recipe_out:
        header = ("# DRAFT recipe exported by `qkdbed plan fl` (format not final): the planned routes and key rates\n"
                  f"# rate_bps = {recipe_rate} key-rate requirement of each request.\n")
        _write(recipe_out, header + yaml.safe_dump(export_recipe(plan, recipe_rate), sort_keys=False))
        click.echo(f"wrote {recipe_out}")


@click.command("fl-figures")
@click.argument("outdir", type=click.Path(file_okay=False))
@click.option("--quick", is_flag=True, help="Fewer request counts and seeds for Fig. 3(d) (about a minute).")
@click.option("--topology", default="usnet-24", show_default=True)
@click.option("--seeds", type=int, help="Random seeds averaged in Fig. 3(d) (default 1 quick, 3 full).")
def fl_figures(outdir, quick, topology, seeds) -> None:
    """Reproduce seed 001's Fig. 2 and Fig. 3(a)-(d) on USNET: PNG, PDF and a CSV of the numbers."""
    from .fl_figures import make_all

    for line in make_all(Path(outdir), topology=topology, quick=quick, seeds=seeds):
        click.echo(line)


def _write(path: str, text: str) -> None:
    try:
        p = Path(path)
        if p.parent and not p.parent.exists():
            p.parent.mkdir(parents=True)
        p.write_text(text if text.endswith("\n") else text + "\n")
    except OSError as e:
        raise QkdbedError(f"cannot write {path}: {e.strerror}") from None
