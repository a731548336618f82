"""Emulated testbed speed: bring-up and teardown of china-metro-12 per backend, and one agent's relay rate.

- bring-up: `qkdbed up`'s work, health-gated (returns when every agent reports all its links and its injector
  connection up); teardown: `qkdbed down`. Median of --repeat runs. Targets: 12 nodes up in <= 3 s (local,
  mininet), <= 10 s (docker); down <= 2 s.
- relay rate: a 3-node line N1 - N2 - N3 on the local backend, keys plentiful (constant supply), one flow offered
  faster than the relay can go; messages per second N2 relays (decrypt + re-encrypt with real key bytes, two
  HMAC-SHA256 per message, plus forwarding the end-to-end ACK) over the steady part of the run. Target >= 5,000/s.

    python benchmarks/testbed.py [--backends local,mininet,docker] [--repeat 3] [--relay-seconds 6]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

# This file is named like the package: drop its own folder from the path so `import testbed` finds the package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from testbed.emu.cli import bring_up, tear_down  # noqa: E402
from testbed.emu.run import run_emulated  # noqa: E402
from testbed.recipe import recipe_from_dict  # noqa: E402

TOPOLOGY = str(Path(__file__).resolve().parent.parent / "topologies" / "china-metro-12.yaml")


def available(backend: str) -> tuple[bool, str]:
    if backend == "local":
        return True, ""
    if backend == "mininet":
        from testbed.emu.backends.mininet import available as ok
    else:
        from testbed.emu.backends.docker import available as ok
    return ok()


def up_down(backend: str, repeat: int) -> tuple[float, float]:
    ups, downs = [], []
    for i in range(repeat):
        name = f"bench-{backend}-{os.getpid() % 10000}-{i}"
        try:
            _, t = bring_up(TOPOLOGY, backend, name)
            ups.append(t["up_s"])
        finally:
            downs.append(tear_down(name))
    return statistics.median(ups), statistics.median(downs)


def relay_rate(seconds: float, rate_bps: float) -> tuple[float, float]:
    recipe = recipe_from_dict({
        "name": "relay-bench", "topology": "gen:line:3", "duration_s": seconds + 1, "seed": 1,
        "scheme": "ondemand", "key_supply": {"model": "constant", "rate_bps": 2e8, "interval_s": 0.05},
        "record": {"sample_period_s": 0},
        "traffic": {"flows": [{"src": "N1", "dst": "N3", "model": "cbr", "rate_bps": rate_bps, "start_s": 1}]},
    }, "relay-bench")
    with tempfile.TemporaryDirectory() as d:
        log = run_emulated(recipe, "local", Path(d))
    sends = log["sends"]
    relay = sends[sends["node"] == log.node_names.index("N2")]
    t = relay["t_s"]
    lo, hi = 2.0, seconds + 1  # skip the first second of the flow (warm-up)
    steady = np.count_nonzero((t >= lo) & (t < hi)) / (hi - lo)
    offered = rate_bps / 4096
    return steady, offered


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--backends", default="local,mininet,docker")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--relay-seconds", type=float, default=6.0)
    ap.add_argument("--relay-rate-bps", type=float, default=40e6, help="offered load of the relay flow")
    a = ap.parse_args()
    os.environ.setdefault("QKDBED_STATE_DIR", tempfile.mkdtemp(prefix="qkdbed-bench-"))
    print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores, python "
          f"{sys.version.split()[0]}")
    for b in [x for x in a.backends.split(",") if x]:
        ok, why = available(b)
        if not ok:
            print(f"{b:8s} skipped: {why}")
            continue
        up_s, down_s = up_down(b, a.repeat)
        target = 10.0 if b == "docker" else 3.0
        print(f"{b:8s} china-metro-12 up (health-gated) {up_s:6.2f} s (target <= {target:g})   "
              f"down {down_s:5.2f} s (target <= 2)")
    rate, offered = relay_rate(a.relay_seconds, a.relay_rate_bps)
    print(f"relay    one agent relays {rate:8.0f} messages/s (offered {offered:.0f}/s; target >= 5000)")


if __name__ == "__main__":
    main()
