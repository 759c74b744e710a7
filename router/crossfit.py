"""Cross-fitting: use every labelled prompt for the predictor and still choose on held-out labels.

With ``crossfit.folds = K`` the router pools train and calibration, splits the pool into K folds
(identical prompt texts always share a fold, seeded), and predicts each fold with a predictor
fitted on the other K − 1: out-of-fold predictions for every pooled prompt, none of them from a
model that saw that prompt's labels. The calibrator, the knob and the static-fallback test are
fitted on those; the shipped predictor is then refitted on the whole pool. The cost is K extra
predictor fits.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from tierwise.router.errors import DataError
from tierwise.router.predictors import QualityPredictor

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class PooledTraffic:
    """Train and calibration traffic stacked (the TrafficData protocol of ``Router.fit``)."""

    prompts: tuple[str, ...]
    models: tuple[str, ...]
    quality: FloatArray
    cost: FloatArray
    input_tokens: FloatArray | None
    output_tokens: FloatArray | None


def _stack(a: Any, b: Any) -> FloatArray | None:
    if a is None or b is None:
        return None
    return np.vstack([np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)])


def pool(train: Any, calibration: Any) -> PooledTraffic:
    """``train`` rows, then ``calibration`` rows."""
    return PooledTraffic(
        prompts=tuple(train.prompts) + tuple(calibration.prompts),
        models=tuple(train.models),
        quality=np.vstack([np.asarray(train.quality), np.asarray(calibration.quality)]),
        cost=np.vstack([np.asarray(train.cost), np.asarray(calibration.cost)]),
        input_tokens=_stack(train.input_tokens, calibration.input_tokens),
        output_tokens=_stack(train.output_tokens, calibration.output_tokens),
    )


def group_folds(prompts: Sequence[str], n_folds: int, seed: int) -> IntArray:
    """Fold id per row: prompt groups (same text up to case and spacing) in seeded order, cut
    into ``n_folds`` parts of about equal size."""
    seen: dict[str, int] = {}
    groups = np.array([seen.setdefault(" ".join(p.split()).casefold(), len(seen)) for p in prompts])
    if len(seen) < n_folds:
        raise DataError(
            f"`crossfit.folds` is {n_folds} but there are only {len(seen)} distinct labelled "
            "prompts; lower `crossfit.folds` or label more traffic"
        )
    order = np.random.default_rng(seed).permutation(len(seen))
    sizes = np.bincount(groups, minlength=len(seen))[order]
    start = np.cumsum(sizes) - sizes  # rows before each group, in the shuffled order
    fold_of_group = np.empty(len(seen), dtype=np.int64)
    fold_of_group[order] = np.minimum(start * n_folds // len(prompts), n_folds - 1)
    return fold_of_group[groups]


def out_of_fold(
    make: Callable[[], QualityPredictor], X: FloatArray, Y: FloatArray, folds: IntArray
) -> FloatArray:
    """``(n, m)`` predictions, each row from a predictor fitted without its fold."""
    out = np.empty((X.shape[0], Y.shape[1]))
    for k in np.unique(folds):
        held = folds == k
        out[held] = make().fit(X[~held], Y[~held]).predict_proba(X[held])
    return out
