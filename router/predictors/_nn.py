"""A small numpy trainer for multi-output networks with a masked (soft-label) cross-entropy.

``mlp`` and ``mf`` share it. Numpy keeps the whole predictor stack free of torch: these
networks are tiny (one projection of a 384-d embedding), so a CPU Adam loop over a few thousand
prompts takes seconds, and the same arrays then serve inference.

The loss on cell (i, j) counts only where the label is known:
``w_i * (softplus(z_ij) - y_ij * z_ij)``, the cross-entropy with target y in [0, 1], averaged
over the known cells of the batch, plus ``alpha / 2 * ||weights||²`` (biases are not decayed).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from tierwise.router.predictors.base import FloatArray, sigmoid

Params = dict[str, FloatArray]
# forward(params, X) -> (logits (n, m), backward(dlogits) -> grads)
Forward = Callable[[Params, FloatArray], tuple[FloatArray, Callable[[FloatArray], Params]]]


@dataclass(frozen=True)
class TrainConfig:
    """Optimizer settings shared by the numpy-trained networks (MLP, MF)."""

    learning_rate: float
    max_epochs: int
    batch_size: int
    alpha: float
    early_stopping: bool
    validation_fraction: float
    n_iter_no_change: int
    random_state: int | None
    decay_keys: tuple[str, ...]  # params under L2 (weights, not biases)


def _masked_bce(
    z: FloatArray, Y: FloatArray, K: FloatArray, w: FloatArray
) -> tuple[float, FloatArray]:
    """Mean masked cross-entropy and its gradient w.r.t. the logits."""
    cell_w = K * w[:, None]
    norm = max(float(cell_w.sum()), 1e-12)
    softplus = np.logaddexp(0.0, z)
    loss = float(np.sum(cell_w * (softplus - Y * z)) / norm)
    grad = cell_w * (sigmoid(z) - Y) / norm
    return loss, grad


def _split(n: int, cfg: TrainConfig, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    n_val = round(n * cfg.validation_fraction) if cfg.early_stopping else 0
    if n_val < 5 or n - n_val < 5:
        return np.arange(n), np.arange(0)
    perm = rng.permutation(n)
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def train(
    params: Params,
    forward: Forward,
    X: FloatArray,
    Y: FloatArray,
    sample_weight: FloatArray,
    cfg: TrainConfig,
    rng: np.random.Generator,
) -> tuple[Params, dict[str, float]]:
    """Adam on minibatches; with early stopping, returns the best-validation parameters."""
    K = (~np.isnan(Y)).astype(np.float64)
    Y0 = np.nan_to_num(Y, nan=0.0)
    tr, va = _split(X.shape[0], cfg, rng)
    m1 = {k: np.zeros_like(v) for k, v in params.items()}
    m2 = {k: np.zeros_like(v) for k, v in params.items()}
    b1, b2, eps, t = 0.9, 0.999, 1e-8, 0
    best = {k: v.copy() for k, v in params.items()}
    best_val, stale, epochs = np.inf, 0, 0
    bs = max(1, min(cfg.batch_size, len(tr)))
    for _epoch in range(cfg.max_epochs):
        epochs += 1
        order = tr[rng.permutation(len(tr))]
        for start in range(0, len(order), bs):
            b = order[start : start + bs]
            z, backward = forward(params, X[b])
            _, dz = _masked_bce(z, Y0[b], K[b], sample_weight[b])
            grads = backward(dz)
            t += 1
            lr_t = cfg.learning_rate * np.sqrt(1 - b2**t) / (1 - b1**t)
            for key, g in grads.items():
                if key in cfg.decay_keys:
                    g = g + cfg.alpha * params[key]
                m1[key] = b1 * m1[key] + (1 - b1) * g
                m2[key] = b2 * m2[key] + (1 - b2) * g * g
                params[key] = params[key] - lr_t * m1[key] / (np.sqrt(m2[key]) + eps)
        if len(va) == 0:
            continue
        zv, _ = forward(params, X[va])
        val, _ = _masked_bce(zv, Y0[va], K[va], sample_weight[va])
        if val < best_val - 1e-4:
            best_val, stale = val, 0
            best = {k: v.copy() for k, v in params.items()}
        else:
            stale += 1
            if stale >= cfg.n_iter_no_change:
                break
    final = best if len(va) else params
    return final, {"epochs": float(epochs), "best_validation_loss": float(best_val)}


def glorot(rng: np.random.Generator, fan_in: int, fan_out: int) -> FloatArray:
    """Glorot-uniform initial weights of shape ``(fan_in, fan_out)``."""
    bound = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-bound, bound, size=(fan_in, fan_out))


def prior_logits(Y: FloatArray, sample_weight: FloatArray) -> FloatArray:
    """Per-model logit of the smoothed training mean: a good starting output bias."""
    K = ~np.isnan(Y)
    w = K * sample_weight[:, None]
    mean = (np.nansum(Y * w, axis=0) + 0.5) / (w.sum(axis=0) + 1.0)
    return np.log(mean) - np.log1p(-mean)
