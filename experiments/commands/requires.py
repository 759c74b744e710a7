"""Optional dependencies each command needs, checked before any work starts.

A runtime-only install (`pip install tierwise`) routes with an exported artifact; importing
data, training, tuning and tracking need the `[train]` extra, Parquet batches `[batch]`, the
HTTP service `[serve]`. A command missing one says which extra to install, instead of failing
with a traceback halfway through (after routing a whole file, say).
"""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

from tierwise.router.errors import ConfigError

TRAIN_CORE = ("pandas", "sklearn", "scipy", "matplotlib", "tqdm")
# command -> modules it imports on every run (its embedder's own check covers torch)
NEEDS: dict[str, tuple[str, ...]] = {
    "data": ("pandas", "tqdm"),
    "evaluate": TRAIN_CORE,
    "train": (*TRAIN_CORE, "mlflow"),
    "tune": (*TRAIN_CORE, "optuna", "mlflow"),
    "compare": ("pandas", "matplotlib", "mlflow"),
    "track": ("mlflow", "optuna"),
    "check": TRAIN_CORE,
    "bench": (*TRAIN_CORE, "optuna"),
    "serve": ("fastapi", "uvicorn"),
    "label": ("pandas", "pyarrow", "tqdm", "httpx"),
}
EXTRA = {"serve": "serve"}  # the extra holding a command's needs; default `train`
PARQUET = (".parquet", ".pq")


def missing(modules: tuple[str, ...]) -> list[str]:
    """The modules of ``modules`` that cannot be imported (found without importing them)."""
    out = []
    for name in modules:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            out.append(name)
    return out


def _batch_needs(args: argparse.Namespace) -> tuple[str, ...]:
    paths = [getattr(args, "input", None), getattr(args, "output", None)]
    parquet = any(isinstance(p, Path) and p.suffix.lower() in PARQUET for p in paths)
    return ("pyarrow",) if parquet else ()


def check_requirements(args: argparse.Namespace) -> None:
    """Raise one line naming the missing modules and the `pip install` that adds them."""
    command = getattr(args, "command", None)
    if command is None:
        return
    if command == "batch":
        needs, extra, what = _batch_needs(args), "batch", "`tierwise batch` with Parquet files"
    else:
        needs, extra = NEEDS.get(command, ()), EXTRA.get(command, "train")
        what = f"`tierwise {command}`"
    absent = missing(needs)
    if absent:
        raise ConfigError(
            f"{what} needs {', '.join(absent)}, which this install lacks; install it with "
            f"`pip install 'tierwise[{extra}]'` (from a checkout: `pip install '.[{extra}]'`)"
        )
