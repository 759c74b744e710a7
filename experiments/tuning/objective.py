"""Score one RouterConfig on held-out prompts, as ``Router.fit`` would use it, honestly.

The pipeline is Router.fit's (predictor → calibrator → expected cost → policy → knob grid
swept → cheapest knob reaching the target), run on the workspace's cached matrices, with every
probability out of sample. The test split is never used. Two schemes (``tune.scheme``):

- ``cv`` (default): K-fold cross-validation over train + calibration, folds grouped by prompt
  text. Each fold's prompts are predicted by a predictor fitted on the other folds, and
  calibrated by a calibrator fitted on the other folds' out-of-fold predictions.
- ``cross_fit``: the calibration split only. The predictor is fitted on train (as in
  Router.fit); the calibrator is cross-fitted over K folds of the calibration split, since an
  isotonic map scored on its own rows looks better than it is. ``folds: 1`` reproduces
  Router.fit exactly (tests check that), optimism included.

Why ``cv`` is the default: a study picks the best of hundreds of trials, so it also picks the
luckiest noise of the prompts it scores on. On RouterBench the calibration split has ~630
prompts; the cost at 95 % of the best model's quality moves by tens of percent between
resamples of that size, and a study on it "found" routers 24 % cheaper on calibration that were
no better on test. Scoring on ~2,500 prompts (train + calibration) shrinks that noise. The
chosen routers are then re-fitted the normal way (predictor on train, calibrator and knob on
calibration) and scored once on the untouched test split.

Predictions are cached per (embedding space, predictor, parameters): trials differing only in
calibration or policy do not refit. kNN uses a precomputed neighbour table (fastknn.py).
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from tierwise.experiments.tuning.workspace import EmbeddingSpace, Workspace
from tierwise.router.calibration import Calibrator, brier_score, expected_calibration_error
from tierwise.router.config import RouterConfig
from tierwise.router.core import realized_curve, select_knob
from tierwise.router.policies import Policy, get_policy
from tierwise.router.predictors import QualityPredictor, get_predictor
from tierwise.router.predictors.base import FloatArray

LOW_FIDELITY = 1 / 3  # share of train a slow predictor is first fitted on when pruning
LATENCY_BATCH = 64  # prompts per timed routing call
_CACHE_SIZE = 32

StepHook = Callable[[int, float], None]


@dataclass
class Fitted:
    """A trial's out-of-sample predictions and one fitted predictor for timing."""

    raw: FloatArray  # uncalibrated out-of-sample P(success) on the scored prompts
    predictor: QualityPredictor | None  # one fitted predictor (for timing), None for fast kNN
    seconds: float  # fit (+ predict) time when it was computed


@dataclass
class Evaluation:
    """A trial's swept curve on the scored prompts, its chosen knob and its metrics."""

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
    """The trial's policy, fitted on the training costs as ``Router.fit`` fits it."""
    return get_policy(cfg.policy.name, **cfg.policy.params).fit(space.C_train)


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

    def fitted(
        self,
        cfg: RouterConfig,
        space: EmbeddingSpace,
        fraction: float = 1.0,
        on_fold: StepHook | None = None,
    ) -> Fitted:
        """Out-of-sample raw predictions on the scored prompts (cached).

        ``fraction`` < 1 fits on a seeded subsample of the training rows (a cheap first look
        for pruning); ``on_fold(f, brier so far)`` is called after each `cv` fold."""
        params = json.dumps(cfg.predictor.params, sort_keys=True, default=str)
        key = (id(space), cfg.predictor.name, params, cfg.seed, fraction)
        ws = self.ws
        hit = self._cache.get(key)
        if hit is not None:
            self._cache.move_to_end(key)
            if on_fold is not None and ws.cv:  # replay the running scores the fit reported
                for f in range(int(ws.folds.max()) + 1):
                    seen = ws.folds <= f
                    on_fold(f, brier_score(hit.raw[seen], ws.Y_eval[seen]))
            return hit
        t0 = time.perf_counter()
        pred = self._make_predictor(cfg)
        p = pred.get_params(deep=False)
        raw = np.empty_like(ws.Y_eval)
        last: QualityPredictor | None = None
        table = (
            ws.neighbours(space, str(p["store_dtype"]))
            if cfg.predictor.name == "knn" and fraction == 1.0 and int(p["k"]) <= ws.max_k
            else None
        )
        # The table holds at most as many neighbours as the smallest fitting set; past that, the
        # real predictor (which caps k at its own training size) answers.
        if table is not None and (not table.cross or int(p["k"]) <= table.max_k):
            raw = table.predict(p["k"], p["weights"], p["temperature"], p["prior_weight"])
        elif not ws.cv:
            rows = self._subsample(np.arange(len(space.X_train)), fraction)
            last = pred.fit(space.X_train[rows], ws.Y_train[rows])
            raw = last.predict_proba(space.X_eval)
        else:
            for f in range(int(ws.folds.max()) + 1):
                held = ws.folds == f
                rows = self._subsample(np.flatnonzero(~held), fraction)
                last = self._make_predictor(cfg).fit(space.X_eval[rows], ws.Y_eval[rows])
                raw[held] = last.predict_proba(space.X_eval[held])
                if on_fold is not None:
                    seen = ws.folds <= f
                    on_fold(f, brier_score(raw[seen], ws.Y_eval[seen]))
        out = Fitted(raw, last, time.perf_counter() - t0)
        self._cache[key] = out
        if len(self._cache) > _CACHE_SIZE:
            self._cache.popitem(last=False)
        return out

    def _subsample(self, rows: np.ndarray, fraction: float) -> np.ndarray:
        if fraction >= 1.0:
            return rows
        rng = np.random.default_rng([self.ws.tune.seed, 11])
        keep = max(2, int(len(rows) * fraction))
        return np.sort(rng.choice(rows, size=keep, replace=False))

    # -- calibration --------------------------------------------------------------------------
    def calibrate(self, raw: FloatArray, method: str) -> tuple[FloatArray, Calibrator]:
        """Out-of-fold calibrated probabilities (in-sample when there is one fold)."""
        folds, Y = self.ws.folds, self.ws.Y_eval
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
        """Score ``cfg``; ``on_step(step, brier)`` may raise to stop early (pruning).

        Steps: cv reports the running out-of-fold Brier score after each fold of a slow
        predictor (0 … K-1); cross_fit reports a fit on a third of train (0), then the full
        fit (1). kNN, fast either way, reports its final Brier score at the last step."""
        t0 = time.perf_counter()
        ws = self.ws
        space = ws.space_for(cfg)
        slow = cfg.predictor.name != "knn"
        last_step = int(ws.folds.max()) if ws.cv else 1
        if on_step is not None and prune_cheap and slow and not ws.cv:
            low = self.fitted(cfg, space, LOW_FIDELITY)
            on_step(0, brier_score(low.raw, ws.Y_eval))
        per_fold = on_step if (on_step is not None and prune_cheap and slow and ws.cv) else None
        fit = self.fitted(cfg, space, on_fold=per_fold)
        raw_brier = brier_score(fit.raw, ws.Y_eval)
        if on_step is not None and per_fold is None:
            on_step(last_step, raw_brier)
        P, calibrator = self.calibrate(fit.raw, cfg.calibration.method)
        policy = make_policy(cfg, space)
        knobs = np.asarray(policy.knob_grid(P, space.C_eval, n=cfg.policy.grid_size))
        choices = np.stack([policy.choose(P, space.C_eval, k) for k in knobs])
        curve = realized_curve(ws.q_eval, ws.cost_eval, choices)
        target = ws.target_quality(cfg.policy.select.quality_fraction)
        index = select_knob(knobs, curve, target)
        seconds = time.perf_counter() - t0
        latency = self._latency_ms(cfg, fit, calibrator, policy, space, float(knobs[index]))
        metrics = self._metrics(curve, index, target)
        metrics.update(
            brier=brier_score(P, ws.Y_eval),
            ece=expected_calibration_error(P, ws.Y_eval),
            raw_brier=raw_brier,
            knob=float(knobs[index]),
            routing_latency_ms=latency,
            fit_seconds=seconds,
            predictor_fit_seconds=fit.seconds,
            n_scored_prompts=float(len(ws.Y_eval)),
        )
        feasible = bool(curve[index, 0] >= target - 1e-12)
        return Evaluation(cfg, knobs, choices, curve, index, target, feasible, metrics)

    def _metrics(self, curve: FloatArray, index: int, target: float) -> dict[str, float]:
        from tierwise.eval.metrics import aiq, gap_closed

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
        embedding space (its cost is the similarity sort over the training prompts, whatever
        k); calibration and policy are timed every trial."""
        X, C = space.X_cal[:LATENCY_BATCH], space.C_eval[:LATENCY_BATCH]
        key: tuple[Any, ...] = (id(space), cfg.predictor.name)
        if fit.predictor is not None:
            key += (id(fit),)
        if key not in self._predict_ms:
            pred = fit.predictor
            if pred is None:  # fast kNN: time the real predictor, fitted on train as deployed
                pred = self._make_predictor(cfg).fit(space.X_train, self.ws.Y_train)
            t0 = time.perf_counter()
            pred.predict_proba(X)
            self._predict_ms[key] = 1000.0 * (time.perf_counter() - t0) / len(X)
        raw = fit.raw[:LATENCY_BATCH]
        t0 = time.perf_counter()
        P = calibrator.transform(raw)
        policy.choose(np.clip(P, 0.0, 1.0), C, knob)
        return self._predict_ms[key] + 1000.0 * (time.perf_counter() - t0) / len(raw)
