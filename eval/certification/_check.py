"""Check a saved router's quality guarantee on newly labelled traffic, and re-certify it there.

``check_router`` routes the new prompts exactly as deployed (fallback included), reads off the
realized quality of each answer (and of the reference tier) and runs ``eval.certify``'s drift
test against the target the artifact was certified for: holds, violated or inconclusive.
``recertify`` tests the artifact's knob grid on the same sample and deploys the cheapest knob
that passes: no split is needed, because the calibrator and the grid were fitted on other data.
Used by ``tierwise check``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from tierwise.eval.certification._certify import (
    Certificate,
    CheckResult,
    TargetConfig,
    as_target,
    check_guarantee,
)
from tierwise.eval.certification._guarantee import certify_sample, reference_index, require_known
from tierwise.router.errors import ConfigError, DataError

if TYPE_CHECKING:
    from tierwise.eval.dataset import RoutingDataset
    from tierwise.router.core import Router

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

__all__ = [
    "TrafficCheck",
    "align_models",
    "check_router",
    "recertify",
    "reference_of",
    "stored_target",
]


def align_models(router: Router, data: RoutingDataset) -> tuple[FloatArray, FloatArray]:
    """``data``'s quality and cost, columns in the router's tier order (extra models dropped)."""
    missing = [m for m in router.models_ if m not in data.models]
    if missing:
        raise DataError(
            f"the labelled traffic must have every tier of the router {list(router.models_)}; "
            f"missing {missing} (it has {list(data.models)}); label those models or check the "
            "data config's model columns"
        )
    cols = [data.models.index(m) for m in router.models_]
    return (
        np.asarray(data.quality, dtype=np.float64)[:, cols],
        np.asarray(data.cost, dtype=np.float64)[:, cols],
    )


def stored_target(router: Router, fallback: TargetConfig | None = None) -> TargetConfig:
    """The target the artifact was certified for, else ``fallback`` (e.g. a config's target)."""
    cert = getattr(router, "certificate_", None)
    if cert is not None:
        return as_target(cert["target"])
    if fallback is not None:
        return fallback
    raise ConfigError(
        "this artifact carries no certificate, so there is no target to check; add a `target:` "
        "section to the config (e.g. target: {kind: relative, value: 0.95}) or re-train with one"
    )


def reference_of(router: Router, target: TargetConfig, quality: FloatArray) -> int:
    """The certificate's reference tier; else the target's, resolved without new labels."""
    cert = getattr(router, "certificate_", None) or {}
    name = cert.get("reference_model")
    if name is None and target.reference == "best":
        name = router.reference_model_  # chosen on the training-time calibration labels
    if name is None:
        return reference_index(router.models_, quality, target)
    if name not in router.models_:
        raise ConfigError(
            f"reference model {name!r} is not a tier of this router {list(router.models_)}"
        )
    return list(router.models_).index(name)


@dataclass(frozen=True)
class TrafficCheck:
    """What ``tierwise check`` found on newly labelled traffic."""

    result: CheckResult
    reference_model: str
    share: dict[str, float]  # fraction of prompts routed to each tier
    cost_mean: float  # realized USD per prompt
    reference_cost_mean: float
    fallback: bool
    choices: IntArray
    P: FloatArray
    C: FloatArray
    quality: FloatArray
    cost: FloatArray


def check_router(
    router: Router,
    data: RoutingDataset,
    target: TargetConfig | None = None,
    *,
    embeddings: npt.NDArray[Any] | None = None,
) -> TrafficCheck:
    """Route ``data``'s prompts as deployed and test the artifact's target on the outcomes."""
    from tierwise.router.expected_cost import prompt_chars
    from tierwise.router.prompts import validate_batch

    t = stored_target(router, target)
    quality, cost = align_models(router, data)
    texts, errors = validate_batch(list(data.prompts), max_chars=router.config.max_prompt_chars)
    bad = [i for i, e in enumerate(errors) if e is not None]
    if bad:
        raise DataError(
            f"prompt id {data.ids[bad[0]]!r} cannot be routed ({errors[bad[0]]}); "
            f"{len(bad)} such prompts: fix or drop them in the labelled traffic"
        )
    prompts = tuple(str(x) for x in texts)
    X = router.embed(prompts) if embeddings is None else np.asarray(embeddings)
    P, C = router.predict(X, prompt_chars(prompts))
    choices = router.choose(P, C)
    rows = np.arange(len(prompts))
    q = quality[rows, choices]
    require_known(q[None, :], choices[None, :], router.models_, "quality label")
    ref = reference_of(router, t, quality)
    ref_q = quality[:, ref]
    if not np.isfinite(ref_q).all() and t.kind == "relative":
        raise DataError(
            f"a relative target needs the reference {router.models_[ref]!r}'s quality on every "
            f"prompt; {int((~np.isfinite(ref_q)).sum())} are unknown"
        )
    result = check_guarantee(q, ref_q if np.isfinite(ref_q).all() else None, t)
    counts = np.bincount(choices, minlength=len(router.models_)) / len(choices)
    return TrafficCheck(
        result=result,
        reference_model=router.models_[ref],
        share={m: float(s) for m, s in zip(router.models_, counts, strict=True)},
        cost_mean=float(np.nanmean(cost[rows, choices])),
        reference_cost_mean=float(np.nanmean(cost[:, ref])),
        fallback=router.fallback_model_ is not None,
        choices=choices,
        P=P,
        C=C,
        quality=quality,
        cost=cost,
    )


def recertify(
    router: Router, check: TrafficCheck, target: TargetConfig | None = None
) -> Certificate:
    """Re-certify ``router``'s knob on the checked traffic (all of it: its grid is fixed)."""
    t = stored_target(router, target)
    ref = list(router.models_).index(check.reference_model)
    scheme = {
        "name": "recertified",
        "n_certification": len(check.choices),
        "note": "calibrator and knob grid from the original artifact; knobs tested on new "
        "labelled traffic",
    }
    return certify_sample(router, check.P, check.C, check.quality, check.cost, t, ref, scheme)
