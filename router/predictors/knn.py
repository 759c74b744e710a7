"""Cosine k-nearest-neighbours: a tier's success rate on the k most similar training prompts.

No training beyond storing the (L2-normalised) training embeddings and labels, so the state
grows with the training set: n × d × 2 bytes in float16 (3,000 prompts × 384 dims ≈ 2.3 MB)
plus n × m label bytes. Fine for the few thousand labelled prompts a team logs; for far more,
use ``logreg``, ``mlp`` or ``mf`` whose state does not grow with n.

Unknown labels (NaN) are skipped per model: each tier averages over the neighbours where its
label is known. ``prior_weight`` pseudo-neighbours carrying the tier's training mean shrink
estimates made from few neighbours, so a single lucky neighbour does not yield P = 1.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tierwise.router.predictors.base import (
    FloatArray,
    QualityPredictor,
    require_choice,
    require_float,
    require_int,
)
from tierwise.router.predictors.registry import register_predictor

_CHUNK = 1024  # query rows per similarity block: bounds memory at 1024 × n_train floats


def _normalize(X: FloatArray) -> FloatArray:
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    return X / np.where(norms > 0, norms, 1.0)



def similarities(queries: FloatArray, train: FloatArray) -> FloatArray:
    """Cosine similarities of unit rows, in float64 and rounded to 1e-9.

    Why: BLAS kernels differ with the batch size, and a last-bit difference must not flip
    near-tied neighbours — a prompt's prediction must not depend on which other prompts share
    its batch. The tuner's neighbour table uses this same function, so both rank alike.
    """
    return np.round(np.asarray(queries, np.float64) @ np.asarray(train, np.float64).T, 9)

@register_predictor("knn")
class KNNPredictor(QualityPredictor):
    """Cosine kNN.

    Parameters
    ----------
    k: neighbours per query (capped at the training size). 100 was best of 20/50/100 on
        RouterBench (~1,900 training prompts); small k is noisy for 0/1 labels.
    weights: "uniform"; "distance" (1 / (cosine distance + 1e-3)); or "softmax"
        (exp(similarity / temperature)), which favours near-duplicates smoothly.
    temperature: softmax temperature on cosine similarity.
    prior_weight: pseudo-count of the per-model training mean mixed into each estimate.
    store_dtype: "float16" halves the state; "float32" keeps full precision.

    >>> import numpy as np
    >>> from tierwise.router.predictors import get_predictor
    >>> X = np.random.default_rng(0).normal(size=(200, 8))  # prompt embeddings
    >>> Y = np.stack([X[:, 0] > 0, np.ones(200)], axis=1).astype(float)  # small tier: if x0 > 0
    >>> predictor = get_predictor("knn", k=10).fit(X, Y)
    >>> new = np.zeros((2, 8)); new[:, 0] = [2.0, -2.0]
    >>> (predictor.predict_proba(new)[:, 0] > 0.5).tolist()  # P(small tier succeeds) > 1/2?
    [True, False]
    """

    def __init__(
        self,
        k: int = 100,
        weights: str = "uniform",
        temperature: float = 0.05,
        prior_weight: float = 1.0,
        store_dtype: str = "float16",
    ) -> None:
        self.k = k
        self.weights = weights
        self.temperature = temperature
        self.prior_weight = prior_weight
        self.store_dtype = store_dtype

    def _validate_params(self) -> None:
        require_int("knn", "k", self.k, 1)
        require_choice("knn", "weights", self.weights, ("uniform", "distance", "softmax"))
        require_float("knn", "temperature", self.temperature, 0.0, open_low=True)
        require_float("knn", "prior_weight", self.prior_weight, 0.0)
        require_choice("knn", "store_dtype", self.store_dtype, ("float16", "float32"))

    def _fit(self, X: FloatArray, Y: FloatArray, sample_weight: FloatArray) -> None:
        self.embeddings_ = _normalize(X).astype(self.store_dtype)
        self.labels_ = Y.astype(np.float32)  # NaN kept: it marks unknown labels
        self.sample_weight_ = sample_weight.astype(np.float32)
        known = ~np.isnan(Y)
        wk = known * sample_weight[:, None]
        total = wk.sum(axis=0)
        # A tier whose labelled rows all carry zero weight has no information: prior 0.5.
        mean = np.nansum(Y * wk, axis=0) / np.where(total > 0, total, 1.0)
        self.prior_ = np.where(total > 0, mean, 0.5).astype(np.float64)

    def _weights(self, sims: FloatArray) -> FloatArray:
        if self.weights == "uniform":
            return np.ones_like(sims)
        if self.weights == "distance":
            return 1.0 / (np.maximum(1.0 - sims, 0.0) + 1e-3)
        z = sims / float(self.temperature)
        return np.exp(z - z.max(axis=1, keepdims=True))

    def _predict(self, X: FloatArray) -> FloatArray:
        train = self.embeddings_.astype(np.float64)
        labels = np.nan_to_num(self.labels_, nan=0.0).astype(np.float64)
        known = (~np.isnan(self.labels_)).astype(np.float64)
        k = min(int(self.k), train.shape[0])
        out = np.empty((X.shape[0], self.n_models_))
        Q = _normalize(X).astype(np.float64)
        for start in range(0, Q.shape[0], _CHUNK):
            sims = similarities(Q[start : start + _CHUNK], train)
            # Stable top-k: sort by (-similarity, index) so ties resolve identically everywhere.
            idx = np.argsort(-sims, axis=1, kind="stable")[:, :k]
            top = np.take_along_axis(sims, idx, axis=1).astype(np.float64)
            w = self._weights(top) * self.sample_weight_[idx]
            kn = known[idx]  # (q, k, m)
            num = np.einsum("qk,qkm->qm", w, labels[idx] * kn)
            den = np.einsum("qk,qkm->qm", w, kn)
            # Shrink toward the prior by prior_weight pseudo-neighbours of average weight.
            pw = float(self.prior_weight) * w.mean(axis=1, keepdims=True)
            out[start : start + _CHUNK] = (num + pw * self.prior_) / np.maximum(den + pw, 1e-12)
            empty = den + pw <= 1e-12
            out[start : start + _CHUNK][empty] = np.broadcast_to(self.prior_, empty.shape)[empty]
        return out

    def _export(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        return {}, {
            "embeddings": self.embeddings_,
            "labels": self.labels_,
            "sample_weight": self.sample_weight_,
            "prior": self.prior_,
        }

    def _import(self, fitted: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        d, m = self.n_features_in_, self.n_models_
        self.embeddings_ = self._array(arrays, "embeddings", (None, d))
        n = self.embeddings_.shape[0]
        self.labels_ = self._array(arrays, "labels", (n, m), allow_nan=True).astype(np.float32)
        self.sample_weight_ = self._array(arrays, "sample_weight", (n,)).astype(np.float32)
        self.prior_ = self._array(arrays, "prior", (m,)).astype(np.float64)
