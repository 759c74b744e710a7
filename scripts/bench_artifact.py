"""Size and speed of router artifacts: save, verified load and info, directory vs single file.

Usage: .venv/bin/python scripts/bench_artifact.py [--rows 3000] [--dim 384] [--repeats 20]
"""

from __future__ import annotations

import argparse
import io
import statistics
import tempfile
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np

from tierwise.router.artifact import artifact_info, load_artifact, save_artifact


def timed(fn: Callable[[], object], repeats: int) -> float:
    """Median wall time in milliseconds."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=3000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    emb = rng.standard_normal((args.rows, args.dim)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)  # unit vectors, like sentence embeddings
    arrays = {"embeddings": emb.astype(np.float16)}
    payload = {"embedder": {"name": "all-MiniLM-L6-v2", "dimension": args.dim}}
    raw = arrays["embeddings"].nbytes

    buf = io.BytesIO()
    np.save(buf, arrays["embeddings"])
    npy = buf.getvalue()
    deflated = len(zlib.compress(npy, 6))

    print(f"payload: {args.rows}×{args.dim} float16 = {raw:,} bytes raw")
    print(f"{'layout':<14}{'bytes':>12}{'save ms':>10}{'load ms':>10}{'info ms':>10}")
    with tempfile.TemporaryDirectory() as tmp:
        for label, name in (("directory", "router"), ("single file", "router.tierwise")):
            path = Path(tmp) / name
            save_ms = timed(
                lambda p=path: save_artifact(p, payload, arrays), max(3, args.repeats // 4)
            )
            size = (
                sum(f.stat().st_size for f in path.iterdir())
                if path.is_dir()
                else path.stat().st_size
            )
            load_ms = timed(lambda p=path: load_artifact(p), args.repeats)
            info_ms = timed(lambda p=path: artifact_info(p), args.repeats)
            print(f"{label:<14}{size:>12,}{save_ms:>10.1f}{load_ms:>10.1f}{info_ms:>10.2f}")
            assert np.array_equal(load_artifact(path).arrays["embeddings"], arrays["embeddings"])
    npy_ms = timed(lambda: np.load(io.BytesIO(npy), allow_pickle=False), args.repeats)
    print(f"{'bare np.load':<14}{len(npy):>12,}{'':>10}{npy_ms:>10.1f}{'':>10}")
    print(
        f"deflate (level 6) would give {deflated:,} bytes ({deflated / len(npy):.1%}); "
        "arrays are stored uncompressed instead"
    )


if __name__ == "__main__":
    main()
