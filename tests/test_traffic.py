"""Traffic models against theory: offered load, Pareto tail index, ON-OFF duty cycle, and validation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from testbed import traffic as T
from testbed.errors import ValidationError
from testbed.recipe import recipe_from_dict


def test_ppbp_mean_offered_load_matches_lam_times_mean_duration_times_rate():
    # shape 2.5 has a finite variance, so a long run converges: E[d] = 2.5·0.1/1.5 = 1/6 s
    rng = np.random.default_rng(11)
    lam, shape, scale, rate, span = 3.0, 2.5, 0.1, 400_000.0, 20_000.0
    starts, durs = T.ppbp_bursts(0.0, span, lam, shape, scale, rng)
    t = T.bursts_to_offers(starts, durs, rate, span + 100)  # let the last bursts finish
    offered_bps = len(t) * 4096 / span
    theory = lam * shape * scale / (shape - 1) * rate
    # floor(d/gap) loses half a message per burst on average: account for it in the expectation
    theory -= lam * 0.5 * 4096
    assert offered_bps == pytest.approx(theory, rel=0.03)
    assert len(starts) / span == pytest.approx(lam, rel=0.02)  # Poisson arrival rate


@pytest.mark.parametrize("shape", [1.2, 1.4, 2.0])
def test_pareto_tail_index_recovered(shape):
    rng = np.random.default_rng(int(shape * 100))
    x = T.pareto(rng, shape, 0.12, 200_000)
    assert x.min() >= 0.12
    # Hill estimator over the top 2 %
    xs = np.sort(x)[::-1][:4000]
    hill = 1.0 / np.mean(np.log(xs[:-1] / xs[-1]))
    assert hill == pytest.approx(shape, rel=0.08)


def test_bursts_superpose():
    # two overlapping bursts at 8 messages/s each give 16 messages/s where they overlap
    t = T.bursts_to_offers(np.array([0.0, 0.5]), np.array([1.0, 1.0]), 8 * 4096, 10.0)
    assert np.count_nonzero((t >= 0.5) & (t < 1.0)) == 8
    assert len(t) == 16 and np.all(np.diff(t) >= 0)


def test_serialised_variant_never_overlaps_and_matches_the_reference_load():
    rng = np.random.default_rng(10)
    loads = []
    for seed in range(5):
        t = T.ppbp_serialised(5.0, 600.0, 3.5, 1.4, 0.12, 800_000.0, np.random.default_rng(seed))
        gaps = np.diff(t)
        # inside a burst messages are 5.12 ms apart; never closer (no overlap)
        assert gaps.min() >= 4096 / 800_000.0 - 1e-9
        loads.append(len(t) * 4096 / 595.0)
    # reference §6: a replica of the original generator gives about 449 kbps at λ = 3.5 with shape 1.4
    assert np.mean(loads) == pytest.approx(449_000, rel=0.06)
    del rng


def test_onoff_duty_cycle_and_size_cap():
    rng = np.random.default_rng(5)
    params = {"rate_bps": 409_600.0, "on": {"dist": "exponential", "mean_s": 2.0},
              "off": {"dist": "exponential", "mean_s": 6.0}}
    t = T.onoff_offers(0.0, 20_000.0, params, rng, None)
    assert len(t) * 4096 / 20_000.0 == pytest.approx(409_600 * 2 / 8, rel=0.05)  # duty 2/(2+6)
    capped = T.onoff_offers(0.0, 20_000.0, params, np.random.default_rng(5), 1000)
    assert 1000 <= len(capped) <= 1000 + 409_600 / 4096 * 60  # stops within the ON period that crosses the cap


def _flow(**kw):
    data = {"name": "t", "topology": "barbell-7", "duration_s": 60,
            "traffic": {"flows": [{"src": "PC4", "dst": "PC6", **kw}]}}
    return recipe_from_dict(data, "t.yaml")


def test_recipe_ppbp_hurst_gives_shape():
    r = _flow(model="ppbp", lam_per_s=1.5, hurst=0.8)
    assert r.flows[0].params["shape"] == pytest.approx(1.4)
    r = _flow(model="ppbp", lam_per_s=1.5, hurst=0.8, shape=1.2)
    assert r.flows[0].params["shape"] == pytest.approx(1.2)


@pytest.mark.parametrize("kw, path", [
    ({"model": "ppbp"}, "lam_per_s"),
    ({"model": "ppbp", "lam_per_s": 1, "hurst": 1.2}, "hurst"),
    ({"model": "ppbp", "lam_per_s": 1, "variant": "odd"}, "variant"),
    ({"model": "onoff", "rate_bps": 1e5, "on": {"dist": "weibull"}}, "on.dist"),
    ({"model": "cbr", "rate_bps": 1e5, "messages": 3, "size_bits": 9}, "size_bits"),
    ({"model": "zipf"}, "model"),
])
def test_traffic_validation_errors(kw, path):
    with pytest.raises(ValidationError, match=path):
        _flow(**kw)


def test_ppbp_is_seeded():
    from testbed.traffic import offer_times

    spec = _flow(model="ppbp", lam_per_s=2, shape=1.4).flows[0]
    a = offer_times(spec, 60, np.random.default_rng(3))
    b = offer_times(spec, 60, np.random.default_rng(3))
    c = offer_times(spec, 60, np.random.default_rng(4))
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert math.isclose(a.min(), a.min())
