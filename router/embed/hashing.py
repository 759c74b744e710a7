"""A tiny deterministic embedder: signed feature hashing of word and character n-grams.

No torch, no model file, identical output on every machine and Python run (crc32, not the salted
built-in ``hash``). Texts sharing words land close together, which is enough for unit tests and
for a quick baseline; it knows nothing about meaning.
"""

from __future__ import annotations

import itertools
import re
import zlib

import numpy as np

from tierwise.router.embed.base import Embedder, register_embedder
from tierwise.router.errors import ConfigError

_WORD = re.compile(r"\w+", re.UNICODE)
_VERSION = 1  # bump when features change: it is part of the identity, so caches stay correct
_MAX_DIM = 1 << 20
_CHAR_WEIGHT = 0.5  # char n-grams add robustness to inflection but should not dominate words


def _h(feature: str) -> int:
    return zlib.crc32(feature.encode("utf-8", "surrogatepass"))


class HashingEmbedder(Embedder):
    """Hashed word unigrams + bigrams and character ``char_n``-grams, signed, L2-normalized."""

    def __init__(self, dim: int = 256, *, char_n: int = 3) -> None:
        if isinstance(dim, bool) or not isinstance(dim, int) or not 2 <= dim <= _MAX_DIM:
            raise ConfigError(f"hashing `dim` must be an integer in [2, {_MAX_DIM}], got {dim!r}.")
        if isinstance(char_n, bool) or not isinstance(char_n, int) or not 0 <= char_n <= 8:
            raise ConfigError(f"hashing `char_n` must be an integer in [0, 8], got {char_n!r}.")
        self._dim = dim
        self._char_n = char_n

    @property
    def identity(self) -> str:
        return f"hashing-v{_VERSION}:dim={self._dim}:char_n={self._char_n}"

    @property
    def dim(self) -> int:
        return self._dim

    def _features(self, text: str) -> list[tuple[str, float]]:
        words = _WORD.findall(text.lower())
        feats: list[tuple[str, float]] = [("w:" + w, 1.0) for w in words]
        feats += [(f"b:{a} {b}", 1.0) for a, b in itertools.pairwise(words)]
        n = self._char_n
        if n:
            for w in words:
                padded = f"<{w}>"
                feats += [
                    ("c:" + padded[i : i + n], _CHAR_WEIGHT) for i in range(len(padded) - n + 1)
                ]
        if not feats:
            # No word characters (e.g. only punctuation): hash the raw text so the row is not zero.
            feats = [("raw:" + text, 1.0)]
        return feats

    def _row(self, text: str) -> np.ndarray:
        row = np.zeros(self._dim, dtype=np.float64)
        feats = self._features(text)
        hashes = np.fromiter((_h(f) for f, _ in feats), dtype=np.uint64, count=len(feats))
        weights = np.fromiter((w for _, w in feats), dtype=np.float64, count=len(feats))
        # One crc32 gives both the bucket and, from an independent high bit, the sign.
        idx = (hashes % np.uint64(self._dim)).astype(np.int64)
        sign = np.where((hashes >> np.uint64(31)) & np.uint64(1), -1.0, 1.0)
        np.add.at(row, idx, sign * weights)
        if not row.any():  # features cancelled out exactly: fall back to one fixed bucket
            row[_h(text) % self._dim] = 1.0
        return row

    def _encode(self, texts: list[str], batch_size: int, progress: bool) -> np.ndarray:
        return np.stack([self._row(t) for t in texts]).astype(np.float32)


def _factory(arg: str | None, **kwargs: object) -> HashingEmbedder:
    if arg is None:
        return HashingEmbedder(**kwargs)  # type: ignore[arg-type]
    try:
        dim = int(arg)
    except ValueError:
        raise ConfigError(
            f"`embedder` 'hashing:{arg}' needs an integer dimension, e.g. 'hashing:256'."
        ) from None
    return HashingEmbedder(dim, **kwargs)  # type: ignore[arg-type]


register_embedder("hashing", _factory, usage="hashing:<dim>")
