"""Synthetic three-tier traffic for the guarantee tests: in memory, or as a CSV log + YAML config.

The small tier fails on prompts full of "hard" words, the mid tier less so, the big one rarely;
``shift`` makes traffic harder by turning that share of the small and mid tiers' successes into
failures (the drift `tierwise check` must catch). Costs are per query, rising with the tier.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tierwise.eval.dataset import RoutingDataset

WORDS = ["math", "code", "poem", "story", "physics", "history", "sql", "python", "love", "war"]
HARD = {"math", "code", "sql", "python", "physics"}
MODELS = ("small", "mid", "big")


def success_prob(prompts: list[str]) -> np.ndarray:
    """True P(success) per prompt and tier: what the labels are drawn from."""
    hard = np.array([sum(w in HARD for w in p.split()[:5]) / 5 for p in prompts])
    return np.stack([1.0 - hard - 0.1, 1.0 - 0.5 * hard, np.full_like(hard, 0.95)], axis=1)


def make_prompts(n: int, seed: int, start: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=5)) + f" item{start + i}" for i in range(n)]


def synthetic(n: int, seed: int, shift: float = 0.0, name: str = "synthetic") -> RoutingDataset:
    prompts = make_prompts(n, seed, start=100_000 * seed)
    rng = np.random.default_rng(seed + 1)
    quality = (rng.random((n, 3)) < success_prob(prompts)).astype(float)
    if shift:
        flip = rng.random((n, 2)) < shift
        quality[:, :2] = np.where(flip, 0.0, quality[:, :2])
    cost = np.array([0.001, 0.01, 0.05]) * (1 + rng.random((n, 1)))
    ids = np.array([f"{seed}-{i}" for i in range(n)])
    return RoutingDataset(name, ids, tuple(prompts), MODELS, quality, cost)


def write_log(
    directory: Path,
    ds: RoutingDataset,
    *,
    name: str = "synthetic",
    models: tuple[str, ...] = MODELS,
    extra_yaml: str = "",
) -> Path:
    """A wide CSV of ``ds`` (only ``models`` columns) and an experiment YAML reading it."""
    directory.mkdir(parents=True, exist_ok=True)
    cols = [ds.models.index(m) for m in models]
    head = ["id", "prompt", *models, *(f"{m}|cost" for m in models)]
    lines = [",".join(head)]
    for i, p in enumerate(ds.prompts):
        q = [str(int(ds.quality[i, j])) for j in cols]
        c = [f"{ds.cost[i, j]:.8f}" for j in cols]
        lines.append(",".join([str(ds.ids[i]), p, *q, *c]))
    (directory / f"{name}.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    cfg = directory / f"{name}.yaml"
    cfg.write_text(
        f"name: {name}\n"
        "data:\n"
        "  sources:\n"
        f"    - path: {name}.csv\n"
        '      quality: "{model}"\n'
        '      cost: "{model}|cost"\n'
        "  columns: {id: id, prompt: prompt}\n"
        "  labels: {kind: binary, missing: drop_row}\n"
        "evaluation: {bootstrap_samples: 0}\n"
        "tracking: {enabled: false}\n"
        "router:\n"
        "  embedder: {name: 'hashing:64'}\n"
        f"  cache_dir: {str(directory / 'cache')!r}\n" + extra_yaml,
        encoding="utf-8",
    )
    return cfg
