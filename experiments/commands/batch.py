"""`tierwise batch ARTIFACT INPUT OUTPUT`: route a file of prompts, streamed in chunks.

Reads JSONL, CSV or Parquet and writes JSONL, CSV or Parquet (each by extension), a chunk at a
time, so a file of millions of prompts never sits in memory. A row that cannot be routed (no
prompt, not text, broken UTF-8, invalid JSON line) gets an ``error`` and the run goes on. Only
the standard library is used for JSONL and CSV; Parquet needs pyarrow.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tierwise.experiments.batch_io import (
    OUTPUT_COLUMNS,
    Row,
    Writer,
    file_format,
    parquet_rows,
    read_rows,
    report_summary,
    route_rows,
)
from tierwise.router.errors import ConfigError, DataError

HELP = """\
Route every prompt of INPUT with a router artifact and write one decision per row to
OUTPUT. Formats by extension: .jsonl, .csv (also .tsv), .parquet. Each output row has
`row` (the line number in JSONL, the 1-based data row in CSV and Parquet), the --keep
columns, `model`, `error`, `policy`, `knob`, then every model's predicted success and
expected cost (nested objects in JSONL, `p_success.<model>` / `expected_cost.<model>`
columns in CSV and Parquet). Rows that cannot be routed get an `error` and the others are
routed anyway. Exit code 1 if any row failed.
"""


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``tierwise batch`` to the CLI."""
    p = sub.add_parser(
        "batch",
        help="route a JSONL/CSV/Parquet file of prompts",
        description=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("artifact", help="router artifact (router.tierwise or a directory)")
    p.add_argument("input", type=Path, help="prompts: .jsonl, .csv, .tsv or .parquet")
    p.add_argument("output", type=Path, help="decisions: .jsonl, .csv, .tsv or .parquet")
    p.add_argument("--prompt-column", default="prompt", help="column/field with the prompt")
    p.add_argument(
        "--keep",
        action="append",
        default=[],
        metavar="COLUMN",
        help="copy this input column to the output (repeatable), e.g. an id",
    )
    p.add_argument("--chunk-size", type=int, default=1024, help="rows routed per model call")
    p.add_argument("--knob", type=float, default=None, help="override the policy knob")
    p.add_argument(
        "--threads", type=int, default=None, help="onnxruntime threads (default: CPUs, at most 4)"
    )
    p.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it exists")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.add_argument(
        "--engine",
        choices=("local", "spark"),
        default="local",
        help="local: this process; spark: a Spark job (INPUT may be a directory, glob or "
        "table; OUTPUT is a Parquet folder). Needs `pip install 'tierwise[spark]'` and Java",
    )
    p.add_argument(
        "--master", default=None, help="Spark master: local[2], spark://host:7077, yarn, ..."
    )
    p.add_argument(
        "--partitions", type=int, default=None, help="Spark: spread the rows over N tasks"
    )
    p.set_defaults(func=run)


@dataclass
class BatchSummary:
    """Rows routed, errors, seconds and rows per model of a batch run."""

    rows: int
    errors: int
    seconds: float
    counts: Counter[str]


def _bar(enabled: bool, total: int, unit: str) -> Any:
    if not enabled:
        return None
    try:
        from tqdm import tqdm
    except ImportError:  # tqdm is optional in the runtime install
        return None
    scale = unit == "B"
    return tqdm(
        total=total,
        unit=unit,
        unit_scale=scale,
        unit_divisor=1024 if scale else 1000,
        desc="routing",
        file=sys.stderr,
    )


def route_file(
    router: Any,
    source: Path,
    output: Path,
    *,
    prompt_column: str = "prompt",
    keep: list[str] | None = None,
    chunk_size: int = 1024,
    knob: float | None = None,
    progress: bool = False,
    overwrite: bool = False,
) -> BatchSummary:
    """Route every row of ``source`` into ``output`` (formats by extension), chunk by chunk."""
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ConfigError(f"--chunk-size must be a positive integer, got {chunk_size!r}")
    file_format(output, "output")
    if output.exists() and not overwrite:
        raise ConfigError(f"output {str(output)!r} exists; choose another path or pass --overwrite")
    if not output.parent.is_dir():
        raise ConfigError(
            f"output directory {str(output.parent)!r} does not exist; create it first"
        )
    if output.resolve() == source.resolve():
        raise ConfigError("OUTPUT must differ from INPUT")
    keep = list(dict.fromkeys(keep or []))
    clash = set(OUTPUT_COLUMNS) & set(keep)
    if clash:
        raise ConfigError(f"--keep {sorted(clash)} would clash with an output column; drop it")
    rows = read_rows(source, prompt_column, keep, chunk_size)
    in_bytes = file_format(source, "input") != "parquet"
    total = source.stat().st_size if in_bytes else parquet_rows(source)
    writer = Writer(output, tuple(router.models_), keep)
    bar = _bar(progress, total, "B" if in_bytes else "row")
    summary = BatchSummary(0, 0, 0.0, Counter())
    t0, seen = time.perf_counter(), 0
    chunk: list[Row] = []

    def flush() -> None:
        records = route_rows(router, chunk, knob, prompt_column, keep)
        writer.write(records)
        summary.rows += len(records)
        summary.errors += sum(r["error"] is not None for r in records)
        summary.counts.update(r["model"] for r in records if r["model"] is not None)
        chunk.clear()

    try:
        for row, position in rows:
            chunk.append(row)
            if bar is not None:
                bar.update(position - seen)
            seen = position
            if len(chunk) >= chunk_size:
                flush()
        if chunk:
            flush()
        writer.commit()
    except BaseException:
        writer.abort()
        raise
    finally:
        if bar is not None:
            bar.close()
    summary.seconds = time.perf_counter() - t0
    return summary


def run(args: argparse.Namespace) -> int:
    """Run ``tierwise batch``; exit code 1 if any row could not be routed."""
    from tierwise.router.runtime import limit_blas_threads, load_runtime

    if getattr(args, "engine", "local") == "spark":
        from tierwise.experiments.spark.batch import run_batch

        return run_batch(args)
    if not args.input.is_file():  # before the (slow) artifact load
        raise DataError(f"input {str(args.input)!r} does not exist or is not a file")
    if args.threads is not None and args.threads < 1:
        raise ConfigError(f"--threads must be a positive integer, got {args.threads}")
    limit_blas_threads(1)
    router = load_runtime(args.artifact, num_threads=args.threads)
    s = route_file(
        router,
        args.input,
        args.output,
        prompt_column=args.prompt_column,
        keep=args.keep,
        chunk_size=args.chunk_size,
        knob=args.knob,
        progress=not args.no_progress,
        overwrite=args.overwrite,
    )
    return report_summary(s.rows, s.errors, s.seconds, s.counts, args.output)
