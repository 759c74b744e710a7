"""kNN predictions on the calibration split for any hyperparameters, from one neighbour sort.

``KNNPredictor`` sorts every calibration prompt's similarities to the whole training split on
each predict: most of a trial's time. The embeddings do not change between trials, so the
neighbour order is computed once per embedding space (and ``store_dtype``) and each trial only
averages the labels of its first ``k`` neighbours. The arithmetic is the predictor's own
(router/predictors/knn.py: float16/32 storage, stable tie order, prior shrinkage), so the
numbers equal ``KNNPredictor(**params).fit(X_train, Y).predict_proba(X_cal)``; tests check it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from router.predictors.base import (
    STATE_FORMAT,
    FloatArray,
    QualityPredictor,
    check_labels,
    check_X,
)
from router.predictors.knn import KNNPredictor

_CHUNK = 1024  # as in router/predictors/knn.py, so each similarity block is computed alike


def _normalize(X: FloatArray) -> FloatArray:
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    return X / np.where(norms > 0, norms, 1.0)


class NeighbourTable:
    """The ``max_k`` nearest training prompts of every query prompt, sorted, with similarities."""

    def __init__(
        self, X_train: Any, Y_train: Any, X_query: Any, *, max_k: int, store_dtype: str
    ) -> None:
        Xt = check_X(X_train, "X_train")
        Y = check_labels(Y_train, Xt.shape[0], "Y_train")
        self.store_dtype = store_dtype
        self.embeddings = _normalize(Xt).astype(store_dtype)
        self.labels = Y.astype(np.float32)
        self.prior = np.nanmean(Y, axis=0).astype(np.float64)
        self.max_k = min(int(max_k), Xt.shape[0])
        train = self.embeddings.astype(np.float32)
        Q = _normalize(check_X(X_query, "X_query")).astype(np.float32)
        n = Q.shape[0]
        self.idx = np.empty((n, self.max_k), dtype=np.int64)
        self.sims = np.empty((n, self.max_k), dtype=np.float64)
        for start in range(0, n, _CHUNK):
            sims = Q[start : start + _CHUNK] @ train.T
            idx = np.argsort(-sims, axis=1, kind="stable")[:, : self.max_k]
            self.idx[start : start + _CHUNK] = idx
            self.sims[start : start + _CHUNK] = np.take_along_axis(sims, idx, axis=1)
        self._labels64 = np.nan_to_num(self.labels, nan=0.0).astype(np.float64)
        self._known = (~np.isnan(self.labels)).astype(np.float64)

    def predict(self, k: int, weights: str, temperature: float, prior_weight: float) -> FloatArray:
        """``KNNPredictor(k, weights, temperature, prior_weight).predict_proba`` on the queries."""
        k = min(int(k), self.labels.shape[0])
        if k > self.max_k:
            raise ValueError(f"k={k} is beyond this table's max_k={self.max_k}")
        idx, top = self.idx[:, :k], self.sims[:, :k]
        probe = KNNPredictor(weights=weights, temperature=temperature)
        w = probe._weights(top)  # sample weights are all 1 (Router.fit passes none)
        kn = self._known[idx]
        num = np.einsum("qk,qkm->qm", w, self._labels64[idx] * kn)
        den = np.einsum("qk,qkm->qm", w, kn)
        pw = float(prior_weight) * w.mean(axis=1, keepdims=True)
        out = (num + pw * self.prior) / np.maximum(den + pw, 1e-12)
        empty = den + pw <= 1e-12
        out[empty] = np.broadcast_to(self.prior, empty.shape)[empty]
        return np.clip(out, 0.0, 1.0)

    def fitted_predictor(self, params: dict[str, Any]) -> QualityPredictor:
        """The equivalent fitted KNNPredictor, built from state (no refit), for timing routes."""
        m = self.labels.shape[1]
        state = {
            "format": STATE_FORMAT,
            "predictor": "knn",
            "hyperparams": {**KNNPredictor().get_params(deep=False), **params},
            "n_features_in": int(self.embeddings.shape[1]),
            "n_models": m,
            "fitted": {},
        }
        arrays = {
            "embeddings": self.embeddings,
            "labels": self.labels,
            "sample_weight": np.ones(self.labels.shape[0], dtype=np.float32),
            "prior": self.prior,
        }
        return KNNPredictor.from_state(state, arrays)
