"""Fit every configuration on train + calibration and score it once on test, per seed."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tierwise.eval.dataset import RoutingDataset
from tierwise.eval.reporting import ComparisonReport, EvaluationConfig, Row, compare_dataset
from tierwise.eval.splits import make_splits
from tierwise.experiments.bench.data import BenchData, Embeddings
from tierwise.experiments.bench.spec import router_config, with_overrides
from tierwise.experiments.training import price_table
from tierwise.router.core import Router
from tierwise.router.expected_cost import prompt_chars


@dataclass
class Result:
    """One configuration on one split seed, scored on that seed's test split.

    Fractions, not percents: ``gap_closed`` (zero router 0, oracle 1), ``cost_at_95`` /
    ``cost_at_100`` (cost where the swept frontier reaches 95% / 100% of the best single model's
    test quality, as a fraction of that model's cost; None = never), ``op_quality`` /
    ``op_cost`` (the knob chosen on calibration, scored on test, as fractions of the best single
    model's quality and cost); ``op_meets_bar``: that point reaches the quality bar it was
    chosen for (``policy.select.quality_fraction`` of the best model's test quality).
    """

    dataset: str
    predictor: str
    policy: str
    seed: int
    aiq: float
    gap_closed: float
    cost_at_95: float | None
    cost_at_100: float | None
    op_quality: float
    op_cost: float
    op_meets_bar: bool
    zero_aiq: float
    oracle_aiq: float
    normalization: str = "default"
    calibration: str = "default"
    variant: str = ""
    cal_gap: float = float("nan")
    fallback: bool = False
    fit_seconds: float = 0.0
    n_train: int = 0
    n_test: int = 0
    reference: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def _cost_fraction(report: ComparisonReport, row: Row, label: str) -> float | None:
    ref = report.row(report.reference).cost_per_1k
    v = row.cost_at.get(label)
    return None if v is None or ref <= 0 else float(v / ref)


def score(
    router: Router, ds: RoutingDataset, X: np.ndarray, name: str
) -> tuple[ComparisonReport, Row]:
    """The router's swept curve on ``ds`` with its own knob as the operating point."""
    P, C = router.predict(X, prompt_chars(ds.prompts))
    choices = np.stack([router.policy_.choose(P, C, k) for k in router.knob_grid_])
    op = int(np.flatnonzero(np.isclose(router.knob_grid_, router.knob_))[0])
    report = compare_dataset(
        ds, {name: choices}, EvaluationConfig(bootstrap_samples=0), operating_points={name: op}
    )
    return report, report.row(name)


@dataclass
class Grid:
    """What to run on every dataset: labels (see ``spec``) and router overrides."""

    seeds: Sequence[int]
    predictors: Sequence[str] = ("default", "knn")
    policies: Sequence[str] = ("default",)
    normalizations: Sequence[str] = ("default",)
    calibrations: Sequence[str] = ("default",)
    overrides: dict[str, Any] = field(default_factory=dict)
    variant: str = ""

    def configurations(self) -> list[tuple[str, str, str, str]]:
        return [
            (n, p, pol, c)
            for n in self.normalizations
            for p in self.predictors
            for pol in self.policies
            for c in self.calibrations
        ]


def run_dataset(
    data: BenchData,
    embeddings: Embeddings,
    grid: Grid,
    *,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> list[Result]:
    """Every configuration × seed of ``grid`` on ``data``; the test split is scored once each."""
    from tqdm.auto import tqdm

    cfg = data.config
    ds = data.dataset
    base = with_overrides(cfg.router, grid.overrides)
    prices = price_table(cfg)
    norms = {n: base.normalization.mode if n == "default" else n for n in grid.normalizations}
    mats = {
        mode: embeddings.matrix(ds.prompts, mode, progress=progress) for mode in set(norms.values())
    }
    configs = grid.configurations()
    bar = tqdm(
        total=len(grid.seeds) * len(configs), desc=data.key, unit="fit", disable=not progress
    )
    out: list[Result] = []
    for seed in grid.seeds:
        splits = make_splits(ds, cfg.split.model_copy(update={"seed": seed}))
        tr, ca, te = splits.apply(ds)
        for norm, pred, pol, calib in configs:
            X = mats[norms[norm]]
            rcfg = router_config(base, pred, pol, norm, calib, seed)
            router = Router(rcfg, embedder=embeddings.embedder)
            t0 = time.perf_counter()
            router.fit(tr, ca, prices=prices, embeddings=(X[splits.train], X[splits.calibration]))
            fit_s = time.perf_counter() - t0
            name = f"{pred}/{pol}/{calib}"
            rep, row = score(router, te, X[splits.test], name)
            _, crow = score(router, ca, X[splits.calibration], name)
            ref = rep.row(rep.reference)
            op_q = float(row.quality / ref.quality) if ref.quality > 0 else float("nan")
            res = Result(
                dataset=data.key,
                predictor=pred,
                policy=pol,
                seed=seed,
                aiq=float(row.aiq),
                gap_closed=float(row.gap_closed),
                cost_at_95=_cost_fraction(rep, row, "95%"),
                cost_at_100=_cost_fraction(rep, row, "100%"),
                op_quality=op_q,
                op_cost=float(row.cost_per_1k / ref.cost_per_1k) if ref.cost_per_1k else 0.0,
                op_meets_bar=bool(
                    row.quality >= rcfg.policy.select.quality_fraction * ref.quality - 1e-12
                ),
                zero_aiq=float(rep.row("zero router").aiq),
                oracle_aiq=float(rep.row("oracle").aiq),
                normalization=norms[norm] if norm != "default" else "default",
                calibration=calib,
                variant=grid.variant,
                cal_gap=float(crow.gap_closed),
                fallback=bool(getattr(router, "static_fallback_", False)),
                fit_seconds=fit_s,
                n_train=tr.n_prompts,
                n_test=te.n_prompts,
                reference=rep.reference,
            )
            out.append(res)
            if log is not None:
                log(
                    f"{data.key} seed={seed} {name} {grid.variant} gap "
                    f"{100 * res.gap_closed:5.1f}% cal-gap {100 * res.cal_gap:5.1f}% "
                    f"op {100 * res.op_quality:.1f}/{100 * res.op_cost:.1f}% "
                    f"fallback={res.fallback} fit {fit_s:.1f}s"
                )
            bar.update(1)
    bar.close()
    return out
