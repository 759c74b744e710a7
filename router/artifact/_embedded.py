"""The ONNX embedder an exported artifact carries inside it (``tierwise export``).

The model and the tokenizer travel as ``uint8`` arrays and the ``embedder.json`` fields as the
payload key :data:`PAYLOAD_KEY`. :func:`embedded_embedder` turns them back into an
:class:`OnnxEmbedder` built from the bytes (never a temporary file). It lives with the artifact
format, not the runtime, so ``Router.load`` can pick the bundled embedder up without importing
the runtime (which imports the Router: that was an import circle).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import ValidationError

from tierwise.router.embed.onnx import OnnxEmbedder, OnnxEmbedderConfig
from tierwise.router.errors import ArtifactError
from tierwise.router.schema import format_validation_error

if TYPE_CHECKING:
    from tierwise.router.artifact._store import LoadedArtifact
    from tierwise.router.embed.base import Embedder

__all__ = ["MODEL_ARRAY", "PAYLOAD_KEY", "TOKENIZER_ARRAY", "embedded_config", "embedded_embedder"]

PAYLOAD_KEY = "runtime_embedder"
MODEL_ARRAY = "runtime.onnx_model"
TOKENIZER_ARRAY = "runtime.tokenizer_json"
_EXTRA_FIELDS = ("source_artifact_checksum",)  # ours, beside the embedder.json fields


def embedded_config(export_dir: Path) -> dict[str, Any]:
    """The checked ``embedder.json`` of an ONNX export directory, as JSON for a payload."""
    from tierwise.router.embed.onnx import read_config

    return read_config(export_dir).model_dump(mode="json")


def embedded_embedder(
    art: LoadedArtifact, *, num_threads: int | None = None
) -> Embedder | None:
    """The ONNX (or static) embedder bundled in a loaded artifact, or None if it carries none."""
    payload = art.payload
    from tierwise.router.embed import static

    if static.PAYLOAD_KEY in payload:  # a static encoder (static.bundle_static): numpy only
        return static.bundled_static(payload, art.arrays, str(art.path))
    if PAYLOAD_KEY not in payload:
        return None
    where = str(art.path)
    raw = payload[PAYLOAD_KEY]
    fields = (
        {k: v for k, v in raw.items() if k not in _EXTRA_FIELDS} if isinstance(raw, dict) else raw
    )
    try:
        config = OnnxEmbedderConfig.model_validate(fields)
    except ValidationError as err:
        raise ArtifactError(
            format_validation_error(err, f"{where}: `{PAYLOAD_KEY}`") + "; re-run `tierwise export`"
        ) from None
    missing = [k for k in (MODEL_ARRAY, TOKENIZER_ARRAY) if k not in art.arrays]
    if missing:
        raise ArtifactError(
            f"{where}: payload `{PAYLOAD_KEY}` is set but arrays {missing} are missing; "
            "re-run `tierwise export`"
        )
    model, tok = art.arrays[MODEL_ARRAY], art.arrays[TOKENIZER_ARRAY]
    for name, arr in ((MODEL_ARRAY, model), (TOKENIZER_ARRAY, tok)):
        if arr.dtype != np.uint8 or arr.ndim != 1:
            raise ArtifactError(
                f"{where}: array `{name}` must be 1-d uint8 bytes, got {arr.dtype} with shape "
                f"{arr.shape}; re-run `tierwise export`"
            )
    try:
        tokenizer_json = tok.tobytes().decode("utf-8")
    except UnicodeDecodeError:
        raise ArtifactError(
            f"{where}: array `{TOKENIZER_ARRAY}` is not UTF-8 JSON; re-run `tierwise export`"
        ) from None
    return OnnxEmbedder.from_bytes(
        config,
        model.tobytes(),
        tokenizer_json,
        where=where,
        num_threads=num_threads,
        fix="re-run `tierwise export`",
    )
