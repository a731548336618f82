"""Group keys on the emulated testbed (local backend, real agents and sockets): the relay key units a round of
group keys consumes equal the members' path lengths in hops x the key size -- the planner's objective, measured."""

from __future__ import annotations

from pathlib import Path

import pytest

from testbed.groupkeys import group_key_summary
from testbed.recipe import recipe_from_dict


def test_group_key_consumption_on_the_emulated_testbed(tmp_path: Path):
    from testbed.emu.run import run_emulated

    data = {"name": "gk-emu", "topology": "china-metro-12", "duration_s": 8, "seed": 3, "runtime": "emu",
            "key_supply": {"model": "synthetic", "scale": 10},
            "group_keys": {"servers": {"method": "pmedian", "p": 2}, "key_units": 2, "rate_per_s": 2.0,
                           "start_s": 2.5}}
    recipe = recipe_from_dict(data, "gk-emu.yaml")
    log = run_emulated(recipe, "local", tmp_path / "run")
    g = group_key_summary(log, recipe.group_keys)
    assert g["rounds_completed"] >= 5
    assert recipe.group_keys["objective_hops"] == 12  # china-metro-12 with servers R1, R2 (hand count: 9 users)
    assert g["relay_units_per_round"] == pytest.approx(12 * 2)
