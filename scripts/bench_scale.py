"""Scaling benchmark of batch routing: local engine vs Spark local[1] / local[2].

For each size (default 10k, 100k, 1M short prompts, a Parquet file each) and engine, runs
`tierwise batch` as its own process and reports wall time (process start to exit, so JVM and
Python-worker start-up count), the engine's own routing time and rate (what the command
prints), and the peak RSS of every process of the run (driver, JVM, Python workers), sampled
from /proc every 0.2 s. Ends with a cluster projection: per-core rate on local[2] x cores,
labelled as a projection.

The router is trained on synthetic three-tier traffic with the embedder you choose:
`static` (the static encoder distilled from MiniLM: numpy only) or `minilm` (exported with its
ONNX encoder bundled, as `tierwise export` does; slow, use small sizes).

usage (CPU-frugal, as documented in docs/benchmarks/scale.md):
  nice -n 10 .venv/bin/python scripts/bench_scale.py --sizes 10000 100000 1000000
  nice -n 10 .venv/bin/python scripts/bench_scale.py --encoder minilm --sizes 2000
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
WORDS = [
    "explain",
    "write",
    "code",
    "python",
    "sql",
    "poem",
    "story",
    "math",
    "prove",
    "derive",
    "summarize",
    "translate",
    "list",
    "the",
    "a",
    "of",
    "why",
    "how",
    "what",
    "when",
    "compare",
    "history",
    "physics",
    "love",
    "war",
    "list",
    "email",
    "bug",
    "fix",
    "test",
    "api",
]
ENGINES = {"local": None, "spark local[1]": "local[1]", "spark local[2]": "local[2]"}


def prompts(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(6, 16, size=n)
    picks = rng.integers(0, len(WORDS), size=int(lengths.sum()))
    out, at = [], 0
    for i, k in enumerate(lengths):
        out.append(" ".join(WORDS[j] for j in picks[at : at + k]) + f" #{i}")
        at += k
    return out


def write_input(path: Path, n: int) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"prompt": prompts(n, seed=n)}), path, row_group_size=50_000)


def build_artifact(encoder: str, out: Path) -> Path:
    sys.path.insert(0, str(ROOT / "tests"))
    from runtime_helpers import traffic

    from tierwise.router.config import RouterConfig
    from tierwise.router.core import Router

    spec = "minilm"
    if encoder == "static":
        spec = f"static:{(ROOT / '.tierwise-cache' / 'static' / 'minilm').resolve()}"
    cfg = RouterConfig.model_validate({"embedder": {"name": spec}, "predictor": {"name": "knn"}})
    router = Router(cfg).fit(traffic(2000, 1), traffic(1000, 2))
    trained = Path(router.save(str(out / f"{encoder}.tierwise")))
    if encoder == "static":
        return trained
    from tierwise.router.artifact import export_artifact

    return Path(export_artifact(trained, out / "runtime.tierwise"))


class PeakRss:
    """Samples the RSS of a process and all its descendants; keeps each process's peak."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peaks = pid, {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _tree(self) -> list[int]:
        children: dict[int, list[int]] = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    stat = Path(f"/proc/{entry}/stat").read_text()
                except OSError:
                    continue
                ppid = int(stat.rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry))
        out, todo = [], [self.pid]
        while todo:
            p = todo.pop()
            out.append(p)
            todo += children.get(p, [])
        return out

    def _run(self) -> None:
        while not self._stop.is_set():
            for p in self._tree():
                try:
                    status = Path(f"/proc/{p}/status").read_text()
                    name = Path(f"/proc/{p}/comm").read_text().strip()
                except OSError:
                    continue
                m = re.search(r"VmRSS:\s+(\d+) kB", status)
                if m:
                    key = (p, name)
                    self.peaks[key] = max(self.peaks.get(key, 0), int(m.group(1)) // 1024)
            self._stop.wait(0.2)

    def stop(self) -> dict[str, int]:
        self._stop.set()
        self._thread.join()
        out: dict[str, int] = {}
        for (_, name), mb in self.peaks.items():  # per kind of process: the largest one
            out[name] = max(out.get(name, 0), mb)
        return out


def run_engine(artifact: Path, source: Path, out: Path, master: str | None) -> dict[str, object]:
    cmd = [sys.executable, "-m", "tierwise.experiments.cli", "batch", str(artifact), str(source),
           str(out), "--no-progress", "--overwrite", "--chunk-size", "4096"]  # fmt: skip
    if master:
        n = int(master[6:-1])
        cmd += ["--engine", "spark", "--master", master, "--partitions", str(4 * n)]
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    rss = PeakRss(proc.pid)
    stdout, stderr = proc.communicate()
    wall = time.perf_counter() - t0
    peaks = rss.stop()
    text = stdout.decode()
    m = re.search(r"(\d+) rows routed.* in ([\d.]+)s", text)
    if proc.returncode not in (0, 1) or m is None:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{text}\n{stderr.decode()[-3000:]}")
    return {"rows": int(m.group(1)), "engine_s": float(m.group(2)), "wall_s": wall, "rss": peaks}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--encoder", choices=("static", "minilm"), default="static")
    ap.add_argument("--engines", nargs="+", default=list(ENGINES), choices=list(ENGINES))
    ap.add_argument("--cores", type=int, nargs="+", default=[16, 64, 256])
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="tierwise-scale-") as tmp:
        root = Path(tmp)
        artifact = build_artifact(args.encoder, root)
        results = []
        print(f"encoder: {args.encoder}")
        print("| rows | engine | wall s | engine s | rows/s (wall) | rows/s (engine) | "
              "peak RSS MB, largest processes |")  # fmt: skip
        print("|---:|---|---:|---:|---:|---:|---|")
        for n in args.sizes:
            source = root / f"prompts-{n}.parquet"
            write_input(source, n)
            for engine in args.engines:
                out = root / f"out-{n}-{engine.replace(' ', '_')}.parquet"
                r = run_engine(artifact, source, out, ENGINES[engine])
                r |= {"n": n, "engine": engine}
                results.append(r)
                print_row(r, flush=True)
        print_projection(results, args.cores)


def print_row(r: dict, flush: bool = False) -> None:
    rss = ", ".join(f"{k} {v}" for k, v in sorted(r["rss"].items(), key=lambda kv: -kv[1])[:3])
    print(
        f"| {r['n']:>9,} | {r['engine']:<14} | {r['wall_s']:8.1f} | {r['engine_s']:8.1f} | "
        f"{r['n'] / r['wall_s']:9,.0f} | {r['n'] / r['engine_s']:9,.0f} | {rss} |",
        flush=flush,
    )


def print_projection(results: list[dict], cores: list[int]) -> None:
    two = [r for r in results if r["engine"] == "spark local[2]"]
    if not two:
        return
    best = max(two, key=lambda r: r["n"])
    per_core = best["n"] / best["engine_s"] / 2
    print(f"\nprojection (not measured): {per_core:,.0f} rows/s per core from local[2] at "
          f"{best['n']:,} rows")  # fmt: skip
    for c in cores:
        print(f"  {c:>4} cores: {per_core * c:12,.0f} rows/s, 1e9 rows in "
              f"{1e9 / (per_core * c) / 3600:6.1f} h")  # fmt: skip


if __name__ == "__main__":
    main()
