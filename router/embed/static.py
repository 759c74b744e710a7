"""A static (token-embedding) encoder: a prompt is the weighted mean of its tokens' vectors.

No neural network runs at embedding time: the tokenizer (``tokenizers``, Rust) splits the text
and numpy averages rows of a ``(vocabulary, dim)`` table, so it is tens of times faster than
MiniLM on a CPU and needs neither torch nor onnxruntime. The table is distilled offline from a
sentence-transformers model (router/embed/static_distill.py, model2vec's recipe): each
vocabulary token embedded alone by the model, reduced by PCA, weighted down where the token is
frequent (Zipf). It knows words, not word order or context: cheaper, and less accurate (see
docs/benchmarks/scale.md for the measured gap on the shared datasets).

A distilled encoder is a folder: ``vectors.npy`` (float32), ``tokenizer.json`` and
``static.json`` (format, source identity, checksums). ``static:<folder>`` loads one;
``static:minilm`` uses (and on first use distils, which needs torch) the one of the bundled
MiniLM under ``$TIERWISE_CACHE_DIR/static`` or ``.tierwise-cache/static``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from tierwise.router.embed.base import Embedder, register_embedder
from tierwise.router.embed.static_format import (
    CONFIG_FILE,
    FORMAT,
    TOKENIZER_FILE,
    VECTORS_FILE,
    sha256_bytes,
)
from tierwise.router.errors import ArtifactError, ConfigError

MAX_TOKENS = 512  # tokens averaged per prompt: the tail of a very long prompt adds little
DEFAULT_SOURCES = {"minilm": "minilm"}


class StaticEmbedder(Embedder):
    """Mean of token vectors from a distilled table; rows L2-normalized by :meth:`embed`."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        path = Path(directory).expanduser()
        if not (path / CONFIG_FILE).is_file():
            raise ConfigError(
                f"{str(path)!r} is not a static encoder folder ({CONFIG_FILE} is missing); "
                "distil one with `tierwise.router.embed.static_distill.distill('minilm', dir)`."
            )
        try:
            config = json.loads((path / CONFIG_FILE).read_text(encoding="utf-8"))
            vectors = (path / VECTORS_FILE).read_bytes()
            tokenizer = (path / TOKENIZER_FILE).read_text(encoding="utf-8")
        except (OSError, ValueError) as err:
            raise ArtifactError(
                f"{path}: unreadable static encoder ({err}); distil it again."
            ) from None
        self._setup(config, vectors, tokenizer, str(path))

    @classmethod
    def from_bytes(
        cls, config: dict[str, Any], vectors: bytes, tokenizer_json: str, *, where: str
    ) -> StaticEmbedder:
        """Build from the three files' contents (e.g. carried inside a router artifact)."""
        self = cls.__new__(cls)
        self._setup(config, vectors, tokenizer_json, where)
        return self

    def _setup(self, config: dict[str, Any], vectors: bytes, tokenizer: str, where: str) -> None:
        import io

        import tokenizers

        if not isinstance(config, dict) or config.get("format") != FORMAT:
            raise ArtifactError(f"{where}: `format` must be {FORMAT!r}; distil it again.")
        for name, data in ((VECTORS_FILE, vectors), (TOKENIZER_FILE, tokenizer.encode())):
            if sha256_bytes(data) != config.get("sha256", {}).get(name):
                raise ArtifactError(
                    f"{where}: {name} does not match its checksum in {CONFIG_FILE} (altered or "
                    "corrupted); distil it again."
                )
        self._table = np.load(io.BytesIO(vectors), allow_pickle=False).astype(np.float32)
        self._tokenizer_json, self._vectors = tokenizer, vectors  # as checksummed, for bundling
        self._tok = tokenizers.Tokenizer.from_str(tokenizer)
        self._tok.no_padding()
        self._tok.no_truncation()
        self._config = config
        self._where = where
        digest = sha256_bytes(vectors + tokenizer.encode())[:16]
        self._identity = f"static:{config['source']}@{digest}:dim={self._table.shape[1]}"

    @property
    def identity(self) -> str:
        return self._identity

    @property
    def dim(self) -> int:
        return int(self._table.shape[1])

    @property
    def max_tokens(self) -> int | None:
        return MAX_TOKENS

    @property
    def tokenizer(self) -> Any | None:
        return self._tok

    @property
    def files(self) -> tuple[dict[str, Any], bytes, str]:
        """(config, vectors.npy bytes, tokenizer JSON): what a router artifact carries."""
        return self._config, self._vectors, self._tokenizer_json

    def _encode(self, texts: list[str], batch_size: int, progress: bool) -> np.ndarray:
        encs = self._tok.encode_batch(texts, add_special_tokens=False)
        ids = [e.ids[:MAX_TOKENS] for e in encs]
        lengths = np.fromiter((len(i) for i in ids), dtype=np.int64, count=len(ids))
        flat = np.fromiter((t for i in ids for t in i), dtype=np.int64, count=int(lengths.sum()))
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        has = lengths > 0
        if flat.size:
            starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])[has]
            sums = np.add.reduceat(self._table[flat], starts, axis=0)
            out[has] = sums / lengths[has, None]
        return out

    def __repr__(self) -> str:
        return f"StaticEmbedder({self._where!r}, identity={self.identity!r})"


def default_folder(source: str) -> Path:
    """Where ``static:<source>`` is distilled and kept (beside the embedding cache)."""
    base = os.environ.get("TIERWISE_CACHE_DIR")
    root = Path(base).parent if base else Path(".tierwise-cache")
    return root / "static" / source


def _factory(arg: str | None, **kwargs: Any) -> StaticEmbedder:
    if not arg:
        raise ConfigError("`embedder` 'static' needs a folder or 'minilm': 'static:minilm'.")
    if arg in DEFAULT_SOURCES:
        folder = default_folder(arg)
        if not (folder / CONFIG_FILE).is_file():
            from tierwise.router.embed.static_distill import distill

            distill(DEFAULT_SOURCES[arg], folder)
        return StaticEmbedder(folder)
    return StaticEmbedder(arg)


register_embedder("static", _factory, usage="static:<folder or minilm>", needs_arg=True)


# ---------------------------------------------------------------- inside a router artifact

PAYLOAD_KEY = "runtime_static_embedder"
VECTORS_ARRAY = "runtime.static_vectors"
TOKENIZER_ARRAY = "runtime.static_tokenizer"


def bundle_static(source: str | os.PathLike[str], out: str | os.PathLike[str]) -> Path:
    """Copy the artifact ``source`` (a router using a static encoder) to ``out`` with the
    encoder's files inside, as `tierwise export` bundles the ONNX encoder: the copy routes
    anywhere with numpy and tokenizers, without the encoder's folder or torch."""
    from tierwise.router.artifact._store import load_artifact, save_artifact
    from tierwise.router.embed.base import get_embedder

    art = load_artifact(Path(source))
    spec = str((art.payload.get("embedder") or {}).get("spec", ""))
    emb = get_embedder(spec) if spec.startswith("static:") else None
    if not isinstance(emb, StaticEmbedder):
        raise ConfigError(
            f"{source}: the router's embedder must be a static encoder ('static:...'), got "
            f"{spec!r}; use `tierwise export` for MiniLM routers."
        )
    config, vectors, tokenizer = emb.files
    payload = {**art.payload, PAYLOAD_KEY: config}
    arrays = {
        **art.arrays,
        VECTORS_ARRAY: np.frombuffer(vectors, dtype=np.uint8),
        TOKENIZER_ARRAY: np.frombuffer(tokenizer.encode("utf-8"), dtype=np.uint8),
    }
    return save_artifact(Path(out), payload, arrays)


def bundled_static(payload: dict[str, Any], arrays: dict[str, Any], where: str) -> StaticEmbedder:
    """The static encoder carried by a loaded artifact (see :func:`bundle_static`)."""
    missing = [k for k in (VECTORS_ARRAY, TOKENIZER_ARRAY) if k not in arrays]
    if missing:
        raise ArtifactError(
            f"{where}: payload `{PAYLOAD_KEY}` is set but arrays {missing} are missing; "
            "bundle the encoder again."
        )
    try:
        tokenizer = arrays[TOKENIZER_ARRAY].tobytes().decode("utf-8")
    except UnicodeDecodeError:
        raise ArtifactError(f"{where}: `{TOKENIZER_ARRAY}` is not UTF-8 JSON.") from None
    return StaticEmbedder.from_bytes(
        payload[PAYLOAD_KEY], arrays[VECTORS_ARRAY].tobytes(), tokenizer, where=where
    )
