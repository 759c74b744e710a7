"""Router artifacts: save, load, inspect and export a router as a safe, versioned file.

An artifact is a directory (``manifest.json`` + ``arrays.npz``) or one ``.tierwise`` zip of the
same two files: checksummed, versioned, never pickled (see ``_store`` for the format and the
trust model). This package is the public face; the ``_``-prefixed modules are private:

- ``_io`` — bounded zip/npz reading and writing; ``_manifest`` — the strict manifest schema;
- ``_migrations`` — upgrades of older format versions; ``_store`` — save/load/info;
- ``_persist`` — a fitted Router to and from an artifact (``Router.save``/``Router.load``);
- ``_export`` / ``_onnx`` — the torch-free runtime artifact (bundled ONNX embedder).

Importing this package loads only the standard library, numpy and pydantic: the router-level
names (``save_router``, ``load_router``, the export functions) load lazily on first use, so the
production loader never drags in the predictors, torch or onnxruntime. Inside ``router/``, import
the private modules directly (``core`` -> ``_persist``; ``runtime`` -> ``_store``,
``_embedded``): this package lazily reaches ``_export``, which imports the runtime.
"""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING, Any

from tierwise.router.artifact._io import (
    ARRAYS_NAME,
    MANIFEST_NAME,
    SINGLE_FILE_SUFFIX,
    ArtifactSource,
)
from tierwise.router.artifact._migrations import register_migration
from tierwise.router.artifact._store import (
    FORMAT_VERSION,
    LoadedArtifact,
    artifact_info,
    load_artifact,
    save_artifact,
)

if TYPE_CHECKING:
    from tierwise.router.artifact._export import Agreement, decision_agreement, export_artifact
    from tierwise.router.artifact._onnx import export_onnx
    from tierwise.router.artifact._persist import save_router
    from tierwise.router.core import Router
    from tierwise.router.embed import Embedder

__all__ = [
    "ARRAYS_NAME",
    "FORMAT_VERSION",
    "MANIFEST_NAME",
    "SINGLE_FILE_SUFFIX",
    "Agreement",
    "ArtifactSource",
    "LoadedArtifact",
    "artifact_info",
    "decision_agreement",
    "export_artifact",
    "export_onnx",
    "load_artifact",
    "load_router",
    "register_migration",
    "save_artifact",
    "save_router",
]

# public name -> private module, imported on first use (these pull in the router's components)
_LAZY: dict[str, str] = {
    "save_router": "_persist",
    "export_artifact": "_export",
    "decision_agreement": "_export",
    "Agreement": "_export",
    "export_onnx": "_onnx",
}


def load_router(
    path: str | os.PathLike[str] | LoadedArtifact, *, embedder: Embedder | None = None
) -> Router:
    """Load a router artifact: the same as ``Router.load(path, embedder=embedder)``."""
    from tierwise.router.core import Router

    return Router.load(path, embedder=embedder)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
