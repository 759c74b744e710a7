"""Per-tier output length from the prompt embedding: output tokens are the expensive part.

A prompt's input cost is known before routing (its tokens × the tier's input price); how long
each tier will *answer* is not, and output tokens cost 2–5× input tokens. This model predicts
each tier's output tokens from the prompt embedding: ridge regression on log(1 + tokens) (long
tails, multiplicative effects), turned back into an expected count with Duan's smearing factor
(exp of a mean log underestimates the mean), and capped at the longest answer seen in training.
Inference is pure numpy. Use it only where the data logs per-tier output tokens; otherwise the
router uses each tier's training mean (``mean_tokens_``).
"""

from __future__ import annotations

from typing import Any, Self

import numpy as np

from tierwise.router.errors import ArtifactError, ConfigError, DataError
from tierwise.router.predictors.base import FloatArray, NotFittedError, check_sample_weight, check_X
from tierwise.router.state import State, StateExport


def _check_tokens(T: Any, n_rows: int) -> FloatArray:
    arr = np.asarray(T, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[0] != n_rows or arr.shape[1] == 0:
        raise DataError(f"`output_tokens` must have shape ({n_rows}, n_models), got {arr.shape}")
    bad = ~np.isnan(arr) & (~np.isfinite(arr) | (arr < 0))
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise DataError(
            f"`output_tokens` must be >= 0 or NaN (unknown), got {arr[r, c]} at row {r}, "
            f"model column {c}"
        )
    empty = np.flatnonzero(np.isnan(arr).all(axis=0))
    if empty.size:
        raise DataError(
            f"`output_tokens` model column {int(empty[0])} has no known value; the length model "
            "needs token counts for every tier (otherwise use per-tier mean output tokens)"
        )
    return arr


class OutputLengthModel(StateExport):
    """Ridge on log(1 + output tokens), one per tier.

    Parameters
    ----------
    alpha: ridge penalty (on standardised scale: embeddings are unit-norm-ish).
    min_samples: a tier with fewer known counts gets its (weighted) mean as a constant.
    """

    def __init__(self, alpha: float = 1.0, min_samples: int = 20) -> None:
        self.alpha = alpha
        self.min_samples = min_samples

    @property
    def params(self) -> dict[str, Any]:
        return {"alpha": self.alpha, "min_samples": self.min_samples}

    def _validate(self) -> None:
        a = self.alpha
        if isinstance(a, bool) or not isinstance(a, int | float) or not np.isfinite(a) or a < 0:
            raise ConfigError(f"`length.alpha` must be a number >= 0, got {a!r}")
        ms = self.min_samples
        if isinstance(ms, bool) or not isinstance(ms, int) or ms < 2:
            raise ConfigError(f"`length.min_samples` must be an integer >= 2, got {ms!r}")

    def fit(self, X: Any, output_tokens: Any, sample_weight: Any = None) -> OutputLengthModel:
        self._validate()
        Xa = check_X(X)
        T = _check_tokens(output_tokens, Xa.shape[0])
        w = check_sample_weight(sample_weight, Xa.shape[0])
        d = Xa.shape[1]
        m = T.shape[1]
        self.n_features_in_, self.n_models_ = d, m
        self.coef_ = np.zeros((m, d))
        self.intercept_ = np.zeros(m)
        self.smearing_ = np.ones(m)
        self.log_range_ = np.zeros((m, 2))
        self.mean_tokens_ = np.zeros(m)
        for j in range(m):
            known = ~np.isnan(T[:, j]) & (w > 0)
            t, wj = np.log1p(T[known, j]), w[known]
            self.mean_tokens_[j] = np.average(T[known, j], weights=wj)
            self.log_range_[j] = (t.min(), t.max())
            if known.sum() < self.min_samples:
                self.intercept_[j] = np.log1p(self.mean_tokens_[j])
                continue
            Xk = Xa[known]
            mu_x = np.average(Xk, axis=0, weights=wj)
            mu_t = np.average(t, weights=wj)
            Xc = Xk - mu_x
            A = (Xc * wj[:, None]).T @ Xc + float(self.alpha) * np.eye(d)
            beta = np.linalg.solve(A, (Xc * wj[:, None]).T @ (t - mu_t))
            self.coef_[j] = beta
            self.intercept_[j] = mu_t - mu_x @ beta
            resid = t - (Xk @ beta + self.intercept_[j])
            self.smearing_[j] = np.average(np.exp(resid), weights=wj)
        return self

    def predict(self, X: Any) -> FloatArray:
        """``(n, m)`` expected output tokens per prompt and tier."""
        if not hasattr(self, "n_models_"):
            raise NotFittedError("this OutputLengthModel is not fitted yet; call fit first")
        Xa = check_X(X)
        if Xa.shape[1] != self.n_features_in_:
            raise DataError(
                f"`X` has {Xa.shape[1]} features but the length model was fitted on "
                f"{self.n_features_in_}; embed prompts with the same model as in training"
            )
        z = Xa @ self.coef_.T + self.intercept_
        z = np.clip(z, self.log_range_[:, 0], self.log_range_[:, 1])
        # Smearing can lift the top of the range past the largest count seen; never predict that.
        upper = np.expm1(self.log_range_[:, 1])
        return np.clip(np.exp(z) * self.smearing_ - 1.0, 0.0, upper)

    state_kind = "length-model"

    def _state(self) -> State:
        if not hasattr(self, "n_models_"):
            raise NotFittedError("this OutputLengthModel is not fitted yet; nothing to export")
        params = {**self.params, "n_features_in": self.n_features_in_, "n_models": self.n_models_}
        arrays = {
            "coef": self.coef_,
            "intercept": self.intercept_,
            "smearing": self.smearing_,
            "log_range": self.log_range_,
            "mean_tokens": self.mean_tokens_,
        }
        return params, arrays

    @classmethod
    def _from_state(cls, params: dict[str, Any], arrays: dict[str, np.ndarray]) -> Self:
        obj = cls(alpha=params["alpha"], min_samples=params["min_samples"])
        d, m = int(params["n_features_in"]), int(params["n_models"])
        shapes = {
            "coef": (m, d),
            "intercept": (m,),
            "smearing": (m,),
            "log_range": (m, 2),
            "mean_tokens": (m,),
        }
        loaded = {k: np.asarray(arrays[k], dtype=np.float64) for k in shapes}
        for key, shape in shapes.items():
            if loaded[key].shape != shape or not np.all(np.isfinite(loaded[key])):
                raise ArtifactError(
                    f"length-model state array {key!r} must be finite with shape {shape}, "
                    f"got {loaded[key].shape}"
                )
        obj.n_features_in_, obj.n_models_ = d, m
        obj.coef_, obj.intercept_ = loaded["coef"], loaded["intercept"]
        obj.smearing_, obj.log_range_ = loaded["smearing"], loaded["log_range"]
        obj.mean_tokens_ = loaded["mean_tokens"]
        return obj
