"""Bundle an ONNX embedder into a router artifact, so production needs no torch at all.

``export_artifact(src, out)`` reads a router artifact trained with a sentence-transformers
embedder, exports that embedder with :func:`router.artifact.export_onnx` (fp32 or int8, checked
against torch) and writes a *new* artifact holding everything the old one did plus:

- payload ``runtime_embedder``: the export's ``embedder.json`` fields, and the checksum of the
  artifact it was made from;
- arrays ``runtime.onnx_model`` (the ONNX file's bytes) and ``runtime.tokenizer_json`` (the
  ``tokenizer.json`` bytes), both ``uint8`` — plain numbers, so the artifact stays pickle-free and
  its checksums cover the model too.

:func:`router.runtime.load_runtime` (and ``Router.load``) then embed with onnxruntime and
tokenizers straight from those bytes. Exporting needs the training stack (torch,
sentence-transformers); it is imported only here, when called.
"""

from __future__ import annotations

import copy
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tierwise.router.artifact._embedded import (
    MODEL_ARRAY,
    PAYLOAD_KEY,
    TOKENIZER_ARRAY,
    embedded_config,
)
from tierwise.router.artifact._io import MANIFEST_NAME
from tierwise.router.artifact._store import load_artifact, save_artifact
from tierwise.router.errors import ArtifactError, ConfigError

QUANTIZATIONS = ("none", "int8")


def _refuse_overwrite(out: Path, src: Path, overwrite: bool) -> None:
    if out.resolve() == src.resolve():
        raise ConfigError(
            f"`out` must differ from the source artifact, got {str(out)!r} for both; "
            "write the runtime artifact to a new path"
        )
    if not out.exists():
        return
    is_artifact = (out / MANIFEST_NAME).is_file() if out.is_dir() else out.is_file()
    if out.is_dir() and not any(out.iterdir()):
        return
    if not overwrite:
        raise ConfigError(
            f"`out` {str(out)!r} already exists; choose a new path or pass overwrite=True "
            "(--overwrite) to replace it"
        )
    if not is_artifact:
        raise ConfigError(
            f"`out` {str(out)!r} exists and is not a tierwise artifact; refusing to overwrite it"
        )


def _source_embedder(payload: dict[str, Any], where: str, source: str | None) -> Any:
    """The torch embedder the router was trained with, checked to be the very same model."""
    from tierwise.router.embed import get_embedder
    from tierwise.router.embed.sentence import SentenceTransformerEmbedder

    spec = payload["config"]["embedder"]["name"]
    trained = payload["embedder"]["identity"]
    emb = get_embedder(source) if source else get_embedder(spec)
    if not isinstance(emb, SentenceTransformerEmbedder):
        raise ConfigError(
            f"{where}: embedder {spec!r} is {type(emb).__name__}, not a sentence-transformers "
            "model; only those are exported to ONNX (other embedders need no torch: the "
            "artifact already serves as is)"
        )
    if emb.identity != trained:
        raise ArtifactError(
            f"{where}: the router was trained with embedder {trained!r}, but {spec!r} here is "
            f"{emb.identity!r} (different weights or token limit); export on a machine with the "
            "training model, or pass `source` pointing at that model's directory"
        )
    return emb


def export_artifact(
    artifact: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    quantize: str = "none",
    source: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Write ``out``: the router at ``artifact`` with its embedder bundled as ONNX; return ``out``.

    ``quantize``: ``"none"`` (fp32: same vectors as torch, so the same decisions) or ``"int8"``
    (smaller and faster, vectors within ~0.98 cosine, so a few borderline decisions can differ).
    ``source``: embedder spec or model directory to export instead of the one named in the
    artifact's config (it must have the identity the router was trained with).
    """
    from tierwise.router.artifact._onnx import export_onnx

    if quantize not in QUANTIZATIONS:
        raise ConfigError(
            f"`quantize` must be one of {', '.join(QUANTIZATIONS)}, got {quantize!r}."
        )
    src, dst = Path(artifact), Path(out)
    art = load_artifact(src)
    payload = copy.deepcopy(art.payload)
    if payload.get("kind") != "tierwise.router":
        raise ArtifactError(
            f"{src}: not a tierwise router artifact (kind={payload.get('kind')!r}); pass the "
            "router.tierwise written by `tierwise train`"
        )
    _refuse_overwrite(dst, src, overwrite)
    try:
        emb = _source_embedder(payload, str(src), source)
    except KeyError as err:
        raise ArtifactError(
            f"{src}: router payload has no embedder {err}; re-export it with `tierwise train`"
        ) from None
    with tempfile.TemporaryDirectory(prefix="tierwise-export-") as tmp:
        onnx_dir = export_onnx(emb, Path(tmp) / "onnx", quantize=quantize)  # type: ignore[arg-type]
        model = np.frombuffer((onnx_dir / "model.onnx").read_bytes(), dtype=np.uint8)
        tokenizer = np.frombuffer((onnx_dir / "tokenizer.json").read_bytes(), dtype=np.uint8)
        config = embedded_config(onnx_dir)
    if quantize == "none" and config["identity"] != payload["embedder"]["identity"]:
        raise ArtifactError(  # export_onnx keeps the fp32 identity; anything else is a bug
            f"fp32 export identity {config['identity']!r} differs from the router's "
            f"{payload['embedder']['identity']!r}; the export cannot be trusted"
        )
    payload[PAYLOAD_KEY] = {
        **config,
        "source_artifact_checksum": art.manifest.get("checksum"),
    }
    arrays = {k: v for k, v in art.arrays.items() if not k.startswith("runtime.")}
    arrays[MODEL_ARRAY] = model.copy()
    arrays[TOKENIZER_ARRAY] = tokenizer.copy()
    return save_artifact(dst, payload, arrays)


@dataclass(frozen=True)
class Agreement:
    """How often the exported runtime decides like the training-time (torch) router."""

    prompts: int
    same_model: float  # share of prompts with the same chosen model
    max_p_diff: float  # largest |P(success)| difference over prompts and models

    def __str__(self) -> str:
        return (
            f"{self.same_model:.2%} of {self.prompts} prompts get the same model "
            f"(largest P(success) difference {self.max_p_diff:.4f})"
        )


def decision_agreement(
    trained: str | os.PathLike[str], runtime: str | os.PathLike[str], prompts: Sequence[object]
) -> Agreement:
    """Route ``prompts`` with both artifacts (torch embedder, no cache, vs bundled ONNX)."""
    from tierwise.router.core import Router
    from tierwise.router.runtime import load_runtime

    torch_router = Router.load(str(trained))
    torch_router.config.cache_dir = None  # compare the models, never cached vectors
    onnx_router = load_runtime(runtime)
    a, b = torch_router.route(list(prompts)), onnx_router.route(list(prompts))
    pairs = [(x, y) for x, y in zip(a, b, strict=True) if x.ok and y.ok]
    if not pairs:
        raise ConfigError("no valid prompt to compare decisions on; pass prompts with text")
    same = sum(x.model == y.model for x, y in pairs) / len(pairs)
    diff = max(abs(x.p_success[m] - y.p_success[m]) for x, y in pairs for m in x.p_success)
    return Agreement(len(pairs), same, diff)
