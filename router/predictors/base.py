"""The quality-predictor contract: an sklearn-style estimator whose fitted state is plain arrays.

A predictor maps prompt embeddings ``X (n, d)`` to ``P (n, m)``: for each of the ``m`` model
tiers, the probability that the tier answers well (for graded labels: the expected quality in
[0, 1]). Training may use scikit-learn, imported lazily inside ``fit``; inference runs in pure
numpy from the exported state, so production installs need neither scikit-learn nor torch and
artifacts never contain pickles.

The sklearn estimator contract holds without inheriting ``sklearn.base.BaseEstimator`` (which
would import scikit-learn with ``router``): ``__init__`` only stores its keyword arguments,
``get_params`` / ``set_params`` read the ``__init__`` signature (so ``sklearn.base.clone``
works), validation happens in ``fit`` and fitted attributes end in ``_``.
"""

from __future__ import annotations

import inspect
import math
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, ClassVar, Self

import numpy as np
import numpy.typing as npt

from tierwise.router.errors import ArtifactError, ConfigError, DataError, TierwiseError
from tierwise.router.state import STATE_FORMAT as STATE_FORMAT  # re-exported
from tierwise.router.state import State, StateExport

FloatArray = npt.NDArray[np.float64]



class NotFittedError(TierwiseError, ValueError, AttributeError):
    """``predict_proba`` or ``get_state`` was called before ``fit`` (mirrors sklearn's class)."""


@contextmanager
def blas_single_thread() -> Iterator[None]:
    """Run training with one BLAS thread.

    Training multiplies small matrices (minibatches, one L-BFGS gradient) many times; BLAS
    threads then only spin against each other and against other processes. Measured on a
    loaded 2-core machine: an MLP epoch 44x and a logistic-regression fit 6x faster with one
    thread. threadpoolctl ships with scikit-learn; without it, nothing changes.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def _json_safe(value: Any) -> Any:
    """Hyperparameters go to JSON: numpy scalars become Python ones, tuples become lists."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple | list):
        return [_json_safe(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    return value


def check_X(X: Any, name: str = "X") -> FloatArray:
    """A finite 2-D float matrix, or one DataError naming the first bad cell."""
    try:
        arr = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError):
        raise DataError(f"`{name}` must be a numeric matrix, got {type(X).__name__}") from None
    if arr.ndim != 2:
        raise DataError(f"`{name}` must be 2-D (n_prompts, n_features), got shape {arr.shape}")
    if arr.shape[1] == 0:
        raise DataError(f"`{name}` must have at least one feature column, got shape {arr.shape}")
    bad = ~np.isfinite(arr)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise DataError(
            f"`{name}` must be finite, got {arr[r, c]} at row {r}, column {c}; "
            "check the embeddings for that prompt"
        )
    return arr


def check_labels(Y: Any, n_rows: int, name: str = "Y") -> FloatArray:
    """Labels in [0, 1] with NaN for unknown; one DataError naming the first bad cell."""
    try:
        arr = np.asarray(Y, dtype=np.float64)
    except (TypeError, ValueError):
        raise DataError(f"`{name}` must be a numeric matrix, got {type(Y).__name__}") from None
    if arr.ndim != 2 or arr.shape[0] != n_rows or arr.shape[1] == 0:
        raise DataError(
            f"`{name}` must have shape ({n_rows}, n_models) with n_models >= 1, got {arr.shape}"
        )
    known = ~np.isnan(arr)
    bad = known & ((arr < 0.0) | (arr > 1.0) | np.isinf(arr))
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise DataError(
            f"`{name}` must be in [0, 1] or NaN (unknown), got {arr[r, c]} at row {r}, "
            f"model column {c}; rescale graded scores to [0, 1]"
        )
    empty = np.flatnonzero(~known.any(axis=0))
    if empty.size:
        raise DataError(
            f"`{name}` model column {int(empty[0])} has no known label in the training rows; "
            "drop that model or add labelled prompts for it"
        )
    return arr


def check_sample_weight(sample_weight: Any, n_rows: int) -> FloatArray:
    """Per-row weights as float64 (ones when None); DataError unless finite, >= 0, not all 0."""
    if sample_weight is None:
        return np.ones(n_rows)
    w = np.asarray(sample_weight, dtype=np.float64)
    if w.shape != (n_rows,):
        raise DataError(f"`sample_weight` must have shape ({n_rows},), got {w.shape}")
    if not np.all(np.isfinite(w)) or (w < 0).any() or w.sum() <= 0:
        raise DataError("`sample_weight` must be finite, non-negative and not all zero")
    return w


def sigmoid(z: FloatArray) -> FloatArray:
    """The logistic function, computed without overflow for large ``|z|``."""
    # Split by sign so that large |z| never overflows exp.
    out = np.empty_like(z, dtype=np.float64)
    pos = z >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-z[pos]))
    ez = np.exp(z[~pos])
    out[~pos] = ez / (1.0 + ez)
    return out


def logit(p: FloatArray, eps: float = 1e-6) -> FloatArray:
    """``log(p / (1 - p))`` with ``p`` clipped to ``[eps, 1 - eps]``."""
    q = np.clip(p, eps, 1.0 - eps)
    return np.log(q) - np.log1p(-q)


class QualityPredictor(StateExport, ABC):
    """Base class: subclasses implement ``_fit``, ``_predict``, ``_export`` and ``_import``."""

    name: ClassVar[str] = ""
    n_features_in_: int
    n_models_: int

    # ---- sklearn parameter protocol -------------------------------------------------------
    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        names = []
        for p in sig.parameters.values():
            if p.name == "self":
                continue
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                raise TypeError(f"{cls.__name__}.__init__ must take explicit keyword params only")
            names.append(p.name)
        return sorted(names)

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key in self._param_names():
            value = getattr(self, key)
            if deep and hasattr(value, "get_params") and not isinstance(value, type):
                out.update((f"{key}__{k}", v) for k, v in value.get_params().items())
            out[key] = value
        return out

    def set_params(self, **params: Any) -> QualityPredictor:
        valid = self._param_names()
        for key, value in params.items():
            if key not in valid:
                raise ConfigError(
                    f"`{key}` is not a parameter of predictor {self.name!r}; valid: {valid}"
                )
            setattr(self, key, value)
        return self

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params(deep=False).items())
        return f"{type(self).__name__}({args})"

    # ---- training and inference -----------------------------------------------------------
    def fit(self, X: Any, Y: Any, sample_weight: Any = None) -> QualityPredictor:
        """Fit on embeddings ``X (n, d)`` and labels ``Y (n, m)`` in [0, 1] (NaN = unknown)."""
        self._validate_params()
        Xa = check_X(X)
        Ya = check_labels(Y, Xa.shape[0])
        w = check_sample_weight(sample_weight, Xa.shape[0])
        n_features, n_models = int(Xa.shape[1]), int(Ya.shape[1])
        for attr in [a for a in vars(self) if a.endswith("_") and not a.startswith("_")]:
            delattr(self, attr)  # a refit starts clean
        with blas_single_thread():
            self._fit(Xa, Ya, w)
        # Set last: a failed fit must not leave an object that looks fitted.
        self.n_features_in_ = n_features
        self.n_models_ = n_models
        return self

    def predict_proba(self, X: Any) -> FloatArray:
        """``(n, m)`` probability of success (expected quality) per prompt and model tier."""
        self._check_fitted()
        Xa = check_X(X)
        if Xa.shape[1] != self.n_features_in_:
            raise DataError(
                f"`X` has {Xa.shape[1]} features but the predictor was fitted on "
                f"{self.n_features_in_}; embed prompts with the same model as in training"
            )
        return np.clip(self._predict(Xa), 0.0, 1.0)

    def _check_fitted(self) -> None:
        if not hasattr(self, "n_models_"):
            raise NotFittedError(
                f"this {type(self).__name__} is not fitted yet; "
                "call fit(X, Y) or load a state first"
            )

    # ---- state export (format check and error wrapping: router.state.StateExport) ------------
    state_kind = "predictor"

    @classmethod
    def _state_label(cls) -> str:
        return f"predictor {getattr(cls, 'name', cls.__name__)!r}"

    def _state(self) -> State:
        self._check_fitted()
        fitted, arrays = self._export()
        params = {
            "predictor": self.name,
            "hyperparams": _json_safe(self.get_params(deep=False)),
            "n_features_in": self.n_features_in_,
            "n_models": self.n_models_,
            "fitted": _json_safe(fitted),
        }
        for key, arr in arrays.items():
            if not isinstance(arr, np.ndarray) or arr.dtype.kind not in "fiub":
                raise TypeError(f"state array {key!r} of {self.name} must be a numeric ndarray")
        return params, dict(arrays)

    @classmethod
    def _from_state(cls, params: dict[str, Any], arrays: dict[str, np.ndarray]) -> Self:
        obj = cls(**params["hyperparams"])
        obj.n_features_in_ = int(params["n_features_in"])
        obj.n_models_ = int(params["n_models"])
        obj._import(params.get("fitted", {}), arrays)
        return obj

    @staticmethod
    def _array(
        arrays: dict[str, np.ndarray],
        key: str,
        shape: tuple[int | None, ...],
        *,
        allow_nan: bool = False,
    ) -> np.ndarray:
        """A required state array with a checked shape (None = any size on that axis)."""
        if key not in arrays:
            raise ArtifactError(
                f"predictor state is missing array {key!r}; the artifact is incomplete"
            )
        arr = np.asarray(arrays[key])
        ok = arr.ndim == len(shape) and all(
            s is None or s == a for s, a in zip(shape, arr.shape, strict=False)
        )
        if not ok:
            raise ArtifactError(
                f"predictor state array {key!r} must have shape {shape}, got {arr.shape}"
            )
        if arr.dtype.kind not in "fiub":
            raise ArtifactError(f"predictor state array {key!r} must be numeric, got {arr.dtype}")
        finite = np.isfinite(arr) | (np.isnan(arr) if allow_nan else False)
        if arr.dtype.kind == "f" and not np.all(finite):
            raise ArtifactError(f"predictor state array {key!r} contains non-finite values")
        return arr

    # ---- hooks for subclasses -------------------------------------------------------------
    def _validate_params(self) -> None:
        """Raise ConfigError naming the bad hyperparameter (called by ``fit``)."""

    @abstractmethod
    def _fit(self, X: FloatArray, Y: FloatArray, sample_weight: FloatArray) -> None: ...

    @abstractmethod
    def _predict(self, X: FloatArray) -> FloatArray: ...

    @abstractmethod
    def _export(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]: ...

    @abstractmethod
    def _import(self, fitted: dict[str, Any], arrays: dict[str, np.ndarray]) -> None: ...


# ---- small validators shared by the implementations -----------------------------------------
def require_int(owner: str, key: str, value: Any, low: int, high: int | None = None) -> int:
    """``value`` as an int in ``[low, high]``; ConfigError naming ``owner.key`` otherwise."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | np.integer)
        or value < low
        or (high is not None and value > high)
    ):
        bound = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ConfigError(f"`{owner}.{key}` must be an integer {bound}, got {value!r}")
    return int(value)


def require_float(
    owner: str, key: str, value: Any, low: float, high: float = math.inf, *, open_low: bool = False
) -> float:
    """``value`` as a finite float in its range; ConfigError naming ``owner.key`` otherwise."""
    ok = isinstance(value, int | float | np.floating) and not isinstance(value, bool)
    ok = ok and math.isfinite(float(value)) and float(value) <= high
    ok = ok and (float(value) > low if open_low else float(value) >= low)
    if not ok:
        lo = f"> {low}" if open_low else f">= {low}"
        hi = "" if math.isinf(high) else f" and <= {high}"
        raise ConfigError(f"`{owner}.{key}` must be a number {lo}{hi}, got {value!r}")
    return float(value)


def require_choice(owner: str, key: str, value: Any, choices: tuple[str, ...]) -> str:
    """``value`` if it is one of ``choices``; ConfigError listing them otherwise."""
    if value not in choices:
        raise ConfigError(f"`{owner}.{key}` must be one of {list(choices)}, got {value!r}")
    return str(value)


def require_seed(owner: str, value: Any) -> int | None:
    """A ``random_state``: None or an int >= 0."""
    if value is None:
        return None
    return require_int(owner, "random_state", value, 0)
