"""Per-tier probability calibration, fitted on the calibration split, applied in pure numpy.

Why: the router compares predicted P(success) with a quality bar ("cheapest tier with p ≥ 0.8")
and across tiers ("is the cheap tier's 0.7 worse than the big one's 0.9?"). A raw score from
kNN shrinkage, an L2-penalised regression or an early-stopped network is ordered sensibly but
its *numbers* are not frequencies: a bar of 0.8 on it means nothing, and two tiers' scores are
not comparable. Calibrating each tier on held-out data makes p = 0.8 mean "succeeds 80 % of the
time", so one threshold is meaningful for every tier and a tuned threshold transfers.

Methods:
- ``isotonic``: monotone, non-parametric (scikit-learn's PAV at fit time, exported as
  breakpoints and applied with ``np.interp``). Needs a few hundred labels per tier; produces
  flat steps (ties).
- ``centered_isotonic``: the same fit, interpolated through each step's centre (centred
  isotonic regression, Oron & Flournoy 2017): strictly increasing between steps, so it keeps
  the predictor's ranking inside a step instead of tying it.
- ``platt``: ``sigmoid(a·logit(p) + b)``; two parameters per tier, robust with little data.
- ``none``: identity (for predictors already calibrated, or for comparison).
A tier with fewer than ``min_samples`` known labels keeps the identity, recorded in
``methods_``.

Measured on RouterBench (MiniLM, ~630 calibration prompts, 3 grouped splits; see
scripts/explore_policies.py): predictors trained with cross-entropy (logreg, mlp, mf) are
already close to calibrated there, and a non-parametric map fitted on a few hundred labels
adds noise (isotonic: Brier +0.002, AIQ -0.003 on average). Platt fixes the predictors that
are off (kNN with k=20: ECE 0.044 -> 0.023; logreg C=10: 0.032 -> 0.023) at almost no cost
elsewhere, hence the default. Use isotonic with thousands of calibration labels per tier.
"""

from __future__ import annotations

from typing import Any, Self

import numpy as np

from tierwise.router.errors import ArtifactError, ConfigError, DataError
from tierwise.router.predictors.base import (
    FloatArray,
    check_labels,
    check_sample_weight,
    logit,
    sigmoid,
)
from tierwise.router.state import State, StateExport

METHODS = ("isotonic", "centered_isotonic", "platt", "none")


def _check_probs(P: Any, name: str = "P") -> FloatArray:
    arr = np.asarray(P, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] == 0:
        raise DataError(
            f"`{name}` must be a 2-D (n_prompts, n_models) matrix, got shape {arr.shape}"
        )
    bad = ~np.isfinite(arr) | (arr < 0.0) | (arr > 1.0)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise DataError(
            f"`{name}` must hold probabilities in [0, 1], got {arr[r, c]} at row {r}, column {c}"
        )
    return arr


def _isotonic_blocks(
    p: FloatArray, y: FloatArray, w: FloatArray
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """scikit-learn's isotonic fit, as (step breakpoints x, y) and (step centres x, y)."""
    from sklearn.isotonic import IsotonicRegression

    iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip", increasing=True)
    iso.fit(p, y, sample_weight=w)
    bx, by = np.asarray(iso.X_thresholds_, float), np.asarray(iso.y_thresholds_, float)
    # Steps: runs of equal fitted value over the sorted inputs; centre = weighted mean input.
    order = np.argsort(p, kind="stable")
    ps, ws, fitted = p[order], w[order], iso.predict(p[order])
    starts = np.flatnonzero(np.r_[True, np.diff(fitted) != 0])
    wsum = np.add.reduceat(ws, starts)
    safe = np.where(wsum > 0, wsum, 1.0)
    cx = np.where(wsum > 0, np.add.reduceat(ws * ps, starts) / safe, ps[starts])
    cy = fitted[starts]
    return bx, by, cx, cy


def _platt(p: FloatArray, y: FloatArray, w: FloatArray) -> tuple[float, float]:
    """Newton's method on the weighted cross-entropy with Platt's smoothed targets."""
    n_pos, n_neg = float(np.sum(w * y)), float(np.sum(w * (1 - y)))
    hi, lo = (n_pos + 1.0) / (n_pos + 2.0), 1.0 / (n_neg + 2.0)
    t = lo + y * (hi - lo)  # keeps one-class tiers finite, and graded labels in range
    s = logit(p)
    F = np.column_stack([s, np.ones_like(s)])
    theta = np.array([1.0, 0.0])
    for _ in range(100):
        q = sigmoid(F @ theta)
        grad = F.T @ (w * (q - t)) + 1e-6 * theta
        H = (F * (w * q * (1 - q))[:, None]).T @ F + 1e-6 * np.eye(2)
        step = np.linalg.solve(H, grad)
        theta = theta - step
        if np.max(np.abs(step)) < 1e-10:
            break
    return float(theta[0]), float(theta[1])


class Calibrator(StateExport):
    """Per-tier calibration map ``P -> calibrated P``.

    Fitted on calibration predictions ``P`` and labels ``Y`` (``(n, m)``, NaN = unknown label);
    ``method``: one of ``METHODS`` (see the module docstring), per tier; a tier with fewer
    than ``min_samples`` known labels keeps the identity.

    >>> import numpy as np
    >>> from tierwise.router.calibration import Calibrator
    >>> rng = np.random.default_rng(0)
    >>> P = rng.uniform(size=(500, 1))  # a predictor that is right half as often as it says
    >>> Y = (rng.uniform(size=(500, 1)) < P / 2).astype(float)
    >>> calibrator = Calibrator("isotonic").fit(P, Y)
    >>> 0.3 < float(calibrator.transform([[0.8]])[0, 0]) < 0.5
    True
    """

    def __init__(self, method: str = "platt", min_samples: int = 10) -> None:
        self.method = method
        self.min_samples = min_samples

    @property
    def params(self) -> dict[str, Any]:
        return {"method": self.method, "min_samples": self.min_samples}

    def _validate(self) -> None:
        if self.method not in METHODS:
            raise ConfigError(
                f"`calibration.method` must be one of {list(METHODS)}, got {self.method!r}"
            )
        if (
            isinstance(self.min_samples, bool)
            or not isinstance(self.min_samples, int)
            or self.min_samples < 1
        ):
            raise ConfigError(
                f"`calibration.min_samples` must be an integer >= 1, got {self.min_samples!r}"
            )

    def fit(self, P: Any, Y: Any, sample_weight: Any = None) -> Calibrator:
        """Fit one map per tier on held-out predictions ``P`` and labels ``Y`` (NaN = unknown)."""
        self._validate()
        Pa = _check_probs(P)
        Ya = np.asarray(Y, dtype=np.float64)
        if Ya.shape != Pa.shape:
            raise DataError(f"`Y` must have the shape of `P` {Pa.shape}, got {Ya.shape}")
        # Labels are validated like training labels, except a tier may lack labels here.
        check_labels(np.where(np.isnan(Ya).all(axis=0), 0.0, Ya), Pa.shape[0])
        w = check_sample_weight(sample_weight, Pa.shape[0])
        m = Pa.shape[1]
        self.n_models_ = m
        self.methods_: list[str] = []
        xs: list[FloatArray] = []
        ys: list[FloatArray] = []
        self.platt_ = np.tile([1.0, 0.0], (m, 1))
        for j in range(m):
            known = ~np.isnan(Ya[:, j]) & (w > 0)
            method = self.method if known.sum() >= self.min_samples else "none"
            p, y, wj = Pa[known, j], Ya[known, j], w[known]
            bx, by = np.array([0.0, 1.0]), np.array([0.0, 1.0])  # identity
            if method in ("isotonic", "centered_isotonic"):
                sx, sy, cx, cy = _isotonic_blocks(p, y, wj)
                bx, by = (sx, sy) if method == "isotonic" else (cx, cy)
            elif method == "platt":
                self.platt_[j] = _platt(p, y, wj)
            self.methods_.append(method)
            xs.append(bx)
            ys.append(by)
        self.breaks_x_ = np.concatenate(xs)
        self.breaks_y_ = np.concatenate(ys)
        self.offsets_ = np.cumsum([0] + [len(x) for x in xs]).astype(np.int64)
        return self

    def transform(self, P: Any) -> FloatArray:
        if not hasattr(self, "n_models_"):
            from tierwise.router.predictors.base import NotFittedError

            raise NotFittedError(
                "this Calibrator is not fitted yet; call fit(P, Y) or load a state first"
            )
        Pa = _check_probs(P)
        if Pa.shape[1] != self.n_models_:
            raise DataError(f"`P` must have {self.n_models_} model columns, got {Pa.shape[1]}")
        out = np.empty_like(Pa)
        for j, method in enumerate(self.methods_):
            if method == "platt":
                a, b = self.platt_[j]
                out[:, j] = sigmoid(a * logit(Pa[:, j]) + b)
            elif method == "none":
                out[:, j] = Pa[:, j]
            else:
                lo, hi = self.offsets_[j], self.offsets_[j + 1]
                out[:, j] = np.interp(Pa[:, j], self.breaks_x_[lo:hi], self.breaks_y_[lo:hi])
        return np.clip(out, 0.0, 1.0)

    def fit_transform(self, P: Any, Y: Any, sample_weight: Any = None) -> FloatArray:
        return self.fit(P, Y, sample_weight).transform(P)

    state_kind = "calibrator"

    def _state(self) -> State:
        if not hasattr(self, "n_models_"):
            from tierwise.router.predictors.base import NotFittedError

            raise NotFittedError("this Calibrator is not fitted yet; nothing to export")
        params = {**self.params, "n_models": self.n_models_, "methods": list(self.methods_)}
        arrays = {
            "breaks_x": self.breaks_x_,
            "breaks_y": self.breaks_y_,
            "offsets": self.offsets_,
            "platt": self.platt_,
        }
        return params, arrays

    @classmethod
    def _from_state(cls, params: dict[str, Any], arrays: dict[str, np.ndarray]) -> Self:
        obj = cls(method=params["method"], min_samples=int(params["min_samples"]))
        obj._validate()
        m = int(params["n_models"])
        methods = [str(s) for s in params["methods"]]
        offsets = np.asarray(arrays["offsets"], dtype=np.int64)
        bx = np.asarray(arrays["breaks_x"], dtype=np.float64)
        by = np.asarray(arrays["breaks_y"], dtype=np.float64)
        platt = np.asarray(arrays["platt"], dtype=np.float64)
        ok = (
            len(methods) == m
            and set(methods) <= set(METHODS)
            and offsets.shape == (m + 1,)
            and offsets[0] == 0
            and np.all(np.diff(offsets) >= 1)
            and bx.shape == by.shape == (int(offsets[-1]),)
            and platt.shape == (m, 2)
            and np.all(np.isfinite(bx))
            and np.all(np.isfinite(by))
            and np.all(np.isfinite(platt))
        )
        if not ok:
            raise ArtifactError(
                "calibrator state arrays are inconsistent; the artifact is corrupted"
            )
        obj.n_models_, obj.methods_ = m, methods
        obj.breaks_x_, obj.breaks_y_, obj.offsets_, obj.platt_ = bx, by, offsets, platt
        return obj


def brier_score(P: Any, Y: Any) -> float:
    """Mean squared error between P and the known labels."""
    Pa, Ya = np.asarray(P, float), np.asarray(Y, float)
    known = ~np.isnan(Ya)
    return float(np.mean((Pa[known] - Ya[known]) ** 2))


def expected_calibration_error(P: Any, Y: Any, n_bins: int = 10) -> float:
    """Weighted mean |mean label − mean prediction| over equal-width probability bins."""
    Pa, Ya = np.asarray(P, float), np.asarray(Y, float)
    known = ~np.isnan(Ya)
    p, y = Pa[known], Ya[known]
    bins = np.minimum((p * n_bins).astype(int), n_bins - 1)
    total = 0.0
    for b in range(n_bins):
        sel = bins == b
        if sel.any():
            total += sel.sum() * abs(float(y[sel].mean()) - float(p[sel].mean()))
    return total / max(len(p), 1)
