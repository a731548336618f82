"""Simulator speed: the paper's 12-node, 10-minute multi-user scenario, and a generated 100-node network.

Prints events per second and simulated seconds per wall second (the real-time factor), with the machine noted.
Targets (README): china-metro-12 x 600 s at >= 100x real time on one core, peak memory <= 2 GiB; a 100-node
network with 100 flows at >= 10x real time. Every message draws one key unit per hop.

    python benchmarks/sim_speed.py [--scheme ondemand] [--duration 600] [--profile]
"""

from __future__ import annotations

import os as _os
import sys as _sys

# benchmarks/testbed.py shares its name with the package: keep this folder off the import path.
_sys.path[:] = [p for p in _sys.path if _os.path.abspath(p or ".") != _os.path.dirname(_os.path.abspath(__file__))]

import argparse
import os
import platform
import resource
import sys
import time

import numpy as np

from testbed.network import random_metro
from testbed.recipe import recipe_from_dict
from testbed.sim.run import simulate

# Seed 000 multi-user pattern: each subnetwork's three users send across one backbone link.
METRO_FLOWS = [("U1", "U4"), ("U2", "U5"), ("U3", "U6"), ("U4", "U7"), ("U5", "U8"), ("U6", "U9"),
               ("U7", "U1"), ("U8", "U2"), ("U9", "U3")]
RATE_BPS = 455_000  # the original code's constant source rate (9 ms per 4096-bit message)


def metro_recipe(scheme: str, duration_s: float, profile: str) -> dict:
    flows = [{"src": s, "dst": d, "model": "cbr", "rate_bps": RATE_BPS, "start_s": 5.0} for s, d in METRO_FLOWS]
    return {"name": "bench-metro12", "topology": "china-metro-12", "duration_s": duration_s, "seed": 1,
            "scheme": {"name": scheme, "profile": profile}, "key_supply": {"model": "synthetic", "scale": 10},
            "traffic": {"flows": flows}, "record": {"sample_period_s": 0.5, "sends": True}}


def big_recipe(scheme: str, duration_s: float, profile: str, tmpdir: str) -> dict:
    import yaml

    topo = random_metro(25, 3, seed=7)  # 25 relays + 75 users = 100 nodes
    path = os.path.join(tmpdir, "metro100.yaml")
    with open(path, "w") as fh:
        yaml.safe_dump(topo.to_dict(), fh)
    users = topo.users()
    rng = np.random.default_rng(3)
    flows = []
    for i in range(100):
        s, d = rng.choice(users, 2, replace=False)
        flows.append({"name": f"f{i}", "src": str(s), "dst": str(d), "model": "cbr", "rate_bps": 100_000,
                      "start_s": float(rng.uniform(0, 5))})
    return {"name": "bench-metro100", "topology": path, "duration_s": duration_s, "seed": 1,
            "scheme": {"name": scheme, "profile": profile}, "key_supply": {"model": "synthetic", "scale": 10},
            "traffic": {"flows": flows}, "record": {"sample_period_s": 1.0, "sends": True}}


def multiuser_recipe(scheme: str, duration_s: float, profile: str) -> dict:
    """The paper's multi-user scenario as `experiments/paper/fig12-multi-user.yaml` (100 s early entry)."""
    import yaml

    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "..", "experiments", "paper", "fig12-multi-user.yaml")) as fh:
        data = yaml.safe_load(fh)
    data.pop("sweep")
    data.pop("quick", None)
    data.update(duration_s=duration_s, scheme={"name": scheme, "profile": profile})
    data["traffic"]["groups"]["normal"]["start_s"] = 105
    return data


def run(label: str, data: dict, profile_out: str | None) -> None:
    recipe = recipe_from_dict(data, f"<{label}>")
    if profile_out:
        from pyinstrument import Profiler

        prof = Profiler()
        prof.start()
    t0 = time.perf_counter()
    res = simulate(recipe)
    wall = time.perf_counter() - t0
    if profile_out:
        prof.stop()
        with open(profile_out, "w") as fh:
            fh.write(prof.output_text(unicode=False, color=False))
    sends = len(res.log["sends"])
    delivered = len(res.log["deliveries"])
    print(f"{label}: {recipe.duration_s:g} s simulated, {res.events:,} events, {sends:,} key units consumed "
          f"(one per hop), {delivered:,} messages delivered")
    print(f"  wall {wall:.2f} s | {res.events / wall:,.0f} events/s | real-time factor "
          f"{recipe.duration_s / wall:.1f}x | scheme {recipe.scheme}/{recipe.profile}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scheme", default="ondemand")
    ap.add_argument("--profile-set", dest="profile_set", default="paper", choices=["paper", "original"])
    ap.add_argument("--duration", type=float, default=600.0)
    ap.add_argument("--only", choices=["metro12", "multiuser", "metro100"], default=None)
    ap.add_argument("--profile", action="store_true", help="write pyinstrument profiles to /tmp/qkdbed-prof-*.txt")
    a = ap.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"Python {sys.version.split()[0]}, one core used")
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        if a.only in (None, "metro12"):
            run("china-metro-12, 9 flows", metro_recipe(a.scheme, a.duration, a.profile_set),
                "/tmp/qkdbed-prof-metro12.txt" if a.profile else None)
        if a.only in (None, "multiuser"):
            run("paper multi-user scenario (9 x 80 Mb, 100 s early entry)",
                multiuser_recipe(a.scheme, a.duration, a.profile_set),
                "/tmp/qkdbed-prof-multiuser.txt" if a.profile else None)
        if a.only in (None, "metro100"):
            run("generated 100 nodes, 100 flows", big_recipe(a.scheme, a.duration, a.profile_set, tmp),
                "/tmp/qkdbed-prof-metro100.txt" if a.profile else None)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak memory (max RSS of this process): {peak_mib:.0f} MiB")


if __name__ == "__main__":
    main()
