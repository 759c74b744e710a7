"""Benchmark inputs: a dataset from its experiment config, and its embeddings, computed once.

Embeddings come from the project's embedding cache (``router.cache_dir`` of the config, else
``$TIERWISE_CACHE_DIR``, else ``.tierwise-cache/embeddings``); misses are embedded and stored,
so a second run on the same data embeds nothing. A prompt that a normalization leaves unchanged
(shorter than the embedder's budget) reuses a vector cached under another normalization that
leaves it unchanged too: the embedder saw the same text.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tierwise.eval.dataset import RoutingDataset
from tierwise.experiments.config import ExperimentConfig, load_dataset, load_experiment
from tierwise.experiments.training import cache_dir
from tierwise.router.config import RouterConfig
from tierwise.router.embed import Embedder

SUBSAMPLE_SEED = 12345
NORMALIZATIONS = ("head", "tail", "head_tail")


@dataclass
class BenchData:
    """One dataset ready to benchmark: its config, labelled prompts and subsampling note."""

    key: str
    config: ExperimentConfig
    dataset: RoutingDataset
    subsampled_from: int | None

    @property
    def note(self) -> str:
        ds = self.dataset
        sub = f", subsampled from {self.subsampled_from}" if self.subsampled_from else ""
        return f"{ds.n_prompts} prompts × {ds.n_models} models{sub}"


def load_bench_data(
    path: str | Path, max_prompts: int | None = None, *, key: str | None = None
) -> BenchData:
    """Import the config's dataset; more than ``max_prompts`` prompts → a seeded subsample."""
    cfg = load_experiment(path)
    ds = load_dataset(cfg, progress=False)
    ds.require_complete_labels()
    name = key or cfg.name
    if max_prompts and ds.n_prompts > max_prompts:
        rng = np.random.default_rng(SUBSAMPLE_SEED)
        keep = np.sort(rng.choice(ds.n_prompts, max_prompts, replace=False))
        return BenchData(name, cfg, ds.subset(keep), ds.n_prompts)
    return BenchData(name, cfg, ds, None)


class Embeddings:
    """Embedding matrices per (prompts, normalization) through the shared on-disk cache."""

    def __init__(self, embedder: Embedder, directory: str) -> None:
        from tierwise.router.cache import EmbeddingCache

        self.embedder = embedder
        self.cache = EmbeddingCache(directory)
        self.seconds = 0.0
        self._memo: dict[tuple[int, str], np.ndarray] = {}

    @classmethod
    def for_config(cls, router: RouterConfig) -> Embeddings:
        """The embedder and cache a router config names (after any ``--set`` overrides)."""
        from tierwise.router.embed import get_embedder

        return cls(get_embedder(router.embedder.name), cache_dir(router))

    def normalizer(self, mode: str) -> Any:
        from tierwise.router.normalize import NormalizationConfig, Normalizer

        return Normalizer.for_embedder(NormalizationConfig(mode=mode), self.embedder)

    def matrix(self, prompts: Sequence[str], mode: str, *, progress: bool = True) -> np.ndarray:
        """``(n, dim)`` float32 embeddings of ``prompts`` under normalization ``mode``."""
        from tierwise.router.cache import embed_with_cache, text_digest

        memo_key = (hash(tuple(prompts)), mode)
        if memo_key in self._memo:
            return self._memo[memo_key]
        t0 = time.perf_counter()
        emb, norm = self.embedder, self.normalizer(mode)
        unique = list(dict.fromkeys(prompts))
        have = self.cache.get_many(
            emb.identity, norm.key, emb.dim, [text_digest(p) for p in unique]
        )
        missing = [p for p in unique if text_digest(p) not in have]
        if missing:
            self._reuse_unchanged(missing, mode)
        X = embed_with_cache(emb, norm, list(prompts), self.cache, progress=progress)
        self.seconds += time.perf_counter() - t0
        self._memo[memo_key] = np.asarray(X, dtype=np.float32)
        return self._memo[memo_key]

    def _reuse_unchanged(self, prompts: list[str], mode: str) -> None:
        """Store vectors of prompts this normalization leaves unchanged from another mode's."""
        from tierwise.router.cache import text_digest

        emb, norm = self.embedder, self.normalizer(mode)
        todo = {text_digest(p): p for p in prompts if norm.apply(p) == p}
        for other in NORMALIZATIONS:
            if other == mode or not todo:
                continue
            onorm = self.normalizer(other)
            found = self.cache.get_many(emb.identity, onorm.key, emb.dim, list(todo))
            usable = [d for d in found if onorm.apply(todo[d]) == todo[d]]
            if usable:
                vecs = np.stack([found[d] for d in usable])
                self.cache.put_many(emb.identity, norm.key, usable, vecs)
                for d in usable:
                    del todo[d]
