"""The Waudby-Smith–Ramdas betting test: valid under the null, variance-adaptive, wired in."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binom

from tierwise.eval.certification import (
    certify,
    check_guarantee,
    risk_p_value,
    risk_upper_bound,
    wsr_p_value,
    wsr_upper_bound,
)
from tierwise.router.errors import ConfigError

V = 0.9
# Paired relative loss (1 − (q − v·r)) / (1 + v) for (router, reference) =
# (1, 1), (0, 0), (1, 0), (0, 1).
PAIRED = np.array([(1 - (1 - V)) / (1 + V), 1 / (1 + V), 0.0, 1.0])


def _paired(n: int, reps: int, p: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return PAIRED[rng.choice(4, (reps, n), p=p)]


@pytest.mark.parametrize("kind", ["binary", "graded", "paired"])
def test_p_values_are_valid_at_the_null_boundary(kind: str) -> None:
    rng = np.random.default_rng(0)
    n, reps = 150, 3000
    if kind == "binary":
        alpha, losses = 0.3, (rng.random((reps, n)) < 0.3).astype(float)
    elif kind == "graded":
        alpha, losses = 0.3, rng.beta(3.0, 7.0, (reps, n))
    else:
        p = np.array([0.8, 0.1, 0.05, 0.05])
        alpha, losses = float(PAIRED @ p), _paired(n, reps, p, rng)
    p_values = wsr_p_value(losses, alpha, 0.1)
    for t in (0.05, 0.1, 0.2):
        # Binomial slack: the 99.9% quantile of the rejection count at rate t.
        assert (p_values <= t).mean() <= binom.ppf(0.999, reps, t) / reps, (kind, t)


def test_betting_beats_mean_only_bounds_on_low_variance_paired_losses() -> None:
    rng = np.random.default_rng(1)
    p = np.array([0.80, 0.10, 0.05, 0.05])  # router and reference mostly agree
    losses = _paired(300, 200, p, rng)
    level = 1 / (1 + V)
    wsr = (wsr_p_value(losses, level, 0.1) <= 0.1).mean()
    hb = (risk_p_value(losses.mean(axis=1), 300, level, "hoeffding_bentkus") <= 0.1).mean()
    assert wsr > 0.9 and hb < 0.3, (wsr, hb)
    ucb_w = wsr_upper_bound(losses[:20], 0.1)
    ucb_h = risk_upper_bound(losses[:20].mean(axis=1), 300, 0.1, "hoeffding_bentkus")
    assert np.all(ucb_w >= losses[:20].mean(axis=1)) and np.mean(ucb_w < ucb_h) > 0.9


def test_upper_bound_inverts_the_test_and_is_deterministic() -> None:
    rng = np.random.default_rng(2)
    x = (rng.random(400) < 0.2).astype(float)
    ucb = float(wsr_upper_bound(x, 0.1)[0])
    assert (
        float(wsr_p_value(x, ucb + 1e-6, 0.1)[0]) <= 0.1 < float(wsr_p_value(x, ucb - 1e-3, 0.1)[0])
    )
    assert float(wsr_upper_bound(x, 0.1)[0]) == ucb  # a fixed, data-independent order
    assert x.mean() < ucb < float(risk_upper_bound(x.mean(), 400, 0.1, "hoeffding"))
    assert float(wsr_upper_bound(np.ones(50), 0.1)[0]) == 1.0


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"`losses` must lie in \[0, 1\]"):
        wsr_p_value(np.array([0.5, 1.5]), 0.2, 0.1)
    with pytest.raises(ConfigError, match=r"`delta` must be in \(0, 1\), got 1.0"):
        wsr_upper_bound(np.array([0.5]), 1.0)
    with pytest.raises(ConfigError, match=r"`losses` must be a non-empty 1-D or 2-D array"):
        wsr_p_value(np.zeros((2, 0)), 0.2, 0.1)


def test_certify_and_check_accept_method_wsr() -> None:
    rng = np.random.default_rng(3)
    n = 300
    ref = (rng.random(n) < 0.85).astype(float)
    agree = rng.random(n) < 0.95
    q = np.vstack([ref, np.where(agree, ref, 1 - ref), ref * (rng.random(n) < 0.6)])
    cost = np.array([3.0, 2.0, 1.0])[:, None] * np.ones((1, n))
    target = {"kind": "relative", "value": 0.9, "method": "wsr"}
    cert = certify(q, cost, [0, 1, 2], ref, target)
    hb = certify(q, cost, [0, 1, 2], ref, {**target, "method": "hoeffding_bentkus"})
    assert cert.passed and cert.index == 1 and hb.fallback
    assert "Waudby-Smith–Ramdas betting test" in cert.explain()
    assert cert.margin_lower is not None and cert.margin_lower >= -1e-9
    assert cert.to_dict()["method"] == "wsr"
    assert check_guarantee(q[1], ref, cert).verdict == "holds"
    assert check_guarantee(q[2], ref, cert).verdict == "violated"
