"""Output-length model: ridge on log tokens, mean-unbiased, exact state round trip."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tierwise.router.errors import ArtifactError, ConfigError, DataError
from tierwise.router.length import OutputLengthModel
from tierwise.router.predictors import NotFittedError


def make_tokens(n: int = 600, d: int = 6, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Tier 0 answers briefly, tier 1 at length; both grow with the prompt's first feature."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    log_t = np.column_stack([3.0 + 0.8 * X[:, 0], 5.0 + 0.8 * X[:, 0] - 0.4 * X[:, 1]])
    T = np.round(np.exp(log_t + rng.normal(0, 0.5, size=log_t.shape)))
    return X, T


def test_learns_length_and_is_mean_unbiased() -> None:
    X, T = make_tokens()
    model = OutputLengthModel(alpha=1.0).fit(X[:400], T[:400])
    pred = model.predict(X[400:])
    assert pred.shape == (200, 2) and np.all(pred >= 0)
    for j in range(2):
        assert np.corrcoef(np.log1p(pred[:, j]), np.log1p(T[400:, j]))[0, 1] > 0.7
    # Smearing: the mean of predictions matches the mean of held-out lengths (exp of a mean log
    # alone would be ~12 % low with this noise).
    np.testing.assert_allclose(pred.mean(axis=0), T[400:].mean(axis=0), rtol=0.1)
    np.testing.assert_allclose(model.mean_tokens_, T[:400].mean(axis=0))


def test_predictions_stay_within_the_training_range() -> None:
    X, T = make_tokens()
    model = OutputLengthModel().fit(X, T)
    far = np.zeros((1, X.shape[1]))
    far[0, 0] = 100.0  # an embedding far outside the training data
    assert model.predict(far)[0, 1] == pytest.approx(T[:, 1].max())


def test_unknown_counts_and_sparse_tiers() -> None:
    X, T = make_tokens()
    T = T.copy()
    T[::2, 0] = np.nan
    T[10:, 1] = np.nan  # only 10 counts: tier 1 falls back to its mean
    model = OutputLengthModel(min_samples=20).fit(X, T)
    pred = model.predict(X[:50])
    np.testing.assert_allclose(pred[:, 1], np.mean(T[:10, 1]))
    assert np.std(pred[:, 0]) > 1.0


def test_state_round_trip_is_exact(tmp_path) -> None:
    X, T = make_tokens()
    model = OutputLengthModel(alpha=0.5).fit(X, T)
    params, arrays = model.get_state()
    np.savez(tmp_path / "l.npz", **arrays)
    with np.load(tmp_path / "l.npz") as z:
        loaded = {k: z[k] for k in z.files}
    twin = OutputLengthModel.from_state(json.loads(json.dumps(params)), loaded)
    np.testing.assert_array_equal(twin.predict(X), model.predict(X))
    with pytest.raises(ArtifactError, match=r"array 'coef' must be finite with shape \(2, 6\)"):
        OutputLengthModel.from_state(params, dict(arrays, coef=arrays["coef"][:1]))


def test_bad_inputs_raise_clear_errors() -> None:
    X, T = make_tokens(n=50)
    with pytest.raises(NotFittedError, match=r"not fitted yet"):
        OutputLengthModel().predict(X)
    bad = T.copy()
    bad[3, 1] = -4
    with pytest.raises(DataError, match=r">= 0 or NaN .*got -4.0 at row 3, model column 1"):
        OutputLengthModel().fit(X, bad)
    empty = T.copy()
    empty[:, 0] = np.nan
    with pytest.raises(DataError, match=r"model column 0 has no known value"):
        OutputLengthModel().fit(X, empty)
    with pytest.raises(ConfigError, match=r"`length.alpha` must be a number >= 0"):
        OutputLengthModel(alpha=-1).fit(X, T)
    model = OutputLengthModel().fit(X, T)
    with pytest.raises(DataError, match=r"has 3 features but the length model was fitted on 6"):
        model.predict(X[:, :3])
