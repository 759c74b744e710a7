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

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from tierwise.router.artifact._embedded import MODEL_ARRAY as MODEL_ARRAY
from tierwise.router.artifact._embedded import PAYLOAD_KEY as PAYLOAD_KEY
from tierwise.router.artifact._embedded import TOKENIZER_ARRAY as TOKENIZER_ARRAY
from tierwise.router.artifact._embedded import embedded_config as embedded_config
from tierwise.router.artifact._embedded import embedded_embedder
from tierwise.router.core import Router
from tierwise.router.errors import ArtifactError
from tierwise.router.normalize import Normalizer
from tierwise.router.schema import bounded_repr

if TYPE_CHECKING:
    from tierwise.router.artifact._store import LoadedArtifact
    from tierwise.router.embed import Embedder

SAFE_EMBEDDERS = ("hashing",)  # read no files and import nothing heavy: always allowed


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


def check_embedder_allowed(spec: str, allowed: Sequence[str], where: str) -> None:
    """Refuse an artifact-named embedder ``spec`` unless it is always safe or in ``allowed``.

    Always safe: :data:`SAFE_EMBEDDERS` (no files, no torch). Checked before the embedder is
    built, so the answer is the same whether a path named in ``spec`` exists or not.
    """
    name = spec.strip().partition(":")[0]
    if name in SAFE_EMBEDDERS or spec in allowed:
        return
    raise ArtifactError(
        f"{where}: the artifact names embedder {bounded_repr(spec)}, which is not loaded by "
        "default: a server loads only an embedder bundled in the artifact (`tierwise export`) "
        "or hashing:<dim>; export the router, or allow this one with "
        f"--allow-embedder {bounded_repr(spec)}"
    )


def bundled_digest(art: LoadedArtifact) -> str | None:
    """sha256 of an artifact's bundled embedder (model, tokenizer, config); None if none.

    Two artifacts with the same digest carry the same embedder byte for byte, so a hot swap
    between them (a retrained router, same embedder) may keep the ONNX session already built.
    """
    if PAYLOAD_KEY not in art.payload:
        return None
    h = hashlib.sha256(json.dumps(art.payload[PAYLOAD_KEY], sort_keys=True).encode())
    for name in (MODEL_ARRAY, TOKENIZER_ARRAY):
        arr = art.arrays.get(name)
        if arr is None:
            return None
        h.update(name.encode() + b"\0")
        h.update(np.ascontiguousarray(arr).data.cast("B"))
    return h.hexdigest()


def load_runtime(
    path: str | os.PathLike[str] | LoadedArtifact,
    *,
    num_threads: int | None = None,
    embedder: Embedder | None = None,
    require_embedded: bool = False,
    allow_embedders: Sequence[str] | None = None,
    warm_up: bool = True,
) -> RuntimeRouter:
    """Load an artifact for serving.

    With a bundled ONNX embedder (``tierwise export``) that embedder is used; otherwise the one
    named in the artifact (fine for torch-free ones such as ``hashing:64``), unless ``embedder``
    is given. ``path`` may be an already loaded artifact. ``require_embedded=True`` refuses
    artifacts without a bundled embedder, so a torch-free deployment fails at start rather than
    on the first request.

    ``allow_embedders``: when not None, an artifact without a bundled embedder may name only
    ``hashing:<dim>`` or one of these exact specs (e.g. ``"minilm"``); servers pass it, so a
    manifest cannot make them import torch or read an arbitrary directory. None (library
    use) builds whatever the artifact names.
    """
    from tierwise.router.artifact._store import LoadedArtifact, load_artifact

    art = path if isinstance(path, LoadedArtifact) else load_artifact(Path(path))
    path = art.path
    if embedder is None:
        embedder = embedded_embedder(art, num_threads=num_threads)
    if embedder is None and require_embedded:
        raise ArtifactError(
            f"{path}: this artifact has no bundled ONNX embedder; create one with "
            "`tierwise export ARTIFACT OUT` and serve OUT"
        )
    router = RuntimeRouter.load(art, embedder=embedder)  # checks the embedder's dimension
    if embedder is None and allow_embedders is not None:
        check_embedder_allowed(router.config.embedder.name, allow_embedders, str(path))
    if warm_up:
        router.warm_up()
    return router
