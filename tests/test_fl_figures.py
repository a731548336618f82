"""`fl-figures --quick` writes every figure and a CSV whose numbers match the oracle (planning.md A.8)."""

from __future__ import annotations

import csv

from click.testing import CliRunner

from testbed.plan.fl_cli import fl_figures


def test_quick_figures(tmp_path):
    res = CliRunner().invoke(fl_figures, [str(tmp_path), "--quick"])
    assert res.exit_code == 0, res.output
    for stem in ("fig2_routes", "fig3a_cost_vs_reserved_qkd", "fig3b_cost_vs_reserved_km",
                 "fig3c_wavelengths_vs_rate", "fig3d_cost_vs_requests"):
        for ext in ("png", "pdf"):
            assert (tmp_path / f"{stem}.{ext}").stat().st_size > 1000
    rows = list(csv.DictReader(open(tmp_path / "fl_figures.csv")))
    total_a = {int(r["x"]): float(r["y"]) for r in rows if r["figure"] == "fig3a" and r["series"] == "total"}
    assert min(total_a, key=total_a.get) == 150 and total_a[150] == 2_375_000
    reserved_q = {int(r["x"]): float(r["y"]) for r in rows if r["figure"] == "fig3c" and r["series"] == "reserved_qkd"}
    assert reserved_q[3] == 90 and reserved_q[5] == 150 and reserved_q[9] == 150
    assert "1->23 via 1-6-9-12-16-22-23; on-demand on 1-6, 6-9" in res.output
    red = [float(r["y"]) for r in rows if r["figure"] == "fig3d" and r["series"] == "reduction_pct_mean"]
    assert len(red) == 3 and all(x > 0 for x in red)
