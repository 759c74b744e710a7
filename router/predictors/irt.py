"""Item response theory: every model's labels teach every other model's estimate.

Training fits a multidimensional 2-parameter IRT model to the label matrix: prompt i has a
difficulty ``b_i`` and a latent trait vector ``z_i`` (``dims`` wide), model j an ability
``beta_j`` and a discrimination vector ``theta_j``::

    P(model j succeeds on prompt i) = sigmoid(beta_j - b_i + theta_j · z_i)

jointly over all models by maximum a posteriori (masked cross-entropy over the known cells,
standard-normal priors on b, z and theta: ``alpha`` scales them), with L-BFGS. A prompt's
difficulty is thus estimated from all m models' outcomes at once, not from one label, and an
unknown label is filled in from the others.

A new prompt's difficulty and traits are predicted from its embedding by its neighbours: the
prediction is the similarity-weighted mean, over the k most similar training prompts, of their
IRT success probabilities (kNN regression of the fitted item parameters, averaged on the
probability scale). ``smoothing`` mixes the fitted probabilities with the observed labels
(1 = IRT only, 0 = plain kNN). Inference is the kNN predictor's pure-numpy code on the
smoothed label matrix; ability, discrimination and the item parameters are exported too.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tierwise.router.predictors.base import FloatArray, require_float, require_int, sigmoid
from tierwise.router.predictors.knn import KNNPredictor
from tierwise.router.predictors.registry import register_predictor


def fit_irt(
    Y: FloatArray, weight: FloatArray, dims: int, alpha: float, max_iter: int, seed: int
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """MAP fit of ``sigmoid(beta_j - b_i + theta_j · z_i)`` to ``Y (n, m)`` (NaN = unknown).

    Returns ``(b (n,), z (n, dims), beta (m,), theta (m, dims))``.
    """
    from scipy.optimize import minimize

    n, m = Y.shape
    known = ~np.isnan(Y)
    Yk = np.nan_to_num(Y)
    W = known * weight[:, None]
    mean = np.clip((Yk * W).sum(axis=0) / np.maximum(W.sum(axis=0), 1e-12), 1e-3, 1 - 1e-3)
    rng = np.random.default_rng(seed)
    sizes = [n, n * dims, m, m * dims]
    x0 = np.concatenate(
        [
            np.zeros(n),
            0.01 * rng.standard_normal(n * dims),
            np.log(mean) - np.log1p(-mean),
            0.01 * rng.standard_normal(m * dims),
        ]
    )
    cuts = np.cumsum(sizes)[:-1]

    def unpack(x: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
        b, z, beta, theta = np.split(x, cuts)
        return b, z.reshape(n, dims), beta, theta.reshape(m, dims)

    def loss(x: FloatArray) -> tuple[float, FloatArray]:
        b, z, beta, theta = unpack(x)
        logits = beta[None, :] - b[:, None] + z @ theta.T
        # Masked, weighted cross-entropy: softplus(l) - y * l per known cell.
        nll = float(np.sum(W * (np.logaddexp(0.0, logits) - Yk * logits)))
        g = W * (sigmoid(logits) - Yk)  # d loss / d logits
        prior = 0.5 * alpha * float(b @ b + np.sum(z * z) + np.sum(theta * theta))
        grad = np.concatenate(
            [
                -g.sum(axis=1) + alpha * b,
                (g @ theta + alpha * z).ravel(),
                g.sum(axis=0),
                (g.T @ z + alpha * theta).ravel(),
            ]
        )
        return nll + prior, grad

    res = minimize(loss, x0, jac=True, method="L-BFGS-B", options={"maxiter": max_iter})
    return unpack(np.asarray(res.x, dtype=np.float64))


@register_predictor("irt")
class IRTPredictor(KNNPredictor):
    """Multidimensional IRT fitted jointly over models, predicted for new prompts by kNN.

    Parameters
    ----------
    dims: width of the latent trait (0 = one difficulty per prompt, one ability per model).
    alpha: strength of the standard-normal priors (larger = smoother item parameters).
    smoothing: weight of the IRT probabilities against the observed labels (1 = IRT only).
    max_iter: L-BFGS iterations.
    random_state: seed of the latent initialisation.
    k, weights, temperature, prior_weight, store_dtype: as for ``knn``.

    >>> import numpy as np
    >>> from tierwise.router.predictors import get_predictor
    >>> X = np.random.default_rng(0).normal(size=(200, 8))  # prompt embeddings
    >>> Y = np.stack([X[:, 0] > 0, np.ones(200)], axis=1).astype(float)  # small tier: if x0 > 0
    >>> predictor = get_predictor("irt", k=10).fit(X, Y)
    >>> new = np.zeros((2, 8)); new[:, 0] = [2.0, -2.0]
    >>> (predictor.predict_proba(new)[:, 0] > 0.5).tolist()  # P(small tier succeeds) > 1/2?
    [True, False]
    """

    def __init__(
        self,
        dims: int = 2,
        alpha: float = 1.0,
        smoothing: float = 1.0,
        max_iter: int = 300,
        random_state: int | None = 0,
        k: int = 100,
        weights: str = "uniform",
        temperature: float = 0.05,
        prior_weight: float = 1.0,
        store_dtype: str = "float16",
    ) -> None:
        super().__init__(k, weights, temperature, prior_weight, store_dtype)
        self.dims = dims
        self.alpha = alpha
        self.smoothing = smoothing
        self.max_iter = max_iter
        self.random_state = random_state

    def _validate_params(self) -> None:
        super()._validate_params()
        require_int("irt", "dims", self.dims, 0, 16)
        require_float("irt", "alpha", self.alpha, 0.0, open_low=True)
        require_float("irt", "smoothing", self.smoothing, 0.0, 1.0)
        require_int("irt", "max_iter", self.max_iter, 1)
        if self.random_state is not None:
            require_int("irt", "random_state", self.random_state, 0)

    def _fit(self, X: FloatArray, Y: FloatArray, sample_weight: FloatArray) -> None:
        b, z, beta, theta = fit_irt(
            Y,
            sample_weight,
            int(self.dims),
            float(self.alpha),
            int(self.max_iter),
            int(self.random_state or 0),
        )
        fitted = sigmoid(beta[None, :] - b[:, None] + z @ theta.T)
        s = float(self.smoothing)
        smoothed = np.where(np.isnan(Y), fitted, s * fitted + (1.0 - s) * np.nan_to_num(Y))
        super()._fit(X, smoothed, sample_weight)
        self.difficulty_, self.traits_ = b, z
        self.ability_, self.discrimination_ = beta, theta

    def _export(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        fitted, arrays = super()._export()
        arrays.update(
            {
                "difficulty": self.difficulty_,
                "traits": self.traits_,
                "ability": self.ability_,
                "discrimination": self.discrimination_,
            }
        )
        return fitted, arrays

    def _import(self, fitted: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        super()._import(fitted, arrays)
        n, m, dims = self.embeddings_.shape[0], self.n_models_, int(self.dims)
        self.difficulty_ = self._array(arrays, "difficulty", (n,)).astype(np.float64)
        self.traits_ = self._array(arrays, "traits", (n, dims)).astype(np.float64)
        self.ability_ = self._array(arrays, "ability", (m,)).astype(np.float64)
        self.discrimination_ = self._array(arrays, "discrimination", (m, dims)).astype(np.float64)
