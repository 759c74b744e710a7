"""The stacking predictor beyond the shared conformance suite: blend weights and member specs."""

from __future__ import annotations

import numpy as np
import pytest

from tierwise.router.errors import ArtifactError, ConfigError
from tierwise.router.predictors import get_predictor, load_predictor
from tierwise.router.predictors.stack import _fit_blend


def _data(n: int = 400, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 6))
    z = 2.5 * X[:, 0]
    p = 1.0 / (1.0 + np.exp(-np.column_stack([z - 1.0, z + 1.0])))
    return X, (rng.random(p.shape) < p).astype(np.float64)


def test_blend_learns_the_informative_member_and_ignores_noise() -> None:
    rng = np.random.default_rng(1)
    n = 2000
    signal = rng.normal(size=n)
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-signal))).astype(float)
    F = np.column_stack([signal, rng.normal(size=n)])  # an informative logit and pure noise
    coef, _ = _fit_blend(F, y, np.ones(n), C=1.0)
    assert 0.8 < coef[0] < 1.2
    assert abs(coef[1]) < 0.1


def test_blend_weights_are_never_negative() -> None:
    rng = np.random.default_rng(2)
    n = 1000
    a = rng.normal(size=n)
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-a))).astype(float)
    # The second column anti-correlates with the target: unconstrained it would get w < 0.
    coef, _ = _fit_blend(np.column_stack([a, -a + 0.1 * rng.normal(size=n)]), y, np.ones(n), 1.0)
    assert np.all(coef >= 0.0)
    assert coef[1] == 0.0 and coef[0] > 0.5


def test_blend_of_one_class_tier_is_its_smoothed_rate() -> None:
    coef, intercept = _fit_blend(np.ones((20, 2)), np.ones(20), np.ones(20), 1.0)
    assert np.all(coef == 0.0)
    assert 1.0 / (1.0 + np.exp(-intercept)) == pytest.approx(20.5 / 21.0)


def test_uninformative_features_shrink_to_the_base_rate() -> None:
    rng = np.random.default_rng(3)
    X = rng.normal(size=(300, 5))
    Y = (rng.random((300, 2)) < [0.3, 0.8]).astype(float)  # labels independent of X
    P = get_predictor("stack").fit(X, Y).predict_proba(rng.normal(size=(200, 5)))
    assert np.abs(P.mean(axis=0) - Y.mean(axis=0)).max() < 0.03
    assert P.std(axis=0).max() < 0.08  # kNN alone varies far more on pure noise


def test_members_are_configurable_and_exported() -> None:
    X, Y = _data()
    members = [{"name": "logreg", "params": {"C": 1.0}}, {"name": "knn", "params": {"k": 30}}]
    est = get_predictor("stack", members=members, folds=3).fit(X[:300], Y[:300])
    assert [m.name for m in est.members_] == ["logreg", "knn"]
    assert est.members_[1].k == 30 and est.coef_.shape == (2, 2)
    params, arrays = est.get_state()
    assert {"coef", "intercept", "m0.coef", "m1.embeddings"} <= set(arrays)
    twin = load_predictor("stack", params, arrays)
    np.testing.assert_array_equal(twin.predict_proba(X[300:]), est.predict_proba(X[300:]))


def test_a_mass_of_identical_embeddings_is_spread_over_the_folds() -> None:
    X, _ = _data(100)
    X[:60] = X[0]  # 60 prompts the embedder cannot tell apart (a shared template)
    folds = get_predictor("stack", folds=5)._fold_ids(X)
    assert len(np.unique(folds[:60])) == 5
    assert np.bincount(folds).min() >= 15


def test_duplicated_prompts_stay_in_one_fold() -> None:
    X, _ = _data(50)
    X = np.vstack([X, X])  # every prompt twice
    folds = get_predictor("stack")._fold_ids(X)
    assert np.array_equal(folds[:50], folds[50:])


@pytest.mark.parametrize(
    ("members", "match"),
    [
        ([], r"`stack.members` must be a non-empty list"),
        ([{"name": "forest"}], r"`predictor` must be one of \[.*'knn'"),
        ([{"name": "stack"}], r"`stack.members\[0\]` cannot itself be a stack"),
        ([{"nom": "knn"}], r"`stack.members\[0\]` must be \{name: <predictor>"),
        ([{"name": "knn", "params": {"kk": 3}}], r"`kk` is not a parameter of predictor 'knn'"),
    ],
)
def test_bad_member_specs_are_named(members: list, match: str) -> None:
    X, Y = _data(60)
    with pytest.raises(ConfigError, match=match):
        get_predictor("stack", members=members).fit(X, Y)


def test_state_with_missing_member_is_refused() -> None:
    X, Y = _data(120)
    params, arrays = get_predictor("stack").fit(X, Y).get_state()
    params = {**params, "fitted": {"members": params["fitted"]["members"][:1]}}
    with pytest.raises(ArtifactError, match=r"stack state must hold 2 member states, got 1"):
        load_predictor("stack", params, arrays)
