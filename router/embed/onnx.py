"""Torch-free embedder: an ONNX export run by onnxruntime, tokenized by ``tokenizers``.

Loads a directory written by :func:`tierwise.router.artifact.export_onnx` (``model.onnx``,
``tokenizer.json``, ``embedder.json``), mean-pools ``last_hidden_state`` over the attention mask
and L2-normalizes, exactly as sentence-transformers does. An fp32 export reports the same
``identity`` as the torch embedder it came from, so embedding caches and router artifacts built
with torch are served unchanged; an int8 export has its own identity.

Needs only numpy, onnxruntime and tokenizers (``pip install 'tierwise[onnx]'``), imported when an
embedder is built.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field, ValidationError

from tierwise.router.embed.base import Embedder, register_embedder
from tierwise.router.embed.sentence import available_cpus
from tierwise.router.errors import ArtifactError, ConfigError
from tierwise.router.schema import StrictModel, format_validation_error

FORMAT = "tierwise-onnx-embedder"
FORMAT_VERSION = 1
MODEL_FILE = "model.onnx"
TOKENIZER_FILE = "tokenizer.json"
CONFIG_FILE = "embedder.json"
MAX_DEFAULT_THREADS = 4  # beyond this a 6-layer encoder gains little per call
_sha_memo: dict[tuple[str, int, int], str] = {}


class Verification(StrictModel):
    """How closely the ONNX export reproduced the source model on the probe sentences."""

    probes: int
    min_cosine: float
    mean_cosine: float


class OnnxEmbedderConfig(StrictModel):
    """``embedder.json``: what the runtime needs to reproduce the torch embedder's vectors."""

    format: Literal["tierwise-onnx-embedder"]
    format_version: int = Field(ge=1)
    identity: str = Field(min_length=1)
    source_identity: str = Field(min_length=1)
    dim: int = Field(gt=0)
    max_tokens: int = Field(gt=0)
    pooling: Literal["mean"]
    normalize: Literal[True]
    quantization: Literal["none", "int8"]
    inputs: list[Literal["input_ids", "attention_mask", "token_type_ids"]]
    output: str = Field(min_length=1)
    model_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    tokenizer_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    exporter: dict[str, str]
    verification: Verification | None = None


def _sha256(path: Path) -> str:
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _sha_memo:  # a second embedder on the same file should load instantly
        h = hashlib.sha256()
        with path.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        _sha_memo[key] = h.hexdigest()
    return _sha_memo[key]


def read_config(directory: Path) -> OnnxEmbedderConfig:
    """Read and check ``embedder.json``; every problem is an ArtifactError naming the file."""
    path = directory / CONFIG_FILE
    if not path.is_file():
        raise ArtifactError(
            f"{str(directory)!r} is not an ONNX embedder export ({CONFIG_FILE} is missing); "
            "create one with `tierwise.router.artifact.export_onnx('minilm', dir)`."
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ArtifactError(f"{path}: not valid JSON ({err}); re-run the export.") from None
    version = data.get("format_version") if isinstance(data, dict) else None
    if isinstance(version, int) and version > FORMAT_VERSION:
        raise ArtifactError(
            f"{path}: `format_version` must be at most {FORMAT_VERSION}, got {version}; "
            "it was written by a newer tierwise, upgrade to load it."
        )
    try:
        return OnnxEmbedderConfig.model_validate(data)
    except ValidationError as err:
        raise ArtifactError(
            format_validation_error(err, str(path)) + "; re-run the export."
        ) from None


class OnnxEmbedder(Embedder):
    """Embed with an ONNX export on CPU; vectors match the torch embedder it came from.

    ``num_threads``: onnxruntime intra-op threads (default: CPUs this process may use, at most 4).
    ``verify``: check the model and tokenizer files against the checksums in ``embedder.json``
    (about 0.1 s for MiniLM; memoized per file in the process).
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        num_threads: int | None = None,
        verify: bool = True,
    ) -> None:
        path = Path(directory).expanduser()
        if not path.is_dir():
            raise ConfigError(
                f"ONNX embedder directory {str(path)!r} does not exist or is not a directory; "
                "export one with `tierwise.router.artifact.export_onnx('minilm', dir)`."
            )
        _check_threads(num_threads)
        cfg = read_config(path)
        for name, expected in (
            (MODEL_FILE, cfg.model_sha256),
            (TOKENIZER_FILE, cfg.tokenizer_sha256),
        ):
            file = path / name
            if not file.is_file():
                raise ArtifactError(f"{str(path)!r}: {name} is missing; re-run the export.")
            if verify and _sha256(file) != expected:
                raise ArtifactError(
                    f"{file}: checksum does not match {CONFIG_FILE} (file corrupted or replaced); "
                    "re-run the export."
                )
        try:
            tokenizer_json = (path / TOKENIZER_FILE).read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise ArtifactError(
                f"{path / TOKENIZER_FILE}: not UTF-8 JSON; re-run the export."
            ) from None
        self._setup(
            cfg, path / MODEL_FILE, tokenizer_json, path.resolve(), num_threads, "re-run the export"
        )

    @classmethod
    def from_bytes(
        cls,
        config: OnnxEmbedderConfig,
        model: bytes,
        tokenizer_json: str,
        *,
        where: str = "<memory>",
        num_threads: int | None = None,
        verify: bool = True,
        fix: str = "re-run the export",
    ) -> OnnxEmbedder:
        """Build from an export held in memory (e.g. bundled in a router artifact).

        ``where`` names the source in messages and ``repr``; ``fix`` ends every error message.
        """
        _check_threads(num_threads)
        if verify:
            for name, data, expected in (
                (MODEL_FILE, model, config.model_sha256),
                (TOKENIZER_FILE, tokenizer_json.encode("utf-8"), config.tokenizer_sha256),
            ):
                if hashlib.sha256(data).hexdigest() != expected:
                    raise ArtifactError(
                        f"{where}: {name} bytes do not match the checksum in the embedder "
                        f"config (altered or corrupted); {fix}."
                    )
        self = cls.__new__(cls)
        self._setup(config, model, tokenizer_json, Path(where), num_threads, fix)
        return self

    def _setup(
        self,
        cfg: OnnxEmbedderConfig,
        model: Path | bytes,
        tokenizer_json: str,
        where: Path,
        num_threads: int | None,
        fix: str,
    ) -> None:
        self._directory = where
        self.config = cfg
        ort, tokenizers = _import_runtime()
        try:
            self._tok = tokenizers.Tokenizer.from_str(tokenizer_json)
        except Exception as err:
            raise ArtifactError(f"{where}: tokenizer cannot be loaded ({err}); {fix}.") from None
        padding = self._tok.padding or {}
        self._pad_id = int(padding.get("pad_id", 0))
        # Padding is done per batch below (sorted by length); truncation stays as exported.
        self._tok.no_padding()
        self._tok.enable_truncation(max_length=cfg.max_tokens)
        self._session = _session(ort, model, num_threads or default_threads(), where, fix)
        got = sorted(i.name for i in self._session.get_inputs())
        outputs = [o.name for o in self._session.get_outputs()]
        if got != sorted(cfg.inputs) or cfg.output not in outputs:
            raise ArtifactError(
                f"{where}: ONNX model inputs {got} / outputs {outputs} do not match "
                f"its config ({cfg.inputs} -> {cfg.output}); {fix}."
            )
        self._types = "token_type_ids" in cfg.inputs
        self._untruncated: Any | None = None

    @property
    def identity(self) -> str:
        return self.config.identity

    @property
    def dim(self) -> int:
        return self.config.dim

    @property
    def max_tokens(self) -> int | None:
        return self.config.max_tokens

    @property
    def directory(self) -> Path:
        return self._directory

    @property
    def tokenizer(self) -> Any | None:
        """The model's ``tokenizers.Tokenizer`` without truncation, for prompt normalization."""
        if self._untruncated is None:
            import tokenizers

            tok = tokenizers.Tokenizer.from_str(self._tok.to_str())
            tok.no_truncation()
            tok.no_padding()
            self._untruncated = tok
        return self._untruncated

    def _run(self, ids: np.ndarray, mask: np.ndarray, types: np.ndarray) -> np.ndarray:
        feed = {"input_ids": ids, "attention_mask": mask}
        if self._types:
            feed["token_type_ids"] = types
        return np.asarray(self._session.run([self.config.output], feed)[0], dtype=np.float32)

    def _encode(self, texts: list[str], batch_size: int, progress: bool) -> np.ndarray:
        if len(texts) == 1:  # latency path: no padding, so the mean is over every position
            enc = self._tok.encode(texts[0])
            ids = np.asarray(enc.ids, dtype=np.int64)[None]
            types = np.asarray(enc.type_ids, dtype=np.int64)[None]
            return self._run(ids, np.ones_like(ids), types).mean(axis=1)
        encs = self._tok.encode_batch(texts)
        lengths = np.fromiter((len(e.ids) for e in encs), dtype=np.int64, count=len(encs))
        order = np.argsort(-lengths, kind="stable")  # similar lengths together: less padding
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        bounds = _chunks(lengths[order], batch_size)
        for start, end in _progress(bounds, progress, len(texts)):
            idx = order[start:end]
            width = int(lengths[idx].max())
            ids = np.full((len(idx), width), self._pad_id, dtype=np.int64)
            types = np.zeros((len(idx), width), dtype=np.int64)
            mask = np.zeros((len(idx), width), dtype=np.int64)
            for row, i in enumerate(idx):
                n = int(lengths[i])
                ids[row, :n] = encs[i].ids
                types[row, :n] = encs[i].type_ids
                mask[row, :n] = 1
            hidden = self._run(ids, mask, types)
            weights = mask.astype(np.float32)
            summed = np.matmul(weights[:, None, :], hidden)[:, 0, :]
            out[idx] = summed / np.maximum(weights.sum(axis=1, keepdims=True), 1e-9)
        return out

    def __repr__(self) -> str:
        return f"OnnxEmbedder({str(self._directory)!r}, identity={self.identity!r})"


def _import_runtime() -> tuple[Any, Any]:
    try:
        import onnxruntime
        import tokenizers
    except ImportError as err:
        raise ConfigError(
            f"the ONNX embedder needs onnxruntime and tokenizers ({err}); "
            "install them with `pip install 'tierwise[onnx]'`."
        ) from None
    return onnxruntime, tokenizers


def default_threads() -> int:
    """onnxruntime intra-op threads when none are given: usable CPUs, at most 4."""
    return max(1, min(available_cpus(), MAX_DEFAULT_THREADS))


_default_threads = default_threads  # older name, imported by router.runtime


def _check_threads(num_threads: int | None) -> None:
    if num_threads is not None and (
        isinstance(num_threads, bool) or not isinstance(num_threads, int) or num_threads < 1
    ):
        raise ConfigError(f"`num_threads` must be a positive integer, got {num_threads!r}.")


def _session(ort: Any, model: Path | bytes, threads: int, where: Path, fix: str) -> Any:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3  # warnings about unused initializers etc. are not the user's
    source = str(model) if isinstance(model, Path) else model
    try:
        return ort.InferenceSession(source, opts, providers=["CPUExecutionProvider"])
    except Exception as err:
        first = str(err).strip().splitlines()[0][:300] if str(err).strip() else type(err).__name__
        raise ArtifactError(
            f"{where}: onnxruntime cannot load the model ({first}); {fix}."
        ) from None


def _chunks(sorted_lengths: np.ndarray, batch_size: int) -> list[tuple[int, int]]:
    """``(start, end)`` runs of at most ``batch_size`` prompts, lengths sorted longest first.

    A run also ends where a prompt is under half the run's width: one 256-token prompt among
    sixteen short ones would otherwise pad all seventeen to 256 tokens (measured on the shared
    2-core box: 3.0 s for such a call, 0.47 s split), which let one long request slow others.
    """
    bounds: list[tuple[int, int]] = []
    start = 0
    for i in range(1, len(sorted_lengths) + 1):
        if (
            i == len(sorted_lengths)
            or i - start >= batch_size
            or 2 * sorted_lengths[i] < sorted_lengths[start]
        ):
            bounds.append((start, i))
            start = i
    return bounds


def _progress(starts: list[tuple[int, int]], enabled: bool, total: int) -> Any:
    if not enabled:
        return starts
    try:
        from tqdm import tqdm
    except ImportError:
        return starts
    return tqdm(starts, desc=f"embedding {total} prompts (onnx)", unit="batch")


def _factory(arg: str | None, **kwargs: Any) -> OnnxEmbedder:
    assert arg is not None  # registered with needs_arg=True
    return OnnxEmbedder(arg, **kwargs)


register_embedder("onnx", _factory, usage="onnx:<export directory>", needs_arg=True)
