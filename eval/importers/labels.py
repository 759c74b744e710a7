"""Quality labels: raw values (0/1, booleans, graded scores) → quality in [0, 1], and the
explicit rule for labels that are missing."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from tierwise.eval.importers.config import LabelConfig
from tierwise.eval.importers.values import Where
from tierwise.router.errors import DataError

FloatArray = npt.NDArray[np.float64]


def to_quality(raw: FloatArray, cfg: LabelConfig, where: Where) -> tuple[FloatArray, int]:
    """Validate raw labels and map them to [0, 1]; NaN (missing) stays NaN.

    Returns the quality and how many values were clipped into range (``out_of_range: clip``).
    """
    known = ~np.isnan(raw)
    if cfg.kind == "binary":
        bad = known & (raw != 0.0) & (raw != 1.0)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise DataError(
                f"{where.cell(i)}: a binary label must be 0/1 or true/false, "
                f"got {float(raw[i])!r}; "
                "for graded scores set `labels.kind: score` with a `range` (and a `threshold`)"
            )
        return raw.copy(), 0
    lo, hi = cfg.score_range()
    out = known & ((raw < lo) | (raw > hi))
    n_clipped = int(out.sum())
    if n_clipped and cfg.out_of_range == "error":
        i = int(np.flatnonzero(out)[0])
        raise DataError(
            f"{where.cell(i)}: a score must lie in `labels.range` [{lo:g}, {hi:g}], "
            f"got {float(raw[i])!r}; "
            "fix the value, widen `labels.range`, or set `labels.out_of_range: clip`"
        )
    vals = np.clip(raw, lo, hi)
    if cfg.threshold is not None:
        q = np.where(known, (vals >= cfg.threshold).astype(np.float64), np.nan)
    else:
        q = (vals - lo) / (hi - lo)
    return q, n_clipped


@dataclass(frozen=True)
class MissingResult:
    """Quality after the missing-label rule: the rows kept and how many labels each model lacked."""

    quality: FloatArray  # all rows; index with `keep`
    keep: npt.NDArray[np.bool_]  # rows kept
    missing_per_model: dict[str, int]


def apply_missing_rule(quality: FloatArray, models: Sequence[str], rule: str) -> MissingResult:
    """``drop_row``: drop prompts with any unknown label; ``as_failure``: count them as 0."""
    missing = np.isnan(quality)
    per_model = {m: int(missing[:, j].sum()) for j, m in enumerate(models)}
    if rule == "drop_row":
        keep: npt.NDArray[np.bool_] = np.asarray(~missing.any(axis=1), dtype=bool)
        return MissingResult(quality.copy(), keep, per_model)
    if rule == "as_failure":
        return MissingResult(
            np.where(missing, 0.0, quality), np.ones(len(quality), dtype=bool), per_model
        )
    raise DataError(f"`labels.missing` must be drop_row or as_failure, got {rule!r}")
