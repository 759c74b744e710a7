"""One conformance suite run against every registered quality predictor."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tierwise.router.errors import ArtifactError, ConfigError, DataError
from tierwise.router.predictors import (
    NotFittedError,
    QualityPredictor,
    available_predictors,
    get_predictor,
    load_predictor,
    predictor_class,
)

ROOT = Path(__file__).resolve().parents[1]
NAMES = available_predictors()


def make_data(n: int = 400, d: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Three tiers of rising skill; success depends on a prompt 'difficulty' direction."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    difficulty = 3.0 * X[:, 0] + 1.5 * X[:, 1]
    skill = np.array([-0.5, 0.5, 1.5])
    p = 1.0 / (1.0 + np.exp(-(skill[None, :] * 2.0 - 2.0 * difficulty[:, None])))
    Y = (rng.random(p.shape) < p).astype(np.float64)
    return X.astype(np.float32), Y


def fitted(name: str, X: np.ndarray, Y: np.ndarray, **params: object) -> QualityPredictor:
    return get_predictor(name, **params).fit(X, Y)


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    return make_data()


@pytest.fixture(scope="module", params=NAMES)
def trained(request, data) -> tuple[str, QualityPredictor]:
    X, Y = data
    return request.param, fitted(request.param, X[:300], Y[:300])


def test_registry_lists_the_four_implementations() -> None:
    assert {"knn", "logreg", "mlp", "mf"} <= set(NAMES)


def test_unknown_name_lists_valid_names() -> None:
    with pytest.raises(ConfigError, match=r"must be one of \['irt', 'knn', 'logreg', 'mf', 'mlp'"):
        get_predictor("forest")


@pytest.mark.parametrize("name", NAMES)
def test_unknown_parameter_is_named_with_the_valid_ones(name: str) -> None:
    with pytest.raises(ConfigError, match=r"`bogus` is not a parameter of predictor .*valid: \["):
        get_predictor(name, bogus=1)


def test_shapes_range_and_learning(trained, data) -> None:
    name, est = trained
    X, Y = data
    P = est.predict_proba(X[300:])
    assert est.name == name and isinstance(est, QualityPredictor)
    assert P.shape == (100, 3) and P.dtype == np.float64
    assert np.all((P >= 0) & (P <= 1)) and np.all(np.isfinite(P))
    # Better than predicting each tier's training success rate for every prompt.
    prior = np.broadcast_to(Y[:300].mean(axis=0), P.shape)
    brier = np.mean((P - Y[300:]) ** 2)
    assert brier < np.mean((prior - Y[300:]) ** 2) - 0.01, name
    # The tiers' ordering (rising skill) is learned.
    assert P[:, 0].mean() < P[:, 1].mean() < P[:, 2].mean()


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_predictions(name: str, data) -> None:
    X, Y = data
    params = {"random_state": 3} if "random_state" in predictor_class(name)._param_names() else {}
    a = fitted(name, X[:300], Y[:300], **params).predict_proba(X[300:])
    b = fitted(name, X[:300], Y[:300], **params).predict_proba(X[300:])
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", NAMES)
def test_sklearn_clone_and_params_round_trip(name: str, data) -> None:
    from sklearn.base import clone

    est = get_predictor(name)
    params = est.get_params()
    assert set(params) == set(predictor_class(name)._param_names())
    twin = type(est)(**params)
    assert twin.get_params() == params
    X, Y = data
    est.fit(X[:100], Y[:100])
    c = clone(est)
    assert c.get_params() == params
    assert not hasattr(c, "n_models_"), "clone must be unfitted"
    key = sorted(params)[0]
    assert c.set_params(**{key: params[key]}) is c
    with pytest.raises(ConfigError, match=r"`nope` is not a parameter"):
        c.set_params(nope=1)


def test_state_round_trip_is_exact_and_json_safe(trained, data, tmp_path) -> None:
    name, est = trained
    X, _ = data
    params, arrays = est.get_state()
    text = json.dumps(params)
    np.savez(tmp_path / "s.npz", **arrays)
    with np.load(tmp_path / "s.npz") as npz:
        loaded = {k: npz[k] for k in npz.files}
    assert all(a.dtype.kind in "fiub" for a in loaded.values())
    twin = load_predictor(name, json.loads(text), loaded)
    np.testing.assert_array_equal(twin.predict_proba(X[300:]), est.predict_proba(X[300:]))


def test_predict_from_state_never_imports_sklearn(trained, data, tmp_path) -> None:
    name, est = trained
    X, _ = data
    params, arrays = est.get_state()
    (tmp_path / "p.json").write_text(json.dumps(params))
    np.savez(tmp_path / "a.npz", **arrays)
    np.save(tmp_path / "x.npy", X[300:])
    np.save(tmp_path / "expected.npy", est.predict_proba(X[300:]))
    code = f"""
import json, sys
import numpy as np
from tierwise.router.predictors import load_predictor
d = {str(tmp_path)!r}
with np.load(d + "/a.npz") as z:
    arrays = {{k: z[k] for k in z.files}}
est = load_predictor({name!r}, json.load(open(d + "/p.json")), arrays)
P = est.predict_proba(np.load(d + "/x.npy"))
assert np.array_equal(P, np.load(d + "/expected.npy")), "predictions differ"
heavy = [m for m in sys.modules if m.split(".")[0] in ("sklearn", "torch", "scipy")]
assert not heavy, heavy
"""
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]


@pytest.mark.parametrize("name", NAMES)
def test_unknown_labels_and_one_class_tier(name: str, data) -> None:
    X, Y = data
    Y = Y[:300].copy()
    Y[::3, 0] = np.nan  # a third of tier 0's labels unknown
    Y[:, 1] = 1.0  # tier 1 never failed in training
    P = fitted(name, X[:300], Y).predict_proba(X[300:])
    assert np.all(np.isfinite(P))
    assert P[:, 1].min() > 0.8, "a tier that always succeeded must be predicted to succeed"
    assert P[:, 0].mean() < P[:, 2].mean()


@pytest.mark.parametrize("name", NAMES)
def test_graded_labels_give_expected_quality(name: str, data) -> None:
    X, _ = data
    target = 1.0 / (1.0 + np.exp(-3.0 * X[:, :2].astype(np.float64)))  # graded quality, 2 tiers
    P = fitted(name, X[:300], target[:300]).predict_proba(X[300:])
    for j in range(2):
        assert np.corrcoef(P[:, j], target[300:, j])[0, 1] > 0.6


@pytest.mark.parametrize("name", NAMES)
def test_sample_weight_is_used_and_checked(name: str, data) -> None:
    X, Y = data
    w = np.where(Y[:300, 0] == 1, 5.0, 1.0)  # upweight tier-0 successes
    base = fitted(name, X[:300], Y[:300]).predict_proba(X[300:])
    heavy = get_predictor(name).fit(X[:300], Y[:300], sample_weight=w).predict_proba(X[300:])
    assert heavy[:, 0].mean() > base[:, 0].mean() + 0.02
    with pytest.raises(DataError, match=r"`sample_weight` must have shape \(300,\)"):
        get_predictor(name).fit(X[:300], Y[:300], sample_weight=np.ones(5))


@pytest.mark.parametrize("name", NAMES)
def test_bad_inputs_raise_clear_errors(name: str, data) -> None:
    X, Y = data
    est = get_predictor(name)
    with pytest.raises(NotFittedError, match=r"not fitted yet; call fit"):
        est.predict_proba(X)
    bad = Y[:50].copy()
    bad[7, 2] = 2.0
    with pytest.raises(DataError, match=r"in \[0, 1\] or NaN .*got 2.0 at row 7, model column 2"):
        est.fit(X[:50], bad)
    empty = Y[:50].copy()
    empty[:, 1] = np.nan
    with pytest.raises(DataError, match=r"model column 1 has no known label"):
        est.fit(X[:50], empty)
    Xn = X[:50].copy()
    Xn[3, 4] = np.nan
    with pytest.raises(DataError, match=r"`X` must be finite, got nan at row 3, column 4"):
        est.fit(Xn, Y[:50])
    with pytest.raises(DataError, match=r"`Y` must have shape \(50, n_models\)"):
        est.fit(X[:50], Y[:40])
    est.fit(X[:100], Y[:100])
    with pytest.raises(DataError, match=r"has 5 features but the predictor was fitted on 8"):
        est.predict_proba(X[:3, :5])


def test_load_rejects_inconsistent_states(trained) -> None:
    name, est = trained
    params, arrays = est.get_state()
    other = next(n for n in NAMES if n != name)
    with pytest.raises(ArtifactError, match=r"predictor state is for .* not"):
        load_predictor(other, params, arrays)
    with pytest.raises(ArtifactError, match=r"does not know"):
        load_predictor("forest", params, arrays)
    first = sorted(arrays)[0]
    missing = {k: v for k, v in arrays.items() if k != first}
    with pytest.raises(ArtifactError, match=r"missing array|incomplete"):
        load_predictor(name, params, missing)
    with pytest.raises(ArtifactError, match=r"format must be 1"):
        load_predictor(name, {**params, "format": 99}, arrays)


def test_prediction_does_not_depend_on_the_batch(trained) -> None:
    """A served prompt must get the same probabilities alone or batched with others — even
    for embeddings with exact ties (the hashing embedder makes many)."""
    from tierwise.router.embed import get_embedder

    name, _ = trained
    rng = np.random.default_rng(3)
    words = ["math", "code", "poem", "story", "sql", "love", "war", "x", "y", "z"]
    X = get_embedder("hashing:64").embed([" ".join(rng.choice(words, 4)) for _ in range(300)])
    Y = (rng.random((300, 3)) > 0.5).astype(float)
    pred = fitted(name, X[:200], Y[:200])
    together = pred.predict_proba(X[200:])
    alone = np.vstack([pred.predict_proba(X[i : i + 1]) for i in range(200, 300)])
    np.testing.assert_allclose(alone, together, rtol=0, atol=1e-9)
