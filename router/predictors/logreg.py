"""One L2-regularised logistic regression per model tier; inference is ``sigmoid(X W^T + b)``.

Graded labels (quality in (0, 1)) are fitted as soft targets: each prompt enters once as a
success with weight y and once as a failure with weight 1 - y, which is exactly the
cross-entropy with target y, so the prediction is the expected quality. Binary labels need no
duplicate rows (zero-weight rows are dropped).

A tier whose known training labels are all one class gets a constant, Laplace-smoothed
probability instead of a fit (scikit-learn refuses one-class data, and a perfect record on a
few hundred prompts does not make failure impossible).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tierwise.router.predictors.base import (
    FloatArray,
    QualityPredictor,
    logit,
    require_float,
    require_int,
    sigmoid,
)
from tierwise.router.predictors.registry import register_predictor


def smoothed_mean(y: FloatArray, w: FloatArray) -> float:
    """The weighted mean of ``y`` with half a success and half a failure added (never 0 or 1)."""
    return float((np.sum(w * y) + 0.5) / (np.sum(w) + 1.0))


@register_predictor("logreg")
class LogRegPredictor(QualityPredictor):
    """Per-model logistic regression.

    Parameters
    ----------
    C: inverse L2 strength (scikit-learn's convention; smaller = stronger regularisation).
    max_iter: L-BFGS iterations.
    tol: L-BFGS tolerance.

    >>> import numpy as np
    >>> from tierwise.router.predictors import get_predictor
    >>> X = np.random.default_rng(0).normal(size=(200, 8))  # prompt embeddings
    >>> Y = np.stack([X[:, 0] > 0, np.ones(200)], axis=1).astype(float)  # small tier: if x0 > 0
    >>> predictor = get_predictor("logreg").fit(X, Y)
    >>> new = np.zeros((2, 8)); new[:, 0] = [2.0, -2.0]
    >>> (predictor.predict_proba(new)[:, 0] > 0.5).tolist()  # P(small tier succeeds) > 1/2?
    [True, False]
    """

    def __init__(self, C: float = 1.0, max_iter: int = 1000, tol: float = 1e-4) -> None:
        self.C = C
        self.max_iter = max_iter
        self.tol = tol

    def _validate_params(self) -> None:
        require_float("logreg", "C", self.C, 0.0, open_low=True)
        require_int("logreg", "max_iter", self.max_iter, 1)
        require_float("logreg", "tol", self.tol, 0.0, open_low=True)

    def _fit(self, X: FloatArray, Y: FloatArray, sample_weight: FloatArray) -> None:
        import warnings

        from sklearn.exceptions import ConvergenceWarning
        from sklearn.linear_model import LogisticRegression

        d, m = X.shape[1], Y.shape[1]
        coef = np.zeros((m, d))
        intercept = np.zeros(m)
        constant = np.zeros(m, dtype=bool)
        for j in range(m):
            known = ~np.isnan(Y[:, j])
            Xj, yj, wj = X[known], Y[known, j], sample_weight[known]
            pos_w, neg_w = wj * yj, wj * (1.0 - yj)
            if pos_w.sum() <= 0 or neg_w.sum() <= 0:
                constant[j] = True
                intercept[j] = float(logit(np.array([smoothed_mean(yj, wj)]))[0])
                continue
            Xs = np.vstack([Xj, Xj])
            ys = np.concatenate([np.ones(len(yj)), np.zeros(len(yj))])
            ws = np.concatenate([pos_w, neg_w])
            keep = ws > 0
            clf = LogisticRegression(
                C=float(self.C), max_iter=int(self.max_iter), tol=float(self.tol)
            )
            with warnings.catch_warnings():
                # A capped L-BFGS run still gives a usable model; the warning would only be noise.
                warnings.simplefilter("ignore", ConvergenceWarning)
                clf.fit(Xs[keep], ys[keep], sample_weight=ws[keep])
            coef[j] = clf.coef_[0]
            intercept[j] = clf.intercept_[0]
        self.coef_ = coef
        self.intercept_ = intercept
        self.constant_models_ = constant

    def _predict(self, X: FloatArray) -> FloatArray:
        return sigmoid(X @ self.coef_.T + self.intercept_)

    def _export(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        return {}, {
            "coef": self.coef_,
            "intercept": self.intercept_,
            "constant_models": self.constant_models_.astype(np.uint8),
        }

    def _import(self, fitted: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        d, m = self.n_features_in_, self.n_models_
        self.coef_ = self._array(arrays, "coef", (m, d)).astype(np.float64)
        self.intercept_ = self._array(arrays, "intercept", (m,)).astype(np.float64)
        self.constant_models_ = self._array(arrays, "constant_models", (m,)).astype(bool)
