"""The embedder contract and the registry that builds embedders from a short spec string.

An embedder turns prompts into L2-normalized float32 rows. Its ``identity`` names the model *and* a
hash of its weights/config, so an on-disk cache never serves one model's vectors to another.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from tierwise.router.errors import ConfigError, DataError

FloatMatrix = npt.NDArray[np.float32]


class Embedder(ABC):
    """Base class for every embedder.

    Subclasses implement :meth:`_encode`; :meth:`embed` checks inputs and the output contract
    (shape ``(n, dim)``, float32, unit-norm rows), so every embedder behaves the same at the edges.
    """

    @property
    @abstractmethod
    def identity(self) -> str:
        """Stable id: model name + content hash of its weights/config (part of every cache key)."""

    @property
    @abstractmethod
    def dim(self) -> int:
        """Length of each embedding row."""

    @property
    def max_tokens(self) -> int | None:
        """Tokens the model reads before it truncates (None: no limit)."""
        return None

    @property
    def tokenizer(self) -> Any | None:
        """The model's fast tokenizer, for token-accurate prompt normalization (None: by words)."""
        return None

    @abstractmethod
    def _encode(self, texts: list[str], batch_size: int, progress: bool) -> np.ndarray:
        """Embed a non-empty list of strings; rows need not be normalized yet."""

    def embed(
        self, texts: Sequence[str], *, batch_size: int = 32, progress: bool = False
    ) -> FloatMatrix:
        """Embed ``texts`` into a float32 ``(len(texts), dim)`` matrix with unit-norm rows."""
        if isinstance(texts, str):
            raise DataError(
                "`texts` must be a sequence of strings, got a single str; wrap it: [text]."
            )
        items = list(texts)
        for i, t in enumerate(items):
            if not isinstance(t, str):
                raise DataError(
                    f"`texts[{i}]` must be a str, got {type(t).__name__} {t!r:.80}; "
                    "validate prompts with router.prompts.validate_batch first."
                )
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"`batch_size` must be a positive integer, got {batch_size!r}.")
        if not items:
            return np.zeros((0, self.dim), dtype=np.float32)
        out = np.asarray(self._encode(items, batch_size, progress), dtype=np.float32)
        if out.shape != (len(items), self.dim):
            raise RuntimeError(
                f"embedder {self.identity} returned shape {out.shape}, "
                f"expected ({len(items)}, {self.dim})"
            )
        return l2_normalize(out)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.identity!r}, dim={self.dim})"


def l2_normalize(matrix: np.ndarray) -> FloatMatrix:
    """Scale rows to unit L2 norm; an all-zero row stays zero rather than becoming NaN."""
    m = np.asarray(matrix, dtype=np.float32)
    norms = np.linalg.norm(m, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return np.ascontiguousarray(m / norms, dtype=np.float32)


@dataclass(frozen=True)
class _Entry:
    factory: Callable[..., Embedder]
    usage: str  # how to write the spec, shown in error messages
    needs_arg: bool


_REGISTRY: dict[str, _Entry] = {}


def register_embedder(
    name: str,
    factory: Callable[..., Embedder],
    *,
    usage: str | None = None,
    needs_arg: bool = False,
) -> None:
    """Register ``factory(arg, **kwargs)`` under ``name``; ``arg`` is the text after ``name:``.

    ``needs_arg`` makes ``name`` alone an error (e.g. ``sentence-transformers`` needs a model).
    """
    if not name or ":" in name:
        raise ConfigError(f"embedder name must be non-empty and contain no ':', got {name!r}.")
    _REGISTRY[name] = _Entry(factory, usage or name, needs_arg)


def available_embedders() -> list[str]:
    """Spec forms accepted by :func:`get_embedder`, e.g. ``['hashing:<dim>', 'minilm', ...]``."""
    return sorted(e.usage for e in _REGISTRY.values())


def get_embedder(spec: str, **kwargs: Any) -> Embedder:
    """Build an embedder from ``name`` or ``name:arg``, e.g. ``"minilm"`` or ``"hashing:64"``."""
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigError(
            f"`embedder` must be a non-empty string, got {spec!r}; "
            f"valid: {', '.join(available_embedders())}."
        )
    name, sep, arg = spec.strip().partition(":")
    entry = _REGISTRY.get(name)
    if entry is None:
        raise ConfigError(
            f"`embedder` must be one of {', '.join(available_embedders())}, got {spec!r}."
        )
    if entry.needs_arg and not arg:
        raise ConfigError(f"`embedder` {spec!r} needs an argument: write it as {entry.usage!r}.")
    return entry.factory(arg if sep else None, **kwargs)
