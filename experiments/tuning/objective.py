"""Score one RouterConfig on the calibration split, as ``Router.fit`` would use it, honestly.

The pipeline is Router.fit's (predictor on train → calibrator → expected cost → policy → knob
grid swept on calibration → cheapest knob reaching the target), run on the workspace's cached
matrices. One change, on purpose: the calibration split both fits the calibrator and scores
the trial, and an isotonic map scored on its own rows looks better than it is. So the
calibrator is **cross-fitted**: the calibration prompts are cut into ``calibration_folds``
groups (identical texts together) and each group's probabilities come from a calibrator fitted
on the others. The predictor never sees calibration rows, so every score a trial gets is out of
sample; what remains optimistic is picking the best of many trials on the same rows, which is
why the chosen routers are then scored once on the untouched test split. ``calibration_folds:
1`` reproduces Router.fit exactly (tests check that).

Predictions are cached per (embedding space, predictor, parameters): trials differing only in
calibration or policy do not refit. kNN uses the precomputed neighbour table (fastknn.py).
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from experiments.tuning.workspace import EmbeddingSpace, Workspace
from router.calibration import Calibrator, brier_score, expected_calibration_error
from router.config import RouterConfig
from router.core import realized_curve, select_knob
from router.policies import Policy, get_policy
from router.predictors import QualityPredictor, get_predictor
from router.predictors.base import FloatArray

LOW_FIDELITY = 1 / 3  # share of train a slow predictor is first fitted on when pruning
LATENCY_BATCH = 64  # prompts per timed routing call
_CACHE_SIZE = 32

StepHook = Callable[[int, float], None]


@dataclass
class Fitted:
    raw_cal: FloatArray  # uncalibrated P(success) on the calibration split
    predictor: QualityPredictor
    seconds: float  # fit (+ predict) time when it was computed


@dataclass
class Evaluation:
    config: RouterConfig
    knobs: FloatArray
    choices: np.ndarray  # (k, n_cal): the tier each calibration prompt gets at each knob
    curve: FloatArray  # (k, 2): mean quality and mean cost per query, per knob
    index: int  # the chosen knob
    target_quality: float
    feasible: bool
    metrics: dict[str, float]

    @property
    def quality(self) -> float:
        return float(self.curve[self.index, 0])

    @property
    def cost_per_1k(self) -> float:
        return 1000.0 * float(self.curve[self.index, 1])


def make_policy(cfg: RouterConfig, space: EmbeddingSpace) -> Policy:
    params = dict(cfg.policy.params)
    if cfg.policy.name == "utility" and "cost_scale" not in params:
        params["cost_scale"] = space.cost_scale  # as Router._make_policy
    return get_policy(cfg.policy.name, **params)


class TrialEvaluator:
    """Evaluates RouterConfigs on a workspace; keeps a small cache of predictor outputs."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self._cache: OrderedDict[tuple[Any, ...], Fitted] = OrderedDict()
        self._predict_ms: dict[tuple[Any, ...], float] = {}

    # -- predictor ----------------------------------------------------------------------------
    def _make_predictor(self, cfg: RouterConfig) -> QualityPredictor:
        params = dict(cfg.predictor.params)
        pred = get_predictor(cfg.predictor.name, **params)
        if "random_state" in pred.get_params() and "random_state" not in params:
            pred.set_params(random_state=cfg.seed)  # as Router._make_predictor
        return pred

    def fitted(self, cfg: RouterConfig, space: EmbeddingSpace, fraction: float = 1.0) -> Fitted:
        params = json.dumps(cfg.predictor.params, sort_keys=True, default=str)
        key = (space.embedder, id(space), cfg.predictor.name, params, cfg.seed, fraction)
        hit = self._cache.get(key)
        if hit is not None:
            self._cache.move_to_end(key)
            return hit
        t0 = time.perf_counter()
        pred = self._make_predictor(cfg)
        if cfg.predictor.name == "knn" and fraction == 1.0 and int(pred.k) <= self.ws.max_k:  # type: ignore[attr-defined]
            p = pred.get_params(deep=False)
            table = self.ws.neighbours(space, str(p["store_dtype"]))
            raw = table.predict(p["k"], p["weights"], p["temperature"], p["prior_weight"])
            pred = table.fitted_predictor(p)
        else:
            rows = np.arange(len(space.X_train))
            if fraction < 1.0:
                rng = np.random.default_rng([self.ws.tune.seed, 11])
                rows = np.sort(
                    rng.choice(rows, size=max(2, int(len(rows) * fraction)), replace=False)
                )
            pred.fit(space.X_train[rows], self.ws.Y_train[rows])
            raw = pred.predict_proba(space.X_cal)
        out = Fitted(raw, pred, time.perf_counter() - t0)
        self._cache[key] = out
        if len(self._cache) > _CACHE_SIZE:
            self._cache.popitem(last=False)
        return out

    # -- calibration --------------------------------------------------------------------------
    def calibrate(self, raw: FloatArray, method: str) -> tuple[FloatArray, Calibrator]:
        """Out-of-fold calibrated probabilities (in-sample when there is one fold)."""
        folds, Y = self.ws.folds, self.ws.Y_cal
        k = int(folds.max()) + 1
        if k == 1 or method == "none":
            cal = Calibrator(method=method).fit(raw, Y)
            return cal.transform(raw), cal
        P = np.empty_like(raw)
        for f in range(k):
            held = folds == f
            cal = Calibrator(method=method).fit(raw[~held], Y[~held])
            P[held] = cal.transform(raw[held])
        return P, cal

    # -- the whole trial ----------------------------------------------------------------------
    def evaluate(
        self, cfg: RouterConfig, *, on_step: StepHook | None = None, prune_cheap: bool = False
    ) -> Evaluation:
        """Score ``cfg``; ``on_step(step, brier)`` may raise to stop early (pruning)."""
        t0 = time.perf_counter()
        ws = self.ws
        space = ws.space_for(cfg)
        if on_step is not None and prune_cheap and cfg.predictor.name != "knn":
            low = self.fitted(cfg, space, LOW_FIDELITY)
            on_step(0, brier_score(low.raw_cal, ws.Y_cal))
        fit = self.fitted(cfg, space)
        raw_brier = brier_score(fit.raw_cal, ws.Y_cal)
        if on_step is not None:
            on_step(1, raw_brier)
        P, calibrator = self.calibrate(fit.raw_cal, cfg.calibration.method)
        policy = make_policy(cfg, space)
        knobs = np.asarray(policy.knob_grid(P, space.C_cal, n=cfg.policy.grid_size))
        choices = np.stack([policy.choose(P, space.C_cal, k) for k in knobs])
        curve = realized_curve(ws.q_cal, ws.cost_cal, choices)
        target = cfg.policy.select.quality_fraction * ws.ref_quality
        index = select_knob(knobs, curve, target)
        seconds = time.perf_counter() - t0
        latency = self._latency_ms(cfg, fit, calibrator, policy, space, float(knobs[index]))
        metrics = self._metrics(curve, index, target)
        metrics.update(
            brier=brier_score(P, ws.Y_cal),
            ece=expected_calibration_error(P, ws.Y_cal),
            raw_brier=raw_brier,
            knob=float(knobs[index]),
            routing_latency_ms=latency,
            fit_seconds=seconds,
            predictor_fit_seconds=fit.seconds,
        )
        feasible = bool(curve[index, 0] >= target - 1e-12)
        return Evaluation(cfg, knobs, choices, curve, index, target, feasible, metrics)

    def _metrics(self, curve: FloatArray, index: int, target: float) -> dict[str, float]:
        from eval.metrics import aiq, gap_closed

        ws = self.ws
        q, c = float(curve[index, 0]), float(curve[index, 1])
        a = aiq(curve[:, 1], curve[:, 0], ws.c_max)
        ok = curve[:, 0] >= target - 1e-12
        out = {
            "quality": q,
            "cost_per_1k": 1000.0 * c,
            "pct_ref_cost": 100.0 * c / ws.ref_cost if ws.ref_cost > 0 else float("nan"),
            "pct_ref_quality": 100.0 * q / ws.ref_quality if ws.ref_quality > 0 else float("nan"),
            "aiq": a,
            "gap_closed": gap_closed(a, ws.aiq_zero, ws.aiq_oracle),
            "target_quality": target,
            "max_quality": float(curve[:, 0].max()),
        }
        if ok.any():
            out["cost_at_target"] = 1000.0 * float(curve[ok, 1].min())
        return out

    def _latency_ms(
        self,
        cfg: RouterConfig,
        fit: Fitted,
        calibrator: Calibrator,
        policy: Policy,
        space: EmbeddingSpace,
        knob: float,
    ) -> float:
        """Milliseconds per prompt of a routing decision after embedding (batch of 64).

        The predictor's share is timed once per fitted predictor, and for kNN once per
        embedding space (its cost is the similarity sort, whatever k); calibration and policy
        are timed every trial."""
        X, C = space.X_cal[:LATENCY_BATCH], space.C_cal[:LATENCY_BATCH]
        key: tuple[Any, ...] = (id(space), cfg.predictor.name)
        if cfg.predictor.name != "knn":
            key += (id(fit),)
        if key not in self._predict_ms:
            t0 = time.perf_counter()
            fit.predictor.predict_proba(X)
            self._predict_ms[key] = 1000.0 * (time.perf_counter() - t0) / len(X)
        raw = fit.raw_cal[:LATENCY_BATCH]
        t0 = time.perf_counter()
        P = calibrator.transform(raw)
        policy.choose(np.clip(P, 0.0, 1.0), C, knob)
        return self._predict_ms[key] + 1000.0 * (time.perf_counter() - t0) / len(X)
