"""Reliability benchmark: replay the tester's probe — hostile inputs and faults — and count answers.

    nice -n 10 .venv/bin/python scripts/bench_reliability.py [--workdir DIR] [--seconds 20]
        [--clients 16] [--only importers,artifacts,http,faults] [--no-load]

Each category module in scripts/reliability/ (importers, artifacts, http, faults; whichever
exist) generates its bad inputs in the workdir and reports, per probe, whether tierwise
*handled* it (a clear one-line error, the right 4xx, nothing lost), *crashed* (traceback, 5xx,
hang, dead process) or was *silently wrong* (accepted it, or answered wrongly). The table
counts them per category; every probe not handled is listed below it.

Then the HTTP load figures: `tierwise serve` of an exported MiniLM router, 16 keep-alive
clients sending one short prompt for --seconds, first alone, then with one 2 MB batch (256
prompts x 7.8k characters) and two hot reloads in the middle: requests, non-2xx, p50/p99 of
the small requests with and without the big batch running, the big batch's time, the
server's RSS before and after. Targets: 0 crashed, 0 silently wrong, 0 5xx, small-request
p99 during the big batch <= 5x its p99 without it.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
SCRIPTS = Path(__file__).resolve().parent
sys.path.insert(0, str(SCRIPTS))

from reliability import OUTCOMES, probe  # noqa: E402

CATEGORIES = ("importers", "artifacts", "http", "faults")
MAX_RATIO = 5.0


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


def run_category(name: str, workdir: Path) -> list[dict[str, Any]] | None:
    """The probes of one category (None when its module does not exist)."""
    try:
        module = importlib.import_module(f"reliability.{name}")
    except ModuleNotFoundError as err:
        if err.name == f"reliability.{name}":
            return None
        raise
    t0 = time.perf_counter()
    try:
        results = list(module.run(workdir / name))
    except Exception as err:  # a broken probe module is reported, not fatal for the others
        traceback.print_exc()
        return [probe(name, "probe module", "crashed", f"{type(err).__name__}: {err}")]
    print(f"  {name}: {len(results)} probes in {time.perf_counter() - t0:.0f}s", flush=True)
    return results


def table(results: dict[str, list[dict[str, Any]]]) -> str:
    lines = [f"{'category':<10} {'tried':>6} {'handled':>8} {'crashed':>8} {'silently wrong':>15}"]
    totals = dict.fromkeys(OUTCOMES, 0)
    for cat, rows in results.items():
        counts = {o: sum(r["outcome"] == o for r in rows) for o in OUTCOMES}
        for o in OUTCOMES:
            totals[o] += counts[o]
        lines.append(f"{cat:<10} {len(rows):>6} {counts['handled']:>8} {counts['crashed']:>8} "
                     f"{counts['silently_wrong']:>15}")  # fmt: skip
    tried = sum(totals.values())
    lines.append(f"{'total':<10} {tried:>6} {totals['handled']:>8} {totals['crashed']:>8} "
                 f"{totals['silently_wrong']:>15}")  # fmt: skip
    return "\n".join(lines)


def failures(results: dict[str, list[dict[str, Any]]]) -> list[str]:
    return [
        f"  [{r['outcome']}] {r['category']}: {r['name']} — {r['detail']}"
        for rows in results.values()
        for r in rows
        if r["outcome"] != "handled"
    ]


def load_report(f: dict[str, Any]) -> str:
    ok = "meets" if f["p99_ratio"] <= MAX_RATIO else "MISSES"
    return "\n".join(
        [
            f"HTTP load: {f['clients']} clients x {f['seconds']:.0f} s per phase, one short "
            "prompt per request (MiniLM ONNX, tierwise serve)",
            f"{'phase':<34} {'requests':>8} {'non-2xx':>8} {'p50 ms':>8} {'p99 ms':>8}",
            f"{'small requests alone':<34} {f['base_requests']:>8} {f['base_non2xx']:>8} "
            f"{f['base_p50']:>8.0f} {f['base_p99']:>8.0f}",
            f"{'whole phase with big batch+reloads':<34} {f['mixed_requests']:>8} "
            f"{f['mixed_non2xx']:>8} {'':>8} {'':>8}",
            f"{'small requests during the big batch':<34} {f['during_requests']:>8} {'':>8} "
            f"{f['during_p50']:>8.0f} {f['during_p99']:>8.0f}",
            f"{'  of which not during a reload':<34} {f['quiet_requests']:>8} {'':>8} "
            f"{f['quiet_p50']:>8.0f} {f['quiet_p99']:>8.0f}",
            f"big batch: {f['body_mb']:.1f} MB, 256 prompts, HTTP {f['big_status']} in "
            f"{f['big_seconds']:.1f} s; reloads during it: HTTP {f['reloads']} taking "
            f"{f['reload_seconds']} s",
            f"5xx or dropped: {f['mixed_5xx']}; tierwise_internal_errors_total "
            f"{f['internal_errors']:.0f}; server RSS {f['rss_before_mb']:.0f} MB before, "
            f"{f['rss_after_mb']:.0f} MB after; after each of 4 more full reloads (new ONNX "
            f"session each): {f['rss_reloads_mb']} MB",
            f"small-request p99 during / without the big batch: {f['p99_ratio']:.2f}x "
            f"({ok} the <= {MAX_RATIO:.0f}x target)",
        ]
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--workdir", type=Path, default=Path(tempfile.gettempdir()) / "tierwise-reliability"
    )
    ap.add_argument("--only", default=",".join(CATEGORIES), help="categories to probe")
    ap.add_argument("--seconds", type=float, default=20.0, help="per HTTP load phase")
    ap.add_argument("--clients", type=int, default=16, help="concurrent small-request clients")
    ap.add_argument("--no-load", action="store_true", help="skip the HTTP load figures")
    args = ap.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    print(f"load average before: {load_average()} on {os.cpu_count()} CPUs", flush=True)
    results: dict[str, list[dict[str, Any]]] = {}
    for name in args.only.split(","):
        rows = run_category(name.strip(), args.workdir)
        if rows is None:
            print(f"  {name}: no scripts/reliability/{name}.py; skipped", flush=True)
        else:
            results[name] = rows
    print("\n" + table(results))
    bad = failures(results)
    print("\nnot handled:" if bad else "\nevery probe handled.")
    print("\n".join(bad))
    if not args.no_load:
        from reliability.http import load

        figures = load(args.workdir / "load", seconds=args.seconds, clients=args.clients)
        print("\n" + load_report(figures))
    print(f"\nload average after: {load_average()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
