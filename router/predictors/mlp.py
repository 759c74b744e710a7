"""One multi-output MLP over all tiers, trained with a masked cross-entropy, numpy end to end.

A single network shares its hidden layers across tiers (what makes a prompt hard is largely
common to all models), while each tier keeps its own output unit. Unknown labels are masked
out of the loss rather than imputed. Graded labels are soft targets, so outputs are expected
quality.
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
    require_float,
    require_int,
    require_seed,
    sigmoid,
)
from tierwise.router.predictors.registry import register_predictor


def _forward(
    params: _nn.Params, X: FloatArray
) -> tuple[FloatArray, Callable[[FloatArray], _nn.Params]]:
    n_layers = len(params) // 2
    acts = [X]
    h = X
    for i in range(n_layers - 1):
        h = np.maximum(h @ params[f"W{i}"] + params[f"b{i}"], 0.0)
        acts.append(h)
    z = h @ params[f"W{n_layers - 1}"] + params[f"b{n_layers - 1}"]

    def backward(dz: FloatArray) -> _nn.Params:
        grads: _nn.Params = {}
        g = dz
        for i in range(n_layers - 1, -1, -1):
            grads[f"W{i}"] = acts[i].T @ g
            grads[f"b{i}"] = g.sum(axis=0)
            if i > 0:
                g = (g @ params[f"W{i}"].T) * (acts[i] > 0)
        return grads

    return z, backward


@register_predictor("mlp")
class MLPPredictor(QualityPredictor):
    """Multi-output ReLU MLP.

    Parameters
    ----------
    hidden_layer_sizes: widths of the hidden layers, e.g. (128,).
    alpha: L2 penalty on weights.
    learning_rate: Adam step size.
    max_epochs, batch_size: training length and minibatch size.
    early_stopping: hold out ``validation_fraction`` of the rows and keep the best epoch.
    n_iter_no_change: epochs without validation improvement before stopping.
    random_state: seed for initialisation, shuffling and the validation split.

    >>> import numpy as np
    >>> from tierwise.router.predictors import get_predictor
    >>> X = np.random.default_rng(0).normal(size=(200, 8))  # prompt embeddings
    >>> Y = np.stack([X[:, 0] > 0, np.ones(200)], axis=1).astype(float)  # small tier: if x0 > 0
    >>> predictor = get_predictor("mlp").fit(X, Y)
    >>> new = np.zeros((2, 8)); new[:, 0] = [2.0, -2.0]
    >>> (predictor.predict_proba(new)[:, 0] > 0.5).tolist()  # P(small tier succeeds) > 1/2?
    [True, False]
    """

    def __init__(
        self,
        hidden_layer_sizes: tuple[int, ...] = (128,),
        alpha: float = 1e-4,
        learning_rate: float = 1e-3,
        max_epochs: int = 200,
        batch_size: int = 64,
        early_stopping: bool = True,
        validation_fraction: float = 0.1,
        n_iter_no_change: int = 10,
        random_state: int | None = 0,
    ) -> None:
        self.hidden_layer_sizes = hidden_layer_sizes
        self.alpha = alpha
        self.learning_rate = learning_rate
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.random_state = random_state

    def _sizes(self) -> list[int]:
        sizes = self.hidden_layer_sizes
        if isinstance(sizes, int | np.integer):
            sizes = (int(sizes),)
        if not isinstance(sizes, tuple | list) or not all(
            isinstance(s, int | np.integer) and not isinstance(s, bool) and s >= 1 for s in sizes
        ):
            raise ConfigError(
                "`mlp.hidden_layer_sizes` must be a list of positive integers such as [128], "
                f"got {self.hidden_layer_sizes!r}"
            )
        return [int(s) for s in sizes]

    def _validate_params(self) -> None:
        self._sizes()
        require_float("mlp", "alpha", self.alpha, 0.0)
        require_float("mlp", "learning_rate", self.learning_rate, 0.0, open_low=True)
        require_int("mlp", "max_epochs", self.max_epochs, 1)
        require_int("mlp", "batch_size", self.batch_size, 1)
        if not isinstance(self.early_stopping, bool):
            raise ConfigError(
                f"`mlp.early_stopping` must be true or false, got {self.early_stopping!r}"
            )
        require_float("mlp", "validation_fraction", self.validation_fraction, 0.0, 0.5)
        require_int("mlp", "n_iter_no_change", self.n_iter_no_change, 1)
        require_seed("mlp", self.random_state)

    def _fit(self, X: FloatArray, Y: FloatArray, sample_weight: FloatArray) -> None:
        rng = np.random.default_rng(self.random_state)
        widths = [X.shape[1], *self._sizes(), Y.shape[1]]
        params: _nn.Params = {}
        for i in range(len(widths) - 1):
            params[f"W{i}"] = _nn.glorot(rng, widths[i], widths[i + 1])
            params[f"b{i}"] = np.zeros(widths[i + 1])
        params[f"b{len(widths) - 2}"] = _nn.prior_logits(Y, sample_weight)
        cfg = _nn.TrainConfig(
            learning_rate=float(self.learning_rate),
            max_epochs=int(self.max_epochs),
            batch_size=int(self.batch_size),
            alpha=float(self.alpha),
            early_stopping=bool(self.early_stopping),
            validation_fraction=float(self.validation_fraction),
            n_iter_no_change=int(self.n_iter_no_change),
            random_state=self.random_state,
            decay_keys=tuple(k for k in params if k.startswith("W")),
        )
        self.params_, info = _nn.train(params, _forward, X, Y, sample_weight, cfg, rng)
        self.n_epochs_ = int(info["epochs"])

    def _predict(self, X: FloatArray) -> FloatArray:
        z, _ = _forward(self.params_, X)
        return sigmoid(z)

    def _export(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        return {"n_layers": len(self.params_) // 2, "n_epochs": self.n_epochs_}, dict(self.params_)

    def _import(self, fitted: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        n_layers = int(fitted["n_layers"])
        params: _nn.Params = {}
        width = self.n_features_in_
        for i in range(n_layers):
            out = self.n_models_ if i == n_layers - 1 else None
            W = self._array(arrays, f"W{i}", (width, out)).astype(np.float64)
            params[f"W{i}"] = W
            params[f"b{i}"] = self._array(arrays, f"b{i}", (W.shape[1],)).astype(np.float64)
            width = W.shape[1]
        self.params_ = params
        self.n_epochs_ = int(fitted.get("n_epochs", 0))
