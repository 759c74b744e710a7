"""Cross-validated stacking: several predictors, combined per tier by a learned logistic blend.

Why: on real routing logs the per-prompt signal in a sentence embedding is weak (within a task,
predicted P(success) ranks outcomes with AUC ~0.55–0.6 on RouterBench) and which predictor
extracts the most of it differs by dataset: a local kNN wins where traffic has many small
topics (MMLU's 57 subjects), a strongly regularised linear model where a few large tasks
dominate (RouterBench). A fixed choice is wrong on one of them; averaging dilutes the better one.
Stacking learns, per tier and from the training data alone, how much to trust each member:

1. The training prompts are cut into ``folds`` groups (identical embeddings stay together, so a
   duplicated prompt cannot be its own neighbour); each member is fitted on all folds but one
   and predicts the held-out fold, giving out-of-fold P for every training prompt.
2. Per tier, a logistic regression on the members' out-of-fold logits (L2, strength ``C``)
   learns blend weights and an intercept. Uninformative members get weights near zero, so the
   prediction shrinks toward the tier's base rate instead of chasing noise; with many tiers
   this damps the winner's curse of picking the tier whose noise happened to be favourable.
3. The members are refitted on all training prompts; inference is
   ``sigmoid(Σ_k w_jk · logit(p_k,j(x)) + b_j)``, pure numpy like every member.

Training costs ``folds + 1`` fits of each member.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from tierwise.router.errors import ArtifactError, ConfigError, DataError
from tierwise.router.predictors.base import (
    FloatArray,
    QualityPredictor,
    logit,
    require_float,
    require_int,
    require_seed,
    sigmoid,
)
from tierwise.router.predictors.registry import get_predictor, load_predictor, register_predictor

DEFAULT_MEMBERS: tuple[dict[str, Any], ...] = (
    {"name": "knn", "params": {}},
    {"name": "logreg", "params": {"C": 0.1}},
)
_EPS = 1e-4  # members' probabilities are clipped to [eps, 1 - eps] before taking logits


def _member_specs(members: Any) -> list[tuple[str, dict[str, Any]]]:
    """``[{"name": .., "params": {..}}, ...]`` (or ``[name, params]`` pairs, or bare names)."""
    if isinstance(members, str | bytes) or not isinstance(members, Sequence) or not members:
        raise ConfigError(
            "`stack.members` must be a non-empty list such as "
            f"[{{name: knn}}, {{name: logreg, params: {{C: 0.1}}}}], got {members!r}"
        )
    specs: list[tuple[str, dict[str, Any]]] = []
    for i, item in enumerate(members):
        params: Any
        if isinstance(item, str):
            name, params = item, {}
        elif isinstance(item, Mapping) and set(item) <= {"name", "params"} and "name" in item:
            name, params = item["name"], item.get("params") or {}
        elif isinstance(item, Sequence) and len(item) == 2 and isinstance(item[1], Mapping):
            name, params = item[0], item[1]
        else:
            raise ConfigError(
                f"`stack.members[{i}]` must be {{name: <predictor>, params: {{...}}}}, got {item!r}"
            )
        if not isinstance(params, Mapping):
            raise ConfigError(f"`stack.members[{i}].params` must be a mapping, got {params!r}")
        if name == "stack":
            raise ConfigError(f"`stack.members[{i}]` cannot itself be a stack")
        get_predictor(name, **params)  # unknown names or params: ConfigError listing valid ones
        specs.append((str(name), dict(params)))
    return specs


def _fit_blend(F: FloatArray, y: FloatArray, w: FloatArray, C: float) -> tuple[FloatArray, float]:
    """Weighted logistic regression with soft targets y ∈ [0, 1], L2 ``||coef||² / (2C)``.

    Newton's method on a handful of features: exact, deterministic and free of scikit-learn
    (graded labels need soft targets, which sklearn's classifier does not take directly).
    """
    n, k = F.shape
    base = float(logit(np.array([(np.sum(w * y) + 0.5) / (np.sum(w) + 1.0)]))[0])
    if np.sum(w * y) <= 0 or np.sum(w * (1.0 - y)) <= 0:
        # One class only (a tier that never failed, or never succeeded, in training): no blend
        # to learn, and a perfect record on a few hundred prompts does not make it certain.
        return np.zeros(k), base
    # Members estimate the same probability, so a negative weight only fits the collinearity of
    # their out-of-fold noise: drop such members and refit (an active set, at most k rounds).
    active = np.ones(k, dtype=bool)
    coef = np.zeros(k)
    intercept = base
    for _ in range(k):
        cols = np.flatnonzero(active)
        A = np.column_stack([F[:, cols], np.ones(n)])
        theta = np.zeros(cols.size + 1)
        theta[-1] = base
        reg = np.full(cols.size + 1, 1.0 / C)
        reg[-1] = 1e-8  # the intercept is not shrunk
        for _ in range(50):
            q = sigmoid(A @ theta)
            grad = A.T @ (w * (q - y)) + reg * theta
            H = (A * (w * q * (1.0 - q))[:, None]).T @ A + np.diag(reg)
            step = np.linalg.solve(H, grad)
            theta -= step
            if np.max(np.abs(step)) < 1e-9:
                break
        coef = np.zeros(k)
        coef[cols], intercept = theta[:-1], float(theta[-1])
        negative = cols[theta[:-1] < 0]
        if negative.size == 0:
            break
        active[negative] = False
        if not active.any():
            coef = np.zeros(k)
            intercept = base
            break
    return coef, intercept


@register_predictor("stack")
class StackPredictor(QualityPredictor):
    """Per-tier logistic stacking of member predictors fitted by cross-validation.

    Parameters
    ----------
    members: the predictors to combine, ``[{name: knn}, {name: logreg, params: {C: 0.1}}]``.
    folds: cross-validation folds for the out-of-fold predictions (capped at the number of
        distinct training prompts).
    C: inverse L2 strength of the blend (per tier: one weight per member plus an intercept).
    random_state: seed for the fold assignment, passed to members that take one.

    >>> import numpy as np
    >>> from tierwise.router.predictors import get_predictor
    >>> X = np.random.default_rng(0).normal(size=(200, 8))  # prompt embeddings
    >>> Y = np.stack([X[:, 0] > 0, np.ones(200)], axis=1).astype(float)  # small tier: if x0 > 0
    >>> predictor = get_predictor("stack").fit(X, Y)
    >>> new = np.zeros((2, 8)); new[:, 0] = [2.0, -2.0]
    >>> (predictor.predict_proba(new)[:, 0] > 0.5).tolist()  # P(small tier succeeds) > 1/2?
    [True, False]
    """

    def __init__(
        self,
        members: Sequence[Any] = DEFAULT_MEMBERS,
        folds: int = 5,
        C: float = 1.0,
        random_state: int | None = 0,
    ) -> None:
        self.members = members
        self.folds = folds
        self.C = C
        self.random_state = random_state

    def _validate_params(self) -> None:
        _member_specs(self.members)
        require_int("stack", "folds", self.folds, 2)
        require_float("stack", "C", self.C, 0.0, open_low=True)
        require_seed("stack", self.random_state)

    def _new_member(self, name: str, params: dict[str, Any]) -> QualityPredictor:
        est = get_predictor(name, **params)
        if "random_state" in est.get_params() and "random_state" not in params:
            est.set_params(random_state=self.random_state)
        return est

    def _fold_ids(self, X: FloatArray) -> npt.NDArray[np.int64]:
        """Fold per row: identical embeddings share a fold, unless there are very many of them.

        A few copies of one prompt must not predict each other. But when the embedder sees only
        a shared template (e.g. the same few-shot prefix), hundreds of distinct prompts get one
        vector; keeping them in one fold would hold a whole task out of every training part.
        Groups larger than half a fold are therefore spread over the folds row by row.
        """
        n = X.shape[0]
        _, group = np.unique(X, axis=0, return_inverse=True)
        group = np.asarray(group).ravel().astype(np.int64)
        big = np.bincount(group)[group] > max(1.0, n / (2.0 * int(self.folds)))
        group[big] = group.max() + 1 + np.arange(int(big.sum()))  # each row its own group
        n_groups = int(group.max()) + 1
        k = min(int(self.folds), len(np.unique(group)))
        order = np.random.default_rng(self.random_state).permutation(n_groups)
        return np.asarray(order[group] % k, dtype=np.int64)

    def _out_of_fold(
        self, spec: tuple[str, dict[str, Any]], X: FloatArray, Y: FloatArray, w: FloatArray
    ) -> FloatArray:
        folds = self._fold_ids(X)
        prior = np.nansum(Y * w[:, None], axis=0) / np.maximum(
            np.sum((~np.isnan(Y)) * w[:, None], axis=0), 1e-12
        )
        out = np.empty(Y.shape)
        for f in np.unique(folds):
            tr, te = folds != f, folds == f
            try:
                est = self._new_member(*spec).fit(X[tr], Y[tr], sample_weight=w[tr])
                out[te] = est.predict_proba(X[te])
            except DataError:
                # A tier unlabelled (or all-zero weight) outside this fold: no member can be
                # fitted there, so the fold gets the base rates (the blend then learns little).
                out[te] = prior
        return out

    def _fit(self, X: FloatArray, Y: FloatArray, sample_weight: FloatArray) -> None:
        specs = _member_specs(self.members)
        m = Y.shape[1]
        logits = [logit(self._out_of_fold(s, X, Y, sample_weight), _EPS) for s in specs]
        coef = np.zeros((m, len(specs)))
        intercept = np.zeros(m)
        for j in range(m):
            known = ~np.isnan(Y[:, j]) & (sample_weight > 0)
            F = np.column_stack([L[known, j] for L in logits])
            coef[j], intercept[j] = _fit_blend(F, Y[known, j], sample_weight[known], float(self.C))
        self.members_ = [self._new_member(*s).fit(X, Y, sample_weight=sample_weight) for s in specs]
        self.coef_ = coef
        self.intercept_ = intercept

    def _predict(self, X: FloatArray) -> FloatArray:
        z = np.tile(self.intercept_, (X.shape[0], 1))
        for k, est in enumerate(self.members_):
            z += logit(est.predict_proba(X), _EPS) * self.coef_[:, k]
        return sigmoid(z)

    def _export(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        arrays: dict[str, np.ndarray] = {"coef": self.coef_, "intercept": self.intercept_}
        states = []
        for k, est in enumerate(self.members_):
            params, member_arrays = est.get_state()
            states.append({"name": est.name, "state": params})
            arrays.update({f"m{k}.{key}": arr for key, arr in member_arrays.items()})
        return {"members": states}, arrays

    def _import(self, fitted: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        m = self.n_models_
        states = fitted.get("members")
        specs = _member_specs(self.members)
        if not isinstance(states, list) or len(states) != len(specs):
            raise ArtifactError(
                f"stack state must hold {len(specs)} member states, got "
                f"{len(states) if isinstance(states, list) else type(states).__name__}"
            )
        self.coef_ = self._array(arrays, "coef", (m, len(specs))).astype(np.float64)
        self.intercept_ = self._array(arrays, "intercept", (m,)).astype(np.float64)
        self.members_ = []
        for k, item in enumerate(states):
            prefix = f"m{k}."
            sub = {key[len(prefix) :]: a for key, a in arrays.items() if key.startswith(prefix)}
            est = load_predictor(item["name"], item["state"], sub)
            if est.n_features_in_ != self.n_features_in_ or est.n_models_ != m:
                raise ArtifactError(f"stack member {k} does not match the stack's shape")
            self.members_.append(est)
