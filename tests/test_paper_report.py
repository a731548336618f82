"""The paper pipeline end to end on a reduced suite: sweeps -> paper figures -> report.md -> REPRODUCTION.md."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from testbed.runner import run_path

REPO = Path(__file__).resolve().parents[1]


def _shrink(name: str, tmp: Path, **changes) -> str:
    data = yaml.safe_load((REPO / "experiments" / "paper" / f"{name}.yaml").read_text())
    data.pop("quick", None)
    for k, v in changes.items():
        if k == "grid":
            data["sweep"]["grid"].update(v)
        elif k == "repeat":
            data["sweep"]["repeat"] = v
        else:
            data[k] = v
    (tmp / f"{name}.yaml").write_text(yaml.safe_dump(data))
    return f"{name}.yaml"


def test_reduced_paper_suite(tmp_path):
    items = [
        _shrink("fig7-single-user", tmp_path, duration_s=40, repeat=1,
                grid={"scheme.name": ["auto-cpbfc", "qkdtl-ecn"], "scheme.profile": ["paper"],
                      "traffic.flows.0.lam_per_s": [1.5, 3.0]}),
        _shrink("fig13-rsvp-admission", tmp_path, duration_s=70,
                grid={"scheme": [{"name": "rsvp", "profile": "paper", "params": {"table3": "left"}},
                                 {"name": "auto-cpbfc", "profile": "paper"}]}),
    ]
    suite = tmp_path / "paper.yaml"
    suite.write_text(yaml.safe_dump({"name": "paper", "report": "paper", "suite": items}))
    out = run_path(str(suite), output=str(tmp_path / "res"), jobs=2, echo=lambda s: None)
    nums = json.loads((out / "paper" / "numbers.json").read_text())
    t = nums["fig7"]["table"]
    assert set(t) == {"auto-cpbfc", "qkdtl-ecn"} and [r[0] for r in t["auto-cpbfc"]["paper"]] == [1.5, 3.0]
    assert nums["fig7"]["verdicts"]["paper"].keys() >= {"auto_zero_loss", "latency_lowest_at_every_rate"}
    assert nums["fig7"]["verdicts"]["paper"]["auto_zero_loss"] is True  # AUTO&CP-BFC never drops
    assert "flow2" in nums["fig13"]["paper"]["rsvp"]
    for f in ("fig7-single-user", "fig9-latency", "fig13-rsvp-admission-paper"):
        assert (out / "paper" / f"{f}.png").is_file() and (out / "paper" / f"{f}.pdf").is_file()
    rep = (out / "REPRODUCTION.md").read_text()
    for row in ("| Fig. 7 |", "| Fig. 9 |", "| Fig. 13 |"):
        assert row in rep
    assert "paper: " in rep and "![fig7](paper/fig7-single-user.png)" in (out / "report.md").read_text()
