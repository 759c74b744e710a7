"""Fit-time choices made on held-out labels: the knob (with a margin) and router vs static mixture.

Both read the policy's sweep on prompts the predictor did not train on (the calibration split,
or out-of-fold predictions when cross-fitting), as realized per-prompt quality and cost.

*Knob margin.* The naive rule takes the cheapest knob whose held-out mean quality reaches the
bar; on new traffic that knob then misses the bar about half of the time (the estimate is as
likely high as low). With ``confidence`` c > 0.5 the knob must clear the bar by a margin: the
per-prompt difference d = quality(knob) − bar·quality(reference) has mean δ and spread s, and
the knob qualifies when δ ≥ z_c · s · sqrt(1/n + 1/n_new): under a normal approximation a new
sample of n_new prompts then meets the bar with probability ≈ c (estimation error of δ and the
new sample's own noise both counted).

*Static fallback.* A learned router is worth shipping only if it beats the best static mixture
of single models (the zero router). Its swept curve's AIQ (area under the cost–quality hull up
to the priciest model's cost) is compared with the single-model hull's on the same held-out
prompts, over bootstrap resamples of prompts; the share of resamples where the router is
ahead estimates P(router better).
"""

from __future__ import annotations

from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def knob_with_margin(
    choices: IntArray,
    quality: FloatArray,
    cost: FloatArray,
    ref: int,
    fraction: float,
    confidence: float,
    n_new: int,
) -> int:
    """Index of the cheapest knob row of ``choices`` that meets the bar with the margin above.

    With ``confidence`` ≤ 0.5 this is the naive rule (mean quality ≥ bar). No qualifying knob:
    the one with the largest lower bound (the best it can do).
    """
    rows = np.arange(quality.shape[0])[None, :]
    q = quality[rows, choices]  # (k, n)
    d = q - fraction * quality[:, ref][None, :]
    n = d.shape[1]
    z = NormalDist().inv_cdf(confidence) if confidence > 0.5 else 0.0
    spread = d.std(axis=1, ddof=1) if n > 1 else np.zeros(len(d))
    lower = d.mean(axis=1) - z * spread * np.sqrt(1.0 / n + 1.0 / max(int(n_new), 1))
    ok = np.flatnonzero(lower >= -1e-12)
    if ok.size == 0:
        return int(np.argmax(lower))
    mean_cost = cost[rows, choices].mean(axis=1)
    return int(ok[np.argmin(mean_cost[ok])])


def hull_aiq(costs: FloatArray, quals: FloatArray, c_max: float) -> float:
    """AIQ of (cost, quality) points: area under their non-decreasing upper hull on [0, c_max]
    over c_max; 0 below the cheapest point (the convention of the evaluation reports)."""
    order = np.lexsort((-quals, costs))
    xs: list[float] = []
    ys: list[float] = []
    for x, y in zip(costs[order].tolist(), quals[order].tolist(), strict=True):
        if ys and y <= ys[-1]:
            continue  # no cheaper-and-better: not on a non-decreasing hull
        while len(xs) >= 2 and (xs[-1] - xs[-2]) * (y - ys[-2]) >= (ys[-1] - ys[-2]) * (x - xs[-2]):
            xs.pop()
            ys.pop()
        xs.append(x)
        ys.append(y)
    if c_max <= 0 or c_max <= xs[0]:
        return 0.0
    hx, hy = np.array(xs), np.array(ys)
    inside = hx < c_max
    px = np.append(hx[inside], c_max)
    py = np.append(hy[inside], float(np.interp(c_max, hx, hy)))
    return float(np.sum((px[1:] - px[:-1]) * (py[1:] + py[:-1]) / 2.0)) / c_max


@dataclass(frozen=True)
class StaticComparison:
    """Router vs the static mixture on held-out prompts (AIQ; bootstrap share router ahead)."""

    router_aiq: float
    static_aiq: float
    p_better: float
    n_prompts: int

    def as_dict(self) -> dict[str, float]:
        return {
            "router_aiq": round(self.router_aiq, 6),
            "static_aiq": round(self.static_aiq, 6),
            "p_router_better": round(self.p_better, 4),
            "n_prompts": self.n_prompts,
        }


def compare_with_static(
    choices: IntArray, quality: FloatArray, cost: FloatArray, *, n_boot: int = 200, seed: int = 0
) -> StaticComparison:
    """The router's sweep ``choices (k, n)`` against the single-model hull on the same prompts."""
    n = quality.shape[0]
    rows = np.arange(n)[None, :]
    rq, rc = quality[rows, choices], cost[rows, choices]  # (k, n)
    rng = np.random.default_rng(seed)
    W = np.vstack([np.ones(n), rng.multinomial(n, np.full(n, 1.0 / n), size=n_boot)]) / n
    single_c, single_q = W @ cost, W @ quality  # (B+1, m)
    c_max = single_c.max(axis=1)
    router = np.array([hull_aiq(rc @ w, rq @ w, cm) for w, cm in zip(W, c_max, strict=True)])
    static = np.array(
        [hull_aiq(c, q, cm) for c, q, cm in zip(single_c, single_q, c_max, strict=True)]
    )
    # Ahead by more than float noise: a router that copies the hull is not better than it.
    diff = router[1:] - static[1:]
    return StaticComparison(float(router[0]), float(static[0]), float(np.mean(diff > 1e-9)), n)
