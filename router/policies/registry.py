"""Policies by short name: configs say ``policy: {name: utility}``, artifacts say which to rebuild.

Adding a policy is one module with one decorator, plus its import in ``policies/__init__.py``::

    @register_policy("mine")
    class MyPolicy(Policy): ...

It then runs the shared conformance suite (tests/test_policy_conformance.py) automatically.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, TypeVar

from tierwise.router.errors import ConfigError
from tierwise.router.policies.base import Policy

__all__ = ["available_policies", "get_policy", "policy_class", "register_policy"]

P = TypeVar("P", bound=type[Policy])

_REGISTRY: dict[str, type[Policy]] = {}


def register_policy(name: str) -> Callable[[P], P]:
    """Class decorator: make ``cls`` available as ``get_policy(name)``."""

    def deco(cls: P) -> P:
        if not (isinstance(cls, type) and issubclass(cls, Policy)):
            raise TypeError(f"register_policy({name!r}) needs a Policy subclass, got {cls!r}")
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"policy name {name!r} is already registered")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return deco


def available_policies() -> list[str]:
    """The registered short names, sorted."""
    return sorted(_REGISTRY)


def policy_class(name: str) -> type[Policy]:
    """The class registered as ``name``; ConfigError listing the valid names otherwise."""
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise ConfigError(f"`policy` must be one of {available_policies()}, got {name!r}") from None


def get_policy(name: str, **params: Any) -> Policy:
    """A policy by short name; unknown names or parameters raise ConfigError listing valid ones."""
    cls = policy_class(name)
    valid = sorted(k for k in inspect.signature(cls.__init__).parameters if k != "self")
    unknown = sorted(set(params) - set(valid))
    if unknown:
        raise ConfigError(f"`{unknown[0]}` is not a parameter of policy {name!r}; valid: {valid}")
    return cls(**params)
