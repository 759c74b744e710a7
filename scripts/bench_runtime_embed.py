"""Benchmark the embedding runtimes: sentence-transformers (torch) vs ONNX fp32 vs ONNX int8.

Prints one table: per-prompt latency (p50/p99, one ~20-token and one ~256-token prompt), batch
throughput (64 short prompts), cold start (fresh process: import + load + first embedding), model
file size, and agreement with torch (cosine). Ratios are against torch measured in the same run;
the three runtimes are timed in interleaved rounds so background load hits them alike.

    .venv/bin/python scripts/bench_runtime_embed.py [--rounds 300] [--export-dir DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tierwise.router.artifact import export_onnx  # noqa: E402
from tierwise.router.embed import Embedder, get_embedder  # noqa: E402
from tierwise.router.embed.onnx import OnnxEmbedder, default_threads, read_config  # noqa: E402
from tierwise.router.embed.sentence import SentenceTransformerEmbedder  # noqa: E402
from tierwise.router.errors import TierwiseError  # noqa: E402

SHORT = "How do I reset my password for the billing dashboard if I lost access to my email?"
LONG = "Summarize the following support ticket thread and list the open questions. " + " ".join(
    f"Customer message {i}: the invoice for order {1000 + i} shows a duplicate charge."
    for i in range(30)
)
COLD = """
import sys, time
t0 = time.perf_counter()
from tierwise.router.embed import get_embedder
emb = get_embedder(sys.argv[1])
t1 = time.perf_counter()
emb.embed(["warm up the first call"])
print(t1 - t0, time.perf_counter() - t0)
"""


def exports(directory: Path | None) -> tuple[Path, Path, float | None]:
    """Reuse valid exports in ``directory`` if present; otherwise export (and time it)."""
    root = directory or Path(tempfile.mkdtemp(prefix="tierwise-bench-onnx-"))
    fp32, int8 = root / "fp32", root / "int8"
    try:
        read_config(fp32), read_config(int8)
        return fp32, int8, None
    except TierwiseError:
        t0 = time.perf_counter()
        export_onnx("minilm", fp32, overwrite=True)
        seconds = time.perf_counter() - t0
        export_onnx("minilm", int8, quantize="int8", overwrite=True)
        return fp32, int8, seconds


def latencies(embedders: dict[str, Embedder], text: str, rounds: int) -> dict[str, np.ndarray]:
    times: dict[str, list[float]] = {name: [] for name in embedders}
    for _ in range(5):
        for emb in embedders.values():
            emb.embed([text])
    for _ in range(rounds):  # interleaved: a burst of background load hits every runtime
        for name, emb in embedders.items():
            t0 = time.perf_counter()
            emb.embed([text])
            times[name].append(time.perf_counter() - t0)
    return {name: np.asarray(t) * 1e3 for name, t in times.items()}


def throughput(embedders: dict[str, Embedder], texts: list[str], rounds: int) -> dict[str, float]:
    best: dict[str, list[float]] = {name: [] for name in embedders}
    for _ in range(rounds):
        for name, emb in embedders.items():
            t0 = time.perf_counter()
            emb.embed(texts, batch_size=len(texts))
            best[name].append(len(texts) / (time.perf_counter() - t0))
    return {name: float(np.median(v)) for name, v in best.items()}


def cold_start(spec: str) -> tuple[float, float]:
    """Fresh process: (import + load seconds, + first embedding seconds); median of 3."""
    runs = []
    for _ in range(3):
        out = subprocess.run(
            [sys.executable, "-c", COLD, spec],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        ).stdout.split()
        runs.append((float(out[-2]), float(out[-1])))
    load, first = np.median(np.asarray(runs), axis=0)
    return float(load), float(first)


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers))]

    def line(row: list[str]) -> str:
        cells = zip(row, widths, strict=True)
        return "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(cells))

    return "\n".join([line(headers), line(["-" * w for w in widths]), *map(line, rows)])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rounds", type=int, default=300, help="timed calls per short prompt")
    ap.add_argument("--export-dir", type=Path, help="reuse/keep exports here (default: temp)")
    ap.add_argument("--threads", type=int, help="intra-op threads for all runtimes (default: auto)")
    ap.add_argument("--no-cold", action="store_true", help="skip the fresh-process start-up test")
    args = ap.parse_args()

    fp32_dir, int8_dir, export_s = exports(args.export_dir)
    kw = {"num_threads": args.threads} if args.threads else {}
    torch_emb = get_embedder("minilm", **kw)
    assert isinstance(torch_emb, SentenceTransformerEmbedder)
    embedders: dict[str, Embedder] = {
        "torch (sentence-transformers)": torch_emb,
        "onnx fp32": OnnxEmbedder(fp32_dir, **kw),
        "onnx int8": OnnxEmbedder(int8_dir, **kw),
    }
    load_before = os.getloadavg()[0]
    tok = embedders["onnx fp32"].tokenizer
    assert tok is not None
    n_short, n_long = len(tok.encode(SHORT).ids), min(len(tok.encode(LONG).ids), 256)
    short = latencies(embedders, SHORT, args.rounds)
    long_ = latencies(embedders, LONG, max(20, args.rounds // 6))
    batch = [f"{SHORT} (variant {i}: {'why ' * (i % 5)})" for i in range(64)]
    tput = throughput(embedders, batch, rounds=5)
    probe = [SHORT, LONG, *batch[:8], "", "日本語のテキスト 🚀"]
    ref = torch_emb.embed(probe)
    cold = {
        "torch (sentence-transformers)": None if args.no_cold else cold_start("minilm"),
        "onnx fp32": None if args.no_cold else cold_start(f"onnx:{fp32_dir}"),
        "onnx int8": None if args.no_cold else cold_start(f"onnx:{int8_dir}"),
    }
    sizes = {
        "torch (sentence-transformers)": (torch_emb.directory / "model.safetensors").stat().st_size,
        "onnx fp32": (fp32_dir / "model.onnx").stat().st_size,
        "onnx int8": (int8_dir / "model.onnx").stat().st_size,
    }
    base = "torch (sentence-transformers)"
    rows = []
    for name, emb in embedders.items():
        cos = np.sum(emb.embed(probe) * ref, axis=1)
        s50, s99 = np.percentile(short[name], [50, 99])
        l50, l99 = np.percentile(long_[name], [50, 99])
        ratio = np.percentile(short[base], 50) / s50
        c = cold[name]
        rows.append([
            name,
            f"{s50:.2f} / {s99:.2f} / {short[name].min():.2f}",
            f"{l50:.1f} / {l99:.1f}",
            f"{tput[name]:.0f}",
            f"{ratio:.1f}x / {np.percentile(long_[base], 50) / l50:.1f}x / "
            f"{tput[name] / tput[base]:.1f}x",
            "-" if c is None else f"{c[0]:.2f} / {c[1]:.2f}",
            f"{sizes[name] / 1e6:.1f}",
            f"{cos.min():.4f} / {cos.mean():.4f}",
        ])  # fmt: skip
    headers = [
        "runtime",
        f"short {n_short} tok p50/p99/min ms",
        f"long {n_long} tok p50/p99 ms",
        "batch64 prompts/s",
        "speed-up short/long/batch",
        "cold load / +1st embed s",
        "model MB",
        "cos vs torch min/mean",
    ]
    import torch

    onnx_threads = args.threads or default_threads()
    print(f"threads: torch {torch.get_num_threads()}, onnx {onnx_threads}; cpus {os.cpu_count()}; "
          f"load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after")  # fmt: skip
    print(table(headers, rows))
    if export_s is not None:
        print(f"fp32 export (incl. model load and verification): {export_s:.1f} s")
    if args.export_dir:
        print(f"exports kept in {fp32_dir.parent}")
    else:
        shutil.rmtree(fp32_dir.parent, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
