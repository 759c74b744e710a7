"""The IRT predictor: item and ability parameters are recovered; labels are shared across models."""

from __future__ import annotations

import numpy as np
import pytest

from tierwise.router.errors import ConfigError
from tierwise.router.predictors import get_predictor, load_predictor
from tierwise.router.predictors.irt import fit_irt


def _irt_data(n: int = 600, m: int = 8, seed: int = 0):
    rng = np.random.default_rng(seed)
    difficulty = rng.normal(size=n)
    ability = np.linspace(-1.5, 1.5, m)
    p = 1.0 / (1.0 + np.exp(-(2.0 * (ability[None, :] - difficulty[:, None]))))
    Y = (rng.random((n, m)) < p).astype(np.float64)
    return difficulty, ability, Y


def test_fit_recovers_difficulty_and_ability_order():
    difficulty, _, Y = _irt_data()
    b, z, beta, theta = fit_irt(Y, np.ones(len(Y)), dims=0, alpha=1.0, max_iter=300, seed=0)
    assert z.shape == (600, 0) and theta.shape == (8, 0)
    assert np.all(np.diff(beta) > 0)  # abilities in their true order
    assert np.corrcoef(b, difficulty)[0, 1] > 0.8  # 8 labels per prompt pin its difficulty
    # With a latent trait, difficulty is shared between b and the traits' mean direction.
    b, z, beta, theta = fit_irt(Y, np.ones(len(Y)), dims=1, alpha=1.0, max_iter=300, seed=0)
    assert np.all(np.diff(beta) > 0)
    assert np.corrcoef(b - z @ theta.mean(axis=0), difficulty)[0, 1] > 0.8


def test_a_models_missing_labels_are_learned_from_the_other_models():
    # Prompts' embeddings carry their difficulty; model 0 is labelled on only 10% of prompts.
    difficulty, _, Y = _irt_data(n=800, m=6, seed=1)
    rng = np.random.default_rng(1)
    X = np.column_stack([difficulty, rng.normal(size=(800, 3))])
    Y_sparse = Y.copy()
    Y_sparse[rng.random(800) < 0.9, 0] = np.nan
    tr, te = slice(0, 600), slice(600, 800)
    truth = 1.0 / (1.0 + np.exp(-(2.0 * (-1.5 - difficulty[te]))))
    err = {}
    for name in ("knn", "irt"):
        P = get_predictor(name, k=30).fit(X[tr], Y_sparse[tr]).predict_proba(X[te])
        err[name] = float(np.mean((P[:, 0] - truth) ** 2))
    assert err["irt"] < 0.85 * err["knn"]


def test_state_round_trip_keeps_item_and_ability_parameters():
    _, _, Y = _irt_data(n=200, m=4)
    X = np.random.default_rng(2).normal(size=(200, 5))
    pred = get_predictor("irt", dims=2, k=20).fit(X, Y)
    params, arrays = pred.get_state()
    assert arrays["ability"].shape == (4,) and arrays["discrimination"].shape == (4, 2)
    again = load_predictor("irt", params, arrays)
    assert np.allclose(again.predict_proba(X[:9]), pred.predict_proba(X[:9]))
    assert np.allclose(again.difficulty_, pred.difficulty_)


def test_bad_params_name_the_parameter():
    X, Y = np.zeros((4, 2)), np.ones((4, 2))
    with pytest.raises(ConfigError, match=r"`irt\.smoothing` must be a number >= 0\.0"):
        get_predictor("irt", smoothing=2.0).fit(X, Y)
    with pytest.raises(ConfigError, match=r"`irt\.dims` must be an integer in \[0, 16\]"):
        get_predictor("irt", dims=-1).fit(X, Y)
