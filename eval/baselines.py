"""Baselines every router is reported beside: single models, zero router, random, oracle.

Everything here is a pure function over ``quality (n, m)`` in [0, 1] and ``cost (n, m)`` USD.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from tierwise.eval.metrics import frontier
from tierwise.router.errors import DataError

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def check_matrices(quality: npt.ArrayLike, cost: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Validate and return ``quality`` and ``cost`` as float arrays of the same (n, m) shape."""
    q = np.asarray(quality, dtype=np.float64)
    c = np.asarray(cost, dtype=np.float64)
    if q.ndim != 2 or q.shape[0] == 0 or q.shape[1] == 0:
        raise DataError(
            f"`quality` must be a non-empty (prompts, models) matrix, got shape {q.shape}"
        )
    if c.shape != q.shape:
        raise DataError(f"`cost` must have the shape of `quality` {q.shape}, got {c.shape}")
    if np.isnan(q).any():
        r, k = np.argwhere(np.isnan(q))[0]
        raise DataError(
            f"`quality` must have no unknown (NaN) labels, got NaN at row {r}, model {k}; "
            "drop those rows or count them as failures in the data config"
        )
    if not np.isfinite(c).all() or (c < 0).any():
        r, k = np.argwhere(~np.isfinite(c) | (c < 0))[0]
        raise DataError(
            f"`cost` must be finite and >= 0, got {float(c[r, k])} at row {r}, model {k}; "
            "fix the cost column"
        )
    return q, c


def oracle_choices(quality: npt.ArrayLike, cost: npt.ArrayLike) -> IntArray:
    """Per prompt, the model with the highest quality; ties go to the cheapest, then lowest index.

    With 0/1 labels this is the cheapest model that succeeds, or the cheapest model when none does.
    """
    q, c = check_matrices(quality, cost)
    best = q.max(axis=1, keepdims=True)
    # Exact ties only: labels are typically 0/1 or coarse grades, so a tolerance would merge
    # distinct qualities rather than fix float noise.
    masked_cost = np.where(q == best, c, np.inf)
    return np.argmin(masked_cost, axis=1).astype(np.int64)


def single_model_points(
    quality: FloatArray, cost: FloatArray, weights: FloatArray | None = None
) -> tuple[FloatArray, FloatArray]:
    """Mean (cost, quality) of always using each model: two ``(m,)`` arrays."""
    if weights is None:
        return cost.mean(axis=0), quality.mean(axis=0)
    total = weights.sum()
    return (weights @ cost) / total, (weights @ quality) / total


def best_model(quality: FloatArray, cost: FloatArray) -> int:
    """The single model with the best mean quality; ties go to the cheaper one."""
    mc, mq = single_model_points(quality, cost)
    return int(np.lexsort((mc, -mq))[0])


def zero_router(
    quality: FloatArray, cost: FloatArray, weights: FloatArray | None = None
) -> tuple[FloatArray, FloatArray, IntArray]:
    """The zero router: the frontier of the single models, i.e. every random mixture of them.

    Returns the frontier's vertices ``(costs, qualities)`` and the model index at each vertex.
    """
    mc, mq = single_model_points(quality, cost, weights)
    order = np.lexsort((-mq, mc))
    hc, hq = frontier(mc, mq)
    # Map each vertex back to the model that sits there (the best one at that exact cost).
    models = np.array([order[np.flatnonzero(mc[order] == x)[0]] for x in hc], dtype=np.int64)
    return hc, hq, models


def random_matched(
    quality: FloatArray, cost: FloatArray, target_costs: npt.ArrayLike, seed: int = 0
) -> IntArray:
    """Random routing at matched cost: one ``(n,)`` row of choices per target mean cost.

    For a target between two adjacent zero-router models a (cheaper) and b, a seeded random
    ``round(p * n)`` prompts go to b, with p = (target − cost_a) / (cost_b − cost_a), the rest to
    a; targets outside the hull get its cheapest or costliest model. Its expected point lies on
    the zero-router hull; the realized one differs only by sampling noise.
    """
    q, c = check_matrices(quality, cost)
    n = q.shape[0]
    hc, _, models = zero_router(q, c)
    targets = np.atleast_1d(np.asarray(target_costs, dtype=np.float64))
    rng = np.random.default_rng(seed)
    out = np.empty((targets.size, n), dtype=np.int64)
    for r, target in enumerate(targets):
        perm = rng.permutation(n)
        if target <= hc[0] or hc.size == 1:
            out[r] = models[0] if target <= hc[0] else models[-1]
            continue
        if target >= hc[-1]:
            out[r] = models[-1]
            continue
        j = int(np.searchsorted(hc, target, side="right"))  # hc[j-1] <= target < hc[j]
        p = (target - hc[j - 1]) / (hc[j] - hc[j - 1])
        out[r] = models[j - 1]
        out[r, perm[: round(p * n)]] = models[j]
    return out


class OracleFrontier:
    """The best achievable cost–quality frontier: per prompt argmax(quality − λ·cost) over all λ.

    Sweeping λ from ∞ to 0 moves each prompt along its own non-decreasing hull of (cost, quality)
    over the models, and every breakpoint of the sweep is a hull segment's slope. Taking all
    prompts' segments in decreasing slope order therefore gives every vertex of the swept curve
    exactly (a fractional knapsack), without choosing a λ grid. The segments are computed once;
    :meth:`curve` re-weights them for bootstrap resamples.
    """

    def __init__(self, quality: npt.ArrayLike, cost: npt.ArrayLike) -> None:
        q, c = check_matrices(quality, cost)
        self.n, m = q.shape
        rows = np.arange(self.n)
        # Start: the cheapest model, the best one among equally cheap ones.
        cheapest = c == c.min(axis=1, keepdims=True)
        start = np.argmax(np.where(cheapest, q, -np.inf), axis=1).astype(np.int64)
        # Gift wrapping on every prompt at once: from the current vertex, the next vertex of the
        # prompt's non-decreasing hull is the costlier, better model with the steepest slope
        # (the farthest on ties, so collinear models are skipped). At most m - 1 steps.
        cur, active = start.copy(), np.ones(self.n, dtype=bool)
        seg_prompt, seg_from, seg_to = [], [], []
        for _ in range(m - 1):
            dc = c - c[rows, cur][:, None]
            dq = q - q[rows, cur][:, None]
            up = (dc > 0) & (dq > 0)
            slope = np.where(up, dq / np.where(up, dc, 1.0), -np.inf)
            best = slope.max(axis=1)
            active &= np.isfinite(best)
            if not active.any():
                break
            nxt = np.argmax(np.where(up & (slope >= best[:, None]), dc, -np.inf), axis=1)
            seg_prompt.append(rows[active])
            seg_from.append(cur[active])
            seg_to.append(nxt[active])
            cur = np.where(active, nxt, cur)
        self.start_model = start
        self.start_cost, self.start_quality = c[rows, start], q[rows, start]
        empty = np.zeros(0, dtype=np.int64)
        sp = np.concatenate(seg_prompt).astype(np.int64) if seg_prompt else empty
        sf = np.concatenate(seg_from).astype(np.int64) if seg_from else empty
        st = np.concatenate(seg_to).astype(np.int64) if seg_to else empty
        dc = c[sp, st] - c[sp, sf]
        dq = q[sp, st] - q[sp, sf]
        # Within a prompt slopes decrease step by step, so a stable sort keeps each prompt's
        # segments in order and the curve never skips a vertex of a prompt's own hull.
        order = np.argsort(-(dq / dc), kind="stable")
        self.seg_prompt, self.seg_from, self.seg_to = sp[order], sf[order], st[order]
        self.seg_dc, self.seg_dq = dc[order], dq[order]

    def curve(self, weights: FloatArray | None = None) -> tuple[FloatArray, FloatArray]:
        """Frontier vertices (mean cost, mean quality); ``weights`` are per-prompt counts."""
        w = np.ones(self.n) if weights is None else np.asarray(weights, dtype=np.float64)
        total = w.sum()
        c0 = float(self.start_cost @ w) / total
        q0 = float(self.start_quality @ w) / total
        sw = w[self.seg_prompt]
        hc = np.concatenate(([c0], c0 + np.cumsum(sw * self.seg_dc) / total))
        hq = np.concatenate(([q0], q0 + np.cumsum(sw * self.seg_dq) / total))
        return hc, hq

    def model_share(self, model: int, weights: FloatArray | None = None) -> FloatArray:
        """Fraction of prompts sent to ``model`` at each vertex of :meth:`curve`."""
        w = np.ones(self.n) if weights is None else np.asarray(weights, dtype=np.float64)
        total = w.sum()
        x0 = float((self.start_model == model) @ w) / total
        sw = w[self.seg_prompt]
        step = sw * ((self.seg_to == model).astype(float) - (self.seg_from == model))
        return np.concatenate(([x0], x0 + np.cumsum(step) / total))


def oracle_frontier_choices(
    quality: npt.ArrayLike, cost: npt.ArrayLike, lambdas: npt.ArrayLike
) -> IntArray:
    """The oracle as a swept policy: per prompt argmax(quality − λ·cost), one row per λ.

    Ties go to the cheaper model (then the lower index), so λ = 0 gives :func:`oracle_choices`.
    """
    q, c = check_matrices(quality, cost)
    lam = np.atleast_1d(np.asarray(lambdas, dtype=np.float64))
    if (lam < 0).any() or not np.isfinite(lam).all():
        raise DataError(
            f"`lambdas` must be finite and >= 0, got {lam[(lam < 0) | ~np.isfinite(lam)][0]}"
        )
    out = np.empty((lam.size, q.shape[0]), dtype=np.int64)
    for r, lm in enumerate(lam):
        score = q - lm * c
        best = score.max(axis=1, keepdims=True)
        out[r] = np.argmin(np.where(score >= best - 1e-12, c, np.inf), axis=1)
    return out


def oracle_strong_curve(
    quality: FloatArray, weak: int, strong: int
) -> tuple[FloatArray, FloatArray]:
    """RouteLLM's optimal curve for two models: best mean quality with exactly k strong calls.

    Returns ``(share of strong calls, mean quality)`` for k = 0..n: prompts go to the strong
    model in decreasing order of what it gains over the weak one, so the curve rises, stays flat
    over prompts where both models are equal, and ends at the strong model's quality at 100%.
    """
    gain = np.sort(quality[:, strong] - quality[:, weak])[::-1]
    n = quality.shape[0]
    x = np.arange(n + 1) / n
    y = quality[:, weak].mean() + np.concatenate(([0.0], np.cumsum(gain))) / n
    return x, y
