"""Benchmark configurations: labels on the command line → RouterConfig variants of a dataset's.

A predictor label is ``default`` (the dataset config's own predictor), a registry name, or
``name:key=value;key=value`` with YAML values (``'knn:k=200'``, ``'stack:C=0.1'``). ``knn``
alone means plain kNN with k = 100, the reference row of every benchmark. Policy labels:
``default``, ``utility``, ``threshold`` (gap mode). ``--set path=value`` overrides any router
setting for every configuration of a run (``--set policy.select.confidence=0.9``).
"""

from __future__ import annotations

from typing import Any

import yaml

from tierwise.router.config import RouterConfig
from tierwise.router.errors import ConfigError

POLICIES: dict[str, tuple[str, dict[str, Any]]] = {
    "utility": ("utility", {}),
    "threshold": ("threshold", {"mode": "gap"}),
}
NORMALIZATIONS = ("head", "tail", "head_tail")
CALIBRATIONS = ("platt", "isotonic", "centered_isotonic", "none")
# Named predictor labels with fixed parameters (k=100 stated, so the row means the same
# thing whatever the registry's default becomes).
NAMED: dict[str, tuple[str, dict[str, Any]]] = {"knn": ("knn", {"k": 100})}


def predictor_spec(label: str) -> tuple[str, dict[str, Any]] | None:
    """(registry name, params) for a label; None for ``default`` (the config's own predictor)."""
    if label == "default":
        return None
    if label in NAMED:
        return NAMED[label]
    name, _, rest = label.partition(":")
    params: dict[str, Any] = {}
    for item in filter(None, rest.split(";")):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(
                f"predictor label {label!r} must be NAME or NAME:key=value;key=value, "
                f"got the item {item!r}"
            )
        params[key.strip()] = yaml.safe_load(value)
    return name, params


def parse_sets(items: list[str]) -> dict[str, Any]:
    """``["policy.select.confidence=0.9"]`` → nested dict of router overrides (YAML values)."""
    out: dict[str, Any] = {}
    for item in items:
        path, sep, value = item.partition("=")
        if not sep or not path.strip():
            raise ConfigError(f"`--set` must be PATH=VALUE (e.g. crossfit.folds=5), got {item!r}")
        node = out
        keys = path.strip().split(".")
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        node[keys[-1]] = yaml.safe_load(value)
    return out


def _merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def with_overrides(base: RouterConfig, overrides: dict[str, Any]) -> RouterConfig:
    """``base`` with ``--set`` overrides applied and validated (unknown keys rejected)."""
    if not overrides:
        return base
    try:
        return RouterConfig.model_validate(_merge(base.model_dump(), overrides))
    except ValueError as err:
        first = str(err).splitlines()
        raise ConfigError(
            f"`--set` produced an invalid router config: {' '.join(first[:3])}"
        ) from None


def router_config(
    base: RouterConfig, pred: str, policy: str, norm: str, calib: str, seed: int
) -> RouterConfig:
    """``base`` with predictor, policy, normalization and calibration swapped in."""
    update: dict[str, Any] = {"seed": seed}
    if calib != "default":
        update["calibration"] = base.calibration.model_copy(update={"method": calib})
    spec = predictor_spec(pred)
    if spec is not None:
        update["predictor"] = base.predictor.model_copy(update={"name": spec[0], "params": spec[1]})
    if policy != "default":
        if policy not in POLICIES:
            raise ConfigError(
                f"`--policies` must be among {['default', *POLICIES]}, got {policy!r}"
            )
        pname, pparams = POLICIES[policy]
        update["policy"] = base.policy.model_copy(update={"name": pname, "params": dict(pparams)})
    if norm != "default":
        update["normalization"] = base.normalization.model_copy(update={"mode": norm})
    return base.model_copy(update=update)
