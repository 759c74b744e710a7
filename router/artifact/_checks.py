"""Cross-checks of a restored router: the manifest's metadata against its stored arrays.

The checksum detects accidents, not edits: anyone can change the manifest and recompute it.
So a restored router is checked for internal consistency before it is handed out — the models
list, the embedding dimension, the knob grid and its calibration curve against what the stored
predictor, calibrator and cost model actually produce — and one probe row is predicted and
routed. A manifest whose models list was shortened (checksum recomputed) is then refused at
load, with one line, instead of failing with IndexError on the first request.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from tierwise.router.errors import ArtifactError
from tierwise.router.schema import bounded_repr

if TYPE_CHECKING:
    from tierwise.router.core import Router

FIX = "re-export the router with `tierwise train`"


def check_metadata(router: Router, where: str) -> None:
    """The models list, reference model, dimension and knob arrays agree with each other."""
    models = router.models_
    if not models or not all(isinstance(m, str) and m for m in models):
        raise ArtifactError(
            f"{where}: `payload.models` must be a non-empty list of model names, got "
            f"{bounded_repr(list(models))}; {FIX}"
        )
    if len(set(models)) != len(models):
        raise ArtifactError(
            f"{where}: `payload.models` must name each model once, got {bounded_repr(list(models))}"
            f"; {FIX}"
        )
    ref = router.reference_model_
    if ref is not None and ref not in models:
        raise ArtifactError(
            f"{where}: policy.reference_model {bounded_repr(ref)} is not one of the models "
            f"{bounded_repr(list(models))}; {FIX}"
        )
    if router.dim_ < 1:
        raise ArtifactError(f"{where}: `payload.embedder.dim` must be positive, got {router.dim_}")
    grid, curve = np.asarray(router.knob_grid_), np.asarray(router.calibration_curve_)
    if grid.ndim != 1 or curve.shape != (len(grid), 2):
        raise ArtifactError(
            f"{where}: array `policy.calibration_curve` must have shape ({len(grid)}, 2) to match "
            f"`policy.knob_grid` {list(grid.shape)}, got {list(curve.shape)}; {FIX}"
        )


def check_predictions(router: Router, where: str) -> None:
    """One probe row through predictor, calibrator, cost model and policy: shapes must fit."""
    n = len(router.models_)
    x = np.zeros((1, router.dim_), dtype=np.float32)
    x[0, 0] = 1.0  # a unit row, like every embedding
    try:
        P, C = router.predict(x, np.array([100.0]))
        picks = np.asarray(router.choose(P, C))
    except Exception as err:  # a predictor's own DataError, or whatever numpy raises
        raise ArtifactError(
            f"{where}: the stored predictor, calibration and cost model do not fit the manifest's "
            f"{n} models and {router.dim_}-dim embeddings ({type(err).__name__}: "
            f"{str(err)[:120]}); {FIX}"
        ) from None
    if P.shape != (1, n) or C.shape != (1, n):
        raise ArtifactError(
            f"{where}: the stored predictor and cost model give {P.shape[-1]} and {C.shape[-1]} "
            f"columns but the manifest lists {n} models {bounded_repr(list(router.models_))}; "
            f"{FIX}"
        )
    if picks.shape != (1,) or not 0 <= int(picks[0]) < n:
        raise ArtifactError(
            f"{where}: the stored policy picks tier {picks.tolist()} of {n} models; {FIX}"
        )


def check_router(router: Router, where: str) -> None:
    """All cross-checks of a restored router (ArtifactError with one line on a mismatch)."""
    check_metadata(router, where)
    check_predictions(router, where)
