"""Matrix factorisation in the style of RouteLLM's MF router and EmbedLLM.

Each tier m has a learned embedding ``v_m`` (dim k); a prompt's embedding x is projected to the
same space, ``u = W x``, and ``P(m succeeds on x) = sigmoid(v_m · act(u) + b_m)``. RouteLLM also
multiplies by a classifier vector w before the dot product; ``w ⊙ v_m`` is itself just another
embedding, so it is absorbed into ``v_m``. With ``activation="linear"`` this is a rank-k
logistic model shared across tiers: tiers with few labels borrow the projection learned from
all of them, which is where it should beat one logistic regression per tier.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from tierwise.router.errors import ConfigError
from tierwise.router.predictors import _nn
from tierwise.router.predictors.base import (
    FloatArray,
    QualityPredictor,
    require_choice,
    require_float,
    require_int,
    require_seed,
    sigmoid,
)
from tierwise.router.predictors.registry import register_predictor


def _make_forward(activation: str) -> _nn.Forward:
    def forward(
        params: _nn.Params, X: FloatArray
    ) -> tuple[FloatArray, Callable[[FloatArray], _nn.Params]]:
        pre = X @ params["W"] + params["c"]
        u = np.tanh(pre) if activation == "tanh" else pre
        z = u @ params["V"].T + params["b"]

        def backward(dz: FloatArray) -> _nn.Params:
            du = dz @ params["V"]
            dpre = du * (1.0 - u * u) if activation == "tanh" else du
            return {
                "W": X.T @ dpre,
                "c": dpre.sum(axis=0),
                "V": dz.T @ u,
                "b": dz.sum(axis=0),
            }

        return z, backward

    return forward


@register_predictor("mf")
class MFPredictor(QualityPredictor):
    """Prompt projection × model embeddings.

    Parameters
    ----------
    dim: shared embedding size k.
    activation: "linear" (RouteLLM's bilinear form) or "tanh" on the projected prompt.
    alpha: L2 penalty on the projection and the model embeddings.
    learning_rate, max_epochs, batch_size, early_stopping, validation_fraction,
    n_iter_no_change, random_state: as for ``mlp``.

    >>> import numpy as np
    >>> from tierwise.router.predictors import get_predictor
    >>> X = np.random.default_rng(0).normal(size=(200, 8))  # prompt embeddings
    >>> Y = np.stack([X[:, 0] > 0, np.ones(200)], axis=1).astype(float)  # small tier: if x0 > 0
    >>> predictor = get_predictor("mf").fit(X, Y)
    >>> new = np.zeros((2, 8)); new[:, 0] = [2.0, -2.0]
    >>> (predictor.predict_proba(new)[:, 0] > 0.5).tolist()  # P(small tier succeeds) > 1/2?
    [True, False]
    """

    def __init__(
        self,
        dim: int = 32,
        activation: str = "linear",
        alpha: float = 1e-4,
        learning_rate: float = 3e-3,
        max_epochs: int = 200,
        batch_size: int = 64,
        early_stopping: bool = True,
        validation_fraction: float = 0.1,
        n_iter_no_change: int = 10,
        random_state: int | None = 0,
    ) -> None:
        self.dim = dim
        self.activation = activation
        self.alpha = alpha
        self.learning_rate = learning_rate
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.random_state = random_state

    def _validate_params(self) -> None:
        require_int("mf", "dim", self.dim, 1)
        require_choice("mf", "activation", self.activation, ("linear", "tanh"))
        require_float("mf", "alpha", self.alpha, 0.0)
        require_float("mf", "learning_rate", self.learning_rate, 0.0, open_low=True)
        require_int("mf", "max_epochs", self.max_epochs, 1)
        require_int("mf", "batch_size", self.batch_size, 1)
        if not isinstance(self.early_stopping, bool):
            raise ConfigError(
                f"`mf.early_stopping` must be true or false, got {self.early_stopping!r}"
            )
        require_float("mf", "validation_fraction", self.validation_fraction, 0.0, 0.5)
        require_int("mf", "n_iter_no_change", self.n_iter_no_change, 1)
        require_seed("mf", self.random_state)

    def _fit(self, X: FloatArray, Y: FloatArray, sample_weight: FloatArray) -> None:
        rng = np.random.default_rng(self.random_state)
        d, m, k = X.shape[1], Y.shape[1], int(self.dim)
        params: _nn.Params = {
            "W": _nn.glorot(rng, d, k),
            "c": np.zeros(k),
            "V": rng.normal(0.0, 1.0 / np.sqrt(k), size=(m, k)),
            "b": _nn.prior_logits(Y, sample_weight),
        }
        cfg = _nn.TrainConfig(
            learning_rate=float(self.learning_rate),
            max_epochs=int(self.max_epochs),
            batch_size=int(self.batch_size),
            alpha=float(self.alpha),
            early_stopping=bool(self.early_stopping),
            validation_fraction=float(self.validation_fraction),
            n_iter_no_change=int(self.n_iter_no_change),
            random_state=self.random_state,
            decay_keys=("W", "V"),
        )
        forward = _make_forward(str(self.activation))
        self.params_, info = _nn.train(params, forward, X, Y, sample_weight, cfg, rng)
        self.n_epochs_ = int(info["epochs"])

    @property
    def model_embeddings_(self) -> FloatArray:
        """(m, k) learned tier embeddings: similar rows = tiers that succeed on similar prompts."""
        return self.params_["V"]

    def _predict(self, X: FloatArray) -> FloatArray:
        z, _ = _make_forward(str(self.activation))(self.params_, X)
        return sigmoid(z)

    def _export(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        return {"n_epochs": self.n_epochs_}, dict(self.params_)

    def _import(self, fitted: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        d, m, k = self.n_features_in_, self.n_models_, int(self.dim)
        self.params_ = {
            "W": self._array(arrays, "W", (d, k)).astype(np.float64),
            "c": self._array(arrays, "c", (k,)).astype(np.float64),
            "V": self._array(arrays, "V", (m, k)).astype(np.float64),
            "b": self._array(arrays, "b", (m,)).astype(np.float64),
        }
        self.n_epochs_ = int(fitted.get("n_epochs", 0))
