"""Benchmark the production runtime: route() latency, batch throughput, load time, the HTTP
service under concurrent clients, agreement of the ONNX runtimes with torch, install size.

    .venv/bin/python scripts/bench_runtime.py [--workdir DIR] [--seconds 8] [--install-size]

Builds (once per --workdir) a MiniLM router on synthetic traffic, then `tierwise export`s it as
fp32 and int8. Backends: "torch" is Router.load of the trained artifact (sentence-transformers,
no embedding cache), "onnx-fp32"/"onnx-int8" are router.runtime.load_runtime of the exports.
The HTTP load generator is a small asyncio client on keep-alive loopback connections, each
client sending its next request when the previous answer arrives (bounded in time and count).
The machine's load average is printed beside the numbers: on a shared 2-core box they move a lot.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from runtime_helpers import Served, traffic, train_router  # noqa: E402

from tierwise.router.core import Router  # noqa: E402
from tierwise.router.runtime import limit_blas_threads, load_runtime  # noqa: E402

SHORT = "How do I reset my password for the billing dashboard if I lost my email?"  # ~20 tokens
LONG = "Summarize this support thread and list the open questions. " + " ".join(
    f"Message {i}: the invoice for order {1000 + i} shows a duplicate charge." for i in range(20)
)  # ~256 tokens after the tokenizer (cut at the model's limit)
TARGETS = {
    "route p50 short (ms)": 2.0,
    "batch short (prompts/s)": 1000.0,
    "http p99 @16 (ms)": 20.0,
    "install (MB)": 150.0,
}


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


def machine_gflops(seconds: float = 2.0) -> float:
    """Single-thread float32 matmul speed now, at MiniLM's FFN shape: how much CPU we get.

    On an idle modern core this is tens of GFLOP/s; on a shared box it shows the contention
    every other number here suffers from. MiniLM needs ~21 MFLOP per token.
    """
    a = np.random.default_rng(0).random((320, 384), dtype=np.float32)
    b = np.random.default_rng(1).random((384, 1536), dtype=np.float32)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        a @ b
        n += 1
    return 2 * 320 * 384 * 1536 * n / (time.perf_counter() - t0) / 1e9


def build(workdir: Path) -> dict[str, Path]:
    from tierwise.router.artifact import export_artifact

    paths = {
        "torch": workdir / "router.tierwise",
        "onnx-fp32": workdir / "runtime-fp32.tierwise",
        "onnx-int8": workdir / "runtime-int8.tierwise",
    }
    if not paths["torch"].exists():
        print("training a MiniLM router on synthetic traffic ...", flush=True)
        train_router("minilm", n=400).save(str(paths["torch"]))
    for name, quant in (("onnx-fp32", "none"), ("onnx-int8", "int8")):
        if not paths[name].exists():
            print(f"exporting {name} ...", flush=True)
            t0 = time.perf_counter()
            export_artifact(paths["torch"], paths[name], quantize=quant)
            print(f"  {time.perf_counter() - t0:.1f}s", flush=True)
    return paths


def load(name: str, path: Path, threads: int) -> tuple[Router, float]:
    t0 = time.perf_counter()
    if name == "torch":
        import torch

        torch.set_num_threads(threads)
        router = Router.load(str(path))
        router.config.cache_dir = None  # time the model, not the cache
        router.route(["warm up"])  # the torch model loads on first use
    else:
        router = load_runtime(path, num_threads=threads)  # builds the session, warms it up
    return router, time.perf_counter() - t0


def latency(router: Router, prompt: str, seconds: float, max_n: int = 2000) -> tuple[float, float]:
    for _ in range(5):
        router.route([prompt])
    times: list[float] = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end and len(times) < max_n:
        t0 = time.perf_counter()
        router.route([prompt])
        times.append(time.perf_counter() - t0)
    return float(np.percentile(times, 50) * 1e3), float(np.percentile(times, 99) * 1e3)


def throughput(router: Router, prompts: list[str]) -> float:
    router.route(prompts[:32])
    t0 = time.perf_counter()
    router.route(prompts)
    return len(prompts) / (time.perf_counter() - t0)


def agreement(a: Router, b: Router, prompts: list[str]) -> float:
    x, y = a.route(prompts), b.route(prompts)
    return float(np.mean([p.model == q.model for p, q in zip(x, y, strict=True)]))


# ---------------------------------------------------------------- HTTP load generator


async def _client(
    host: str, port: int, request: bytes, deadline: float, budget: list[int],
    lat: list[float], errors: list[str],
) -> None:  # fmt: skip
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while time.perf_counter() < deadline and budget[0] > 0:
            budget[0] -= 1
            t0 = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            size = int(re.search(rb"(?i)content-length:\s*(\d+)", head).group(1))  # type: ignore[union-attr]
            await reader.readexactly(size)
            lat.append(time.perf_counter() - t0)
            if status != 200:
                errors.append(str(status))
    except (OSError, asyncio.IncompleteReadError) as err:
        errors.append(type(err).__name__)
    finally:
        writer.close()


async def _load(url: str, body: bytes, clients: int, seconds: float, max_requests: int) -> Any:
    host, port = url.removeprefix("http://").split(":")
    request = (
        f"POST /route HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    lat: list[float] = []
    errors: list[str] = []
    budget = [max_requests]
    t0 = time.perf_counter()
    deadline = t0 + seconds
    await asyncio.gather(
        *(_client(host, int(port), request, deadline, budget, lat, errors) for _ in range(clients))
    )
    return lat, errors, time.perf_counter() - t0


def http_load(url: str, clients: int, seconds: float, max_requests: int) -> dict[str, float]:
    body = json.dumps({"prompt": SHORT}).encode()
    asyncio.run(_load(url, body, clients, 1.0, 200))  # warm-up
    lat, errors, wall = asyncio.run(_load(url, body, clients, seconds, max_requests))
    ms = np.asarray(lat) * 1e3
    return {
        "clients": clients,
        "requests": len(lat),
        "rps": len(lat) / wall,
        "p50": float(np.percentile(ms, 50)) if len(ms) else float("nan"),
        "p99": float(np.percentile(ms, 99)) if len(ms) else float("nan"),
        "errors": len(errors),
    }


def install_size() -> str:
    proc = subprocess.run(
        ["bash", str(ROOT / "scripts" / "runtime_size.sh")],
        capture_output=True, text=True, timeout=1800, env={**os.environ, "SLIM": "1"},
    )  # fmt: skip
    found = dict(re.findall(r"^(venv total(?: \(slim\))?):\s+(\S+)", proc.stdout, re.M))
    if proc.returncode != 0 or not found:
        return f"failed: {proc.stderr.strip().splitlines()[-1:]}"
    return f"{found.get('venv total')} (slim {found.get('venv total (slim)')})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "tierwise-bench")
    ap.add_argument("--seconds", type=float, default=8.0, help="per latency / HTTP measurement")
    ap.add_argument("--batch", type=int, default=1024, help="prompts in the throughput batch")
    ap.add_argument("--clients", default="1,16,64", help="HTTP concurrency levels")
    ap.add_argument("--http", default="onnx-fp32,onnx-int8", help="artifacts to serve")
    ap.add_argument("--install-size", action="store_true", help="also run runtime_size.sh")
    ap.add_argument(
        "--threads", type=int, default=1, help="model threads in-process, torch and ONNX alike"
    )
    ap.add_argument("--build-only", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    if args.build_only:
        build(args.workdir)
        return
    print(f"load average before: {load_average()} on {os.cpu_count()} CPUs; "
          f"{args.threads} model thread(s) in-process, one BLAS thread")  # fmt: skip
    limit_blas_threads(1)
    print(f"single-thread float32 matmul now: {machine_gflops():.1f} GFLOP/s")
    # Train and export in a child process: after torch.onnx.export the parent's torch was ~50x
    # slower per call (measured), which would be a benchmark artefact, not the torch runtime.
    subprocess.run(
        [sys.executable, __file__, "--build-only", "--workdir", str(args.workdir)], check=True
    )
    paths = build(args.workdir)  # now only resolves the paths

    rows = []
    routers = {}
    shorts = [f"{SHORT} (case {i})" for i in range(args.batch)]
    for name, path in paths.items():
        router, seconds = load(name, path, args.threads)
        routers[name] = router
        s50, s99 = latency(router, SHORT, args.seconds)
        l50, l99 = latency(router, LONG, args.seconds)
        rate = throughput(router, shorts if name != "torch" else shorts[: max(args.batch // 4, 64)])
        rows.append((name, seconds, s50, s99, l50, l99, rate))
        print(f"  measured {name} (load average {load_average()})", flush=True)

    print(f"\nin-process route() (load average {load_average()})")
    print(f"{'backend':<10} {'load s':>7} {'short p50':>10} {'short p99':>10} "
          f"{'long p50':>9} {'long p99':>9} {'batch/s':>9}")  # fmt: skip
    for name, secs, s50, s99, l50, l99, rate in rows:
        print(f"{name:<10} {secs:>7.2f} {s50:>9.2f}ms {s99:>9.2f}ms {l50:>8.1f}ms "
              f"{l99:>8.1f}ms {rate:>9.0f}")  # fmt: skip

    probe = [*traffic(300, 11).prompts, SHORT, LONG, *shorts[:50]]
    print("\ndecision agreement with torch on", len(probe), "prompts:")
    for name in ("onnx-fp32", "onnx-int8"):
        print(f"  {name}: {agreement(routers['torch'], routers[name], probe):.2%}")

    del routers  # free the models before the servers take the cores
    for name in args.http.split(","):
        print(f"\nHTTP service: tierwise serve {paths[name].name}, POST /route one short prompt")
        print(f"{'clients':>7} {'requests':>9} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} "
              f"{'errors':>7}  load average")  # fmt: skip
        with Served(paths[name], log=args.workdir / f"serve-{name}.log") as srv:
            for c in (int(x) for x in args.clients.split(",")):
                r = http_load(srv.url, c, args.seconds, max_requests=50_000)
                line = (f"{c:>7} {r['requests']:>9} {r['rps']:>8.0f} {r['p50']:>8.2f} "
                        f"{r['p99']:>8.2f} {r['errors']:>7}  {load_average()}")  # fmt: skip
                print(line, flush=True)
    if args.install_size:
        print(f"\nruntime-only install (pip install tierwise, no extras): {install_size()}")
    print(f"\ntargets: {TARGETS}")


if __name__ == "__main__":
    main()
