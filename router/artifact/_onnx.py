"""Export a sentence-transformers embedder to ONNX (fp32 or int8) for the torch-free runtime.

The export directory holds ``model.onnx`` (the transformer: token ids -> ``last_hidden_state``),
``tokenizer.json`` (for the ``tokenizers`` library, truncation and padding configured) and
``embedder.json`` (pooling, dimension, identity, checksums, how it was made and how close it came
to the torch model). :class:`router.embed.onnx.OnnxEmbedder` loads it with onnxruntime alone.

torch, transformers and sentence-transformers are imported inside functions: exporting is a
training-side step, and ``import router`` must stay light.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from tierwise.router.embed.onnx import (
    CONFIG_FILE,
    FORMAT,
    FORMAT_VERSION,
    MODEL_FILE,
    TOKENIZER_FILE,
    OnnxEmbedder,
)
from tierwise.router.errors import ArtifactError, ConfigError

if TYPE_CHECKING:
    from tierwise.router.embed.sentence import SentenceTransformerEmbedder

Quantization = Literal["none", "int8"]
QUANTIZATIONS: tuple[str, ...] = ("none", "int8")
OPSET = 17
# Every export is checked against torch on these (the long one crosses the token limit, so
# truncation is checked too). fp32 agrees to rounding; int8 loses a little (~0.98 worst measured).
_PROBES = (
    "How do I reset my password?",
    "",
    "Écris un poème sur l'été — 日本語も少し 🚀",
    "def f(x):\n    return x ** 2  # explain the complexity",
    "Summarize the following report. " + "The quarterly numbers were strong. " * 60,
)
MIN_COSINE = {"none": 0.9999, "int8": 0.95}
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def export_onnx(
    source: str | os.PathLike[str] | SentenceTransformerEmbedder,
    out_dir: str | os.PathLike[str],
    *,
    quantize: Quantization = "none",
    max_tokens: int | None = None,
    overwrite: bool = False,
) -> Path:
    """Export ``source`` to ``out_dir`` and check it against torch; return ``out_dir``.

    ``source`` is a :class:`SentenceTransformerEmbedder`, an embedder spec (``"minilm"``,
    ``"sentence-transformers:<path>"``) or a sentence-transformers model directory. The fp32
    export keeps the source's ``identity`` (same vectors, so caches and artifacts stay valid);
    int8 gets its own. ``max_tokens`` defaults to the model's own limit (256 for MiniLM).
    """
    if quantize not in QUANTIZATIONS:
        raise ConfigError(
            f"`quantize` must be one of {', '.join(QUANTIZATIONS)}, got {quantize!r}."
        )
    out = Path(out_dir).expanduser()
    if out.exists() and not out.is_dir():
        raise ConfigError(f"`out_dir` must be a directory, got the file {str(out)!r}.")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise ConfigError(
                f"`out_dir` {str(out)!r} already exists and is not empty; choose a new directory "
                "or pass overwrite=True (--overwrite) to replace it."
            )
        if not (out / CONFIG_FILE).is_file():  # overwrite replaces exports, never other folders
            raise ConfigError(
                f"`out_dir` {str(out)!r} is not empty and holds no {CONFIG_FILE}, so it is not an "
                "earlier export; refusing to delete it. Choose a new or empty directory."
            )
    emb = _source_embedder(source)
    st = _load_for_export(emb.directory)
    limit = _check_max_tokens(max_tokens, emb.max_tokens, st)
    st.max_seq_length = limit
    identity = emb.identity
    if limit != emb.max_tokens:  # same scheme as SentenceTransformerEmbedder: limit in the id
        base, sep, _ = identity.rpartition(":max_tokens=")
        identity = f"{base if sep else identity}:max_tokens={limit}"

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        inputs = _export_transformer(st, tmp / "model.fp32.onnx")
        if quantize == "int8":
            _quantize_int8(tmp / "model.fp32.onnx", tmp / MODEL_FILE)
            (tmp / "model.fp32.onnx").unlink()
        else:
            (tmp / "model.fp32.onnx").rename(tmp / MODEL_FILE)
        _write_tokenizer(st, limit, tmp / TOKENIZER_FILE)
        model_sha = sha256_file(tmp / MODEL_FILE)
        if quantize == "int8":
            identity = f"{identity}+onnx-int8@{model_sha[:16]}"
        config = _config(st, emb, identity, inputs, limit, quantize, model_sha, tmp)
        _write_json(tmp / CONFIG_FILE, config)
        config["verification"] = _verify(st, tmp, quantize)
        _write_json(tmp / CONFIG_FILE, config)
        tmp.chmod(0o755)  # mkdtemp makes it private; a model directory is meant to be shared
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out


def _source_embedder(source: Any) -> SentenceTransformerEmbedder:
    from tierwise.router.embed.base import get_embedder
    from tierwise.router.embed.sentence import SentenceTransformerEmbedder

    if isinstance(source, SentenceTransformerEmbedder):
        return source
    if isinstance(source, str | os.PathLike):
        text = os.fspath(source)
        if Path(text).expanduser().is_dir():
            return SentenceTransformerEmbedder(text)
        emb = get_embedder(text)
        if isinstance(emb, SentenceTransformerEmbedder):
            return emb
        raise ConfigError(
            f"`source` must name a sentence-transformers model, got {text!r} "
            f"({type(emb).__name__} has no network to export); use 'minilm' or a model directory."
        )
    raise ConfigError(
        "`source` must be a SentenceTransformerEmbedder, an embedder spec or a model directory, "
        f"got {type(source).__name__}; to export an in-memory SentenceTransformer, "
        "model.save(dir) it first and pass dir."
    )


def _load_for_export(directory: Path) -> Any:
    """A private copy with eager attention: the shared cached model must not change under users."""
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as err:
        raise ConfigError(
            f"ONNX export needs torch and sentence-transformers ({err}); "
            "install them with `pip install 'tierwise[train]'`."
        ) from None
    # Eager attention, not SDPA: the traced SDPA path bakes shape checks into the graph (tracer
    # warnings) and measured ~15% slower at 256 tokens in onnxruntime; outputs agree either way.
    from transformers.utils import logging as hf_logging

    bar_was_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # the "Loading weights" bar is noise in CLI output
    try:
        st = SentenceTransformer(
            str(directory),
            device="cpu",
            local_files_only=True,
            model_kwargs={"attn_implementation": "eager"},
        )
    except Exception as err:
        first = str(err).strip().splitlines()[0][:300] if str(err).strip() else ""
        raise ConfigError(
            f"could not load the sentence-transformers model in {str(directory)!r} for export: "
            f"{type(err).__name__}: {first}"
        ) from None
    finally:
        if bar_was_on:
            hf_logging.enable_progress_bar()
    mods = list(st)
    kinds = [type(m).__name__ for m in mods]
    pooling = _pooling_mode(mods[1]) if len(mods) > 1 else None
    if (
        not hasattr(mods[0], "auto_model")
        or kinds[1:2] != ["Pooling"]
        or pooling != "mean"
        or any(k != "Normalize" for k in kinds[2:])
    ):
        raise ConfigError(
            f"ONNX export supports Transformer -> mean Pooling [-> Normalize] models, got "
            f"{' -> '.join(kinds)} (pooling {pooling!r}) in {str(directory)!r}; "
            "use the sentence-transformers embedder for this model."
        )
    return st


def _pooling_mode(module: Any) -> str | None:
    mode = getattr(module, "pooling_mode", None)
    if isinstance(mode, str):
        return mode
    if getattr(module, "pooling_mode_mean_tokens", False):  # sentence-transformers < 5
        return "mean"
    return None


def _check_max_tokens(max_tokens: int | None, source_limit: int | None, st: Any) -> int:
    positions = int(getattr(st[0].auto_model.config, "max_position_embeddings", 512) or 512)
    limit = (source_limit or positions) if max_tokens is None else max_tokens
    if isinstance(limit, bool) or not isinstance(limit, int) or not 8 <= limit <= positions:
        raise ConfigError(
            f"`max_tokens` must be an integer from 8 to {positions} (the model's position "
            f"limit), got {max_tokens!r}."
        )
    return limit


def _export_transformer(st: Any, path: Path) -> list[str]:
    import torch

    hf = st[0].auto_model.eval()
    tokenizer = st.tokenizer
    names = [n for n in _INPUTS if n in tokenizer.model_input_names]
    if "input_ids" not in names or "attention_mask" not in names:
        raise ConfigError(
            f"ONNX export needs a tokenizer producing input_ids and attention_mask, got "
            f"{tokenizer.model_input_names}."
        )

    class Encoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.hf = hf

        def forward(self, *args: torch.Tensor) -> torch.Tensor:
            return self.hf(**dict(zip(names, args, strict=True))).last_hidden_state

    # Two texts of different lengths, so the traced graph sees real padding in the mask.
    batch = tokenizer(
        ["a short probe", "a somewhat longer probe sentence for tracing"],
        padding=True,
        return_tensors="pt",
    )
    args = tuple(batch[n] for n in names)
    axes = {n: {0: "batch", 1: "sequence"} for n in [*names, "last_hidden_state"]}
    # The TorchScript exporter (dynamo=False), not the torch.export one: with torch 2.13 the
    # dynamo path needs the extra onnxscript package, and measured on MiniLM it was as accurate
    # but 10-20% slower in onnxruntime (its graph does not fuse as well). Deprecated, still works.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TracerWarnings on shape checks: verified below instead
        torch.onnx.export(
            Encoder().eval(),
            args,
            str(path),
            input_names=names,
            output_names=["last_hidden_state"],
            dynamic_axes=axes,
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,
        )
    return names


@contextlib.contextmanager
def _quiet_root_logger() -> Iterator[None]:
    """quantize_dynamic logs a 'consider pre-processing' tip via the root logger; drop it only."""
    root = logging.getLogger()
    null = logging.NullHandler() if not root.handlers else None  # stops logging's basicConfig()
    drop = logging.Filter("\0")  # a name no record has: filters out every root record
    if null:
        root.addHandler(null)
    root.addFilter(drop)
    try:
        yield
    finally:
        root.removeFilter(drop)
        if null:
            root.removeHandler(null)


def _quantize_int8(src: Path, dst: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # Per-channel weights, MatMul only: the defaults (per-tensor, Gather too) gave a worst-case
    # cosine of 0.87 to torch on MiniLM; this gives ~0.978 worst / 0.989 mean at the same speed.
    # Also excluding the FFN output MatMuls reached 0.984 but cost ~40% of the int8 speed-up.
    with _quiet_root_logger():
        quantize_dynamic(
            src, dst, weight_type=QuantType.QInt8, per_channel=True, op_types_to_quantize=["MatMul"]
        )


def _write_tokenizer(st: Any, limit: int, path: Path) -> None:
    from tokenizers import Tokenizer

    fast = st.tokenizer
    if not getattr(fast, "is_fast", False):
        raise ConfigError("ONNX export needs a fast (Rust) tokenizer; this model has a slow one.")
    # A copy: the live tokenizer's truncation/padding state belongs to transformers.
    tok = Tokenizer.from_str(fast.backend_tokenizer.to_str())
    tok.enable_truncation(max_length=limit)
    pad_id = fast.pad_token_id if fast.pad_token_id is not None else 0
    tok.enable_padding(pad_id=pad_id, pad_token=fast.pad_token or "[PAD]", direction="right")
    tok.save(str(path))


def _config(
    st: Any,
    emb: SentenceTransformerEmbedder,
    identity: str,
    inputs: list[str],
    limit: int,
    quantize: str,
    model_sha: str,
    directory: Path,
) -> dict[str, Any]:
    import onnxruntime
    import torch

    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "identity": identity,
        "source_identity": emb.identity,
        "dim": int(emb.dim),
        "max_tokens": limit,
        "pooling": "mean",
        "normalize": True,
        "quantization": quantize,
        "inputs": inputs,
        "output": "last_hidden_state",
        "model_sha256": model_sha,
        "tokenizer_sha256": sha256_file(directory / TOKENIZER_FILE),
        "exporter": {
            "method": "torch.onnx.export (TorchScript)",
            "opset": str(OPSET),
            "torch": torch.__version__,
            "onnxruntime": onnxruntime.__version__,
        },
        "verification": None,
    }


def _verify(st: Any, directory: Path, quantize: str) -> dict[str, Any]:
    """Embed the probes both ways; a model that disagrees with torch is never published."""
    probes = list(_PROBES)
    ref = np.asarray(st.encode(probes, normalize_embeddings=True), dtype=np.float32)
    got = OnnxEmbedder(directory).embed(probes)
    cos = np.sum(ref * got, axis=1)
    worst = float(cos.min())
    if not worst >= MIN_COSINE[quantize]:
        raise ArtifactError(
            f"ONNX export ({quantize}) disagrees with torch: worst cosine {worst:.5f} < "
            f"{MIN_COSINE[quantize]} on probe {probes[int(cos.argmin())][:60]!r}; "
            "this model/torch combination cannot be exported reliably, keep the torch embedder."
        )
    return {
        "probes": len(probes),
        "min_cosine": round(worst, 6),
        "mean_cosine": round(float(cos.mean()), 6),
    }


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n", encoding="utf-8")
