"""Benchmark the gateway's overhead: latency added over calling the upstream directly.

    nice -n 10 .venv/bin/python scripts/bench_gateway.py [--workdir DIR] [--seconds 5]

Builds (once per --workdir, with scripts/bench_runtime.py) a MiniLM router exported with the
int8 ONNX encoder, starts the fake OpenAI-compatible upstream (tests/fake_upstream.py) and
`tierwise gateway` in front of it, then sends the same chat completion request
(~20-token user message) with N concurrent keep-alive clients, alternating rounds between the
upstream directly (``model: mid``), the gateway pinned to that tier (``model: mid``: proxy work
only) and the gateway routing (``model: tierwise``: route + forward), so all three see the same
machine load. Added latency = gateway percentile - direct percentile. Also reported: the
gateway's own mean routing time (its /metrics histogram, all requests) and a run with the
decision log on, and (``--soak``) the issue's load test: 16 clients for 30 s with the decision
log on, then records counted against answers. The machine's load average is printed beside
the numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
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
sys.path.insert(0, str(ROOT / "scripts"))

from bench_runtime import SHORT, _client, load_average, machine_gflops  # noqa: E402
from upstream_helpers import GatewayProcess, start_fake_upstream  # noqa: E402


def chat_request(host: str, port: int, model: str) -> bytes:
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": SHORT}]}).encode()
    return (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body


async def _round(base_url: str, model: str, clients: int, seconds: float) -> tuple[list, list]:
    host, port = base_url.removeprefix("http://").split("/")[0].split(":")
    request = chat_request(host, int(port), model)
    lat: list[float] = []
    errors: list[str] = []
    deadline = time.perf_counter() + seconds
    budget = [10**9]
    await asyncio.gather(
        *(_client(host, int(port), request, deadline, budget, lat, errors) for _ in range(clients))
    )
    return lat, errors


TARGETS = ("direct", "pinned", "routed")


def measure(direct: str, gateway: str, clients: int, seconds: float, rounds: int) -> dict:
    """Alternate rounds over: the upstream directly, the gateway with a pinned tier (proxy
    work only), the gateway routing (proxy + routing)."""
    calls = {"direct": (direct, "mid"), "pinned": (gateway, "mid"), "routed": (gateway, "tierwise")}
    pools: dict[str, list[float]] = {t: [] for t in TARGETS}
    errors = dict.fromkeys(TARGETS, 0)
    for url, model in calls.values():
        asyncio.run(_round(url, model, clients, 1.0))  # warm-up: connections, caches
    for _ in range(rounds):
        for name, (url, model) in calls.items():
            lat, errs = asyncio.run(_round(url, model, clients, seconds / rounds))
            pools[name] += lat
            errors[name] += len(errs)
    out: dict[str, Any] = {"clients": clients}
    for name, lat in pools.items():
        ms = np.asarray(lat) * 1e3
        out[name] = {"n": len(ms), "p50": float(np.percentile(ms, 50)),
                     "p99": float(np.percentile(ms, 99)), "errors": errors[name]}  # fmt: skip
    return out


def routing_ms(metrics: str) -> float:
    total = count = 0.0
    for line in metrics.splitlines():
        if line.startswith("tierwise_gateway_routing_seconds_sum"):
            total = float(line.split()[-1])
        elif line.startswith("tierwise_gateway_routing_seconds_count"):
            count = float(line.split()[-1])
    return 1e3 * total / count if count else float("nan")


def soak(artifact: Path, upstreams: Path, workdir: Path, clients: int, seconds: float) -> None:
    """The issue's load test: N clients for S seconds, then one log record per answer?"""
    folder = workdir / f"soak-log-{int(time.time())}"
    with GatewayProcess(artifact, upstreams, "--log", str(folder),
                        log=workdir / "gateway-soak.log") as gw:  # fmt: skip
        lat, errors = asyncio.run(_round(gw.base_url, "tierwise", clients, seconds))
        dropped = [x for x in gw.metrics().splitlines() if 'result="dropped"' in x]
    ids = [json.loads(line)["request_id"] for f in folder.glob("*.jsonl") for line in f.open()]
    print(f"\nsoak: {clients} clients x {seconds:.0f} s through the gateway with --log {folder}")
    print(f"  answers {len(lat)} ({len(lat) / seconds:.0f}/s), client errors {len(errors)}, "
          f"log records {len(ids)} ({len(set(ids))} distinct), lost {len(lat) - len(ids)}, "
          f"dropped metric {dropped or 0}")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "tierwise-bench")
    ap.add_argument("--seconds", type=float, default=6.0, help="per target and concurrency")
    ap.add_argument("--rounds", type=int, default=3, help="alternations direct/gateway")
    ap.add_argument("--clients", default="1,16")
    ap.add_argument("--no-log-run", action="store_true", help="skip the run with --log on")
    ap.add_argument("--soak", type=float, default=30.0, help="seconds of the 16-client log check")
    args = ap.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "bench_runtime.py"), "--build-only",
         "--workdir", str(args.workdir)], check=True,
    )  # fmt: skip
    artifact = args.workdir / "runtime-int8.tierwise"
    print(f"load average before: {load_average()} on {os.cpu_count()} CPUs; "
          f"single-thread float32 matmul now: {machine_gflops():.1f} GFLOP/s")  # fmt: skip
    variants = [("gateway", ())]
    if not args.no_log_run:
        variants.append(("gateway + JSONL log", ("--log", str(args.workdir / "gw-log"))))
    rows = []
    with start_fake_upstream() as up:
        ups = args.workdir / "upstreams.yaml"
        ups.write_text(f"default: {{base_url: '{up.base_url}', max_retries: 0}}\n")
        for label, extra in variants:
            log = args.workdir / "gateway.log"
            with GatewayProcess(artifact, ups, *extra, log=log) as gw:
                for c in (int(x) for x in args.clients.split(",")):
                    r = measure(up.base_url, gw.base_url, c, args.seconds, args.rounds)
                    r["variant"], r["load"] = label, load_average()
                    rows.append(r)
                    print(f"  {label} @ {c} client(s) measured (load {r['load']})", flush=True)
                r_ms = routing_ms(gw.metrics())
            for r in rows:
                r.setdefault("routing_ms", r_ms)
    print("\nPOST /v1/chat/completions, one ~20-token user message; int8 MiniLM router; "
          "fake upstream on loopback. ms; added = gateway - direct, same percentile")  # fmt: skip
    print(f"{'variant':<20} {'clients':>7} {'direct p50/p99':>15} {'pinned +p50/+p99':>17} "
          f"{'routed +p50/+p99':>17} {'route ms':>8} {'n':>5} {'err':>4}  load")  # fmt: skip
    for r in rows:
        d, p, g = r["direct"], r["pinned"], r["routed"]
        print(f"{r['variant']:<20} {r['clients']:>7} {d['p50']:>7.2f}/{d['p99']:<7.2f} "
              f"{p['p50'] - d['p50']:>+8.2f}/{p['p99'] - d['p99']:<+8.2f} "
              f"{g['p50'] - d['p50']:>+8.2f}/{g['p99'] - d['p99']:<+8.2f} {r['routing_ms']:>8.2f} "
              f"{g['n']:>5} {d['errors'] + p['errors'] + g['errors']:>4}  {r['load']}")  # fmt: skip
    if args.soak > 0:
        with start_fake_upstream() as up:
            ups = args.workdir / "upstreams.yaml"
            ups.write_text(f"default: {{base_url: '{up.base_url}', max_retries: 0}}\n")
            soak(artifact, ups, args.workdir, 16, args.soak)
    print(f"\nload average after: {load_average()}")


if __name__ == "__main__":
    main()
