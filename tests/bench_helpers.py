"""A tiny routing log on disk whose difficulty the hashing embedder can see (or not)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

MODELS = ("tiny", "mid", "big")
WORDS = {True: "quantum tensor proof", False: "cat dog sun"}


def write_routing_log(tmp_path: Path, n: int = 240, *, signal: bool = True, seed: int = 0) -> Path:
    """CSV + experiment config (hashing:64 embedder). With ``signal`` the cheap tiers fail on
    prompts about hard words and succeed on easy ones; without it, success is pure noise."""
    rng = np.random.default_rng(seed)
    hard = rng.random(n) < 0.5
    if signal:
        p = np.where(hard[:, None], [0.05, 0.3, 0.9], [0.95, 0.95, 0.95])
    else:
        p = np.broadcast_to([0.5, 0.7, 0.8], (n, 3))
    q = (rng.random((n, 3)) < p).astype(int)
    c = rng.uniform(0.9, 1.1, (n, 3)) * [0.0001, 0.001, 0.01]
    head = "id,prompt," + ",".join(MODELS) + "," + ",".join(f"{m}|cost" for m in MODELS)
    lines = [head]
    for i in range(n):
        text = f"{WORDS[bool(hard[i])]} item {i} " + " ".join(rng.choice(["a", "b", "c"], 3))
        row = [f"p{i}", text, *map(str, q[i]), *(f"{x:.8f}" for x in c[i])]
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
