"""Seeded paired bootstrap: resample weights, percentile intervals, coverage and shrinkage."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tierwise.eval.bootstrap import percentile_interval, resample_weights
from tierwise.eval.reporting import EvaluationConfig, compare
from tierwise.router.errors import ConfigError


def test_resample_weights_are_seeded_counts_summing_to_n():
    w = resample_weights(7, 50, seed=1)
    assert w.shape == (50, 7)
    np.testing.assert_array_equal(w.sum(axis=1), 7)
    np.testing.assert_array_equal(w, resample_weights(7, 50, seed=1))
    assert not np.array_equal(w, resample_weights(7, 50, seed=2))
    assert resample_weights(7, 0, seed=1).shape == (0, 7)
    with pytest.raises(ConfigError, match="`bootstrap_samples` must be >= 0, got -1"):
        resample_weights(7, -1, seed=1)


def test_percentile_interval_handles_never_and_undefined():
    iv = percentile_interval(np.r_[np.arange(1.0, 101.0)], 0.9)
    # 5% and 95% order statistics of 1..100 (inverted CDF): 5 and 95
    assert (iv.low, iv.high) == (5.0, 95.0)
    iv = percentile_interval([1.0, 2.0, np.inf, np.inf], 0.5)
    assert iv.low == 1.0 and iv.high is None  # the upper bound is "never"
    iv = percentile_interval([np.nan, np.nan], 0.95)
    assert iv.low is None and iv.samples == 0
    with pytest.raises(ConfigError, match=r"`ci_level` must be in \(0, 1\), got 1.5"):
        percentile_interval([1.0], 1.5)


def _data(n: int, m: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    q = (rng.random((n, m)) < np.linspace(0.4, 0.9, m)).astype(float)
    c = rng.uniform(0.5, 1.5, (n, m)) * np.geomspace(1, 50, m)
    return q, c


def _width(iv) -> float:
    return iv.high - iv.low


def test_intervals_shrink_as_the_sample_grows():
    q, c = _data(60, 3, seed=0)
    cfg = EvaluationConfig(bootstrap_samples=300, seed=5)
    small = compare(q, c, ["a", "b", "c"], None, cfg)
    # The same distribution, 16x the prompts: intervals should be about 4x narrower.
    big = compare(np.tile(q, (16, 1)), np.tile(c, (16, 1)), ["a", "b", "c"], None, cfg)
    for name in ("zero router", "oracle", "c"):
        for metric in ("quality", "cost_per_1k"):
            s, b = small.row(name).ci[metric], big.row(name).ci[metric]
            assert _width(b) < 0.5 * _width(s), (name, metric)
    assert _width(big.row("oracle").ci["aiq"]) < 0.5 * _width(small.row("oracle").ci["aiq"])


def test_paired_resampling_keeps_the_zero_router_gap_at_zero():
    q, c = _data(40, 3, seed=1)
    rep = compare(q, c, ["a", "b", "c"], None, EvaluationConfig(bootstrap_samples=100))
    # Every resample scores the zero router against itself: exactly 0 and 1, never noise.
    assert (
        rep.row("zero router").ci["gap_closed"].low,
        rep.row("zero router").ci["gap_closed"].high,
    ) == (0.0, 0.0)
    assert (rep.row("oracle").ci["gap_closed"].low, rep.row("oracle").ci["gap_closed"].high) == (
        1.0,
        1.0,
    )


@settings(max_examples=15, deadline=None)
@given(n=st.integers(8, 40), m=st.integers(2, 4), seed=st.integers(0, 10_000))
def test_intervals_cover_the_point_estimate(n: int, m: int, seed: int):
    q, c = _data(n, m, seed)
    rng = np.random.default_rng(seed)
    sweep = rng.integers(0, m, size=(5, n))
    models = [f"m{j}" for j in range(m)]
    rep = compare(q, c, models, {"r": sweep}, EvaluationConfig(bootstrap_samples=200, seed=seed))
    for row in rep.rows:
        for metric, value in (
            ("quality", row.quality),
            ("cost_per_1k", row.cost_per_1k),
            ("aiq", row.aiq),
            ("gap_closed", row.gap_closed),
        ):
            if not np.isfinite(value):  # AIQ is undefined for single points
                continue
            iv = row.ci[metric]
            assert iv.low - 1e-12 <= value <= iv.high + 1e-12, (row.name, metric)
