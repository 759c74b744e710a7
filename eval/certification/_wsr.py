"""Variance-adaptive p-values and bounds for a [0, 1] mean: the Waudby-Smith–Ramdas betting test.

Why: the Hoeffding, Bentkus and binomial bounds (``eval.certify_bounds``) see a sample only through
its mean, so they must allow the largest variance a [0, 1] variable with that mean can have — a
Bernoulli's. That is tight for 0/1 quality against an absolute target, but the paired loss of a
*relative* target, (1 − (q − v·r)) / (1 + v), sits near 1/(1 + v) whenever router and reference
agree, so its variance is far below the Bernoulli worst case and a mean-only bound throws most of
the sample away (on a few hundred prompts it certifies nothing). A betting test adapts to the
variance it sees.

Test of H0: E[L] ≥ α (Waudby-Smith & Ramdas 2024, "Estimating means of bounded random variables
by betting", JRSS-B, arXiv:2010.09686; in the form of Bates, Angelopoulos, Lei, Malik & Jordan
2021, "Distribution-free, risk-controlling prediction sets", §3.1, the "WSR bound"):

    K_t(α) = ∏_{i ≤ t} (1 − ν_i (L_i − α)),   ν_i = min(1, √(2 log(1/δ) / (n σ̂²_{i−1}))),
    μ̂_i = (1/2 + Σ_{j ≤ i} L_j) / (1 + i),    σ̂²_i = (1/4 + Σ_{j ≤ i} (L_j − μ̂_j)²) / (1 + i).

ν is predictable (uses earlier samples only) and in [0, 1], so each factor is ≥ 0 and, under H0,
has conditional mean ≤ 1: K is a non-negative supermartingale and Ville's inequality gives
P(max_t K_t ≥ 1/δ) ≤ δ, i.e. p = min(1, 1 / max_t K_t) is a valid p-value for every level. δ only
tunes the bets. Because the bets are sequential, the samples are first put in a seeded random
order that does not depend on their values: a log sorted by task is not i.i.d. *in sequence* even
when its rows are an i.i.d. sample. The upper confidence bound inverts the test by bisection
(K_t(α) is non-decreasing in α).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from tierwise.router.errors import ConfigError

FloatArray = npt.NDArray[np.float64]
ORDER_SEED = 0  # fixed: the order must not depend on the data
_BISECTION_STEPS = 40


def _prepare(losses: Any) -> FloatArray:
    arr = np.asarray(losses, dtype=np.float64)
    if arr.ndim not in (1, 2) or arr.shape[-1] == 0:
        raise ConfigError(f"`losses` must be a non-empty 1-D or 2-D array, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)) or np.any((arr < 0) | (arr > 1)):
        raise ConfigError("`losses` must lie in [0, 1]; losses must be rescaled first")
    order = np.random.default_rng(ORDER_SEED).permutation(arr.shape[-1])
    return np.atleast_2d(arr[..., order])


def _bets(x: FloatArray, delta: float) -> FloatArray:
    """ν_i per row of ``x`` (k, n): predictable, in [0, 1]."""
    n = x.shape[1]
    steps = np.arange(1, n + 1)
    mu = (0.5 + np.cumsum(x, axis=1)) / (1 + steps)
    sigma2 = (0.25 + np.cumsum((x - mu) ** 2, axis=1)) / (1 + steps)
    prev = np.concatenate([np.full((x.shape[0], 1), 0.25), sigma2[:, :-1]], axis=1)
    return np.asarray(np.minimum(1.0, np.sqrt(2.0 * np.log(1.0 / delta) / (n * prev))))


def _p_values(x: FloatArray, nu: FloatArray, alpha: FloatArray) -> FloatArray:
    """min(1, 1 / max_t K_t(α)) per row; ``alpha`` broadcasts against the rows."""
    with np.errstate(divide="ignore"):
        log_k = np.cumsum(np.log1p(-nu * (x - alpha[:, None])), axis=1)
    return np.asarray(np.exp(-np.maximum(log_k.max(axis=1), 0.0)))


def _check_delta(delta: float) -> float:
    if not 0 < delta < 1:
        raise ConfigError(f"`delta` must be in (0, 1), got {delta!r}")
    return float(delta)


def wsr_p_value(losses: Any, alpha: Any, delta: float) -> FloatArray:
    """p-value of H0: E[loss] ≥ α for each row of ``losses`` ((n,) or (k, n)); bets tuned for δ."""
    x = _prepare(losses)
    a = np.broadcast_to(np.asarray(alpha, dtype=np.float64), (x.shape[0],)).copy()
    if np.any((a < 0) | (a > 1)):
        raise ConfigError(f"`alpha` must lie in [0, 1], got {alpha!r}")
    return _p_values(x, _bets(x, _check_delta(delta)), a)


def wsr_upper_bound(losses: Any, delta: float) -> FloatArray:
    """(1 − δ) upper confidence bound on E[loss] per row: the smallest α the test rejects at δ."""
    d = _check_delta(delta)
    x = _prepare(losses)
    nu = _bets(x, d)
    lo, hi = np.zeros(x.shape[0]), np.ones(x.shape[0])
    done = _p_values(x, nu, hi) > d  # cannot reject even α = 1
    for _ in range(_BISECTION_STEPS):
        mid = 0.5 * (lo + hi)
        reject = _p_values(x, nu, mid) <= d
        hi = np.where(reject, mid, hi)
        lo = np.where(reject, lo, mid)
    return np.asarray(np.where(done, 1.0, hi))
