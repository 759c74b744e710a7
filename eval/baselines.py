"""Baselines every router is reported beside: single models, zero router, random, oracle.

Everything here is a pure function over ``quality (n, m)`` in [0, 1] and ``cost (n, m)`` USD.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from router.errors import DataError

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
            f"`cost` must be finite and >= 0, got {c[r, k]!r} at row {r}, model {k}; "
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
