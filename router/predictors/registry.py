"""Predictors by short name: configs say ``predictor: knn``, artifacts say which to rebuild."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np

from tierwise.router.errors import ArtifactError, ConfigError
from tierwise.router.predictors.base import QualityPredictor

P = TypeVar("P", bound=type[QualityPredictor])

_REGISTRY: dict[str, type[QualityPredictor]] = {}


def register_predictor(name: str) -> Callable[[P], P]:
    """Class decorator: make ``cls`` available as ``get_predictor(name)``."""

    def deco(cls: P) -> P:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"predictor name {name!r} is already registered")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return deco


def available_predictors() -> list[str]:
    """The registered predictor names, sorted."""
    return sorted(_REGISTRY)


def predictor_class(name: str) -> type[QualityPredictor]:
    """The class registered as ``name``; ConfigError listing the valid names otherwise."""
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise ConfigError(
            f"`predictor` must be one of {available_predictors()}, got {name!r}"
        ) from None


def get_predictor(name: str, **params: Any) -> QualityPredictor:
    """An unfitted predictor; an unknown name or parameter raises ConfigError listing valid ones."""
    cls = predictor_class(name)
    valid = cls._param_names()
    unknown = sorted(set(params) - set(valid))
    if unknown:
        raise ConfigError(
            f"`{unknown[0]}` is not a parameter of predictor {name!r}; valid: {valid}"
        )
    return cls(**params)


def load_predictor(
    name: str, params: dict[str, Any], arrays: dict[str, np.ndarray]
) -> QualityPredictor:
    """Rebuild a fitted predictor from ``get_state()`` output (JSON dict + numeric arrays)."""
    if name not in _REGISTRY:
        raise ArtifactError(
            f"artifact names predictor {name!r}, which this tierwise does not know; "
            f"known: {available_predictors()}"
        )
    if not isinstance(params, dict) or params.get("predictor") != name:
        got = params.get("predictor") if isinstance(params, dict) else type(params).__name__
        raise ArtifactError(
            f"predictor state is for {got!r}, not {name!r}; the artifact is inconsistent"
        )
    return _REGISTRY[name].from_state(params, arrays)
