"""Train a router from an experiment config: import, split, fit, evaluate once on test, save.

Shared by `tierwise train`, the tuning study (which re-fits many routers on cached embeddings)
and the demo. The test split is scored exactly once per trained router, beside every baseline.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tierwise.eval.certification import Certificate, CertificationSplit
from tierwise.eval.dataset import RoutingDataset
from tierwise.eval.reporting import ComparisonReport, compare_dataset
from tierwise.eval.splits import Splits, make_splits
from tierwise.experiments.config import ExperimentConfig, load_dataset
from tierwise.router.config import RouterConfig
from tierwise.router.core import Router
from tierwise.router.errors import ConfigError
from tierwise.router.pricing import PriceTable

DEFAULT_CACHE_DIR = ".tierwise-cache/embeddings"


@dataclass
class Prepared:
    """A dataset imported and split once, reused by every router fitted on it."""

    config: ExperimentConfig
    dataset: RoutingDataset
    splits: Splits
    train: RoutingDataset
    calibration: RoutingDataset
    test: RoutingDataset
    prices: PriceTable | None


@dataclass
class TrainResult:
    """A trained router, its comparison report on test and where its files went."""

    router: Router
    report: ComparisonReport
    policy_name: str
    operating_index: int
    seconds: float
    artifact: Path | None = None
    plot: Path | None = None
    certificate: Certificate | None = None  # set when the config has a `target`


def cache_dir(cfg: RouterConfig) -> str:
    """The embedding cache directory: the config's, ``$TIERWISE_CACHE_DIR`` or the default."""
    return cfg.cache_dir or os.environ.get("TIERWISE_CACHE_DIR") or DEFAULT_CACHE_DIR


def price_table(cfg: ExperimentConfig) -> PriceTable | None:
    """The config's price table, or None when it names none."""
    prices = cfg.data.cost.prices
    if prices is None:
        return None
    path = Path(prices)
    return PriceTable.load(path if path.is_absolute() else cfg.base_dir / path)


def prepare(cfg: ExperimentConfig, *, progress: bool = True) -> Prepared:
    """Load the data, split it and build what training needs (embeddings come later)."""
    ds = load_dataset(cfg, progress=progress)
    ds.require_complete_labels()
    if len(ds.models) < 2:
        from tierwise.router.errors import DataError

        raise DataError(
            f"routing needs at least 2 models, got {len(ds.models)} ({list(ds.models)}) in "
            f"{ds.report.source if ds.report else ds.name}; add the other models' columns to the "
            "log, or check `models` / `exclude_models` in the config"
        )
    splits = make_splits(ds, cfg.split)
    train, cal, test = splits.apply(ds)
    return Prepared(cfg, ds, splits, train, cal, test, price_table(cfg))


def policy_label(cfg: RouterConfig) -> str:
    """The router's row name in reports, e.g. ``router (knn/utility)``."""
    return f"router ({cfg.predictor.name}/{cfg.policy.name})"


def fit_router(
    prep: Prepared,
    cfg: RouterConfig,
    *,
    progress: bool = True,
    certification: CertificationSplit | None = None,
) -> Router:
    """Fit on train + calibration; with ``certification``, the certification part of the
    calibration split is held out of the fit entirely (cross-fitting pools the rest)."""
    rcfg = cfg.model_copy(update={"cache_dir": cache_dir(cfg)})
    cal = prep.calibration
    if certification is not None:
        cal = cal.subset(certification.calibrator)
    return Router(rcfg).fit(prep.train, cal, prices=prep.prices, progress=progress)


def certification_split(cfg: ExperimentConfig, prep: Prepared) -> CertificationSplit | None:
    """With a target and cross-fitting, the calibration rows certification keeps to itself."""
    if cfg.target is None or cfg.router.crossfit.folds < 2:
        return None
    from tierwise.eval.certification import split_for_certification

    return split_for_certification(prep.calibration.prompts, seed=cfg.split.seed)


def certify(
    router: Router, cfg: ExperimentConfig, prep: Prepared, split: CertificationSplit | None
) -> Certificate:
    """Certify the knob on the calibration split's held-out part. Cross-fitted: the calibrator
    part is scored with its out-of-fold predictions, the certification part (never seen by the
    predictor) with the shipped predictor."""
    from tierwise.eval.certification import certify_predictions, certify_router
    from tierwise.router.expected_cost import prompt_chars

    target, seed = cfg.target, cfg.split.seed
    if target is None:
        raise ConfigError("certification needs a `target:` section in the experiment config")
    if split is None:
        return certify_router(router, prep.calibration, target, seed=seed)
    X = router.embed(prep.calibration.prompts)
    raw = router.predictor_.predict_proba(X)
    raw[split.calibrator] = router.oof_predictions_[prep.train.n_prompts :]
    C = router.cost_model_.predict(X, prompt_chars(prep.calibration.prompts))
    return certify_predictions(router, prep.calibration, raw, C, target, seed=seed)


def evaluate_on_test(
    router: Router, prep: Prepared, *, progress: bool = True
) -> tuple[ComparisonReport, str, int]:
    """The router's swept curve and its chosen operating point on the test split, with baselines."""
    sweep = router.sweep(prep.test.prompts, progress=progress)
    name = policy_label(router.config)
    choices = sweep.choices
    if router.fallback_model_ is not None:
        # No knob was certified: the deployed router sends every prompt to the fallback tier.
        fallback = np.full((1, choices.shape[1]), router.models_.index(router.fallback_model_))
        choices = np.vstack([choices, fallback])
        index = len(choices) - 1
    else:
        index = int(np.flatnonzero(np.isclose(sweep.knobs, router.knob_))[0])
    report = compare_dataset(
        prep.test, {name: choices}, prep.config.evaluation, operating_points={name: index}
    )
    return report, name, index


def manifest_extra(prep: Prepared, report: ComparisonReport, name: str) -> dict[str, Any]:
    """What the artifact records about its training: dataset, splits and test scores."""
    return {
        "dataset": {
            "name": prep.dataset.name,
            "fingerprint": prep.dataset.fingerprint(),
            "train_fingerprint": prep.train.fingerprint(),
            "n_train": prep.train.n_prompts,
            "n_calibration": prep.calibration.n_prompts,
            "n_test": prep.test.n_prompts,
            "split": prep.config.split.model_dump(mode="json"),
        },
        "test_report": {"policy": name, "reference": report.reference},
    }


def train(
    cfg: ExperimentConfig,
    *,
    out_dir: Path | None = None,
    progress: bool = True,
    prep: Prepared | None = None,
) -> TrainResult:
    """Fit, certify (with a target) and score a router once on test beside the baselines."""
    t0 = time.perf_counter()
    prep = prep or prepare(cfg, progress=progress)
    split = certification_split(cfg, prep)
    router = fit_router(prep, cfg.router, progress=progress, certification=split)
    certificate = certify(router, cfg, prep, split) if cfg.target is not None else None
    report, name, index = evaluate_on_test(router, prep, progress=progress)
    result = TrainResult(router, report, name, index, time.perf_counter() - t0)
    result.certificate = certificate
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        metrics = {k: v for k, v in report.flat_metrics().items() if np.isfinite(v)}
        if certificate is not None:
            metrics.update(certificate.metrics())
        result.artifact = Path(
            router.save(
                str(out_dir / "router.tierwise"),
                metrics=metrics,
                extra=manifest_extra(prep, report, name),
            )
        )
        result.plot = report.plot(out_dir / "cost_quality.png", title=f"{cfg.name}: test split")
    return result
