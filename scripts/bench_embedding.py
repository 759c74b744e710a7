"""Benchmark prompt embedding on this machine: MiniLM throughput, normalization, cache hits.

Usage: .venv/bin/python scripts/bench_embedding.py [--n-short 512] [--n-long 256] [--threads N]

Prints one table. Prompts are synthetic but shaped like real traffic: short chat questions, and
RouterBench-style few-shot prompts (~450 tokens, the question last). Numbers depend on load:
the script prints the CPU count and load average beside them.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tierwise.router.cache import EmbeddingCache, embed_with_cache
from tierwise.router.embed import get_embedder
from tierwise.router.embed.sentence import available_cpus
from tierwise.router.normalize import NormalizationConfig, Normalizer

WORDS = [
    "model",
    "price",
    "answer",
    "question",
    "python",
    "list",
    "error",
    "server",
    "cost",
    "latency",
    "route",
    "token",
    "quality",
    "explain",
    "summarize",
    "translate",
    "compare",
    "why",
    "how",
    "what",
    "which",
    "planet",
    "water",
    "energy",
    "contract",
    "invoice",
    "database",
    "query",
    "index",
    "memory",
    "function",
    "class",
    "test",
    "deploy",
    "customer",
    "refund",
    "policy",
]


def short_prompts(n: int, rng: random.Random) -> list[str]:
    return [
        " ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 20))).capitalize() + "?"
        for _ in range(n)
    ]


def long_prompts(n: int, rng: random.Random) -> list[str]:
    shots = "".join(
        f"{' '.join(rng.choice(WORDS) for _ in range(25))}?\nA) {rng.choice(WORDS)}\n"
        f"B) {rng.choice(WORDS)}\nPrint only a single choice from A or B.\nAnswer: A\n\n"
        for _ in range(8)
    )
    return [shots + " ".join(rng.choice(WORDS) for _ in range(30)) + "?\nAnswer:" for _ in range(n)]


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-short", type=int, default=512)
    ap.add_argument("--n-long", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: auto)")
    args = ap.parse_args()
    rng = random.Random(0)
    short, long = short_prompts(args.n_short, rng), long_prompts(args.n_long, rng)
    load_before = os.getloadavg()[0]

    t_load = time.perf_counter()
    kwargs = {"num_threads": args.threads} if args.threads else {}
    model = get_embedder("minilm", **kwargs)
    t_load = time.perf_counter() - t_load
    model.embed(short[:32])  # warm-up: first call allocates and JITs kernels
    tok = model.tokenizer
    assert tok is not None

    def mean_tokens(texts: list[str]) -> float:
        return sum(len(tok(t, verbose=False)["input_ids"]) for t in texts) / len(texts)

    tail = Normalizer.for_embedder(NormalizationConfig(mode="tail"), model)
    head_tail = Normalizer.for_embedder(NormalizationConfig(mode="head_tail"), model)
    rows: list[tuple[str, int, str, float]] = []
    bs = args.batch_size

    rows.append(
        (
            "minilm short prompts",
            len(short),
            f"{mean_tokens(short):.0f}",
            timed(lambda: model.embed(short, batch_size=bs)),
        )
    )
    seen = min(mean_tokens(long), model.max_tokens or 10**9)
    rows.append(
        (
            "minilm long prompts, model cuts at 256 (mode none)",
            len(long),
            f"{mean_tokens(long):.0f}->{seen:.0f}",
            timed(lambda: model.embed(long, batch_size=bs)),
        )
    )
    rows.append(
        (
            "normalize only: tail to 256 tokens",
            len(long),
            "-",
            timed(lambda: [tail.apply(t) for t in long]),
        )
    )
    rows.append(
        (
            "normalize only: head_tail to 256 tokens",
            len(long),
            "-",
            timed(lambda: [head_tail.apply(t) for t in long]),
        )
    )
    rows.append(
        (
            "minilm long prompts, tail-normalized + embed",
            len(long),
            "256",
            timed(lambda: model.embed([tail.apply(t) for t in long], batch_size=bs)),
        )
    )

    with tempfile.TemporaryDirectory() as tmp:
        texts = short + long
        rows.append(
            (
                "embed_with_cache, cold (embed + write)",
                len(texts),
                "mixed",
                timed(
                    lambda: embed_with_cache(
                        model, tail, texts, EmbeddingCache(tmp), progress=False, batch_size=bs
                    )
                ),
            )
        )
        rows.append(
            (
                "embed_with_cache, warm (all hits, new instance)",
                len(texts),
                "mixed",
                timed(
                    lambda: embed_with_cache(
                        model, tail, texts, EmbeddingCache(tmp), progress=False, batch_size=bs
                    )
                ),
            )
        )
        many = [f"{t} #{i}" for i in range(20) for t in short][:10_000]
        hashing = get_embedder("hashing:384")
        embed_with_cache(hashing, None, many, EmbeddingCache(tmp), progress=False)
        rows.append(
            (
                "cache hits only, 10k prompts (sqlite read)",
                len(many),
                "-",
                timed(
                    lambda: embed_with_cache(
                        hashing, None, many, EmbeddingCache(tmp), progress=False
                    )
                ),
            )
        )
    rows.append(
        (
            "hashing:384 embedder (no model), short",
            len(short),
            "-",
            timed(lambda: get_embedder("hashing:384").embed(short)),
        )
    )

    import torch

    print(
        f"machine: {available_cpus()} usable CPUs, torch threads {torch.get_num_threads()}, "
        f"load average {load_before:.1f} before / {os.getloadavg()[0]:.1f} after "
        "(CPUs may be shared with other jobs)"
    )
    print(f"model: {model.identity}, load {t_load:.1f} s (cold process, includes torch import)")
    print()
    print(f"{'case':<52} {'prompts':>7} {'tokens':>9} {'seconds':>8} {'prompts/s':>10}")
    print("-" * 90)
    for name, n, tokens, sec in rows:
        print(f"{name:<52} {n:>7} {tokens:>9} {sec:>8.2f} {n / sec:>10.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
