"""The quality guarantee for a fitted Router: certify its knob, and check it on new traffic.

``certify_router(router, calibration, target)`` turns ``eval.certify``'s Learn-then-Test
certificate into a deployed setting: it sets ``router.knob_`` to the cheapest knob whose mean
routed quality meets ``target`` with the target's confidence, stores the certificate in
``router.certificate_`` (saved in the artifact manifest), or — when no knob passes — sets
``router.fallback_model_`` so that ``route()`` sends every prompt to the reference tier.
``eval.guarantee_check`` tests a saved router's target on newly labelled traffic and re-certifies
it there (``tierwise check``).

Why the calibration split is cut in two. The certificate is valid only if everything that maps
a prompt to a tier — predictor, probability calibrator, expected-cost model — and the ordered
knob grid are fixed independently of the labels it is tested on. ``Router.fit`` fits the
calibrator *and* builds the knob grid on the calibration split, so testing knobs on that same
split reuses its labels and the guarantee would not hold. ``certify_router`` therefore splits the
calibration prompts (grouped by prompt text, seeded) into

- a calibrator part (``1 − holdout``): the probability calibrator is re-fitted, the knob grid
  rebuilt and the naive calibration curve recomputed on it alone;
- a certification part (``holdout``, default half): used only to test the knobs, in the grid's
  fixed order from the most expensive behaviour to the cheapest.

The predictor and the cost model are fitted on the train split, so they are independent of both.
The price of soundness is a calibrator fitted on fewer labels and a certificate on fewer prompts.
Cross-fitting would use every label twice but would certify calibrators other than the one that
is deployed. Anything that *chooses* using the certification part's labels — e.g. tuning
hyper-parameters by scoring trials on the whole calibration split — voids the guarantee: score
trials on data outside ``split_for_certification(...).certification``.

Re-certifying a saved router on new labelled traffic needs no split: its calibrator and grid were
fitted on other data, so every new prompt can serve the test.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from tierwise.eval.certification._certify import Certificate, TargetConfig, as_target, certify
from tierwise.router.errors import ConfigError, DataError

if TYPE_CHECKING:
    from tierwise.eval.certification._certify import TargetLike
    from tierwise.eval.dataset import RoutingDataset
    from tierwise.router.core import Router

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

DEFAULT_HOLDOUT = 0.5

__all__ = [
    "DEFAULT_HOLDOUT",
    "CertificationSplit",
    "KnobSweep",
    "advice",
    "certify_predictions",
    "certify_router",
    "certify_sample",
    "reference_index",
    "require_known",
    "split_for_certification",
    "sweep_realized",
]


@dataclass(frozen=True)
class CertificationSplit:
    """Row indices of the calibration split: one part fits the calibrator, the other certifies."""

    calibrator: IntArray
    certification: IntArray


def split_for_certification(
    prompts: Sequence[str], holdout: float = DEFAULT_HOLDOUT, seed: int = 0
) -> CertificationSplit:
    """Seeded split of prompt *groups* (identical texts together), ``holdout`` to certification."""
    if not 0 < holdout < 1:
        raise ConfigError(f"`holdout` must be a fraction in (0, 1), got {holdout!r}")
    seen: dict[str, int] = {}
    groups = np.array([seen.setdefault(" ".join(p.split()).casefold(), len(seen)) for p in prompts])
    if len(seen) < 4:
        raise DataError(
            f"certification needs at least 4 distinct calibration prompts, got {len(seen)}; "
            "label more traffic"
        )
    order = np.random.default_rng(seed).permutation(len(seen))
    sizes = np.bincount(groups, minlength=len(seen))[order]
    cut = int(np.searchsorted(np.cumsum(sizes), (1.0 - holdout) * len(prompts)))
    cut = min(max(cut, 2), len(seen) - 2)  # both parts keep ≥ 2 groups
    in_cert = np.isin(groups, order[cut:])
    return CertificationSplit(
        calibrator=np.flatnonzero(~in_cert).astype(np.int64),
        certification=np.flatnonzero(in_cert).astype(np.int64),
    )


@dataclass(frozen=True)
class KnobSweep:
    """Realized outcomes of every knob on labelled prompts, most conservative knob first."""

    knobs: FloatArray  # (k,) the router's grid reversed: the fixed certification order
    choices: IntArray  # (k, n) chosen column per prompt
    quality: FloatArray  # (k, n) realized quality of the chosen answer
    cost: FloatArray  # (k, n) realized USD cost of the chosen answer


def sweep_realized(
    router: Router, P: FloatArray, C: FloatArray, quality: FloatArray, cost: FloatArray
) -> KnobSweep:
    """Route labelled prompts at every knob of ``router.knob_grid_`` and read off the outcomes."""
    knobs = np.asarray(router.knob_grid_, dtype=np.float64)[::-1].copy()
    choices = np.stack([router.policy_.choose(P, C, k) for k in knobs]).astype(np.int64)
    rows = np.arange(P.shape[0])
    q, c = quality[rows, choices], cost[rows, choices]
    require_known(q, choices, router.models_, "quality label")
    require_known(c, choices, router.models_, "cost")
    return KnobSweep(knobs, choices, q, c)


def require_known(values: FloatArray, choices: IntArray, models: Sequence[str], what: str) -> None:
    """DataError naming the knob, prompt and model if a routed value is unknown (NaN)."""
    bad = np.argwhere(~np.isfinite(values))
    if len(bad):
        k, i = (int(x) for x in bad[0])
        raise DataError(
            f"prompt row {i} is routed to {models[int(choices[k, i])]!r}, whose {what} is "
            f"unknown ({len(np.unique(bad[:, 1]))} such prompts); a guarantee needs the {what} "
            "of every answer it may route to: label those answers or drop those prompts"
        )


def reference_index(models: Sequence[str], quality: FloatArray, target: TargetConfig) -> int:
    """The reference tier, chosen before looking at the certification labels."""
    if target.reference == "best":
        known = np.isfinite(quality)
        means = np.where(known, quality, 0.0).sum(axis=0) / np.maximum(known.sum(axis=0), 1)
        return int(np.argmax(np.where(known.any(axis=0), means, -np.inf)))
    if target.reference not in models:
        raise ConfigError(
            f"`target.reference` must be 'best' or one of the router's models {list(models)}, "
            f"got {target.reference!r}"
        )
    return list(models).index(target.reference)


def _calibrated(router: Router, raw: FloatArray) -> FloatArray:
    return np.asarray(np.clip(router.calibrator_.transform(raw), 0.0, 1.0), dtype=np.float64)


def certify_sample(
    router: Router,
    P: FloatArray,
    C: FloatArray,
    quality: FloatArray,
    cost: FloatArray,
    target: TargetLike,
    reference: int,
    scheme: dict[str, Any],
) -> Certificate:
    """Certify ``router``'s grid on one labelled sample and deploy the result on ``router``.

    ``P``/``C``: the router's calibrated P(success) and expected cost on the sample (fitted on
    other data); ``quality``/``cost``: the sample's labels, columns in ``router.models_`` order;
    ``reference``: column of the reference tier. ``scheme`` is recorded in the certificate.
    """
    t = as_target(target)
    sweep = sweep_realized(router, P, C, quality, cost)
    ref_q, ref_c = quality[:, reference], cost[:, reference]
    if not (np.isfinite(ref_q).all() and np.isfinite(ref_c).all()):
        raise DataError(
            f"the reference tier {router.models_[reference]!r} has unknown labels or costs on "
            f"{int((~np.isfinite(ref_q) | ~np.isfinite(ref_c)).sum())} prompts; a guarantee "
            "needs them all"
        )
    cert = certify(sweep.quality, sweep.cost, sweep.knobs, ref_q, t, reference_cost=ref_c)
    record = cert.to_dict()
    record["reference_model"] = router.models_[reference]
    record["scheme"] = scheme
    if cert.fallback:
        # No knob certified: every prompt goes to the reference tier; the knob stays at the most
        # conservative value so an explicit --knob override still behaves sensibly.
        router.fallback_model_ = router.models_[reference]
        router.knob_ = float(sweep.knobs[0])
    else:
        router.fallback_model_ = None
        router.knob_ = float(cert.knob)
    router.certificate_ = record
    return cert


def certify_router(
    router: Router,
    calibration: RoutingDataset,
    target: TargetLike,
    *,
    holdout: float = DEFAULT_HOLDOUT,
    seed: int = 0,
    embeddings: npt.NDArray[Any] | None = None,
) -> Certificate:
    """Certify a fitted router's knob on its calibration split; returns the Certificate.

    ``router`` must be fitted with a predictor that never saw ``calibration`` (``Router.fit(train,
    calibration)`` is fine: its calibrator is re-fitted here). ``calibration`` is split (see the
    module docstring): ``1 − holdout`` re-fits the calibrator and knob grid, ``holdout`` certifies.
    ``target``: a TargetConfig or its YAML mapping. ``embeddings``: this router's embeddings of
    ``calibration.prompts`` when already computed. Sets ``router.knob_``, ``router.certificate_``
    and ``router.fallback_model_`` (None unless no knob passes).
    """
    from tierwise.router.expected_cost import prompt_chars

    router._check_fitted()
    t = as_target(target)
    if router.config.policy.knob is not None:
        raise ConfigError(
            f"`router.policy.knob` is fixed at {router.config.policy.knob:g}, so there is no knob "
            "to certify; remove it (the target sets the knob) or remove `target`"
        )
    if tuple(calibration.models) != tuple(router.models_):
        raise DataError(
            f"calibration models {list(calibration.models)} must be the router's "
            f"{list(router.models_)}, in that order"
        )
    X = router.embed(calibration.prompts) if embeddings is None else np.asarray(embeddings)
    if X.shape != (len(calibration.prompts), router.dim_):
        raise DataError(
            f"`embeddings` must be ({len(calibration.prompts)}, {router.dim_}), got {X.shape}"
        )
    raw = router.predictor_.predict_proba(X)
    C = router.cost_model_.predict(X, prompt_chars(tuple(calibration.prompts)))
    return certify_predictions(router, calibration, raw, C, t, holdout=holdout, seed=seed)


def certify_predictions(
    router: Router,
    calibration: RoutingDataset,
    raw: FloatArray,
    C: FloatArray,
    target: TargetLike,
    *,
    holdout: float = DEFAULT_HOLDOUT,
    seed: int = 0,
) -> Certificate:
    """``certify_router`` from the predictor's raw P(success) and the expected costs on
    ``calibration`` (for benchmarks that resplit the same predictions many times)."""
    from tierwise.router.calibration import Calibrator

    t = as_target(target)
    split = split_for_certification(calibration.prompts, holdout, seed)
    a, b = split.calibrator, split.certification
    part_a = calibration.subset(a)
    router.calibrator_ = Calibrator(method=router.config.calibration.method).fit(
        raw[a], part_a.quality
    )
    P = _calibrated(router, raw)
    cfg = router.config
    router.knob_grid_ = np.asarray(router.policy_.knob_grid(P[a], C[a], n=cfg.policy.grid_size))
    router._set_knob(part_a, P[a], C[a])  # naive curve and reference on the calibrator part
    quality = np.asarray(calibration.quality, dtype=np.float64)
    cost = np.asarray(calibration.cost, dtype=np.float64)
    ref = reference_index(router.models_, quality[a], t)
    scheme = {
        "name": "split",
        "holdout": holdout,
        "seed": seed,
        "n_calibrator": len(a),
        "n_certification": len(b),
        "note": "calibrator and knob grid fitted on the calibrator part; knobs tested only on "
        "the certification part",
    }
    return certify_sample(router, P[b], C[b], quality[b], cost[b], t, ref, scheme)


def advice(cert: Certificate) -> str | None:
    """What to try when no knob could be certified (None when one was)."""
    if not cert.fallback:
        return None
    if cert.target.method != "wsr":
        return (
            "Hint: add `method: wsr` to the target — a variance-adaptive test that needs far "
            "fewer prompts, above all for relative targets (router and reference mostly agree)."
        )
    return (
        f"Hint: {cert.n_calibration:,} prompts certified the knob; label more calibration "
        "traffic, lower the target or the confidence, or accept the reference tier."
    )
