"""Tiny routing traffic whose difficulty the hashing embedder can see (or not)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np

MODELS = ("tiny", "mid", "big")
WORDS = {True: "quantum tensor proof", False: "cat dog sun"}


def synthetic_traffic(
    n: int = 240,
    *,
    signal: bool = True,
    seed: int = 0,
    flip: bool = False,
    rates: tuple[float, float, float] = (0.5, 0.7, 0.8),
) -> SimpleNamespace:
    """With ``signal`` the cheap tiers fail on prompts about hard words and succeed on easy ones
    (``flip``: the other way round, a shifted distribution); without it, every tier's success
    is noise independent of the prompt, at the tiers' success ``rates``."""
    rng = np.random.default_rng(seed)
    hard = rng.random(n) < 0.5
    hard_p = np.where(hard, not flip, flip)
    if signal:
        p = np.where(hard_p[:, None], [0.05, 0.3, 0.9], [0.95, 0.95, 0.95])
    else:
        p = np.broadcast_to(rates, (n, 3))
    prompts = tuple(
        f"{WORDS[bool(h)]} item {seed}-{i} " + " ".join(rng.choice(["a", "b", "c"], 3))
        for i, h in enumerate(hard)
    )
    return SimpleNamespace(
        prompts=prompts,
        models=MODELS,
        quality=(rng.random((n, 3)) < p).astype(np.float64),
        cost=rng.uniform(0.9, 1.1, (n, 3)) * [0.0001, 0.001, 0.01],
        input_tokens=None,
        output_tokens=None,
    )


def write_routing_log(tmp_path: Path, n: int = 240, **traffic: object) -> Path:
    """``synthetic_traffic(n, **traffic)`` as a CSV plus an experiment config (hashing:64)."""
    t = synthetic_traffic(n, **traffic)  # type: ignore[arg-type]
    head = "id,prompt," + ",".join(MODELS) + "," + ",".join(f"{m}|cost" for m in MODELS)
    lines = [head]
    for i in range(n):
        q = [str(int(x)) for x in t.quality[i]]
        row = [f"p{i}", t.prompts[i], *q, *(f"{x:.8f}" for x in t.cost[i])]
        lines.append(",".join(row))
    (tmp_path / "log.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    cfg = tmp_path / "exp.yaml"
    cfg.write_text(
        "name: synth\n"
        "data:\n"
        "  sources:\n"
        "    - path: log.csv\n"
        '      quality: "{model}"\n'
        '      cost: "{model}|cost"\n'
        "  columns: {id: id, prompt: prompt}\n"
        "  labels: {kind: binary, missing: drop_row}\n"
        "router:\n"
        "  embedder: {name: 'hashing:64'}\n",
        encoding="utf-8",
    )
    return cfg
