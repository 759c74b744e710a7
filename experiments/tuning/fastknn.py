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

from tierwise.router.predictors.base import (
    STATE_FORMAT,
    FloatArray,
    QualityPredictor,
    check_labels,
    check_X,
)
from tierwise.router.predictors.knn import KNNPredictor, similarities

_CHUNK = 1024  # as in router/predictors/knn.py, so each similarity block is computed alike


def _normalize(X: FloatArray) -> FloatArray:
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    return X / np.where(norms > 0, norms, 1.0)


class NeighbourTable:
    """The ``max_k`` nearest training prompts of every query prompt, sorted, with similarities.

    ``NeighbourTable(X_train, Y_train, X_query)``: queries against one training set (a router
    fitted on train, scored on calibration). ``NeighbourTable.cross_validated(X, Y, folds)``:
    every row against the rows of the other folds (a predictor per fold, scored on its fold).
    """

    def __init__(
        self,
        X_train: Any,
        Y_train: Any,
        X_query: Any,
        *,
        max_k: int,
        store_dtype: str,
        query_folds: np.ndarray | None = None,
        train_folds: np.ndarray | None = None,
    ) -> None:
        Xt = check_X(X_train, "X_train")
        Y = check_labels(Y_train, Xt.shape[0], "Y_train")
        self.store_dtype = store_dtype
        self.embeddings = _normalize(Xt).astype(store_dtype)
        self.labels = Y.astype(np.float32)
        Q = _normalize(check_X(X_query, "X_query")).astype(np.float64)
        n = Q.shape[0]
        self.cross = query_folds is not None and train_folds is not None
        if query_folds is None or train_folds is None:
            self.prior = np.broadcast_to(np.nanmean(Y, axis=0), (n, Y.shape[1])).copy()
            n_fit = Xt.shape[0]
        else:
            # Each query row is predicted by the model fitted on the other folds' rows.
            self.prior = np.empty((n, Y.shape[1]))
            for f in np.unique(query_folds):
                self.prior[query_folds == f] = np.nanmean(Y[train_folds != f], axis=0)
            n_fit = int(min((train_folds != f).sum() for f in np.unique(query_folds)))
        self.max_k = min(int(max_k), n_fit)
        train = self.embeddings.astype(np.float64)
        self.idx = np.empty((n, self.max_k), dtype=np.int64)
        self.sims = np.empty((n, self.max_k), dtype=np.float64)
        for start in range(0, n, _CHUNK):
            sims = similarities(Q[start : start + _CHUNK], train)  # exactly as KNNPredictor
            if self.cross:
                assert query_folds is not None and train_folds is not None
                same = query_folds[start : start + _CHUNK, None] == train_folds[None, :]
                sims[same] = -np.inf  # a row's own fold is not in its model's training data
            idx = np.argsort(-sims, axis=1, kind="stable")[:, : self.max_k]
            self.idx[start : start + _CHUNK] = idx
            self.sims[start : start + _CHUNK] = np.take_along_axis(sims, idx, axis=1)
        self._labels64 = np.nan_to_num(self.labels, nan=0.0).astype(np.float64)
        self._known = (~np.isnan(self.labels)).astype(np.float64)

    @classmethod
    def cross_validated(
        cls, X: Any, Y: Any, folds: np.ndarray, *, max_k: int, store_dtype: str
    ) -> NeighbourTable:
        return cls(
            X, Y, X, max_k=max_k, store_dtype=store_dtype, query_folds=folds, train_folds=folds
        )

    def predict(self, k: int, weights: str, temperature: float, prior_weight: float) -> FloatArray:
        """``KNNPredictor(k, weights, temperature, prior_weight).predict_proba`` on the queries."""
        if not self.cross:
            k = min(int(k), self.labels.shape[0])  # the predictor caps k at its training size
        if int(k) > self.max_k:
            raise ValueError(f"k={k} is beyond this table's max_k={self.max_k}")
        idx, top = self.idx[:, : int(k)], self.sims[:, : int(k)]
        probe = KNNPredictor(weights=weights, temperature=temperature)
        w = probe._weights(top)  # sample weights are all 1 (Router.fit passes none)
        kn = self._known[idx]
        num = np.einsum("qk,qkm->qm", w, self._labels64[idx] * kn)
        den = np.einsum("qk,qkm->qm", w, kn)
        pw = float(prior_weight) * w.mean(axis=1, keepdims=True)
        out = (num + pw * self.prior) / np.maximum(den + pw, 1e-12)
        empty = den + pw <= 1e-12
        out[empty] = self.prior[empty]
        return np.clip(out, 0.0, 1.0)

    def fitted_predictor(self, params: dict[str, Any]) -> QualityPredictor:
        """The equivalent fitted KNNPredictor (train/query table), built from state, no refit."""
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
            "prior": self.prior[0],
        }
        return KNNPredictor.from_state(state, arrays)
