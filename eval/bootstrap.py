"""Seeded, paired bootstrap over prompts.

A resample is a vector of per-prompt counts (multinomial, summing to n). Every metric in
:mod:`eval.metrics` and :mod:`eval.baselines` accepts such counts as ``weights``, so a router and
every baseline are scored on exactly the same resampled prompts (paired resampling), without
copying the (n, m) matrices once per resample.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from tierwise.router.errors import ConfigError

FloatArray = npt.NDArray[np.float64]


def resample_weights(n: int, samples: int, seed: int) -> FloatArray:
    """``(samples, n)`` bootstrap counts: each row is one resample of the n prompts."""
    if n < 1:
        raise ConfigError(f"bootstrap needs at least 1 prompt, got {n}")
    if samples < 0:
        raise ConfigError(f"`bootstrap_samples` must be >= 0, got {samples}")
    rng = np.random.default_rng(seed)
    return rng.multinomial(n, np.full(n, 1.0 / n), size=samples).astype(np.float64)


@dataclass(frozen=True)
class Interval:
    """A percentile interval; ``None`` bounds mean "never" (e.g. a quality target not reached)."""

    low: float | None
    high: float | None
    level: float
    samples: int

    def to_dict(self) -> dict[str, float | None]:
        return {"low": self.low, "high": self.high, "level": self.level}


def percentile_interval(
    values: npt.ArrayLike, level: float, point: float | None = None
) -> Interval:
    """Percentile interval of bootstrap replicates at confidence ``level``.

    With ``point`` (the estimate on the full sample), the interval is widened to contain it:
    hull metrics (AIQ, gap closed) are biased under resampling — a hull over resampled noisy
    points sits above the sample's — so a plain percentile interval can exclude the estimate it
    is reported beside. Widening only makes the interval more conservative.

    Replicates may be ``inf`` ("never", e.g. the cost to reach a target a resample never reaches)
    and then yield a ``None`` bound; NaN replicates (undefined metric) are dropped. Order
    statistics are used (no interpolation) so that infinite replicates stay well defined.
    """
    if not 0.0 < level < 1.0:
        raise ConfigError(f"`ci_level` must be in (0, 1), got {level}")
    v = np.asarray(values, dtype=np.float64).ravel()
    v = v[~np.isnan(v)]
    if v.size == 0:
        return Interval(None, None, level, 0)
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(v, [alpha, 1.0 - alpha], method="inverted_cdf")

    if point is not None and np.isfinite(point):
        lo, hi = min(lo, point), max(hi, point)

    def bound(x: float) -> float | None:
        return None if not np.isfinite(x) else float(x)

    return Interval(bound(lo), bound(hi), level, int(v.size))
