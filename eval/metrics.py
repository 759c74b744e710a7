"""Cost–quality metrics for routing policies: pure functions over numpy arrays.

Conventions (every number tierwise reports uses these):

* A *policy* is ``choices`` of shape ``(n,)`` (one model index per prompt) or ``(k, n)`` (a swept
  policy: one row per knob value). Its *points* are (mean cost, mean quality) per row.
* The *frontier* of a set of points is RouterBench's non-decreasing convex hull (NDCH): the upper
  concave envelope of the points from the cheapest point up to the cheapest point of highest
  quality. Between vertices it is linear, because mixing two operating points at random realizes
  any point on the segment. Read as a function of a per-query budget ``c`` it is the best quality
  reachable spending at most ``c``, so it is 0 below the cheapest point (nothing runs for less) and
  flat beyond the costliest vertex (spending less than the budget is allowed).
* **AIQ** (RouterBench, Hu et al. 2024) = (1 / c_max) · ∫_0^{c_max} H(c) dc, where H is the frontier
  read as above and ``c_max`` is the mean cost of the costliest *single model* on the same prompts.
  This is what the reference implementation computes (area from the curve's cheapest point to the
  largest cost, curve extended flat to that cost, divided by it), except that tierwise fixes the
  cost range to [0, costliest single model] instead of "the largest cost among the curves being
  compared", so that a policy's AIQ does not depend on which other policies share the table, and
  router, zero router and oracle are integrated over the same range. Points costlier than
  ``c_max`` only matter through the hull segment that crosses ``c_max``. AIQ is invariant to the
  cost unit (USD per query or per 1,000 queries).
* **PGR / APGR / CPT** (RouteLLM, Ong et al. 2024), two-model settings where the better model
  costs more: x = fraction of calls to the strong model, PGR = (q − q_weak) / (q_strong − q_weak).
  APGR is RouteLLM's ``(AUC − AUC_weak) / (AUC_strong − AUC_weak)`` with all three areas taken
  over the x-values the sweep covers, i.e. the mean PGR over the covered range (a single point
  gives its own PGR, so always-strong scores 1 and always-weak 0). Threshold routers sweep
  0–100% as RouteLLM's do; APGRs of sweeps covering different ranges are not comparable. The
  oracle's curve is RouteLLM's optimal one (best quality for each count of strong calls, 0–100%).
  CPT(x) is the smallest strong-call fraction at which the curve, linearly interpolated between
  knob values in order of x, reaches PGR x.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from tierwise.router.errors import DataError

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def as_choices(choices: npt.ArrayLike, n: int, m: int, name: str = "choices") -> IntArray:
    """Validate a policy and return it as a ``(k, n)`` int array (a ``(n,)`` policy gets k = 1)."""
    arr = np.asarray(choices)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] != n or arr.shape[0] == 0:
        raise DataError(
            f"`{name}` must have shape ({n},) or (knob values, {n}), got {np.shape(choices)}; "
            "pass one model index per evaluated prompt"
        )
    if arr.dtype.kind not in "iu":
        if arr.dtype.kind == "f" and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
            arr = arr.astype(np.int64)
        else:
            raise DataError(f"`{name}` must hold integer model indices, got dtype {arr.dtype}")
    if arr.min() < 0 or arr.max() >= m:
        bad = int(arr.min() if arr.min() < 0 else arr.max())
        raise DataError(f"`{name}` must hold model indices in [0, {m - 1}], got {bad}")
    return arr.astype(np.int64, copy=False)


def policy_points(
    quality: FloatArray,
    cost: FloatArray,
    choices: IntArray,
    weights: FloatArray | None = None,
) -> tuple[FloatArray, FloatArray]:
    """Mean (cost, quality) per knob row of a ``(k, n)`` policy; ``weights``: bootstrap counts."""
    rows = np.arange(quality.shape[0])[None, :]
    q = quality[rows, choices]
    c = cost[rows, choices]
    if weights is None:
        return c.mean(axis=1), q.mean(axis=1)
    total = weights.sum()
    return (c @ weights) / total, (q @ weights) / total


def per_1k(cost_per_query: float) -> float:
    """USD per query → USD per 1,000 queries, the unit people budget in."""
    return 1000.0 * cost_per_query


def frontier(costs: npt.ArrayLike, quals: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    """RouterBench's non-decreasing convex hull of (cost, quality) points, as sorted vertices."""
    c = np.asarray(costs, dtype=np.float64).ravel()
    q = np.asarray(quals, dtype=np.float64).ravel()
    if c.size == 0 or c.size != q.size or not (np.isfinite(c).all() and np.isfinite(q).all()):
        raise DataError(
            f"frontier needs matching finite cost/quality points, got {c.size}/{q.size}"
        )
    order = np.lexsort((-q, c))  # by cost, best quality first among equal costs
    c, q = c[order], q[order]
    keep = np.ones(c.size, dtype=bool)
    keep[1:] = c[1:] != c[:-1]
    c, q = c[keep], q[keep]
    # Only points up to the cheapest best-quality point can be on a non-decreasing hull.
    top = int(np.argmax(q))
    c, q = c[: top + 1], q[: top + 1]
    hc: list[float] = []
    hq: list[float] = []
    for x, y in zip(c.tolist(), q.tolist(), strict=True):
        # Pop while the last vertex lies on or below the chord from its predecessor to (x, y).
        while (
            len(hc) >= 2
            and (hc[-1] - hc[-2]) * (y - hq[-2]) - (hq[-1] - hq[-2]) * (x - hc[-2]) >= 0
        ):
            hc.pop()
            hq.pop()
        hc.append(x)
        hq.append(y)
    return np.array(hc), np.array(hq)


def frontier_value(hc: FloatArray, hq: FloatArray, budget: npt.ArrayLike) -> FloatArray:
    """H(c): 0 below the cheapest vertex, linear between vertices, flat after the last."""
    b = np.asarray(budget, dtype=np.float64)
    out = np.interp(b, hc, hq)
    # The same mean cost summed in another order can land an ulp below the first vertex.
    below = b < hc[0] - 1e-9 * max(abs(float(hc[0])), 1e-300)
    return np.where(below, 0.0, out)


def frontier_area(hc: FloatArray, hq: FloatArray, c_max: float) -> float:
    """∫_0^{c_max} H(c) dc for a frontier given by its vertices (exact, piecewise linear)."""
    if c_max <= hc[0]:
        return 0.0
    inside = hc < c_max
    xs = np.append(hc[inside], c_max)
    ys = np.append(hq[inside], float(np.interp(c_max, hc, hq)))
    return float(np.sum((xs[1:] - xs[:-1]) * (ys[1:] + ys[:-1]) / 2.0))


def aiq_of_frontier(hc: FloatArray, hq: FloatArray, c_max: float) -> float:
    """AIQ of a frontier over the cost range [0, c_max] (see the module docstring)."""
    if not np.isfinite(c_max) or c_max < 0:
        raise DataError(f"`c_max` must be a finite cost >= 0, got {c_max!r}")
    if c_max == 0:
        # Every model is free: budgets collapse to a point, and the frontier's best quality is
        # the only meaningful value.
        return float(hq[-1]) if hc[0] <= 0 else 0.0
    return frontier_area(hc, hq, c_max) / c_max


def aiq(costs: npt.ArrayLike, quals: npt.ArrayLike, c_max: float) -> float:
    """AIQ of a set of (cost, quality) points: the area under their frontier over [0, c_max]."""
    hc, hq = frontier(costs, quals)
    return aiq_of_frontier(hc, hq, c_max)


def cost_at_quality(hc: FloatArray, hq: FloatArray, target: float) -> float | None:
    """Least per-query cost at which the frontier reaches ``target`` quality; None = never."""
    # The reference's own mean, summed in another order, must still count as reaching 100%.
    target = target - 1e-9 * max(abs(target), 1e-12)
    if hq[-1] < target:
        return None
    if hq[0] >= target:
        return float(hc[0])
    j = int(np.argmax(hq >= target))  # first vertex at or above target; j >= 1 here
    q0, q1, c0, c1 = hq[j - 1], hq[j], hc[j - 1], hc[j]
    return float(c0 + (c1 - c0) * (target - q0) / (q1 - q0))


def gap_closed(aiq_policy: float, aiq_zero: float, aiq_oracle: float) -> float:
    """(AIQ − AIQ_zero) / (AIQ_oracle − AIQ_zero); NaN when the oracle has no room to beat zero."""
    room = aiq_oracle - aiq_zero
    if room <= 1e-12:
        return float("nan")
    return (aiq_policy - aiq_zero) / room


def strong_fraction(
    choices: IntArray, strong: int, weights: FloatArray | None = None
) -> FloatArray:
    """Fraction of calls sent to model ``strong`` per knob row of a ``(k, n)`` policy."""
    hit = (choices == strong).astype(np.float64)
    if weights is None:
        return hit.mean(axis=1)
    return (hit @ weights) / weights.sum()


def pgr(quals: npt.ArrayLike, q_weak: float, q_strong: float) -> FloatArray:
    """Performance gap recovered; NaN everywhere when the two models are equally good."""
    q = np.asarray(quals, dtype=np.float64)
    gap = q_strong - q_weak
    if abs(gap) <= 1e-12:
        return np.full(q.shape, np.nan)
    return (q - q_weak) / gap


def _sorted_curve(x: npt.ArrayLike, y: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    xs = np.asarray(x, dtype=np.float64).ravel()
    ys = np.asarray(y, dtype=np.float64).ravel()
    order = np.lexsort((ys, xs))
    return xs[order], ys[order]


def apgr(strong_frac: npt.ArrayLike, pgr_values: npt.ArrayLike) -> float:
    """Mean PGR over the strong-call range the sweep covers (RouteLLM's APGR, see module doc)."""
    x, y = _sorted_curve(strong_frac, pgr_values)
    if np.isnan(y).any():
        return float("nan")
    width = x[-1] - x[0]
    if width <= 0:
        return float(y.mean())
    return float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2.0) / width)


def cpt(strong_frac: npt.ArrayLike, pgr_values: npt.ArrayLike, target: float) -> float | None:
    """Smallest strong-call fraction reaching PGR ``target`` (0.5 = CPT(50%)); None = never."""
    x, y = _sorted_curve(strong_frac, pgr_values)
    hit = np.flatnonzero(y >= target)
    if hit.size == 0 or np.isnan(y).any():
        return None
    j = int(hit[0])
    if j == 0:
        return float(x[0])
    return float(x[j - 1] + (x[j] - x[j - 1]) * (target - y[j - 1]) / (y[j] - y[j - 1]))
