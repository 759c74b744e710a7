"""tierwise: send each LLM prompt to the cheapest model tier that still meets your quality bar.

The distribution's only top-level name. Its three parts live in the repository's top-level
folders and are mapped into this namespace:

- ``tierwise.router`` — production: embed prompts, predict tier quality, decide, load artifacts;
- ``tierwise.eval`` — datasets, the cost model, metrics, baselines, certification, reports;
- ``tierwise.experiments`` — Optuna studies, MLflow tracking and the ``tierwise`` CLI.

The public names below load lazily, so ``import tierwise`` stays cheap (no numpy model code,
no pandas, no torch) until a name is used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    "Router": "tierwise.router.core",
    "RouterConfig": "tierwise.router.config",
    "load_artifact": "tierwise.router.artifact",
    "RoutingDataset": "tierwise.eval.dataset",
    "import_dataset": "tierwise.eval.importers.load",
    "load_dataset": "tierwise.experiments.config",
    "compare": "tierwise.eval.reporting",
    "TierwiseError": "tierwise.router.errors",
    "ConfigError": "tierwise.router.errors",
    "DataError": "tierwise.router.errors",
    "ArtifactError": "tierwise.router.errors",
}

__all__ = [
    "ArtifactError",
    "ConfigError",
    "DataError",
    "Router",
    "RouterConfig",
    "RoutingDataset",
    "TierwiseError",
    "__version__",
    "compare",
    "import_dataset",
    "load_artifact",
    "load_dataset",
]

if TYPE_CHECKING:
    from tierwise.eval.dataset import RoutingDataset
    from tierwise.eval.importers.load import import_dataset
    from tierwise.eval.reporting import compare
    from tierwise.experiments.config import load_dataset
    from tierwise.router.artifact import load_artifact
    from tierwise.router.config import RouterConfig
    from tierwise.router.core import Router
    from tierwise.router.errors import ArtifactError, ConfigError, DataError, TierwiseError


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'tierwise' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this hook
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
