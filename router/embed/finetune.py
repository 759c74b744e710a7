"""Fine-tune a sentence-transformers encoder on routing labels; the result is a local model dir.

Only the top ``layers`` transformer layers learn: the frozen lower layers' token activations are
computed once per prompt, so an epoch costs a forward/backward pass through 1-2 layers instead of
six (router/embed/finetune_train.py). The objective is the routing label itself: per-model
success, either one logistic head per model (``bce``) or item-response-shaped (``irt``:
``sigmoid(disc_m * (ability_m - difficulty(x)))``, one difficulty per prompt shared by every
model). The fine-tuned model is saved as a sentence-transformers directory named by a content
hash of (base model, prompts, labels, params, seed), so ``sentence-transformers:<dir>`` embeds
with it, its embedder identity (and so every embedding-cache key) differs from the base model's,
and ``router.artifact.export_onnx`` bundles it like any other sentence-transformers model.

torch is imported only inside :func:`finetune_encoder`; this module is light to import.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field

from tierwise.router.errors import ConfigError, DataError
from tierwise.router.schema import StrictModel

METADATA_FILE = "finetune.json"
FORMAT = "tierwise-finetuned-encoder"


class FinetuneConfig(StrictModel):
    """How to fine-tune the embedder on the routing labels (``embedder: {finetune: {...}}``)."""

    layers: int = Field(2, ge=1, le=48)  # top transformer layers that learn; the rest stay frozen
    epochs: int = Field(4, ge=1, le=100)
    lr: float = Field(5e-5, gt=0, le=1.0)  # the transformer layers'
    head_lr: float = Field(1e-3, gt=0, le=1.0)  # the routing head's (discarded after training)
    batch_size: int = Field(32, ge=1, le=4096)
    objective: Literal["bce", "irt"] = "bce"
    # Token budget of the fine-tuned model (its max_seq_length, so the prompt normalizer keeps
    # the same head/tail of a long prompt at training and at routing time).
    max_tokens: int = Field(128, ge=8, le=8192)
    holdout: float = Field(0.15, ge=0.05, le=0.5)  # slice of train for early stopping
    patience: int = Field(1, ge=0, le=20)
    threads: int = Field(2, ge=1, le=256)  # fixed, so a seed gives the same weights


def _check_labels(prompts: Sequence[str], success: Any) -> np.ndarray:
    y = np.asarray(success, dtype=np.float64)
    if y.ndim != 2 or y.shape[0] != len(prompts):
        raise DataError(
            f"`success` must be a (n_prompts, n_models) matrix with n_prompts={len(prompts)}, "
            f"got shape {y.shape}; pass one row of per-model success per prompt."
        )
    if y.shape[0] < 10:
        raise DataError(f"fine-tuning needs at least 10 labelled prompts, got {y.shape[0]}.")
    if not np.isfinite(y).all() or y.min() < 0 or y.max() > 1:
        raise DataError(
            "`success` must hold values in [0, 1] with no NaN, got "
            f"min {np.nanmin(y):.3g}, max {np.nanmax(y):.3g}, {int(np.isnan(y).sum())} NaN; "
            "drop or fill unlabelled rows first."
        )
    return y.astype(np.float32)


def finetune_key(
    base_digest: str, texts: Sequence[str], y: np.ndarray, config: FinetuneConfig, seed: int
) -> str:
    """sha256 naming a fine-tuning run: same base, data, labels, params and seed → same model."""
    h = hashlib.sha256(f"{FORMAT}:1:{base_digest}:{seed}:".encode())
    h.update(config.model_dump_json().encode())
    for t in texts:
        h.update(hashlib.sha256(t.encode()).digest())
    h.update(np.ascontiguousarray(y, dtype=np.float32).tobytes())
    return h.hexdigest()


def default_cache_dir() -> Path:
    """``$TIERWISE_CACHE_DIR`` or ``.tierwise-cache`` (where embeddings are cached too)."""
    return Path(os.environ.get("TIERWISE_CACHE_DIR") or ".tierwise-cache")


def finetune_encoder(
    prompts: Sequence[str],
    success: Any,
    config: FinetuneConfig | None = None,
    *,
    seed: int = 0,
    base: str = "minilm",
    cache_dir: str | os.PathLike[str] | None = None,
    normalization: Any = None,
    progress: bool = True,
) -> str:
    """Fine-tune ``base`` on ``success[i, m]`` (model m's success on prompt i); return its spec.

    The spec is ``sentence-transformers:<cache_dir>/finetuned/<name>-ft-<hash>``; a run with the
    same inputs finds the saved model and trains nothing. ``normalization`` (a
    :class:`router.normalize.NormalizationConfig`, default head_tail) picks the part of a long
    prompt the model sees, as the router's normalizer will at routing time.
    """
    from tierwise.router.embed.base import get_embedder
    from tierwise.router.embed.sentence import SentenceTransformerEmbedder, content_hash
    from tierwise.router.normalize import NormalizationConfig, Normalizer

    cfg = config or FinetuneConfig()
    y = _check_labels(prompts, success)
    emb = get_embedder(base)
    if not isinstance(emb, SentenceTransformerEmbedder):
        raise ConfigError(
            f"`embedder` must be a sentence-transformers model to fine-tune, got {base!r}; "
            "use 'minilm' or 'sentence-transformers:<dir>'."
        )
    limit = min(cfg.max_tokens, emb.max_tokens or cfg.max_tokens)
    norm = Normalizer(normalization or NormalizationConfig(), emb.tokenizer, model_max_tokens=limit)
    texts = [norm.apply(p) for p in prompts]
    base_digest = content_hash(emb.directory)
    key = finetune_key(base_digest, texts, y, cfg, seed)
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    out = (root / "finetuned" / f"{emb.directory.name}-ft-{key[:16]}").resolve()
    if (out / METADATA_FILE).is_file():
        return f"sentence-transformers:{out}"
    from tierwise.router.embed.finetune_train import train_top_layers

    st, history = train_top_layers(emb.directory, texts, y, cfg, seed, limit, progress)
    meta = {
        "format": FORMAT,
        "base": emb.identity,
        "base_sha256": base_digest,
        "key": key,
        "seed": seed,
        "params": cfg.model_dump(),
        "n_prompts": len(texts),
        "n_models": int(y.shape[1]),
        "history": history,
    }
    _save(st, meta, out)
    return f"sentence-transformers:{out}"


def _save(st: Any, meta: dict[str, Any], out: Path) -> None:
    """Write the model next to ``out`` and rename it in place: a reader never sees half a model."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".ft-", dir=out.parent))
    try:
        st.save(str(tmp))
        seconds = meta["history"].pop("seconds", None)  # timings vary run to run: not hashed
        cached = meta["history"].pop("cached_seconds", None)
        (tmp / METADATA_FILE).write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
        # README.md is left out of the model's content hash, so the run's timing lives there.
        (tmp / "README.md").write_text(
            f"tierwise fine-tuned encoder (base {meta['base']}), key {meta['key']}; "
            f"fit {seconds} s ({cached} s of it on the frozen layers). See {METADATA_FILE}.\n"
        )
        try:
            os.replace(tmp, out)
        except OSError:  # another process saved the same model first: same bytes, keep theirs
            if not (out / METADATA_FILE).is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def finetune_metadata(spec_or_dir: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The saved run's metadata (params, base, history), or None if not a fine-tuned model."""
    text = str(spec_or_dir)
    if text.startswith("sentence-transformers:"):
        text = text.partition(":")[2]
    path = Path(text) / METADATA_FILE
    if not path.is_file():
        return None
    data: dict[str, Any] = json.loads(path.read_text())
    return data
