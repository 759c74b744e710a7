"""The torch-free production runtime: route with an artifact whose embedder travels inside it.

An artifact written by :func:`tierwise.router.artifact.export_artifact` holds the ONNX model and the
tokenizer as ``uint8`` arrays and the embedder's ``embedder.json`` fields in its payload. Here
they become an onnxruntime session built from the bytes (never a temporary file) and a
``tokenizers`` tokenizer (:meth:`OnnxEmbedder.from_bytes`), so serving needs numpy, onnxruntime,
tokenizers, pydantic and pyyaml — no torch, transformers, sentence-transformers or scikit-learn.

``load_runtime(path)`` returns a :class:`RuntimeRouter`: a Router whose ``embed`` calls the
embedder directly (no SQLite cache lookups, the normalizer built once), which is what a server
wants on its hot path. ``Router.load`` also picks up the bundled embedder (via
:func:`embedded_embedder`), so every loader of an exported artifact gets the ONNX runtime.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
from pydantic import ValidationError

from tierwise.router.core import Router
from tierwise.router.embed.onnx import OnnxEmbedder, OnnxEmbedderConfig
from tierwise.router.errors import ArtifactError
from tierwise.router.normalize import Normalizer
from tierwise.router.schema import format_validation_error

if TYPE_CHECKING:
    from tierwise.router.artifact import LoadedArtifact
    from tierwise.router.embed import Embedder

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
) -> OnnxEmbedder | None:
    """The ONNX embedder bundled in a loaded artifact, or None if it carries none."""
    payload = art.payload
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


class RuntimeRouter(Router):
    """A loaded Router with a lean ``embed`` for serving: no cache, normalizer built once.

    Results equal :meth:`Router.embed`'s (same normalization, same embedder); only the
    per-call bookkeeping (cache keys, SQLite lookups, rebuilding the normalizer) is gone.
    """

    _runtime_normalizer: Normalizer | None = None

    def warm_up(self) -> None:
        """Build the normalizer and run the model once, so the first request is not slow."""
        self._runtime_normalizer = Normalizer.for_embedder(self.config.normalization, self.embedder)
        self.embedder.embed(["warm up"])

    def embed(self, prompts: Sequence[str], *, progress: bool = False) -> npt.NDArray[Any]:
        norm = self._runtime_normalizer
        if norm is None:
            self.warm_up()
            norm = self._runtime_normalizer
            assert norm is not None
        texts = [norm.apply(t) for t in prompts]
        return self.embedder.embed(texts, batch_size=self.config.embedder.batch_size)


def limit_blas_threads(threads: int = 1) -> bool:
    """Cap numpy's BLAS at ``threads`` for the whole process; False if threadpoolctl is missing.

    The predictors' matrix products at routing time are small; multi-threaded BLAS then spends
    its time waking and spinning threads, which on a busy machine made a kNN prediction for 16
    prompts take ~100 ms instead of ~6 ms (measured on the shared 2-core box), and it competes
    with onnxruntime for the same cores. Servers and batch jobs call this once at start.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return False
    threadpool_limits(limits=threads, user_api="blas")
    return True


def load_runtime(
    path: str | os.PathLike[str],
    *,
    num_threads: int | None = None,
    embedder: Embedder | None = None,
    require_embedded: bool = False,
    warm_up: bool = True,
) -> RuntimeRouter:
    """Load an artifact for serving.

    With a bundled ONNX embedder (``tierwise export``) that embedder is used; otherwise the one
    named in the artifact (fine for torch-free ones such as ``hashing:64``), unless ``embedder``
    is given. ``require_embedded=True`` refuses artifacts without a bundled embedder, so a
    torch-free deployment fails at start rather than on the first request.
    """
    from tierwise.router.artifact import load_artifact, load_router

    art = load_artifact(Path(path))
    if embedder is None:
        embedder = embedded_embedder(art, num_threads=num_threads)
    if embedder is None and require_embedded:
        raise ArtifactError(
            f"{path}: this artifact has no bundled ONNX embedder; create one with "
            "`tierwise export ARTIFACT OUT` and serve OUT"
        )
    router = load_router(art, embedder=embedder)  # checks the embedder's dimension
    # Same state, leaner embed(): RuntimeRouter adds no fields, so re-classing is safe.
    router.__class__ = RuntimeRouter
    assert isinstance(router, RuntimeRouter)
    if warm_up:
        router.warm_up()
    return router
