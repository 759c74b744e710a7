"""Finite-sample p-values and confidence bounds for the mean of a loss bounded in [0, 1].

Each p-value tests H0: E[loss] > α from the empirical mean R̂ of n i.i.d. (or exchangeable)
losses; small p means "the expected loss is at most α". Formulas follow Bates, Angelopoulos,
Lei, Malik & Jordan 2021, "Distribution-free, risk-controlling prediction sets" (arXiv:2101.02703,
§3.1) and Angelopoulos, Bates, Candès, Jordan & Lei 2021, "Learn then Test" (arXiv:2110.01052,
§3.1), with h1(a, b) = a·log(a/b) + (1 − a)·log((1 − a)/(1 − b)) the Bernoulli KL divergence:

- Hoeffding (Chernoff form): p = exp(−n · h1(min(R̂, α), α)).
- Bentkus (Bentkus 2004, "On Hoeffding's inequalities", Ann. Probab.): p = e · P(Bin(n, α) ≤ ⌈nR̂⌉).
- Hoeffding–Bentkus: p = min(Hoeffding, Bentkus) — valid because each is.
- Exact binomial, only for 0/1 losses: p = P(Bin(n, α) ≤ nR̂).

Upper confidence bounds invert the p-value: UCB = inf{α : p(R̂, n, α) ≤ δ}, found by bisection
(p is non-increasing in α). For the exact binomial this is the Clopper–Pearson bound.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from tierwise.router.errors import ConfigError

FloatArray = npt.NDArray[np.float64]
METHODS = ("hoeffding_bentkus", "binomial", "hoeffding")
_BISECTION_STEPS = 40  # 2**-40 ≈ 1e-12: far finer than any reported digit


def _prepare(r_hat: Any, n: int, alpha: Any) -> tuple[FloatArray, int, FloatArray]:
    if n < 1:
        raise ConfigError(f"`n` must be a positive number of samples, got {n}")
    r = np.asarray(r_hat, dtype=np.float64)
    a = np.asarray(alpha, dtype=np.float64)
    if np.any((r < 0) | (r > 1)) or np.any((a < 0) | (a > 1)):
        raise ConfigError("`r_hat` and `alpha` must lie in [0, 1]; losses must be rescaled first")
    return r, n, a


def _counts(r: FloatArray, n: int) -> FloatArray:
    """n·R̂, snapped to the nearest integer when it is one up to float round-off."""
    x = r * n
    near = np.rint(x)
    return np.where(np.abs(x - near) < 1e-7, near, x)


def _hoeffding(r: FloatArray, n: int, a: FloatArray) -> FloatArray:
    from scipy.special import rel_entr

    m = np.minimum(r, a)
    return np.asarray(np.exp(-n * (rel_entr(m, a) + rel_entr(1.0 - m, 1.0 - a))))


def _bentkus(r: FloatArray, n: int, a: FloatArray) -> FloatArray:
    from scipy.special import bdtr

    return np.asarray(np.minimum(1.0, np.e * bdtr(np.ceil(_counts(r, n)), n, a)))


def _binomial(r: FloatArray, n: int, a: FloatArray) -> FloatArray:
    from scipy.special import bdtr

    k = _counts(r, n)
    if np.any(k != np.rint(k)):
        raise ConfigError(
            "`method` binomial needs 0/1 losses (n·R̂ an integer), got graded ones; "
            "use method: hoeffding_bentkus"
        )
    return np.asarray(bdtr(k, n, a))


def _hoeffding_bentkus(r: FloatArray, n: int, a: FloatArray) -> FloatArray:
    return np.minimum(_hoeffding(r, n, a), _bentkus(r, n, a))


def hoeffding_p_value(r_hat: Any, n: int, alpha: Any) -> FloatArray:
    """exp(−n·h1(min(R̂, α), α)) — Hoeffding's inequality in its tight Chernoff (KL) form."""
    return _hoeffding(*_prepare(r_hat, n, alpha))


def bentkus_p_value(r_hat: Any, n: int, alpha: Any) -> FloatArray:
    """e·P(Bin(n, α) ≤ ⌈nR̂⌉), capped at 1: Bentkus's bound, valid for any [0, 1] loss."""
    return _bentkus(*_prepare(r_hat, n, alpha))


def hoeffding_bentkus_p_value(r_hat: Any, n: int, alpha: Any) -> FloatArray:
    """min(Hoeffding, Bentkus): tight for small and for large n (Bates et al. 2021, §3.1.2)."""
    return _hoeffding_bentkus(*_prepare(r_hat, n, alpha))


def binomial_p_value(r_hat: Any, n: int, alpha: Any) -> FloatArray:
    """P(Bin(n, α) ≤ nR̂): exact for 0/1 losses, *invalid* for graded ones (ConfigError)."""
    return _binomial(*_prepare(r_hat, n, alpha))


_P_VALUES: dict[str, Callable[[FloatArray, int, FloatArray], FloatArray]] = {
    "hoeffding_bentkus": _hoeffding_bentkus,
    "hoeffding": _hoeffding,
    "binomial": _binomial,
}


def _method(method: str) -> Callable[[FloatArray, int, FloatArray], FloatArray]:
    try:
        return _P_VALUES[method]
    except KeyError:
        raise ConfigError(
            f"`method` must be one of {list(METHODS)}, got {method!r}; pick one of those"
        ) from None


def risk_p_value(r_hat: Any, n: int, alpha: Any, method: str) -> FloatArray:
    """p-value for H0: E[loss] > α by ``method`` (one of METHODS); vectorised over R̂ and α."""
    fn = _method(method)
    return fn(*_prepare(r_hat, n, alpha))


def risk_upper_bound(r_hat: Any, n: int, delta: Any, method: str) -> FloatArray:
    """(1 − δ) upper confidence bound on E[loss]: the smallest α the test rejects at level δ.

    Vectorised over ``r_hat`` and ``delta`` (broadcast together). Returns 1.0 where even α = 1
    cannot be rejected.
    """
    d = np.asarray(delta, dtype=np.float64)
    if not np.all((d > 0) & (d < 1)):
        raise ConfigError(f"`delta` must be in (0, 1), got {delta!r}")
    fn = _method(method)
    r, n, _ = _prepare(r_hat, n, 0.0)
    r, d = np.broadcast_arrays(r, d)
    lo = np.zeros_like(r)  # invariant p(lo) > δ: at α = 0 every method gives p = 1
    hi = np.ones_like(r)
    done = fn(r, n, hi) > d  # cannot reject even α = 1
    for _ in range(_BISECTION_STEPS):
        mid = 0.5 * (lo + hi)
        reject = fn(r, n, mid) <= d
        hi = np.where(reject, mid, hi)
        lo = np.where(reject, lo, mid)
    return np.asarray(np.where(done, 1.0, hi), dtype=np.float64)
