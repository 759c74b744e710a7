"""`tierwise batch ARTIFACT INPUT OUTPUT`: route a file of prompts, streamed in chunks.

Reads JSONL, CSV or Parquet and writes JSONL, CSV or Parquet (each by extension), a chunk at a
time, so a file of millions of prompts never sits in memory. A row that cannot be routed (no
prompt, not text, broken UTF-8, invalid JSON line) gets an ``error`` and the run goes on. Only
the standard library is used for JSONL and CSV; Parquet needs pyarrow.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from router.errors import ConfigError, DataError

HELP = """\
Route every prompt of INPUT with a router artifact and write one decision per row to
OUTPUT. Formats by extension: .jsonl, .csv (also .tsv), .parquet. Each output row has
`row` (1-based data row of INPUT), the --keep columns, `model`, `error`, `policy`,
`knob`, then every model's predicted success and expected cost (nested objects in JSONL,
`p_success.<model>` / `expected_cost.<model>` columns in CSV and Parquet). Rows that cannot
be routed get an `error` and the others are routed anyway. Exit code 1 if any row failed.
"""
FORMATS = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".csv": "csv",
    ".tsv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
}
CSV_FIELD_LIMIT = 64 * 1024 * 1024  # the csv module refuses fields over 128 KiB by default


def register(sub: argparse._SubParsersAction) -> None:
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
    p.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it exists")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=run)


def file_format(path: Path, role: str) -> str:
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ConfigError(
            f"{role} {str(path)!r} must end with one of {', '.join(sorted(FORMATS))}, got "
            f"{path.suffix or 'no extension'!r}; rename it or convert it"
        )
    return fmt


# ---------------------------------------------------------------- reading


class Row:
    """One input row: the prompt value (any type; validated when routed) and kept columns."""

    __slots__ = ("error", "keep", "number", "prompt")

    def __init__(self, number: int, prompt: Any, keep: dict[str, Any], error: str | None) -> None:
        self.number, self.prompt, self.keep, self.error = number, prompt, keep, error


def _missing_column(path: Path, column: str, have: list[str]) -> DataError:
    return DataError(
        f"{path}: column `{column}` not found; its columns are {have[:20]}; pass "
        "--prompt-column (or fix --keep)"
    )


def read_jsonl(path: Path, column: str, keep: list[str]) -> Iterator[tuple[Row, int]]:
    with path.open("rb") as fh:
        for number, raw in enumerate(fh, 1):
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw)
            except UnicodeDecodeError as err:
                yield Row(number, None, {}, f"line {number}: not UTF-8 ({err.reason})"), fh.tell()
                continue
            except (json.JSONDecodeError, RecursionError, ValueError) as err:
                msg = err.msg if isinstance(err, json.JSONDecodeError) else type(err).__name__
                yield Row(number, None, {}, f"line {number}: not valid JSON ({msg})"), fh.tell()
                continue
            if not isinstance(obj, dict):
                what = type(obj).__name__
                yield (
                    Row(number, None, {}, f"line {number}: expected a JSON object, got {what}"),
                    fh.tell(),
                )
                continue
            kept = {k: obj.get(k) for k in keep}
            if column not in obj:
                yield Row(number, None, kept, f"line {number}: no `{column}` field"), fh.tell()
                continue
            yield Row(number, obj[column], kept, None), fh.tell()


def read_csv(path: Path, column: str, keep: list[str]) -> Iterator[tuple[Row, int]]:
    csv.field_size_limit(CSV_FIELD_LIMIT)
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    with path.open("rb") as raw:
        # surrogateescape: broken bytes become lone surrogates that validation reports per row.
        text = _TextReader(raw)
        reader = csv.reader(text, delimiter=delimiter)
        try:
            header = next(reader)
        except StopIteration:
            return
        except csv.Error as err:
            raise DataError(f"{path}: cannot read the CSV header ({err})") from None
        if header and header[0].startswith("\ufeff"):
            header[0] = header[0][1:]
        for name in [column, *keep]:
            if name not in header:
                raise _missing_column(path, name, header)
        at = header.index(column)
        kept_at = {k: header.index(k) for k in keep}
        number = 0
        while True:
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as err:
                number += 1
                yield Row(number, None, {}, f"row {number}: unreadable CSV ({err})"), raw.tell()
                continue
            number += 1
            if not cells:
                continue
            kept = {k: cells[i] if i < len(cells) else None for k, i in kept_at.items()}
            if at >= len(cells):
                yield Row(number, None, kept, f"row {number}: only {len(cells)} cells"), raw.tell()
                continue
            yield Row(number, cells[at], kept, None), raw.tell()


class _TextReader:
    """Line iterator decoding UTF-8 with surrogateescape (the csv module wants text lines)."""

    def __init__(self, raw: Any) -> None:
        self._raw = raw

    def __iter__(self) -> Iterator[str]:
        for line in self._raw:
            yield line.decode("utf-8", "surrogateescape")


def read_parquet(path: Path, column: str, keep: list[str], chunk: int) -> Iterator[tuple[Row, int]]:
    pq = _pyarrow_parquet()
    try:
        pf = pq.ParquetFile(path)
    except Exception as err:
        raise DataError(f"{path}: not a readable Parquet file ({err})") from None
    have = pf.schema_arrow.names
    for name in [column, *keep]:
        if name not in have:
            raise _missing_column(path, name, list(have))
    number = 0
    for batch in pf.iter_batches(batch_size=chunk, columns=list(dict.fromkeys([column, *keep]))):
        cols = batch.to_pydict()
        for i, prompt in enumerate(cols[column]):
            number += 1
            yield Row(number, prompt, {k: cols[k][i] for k in keep}, None), number


def _pyarrow_parquet() -> Any:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise ConfigError(
            "Parquet needs pyarrow; `pip install pyarrow` or use JSONL/CSV files"
        ) from None
    return pq


def read_rows(path: Path, column: str, keep: list[str], chunk: int) -> Iterator[tuple[Row, int]]:
    """(row, progress) pairs; progress is bytes read (JSONL/CSV) or rows read (Parquet)."""
    if not path.is_file():
        raise DataError(f"input {str(path)!r} does not exist or is not a file")
    fmt = file_format(path, "input")
    if fmt == "jsonl":
        return read_jsonl(path, column, keep)
    if fmt == "csv":
        return read_csv(path, column, keep)
    return read_parquet(path, column, keep, chunk)


# ---------------------------------------------------------------- writing


def flat(record: dict[str, Any], models: tuple[str, ...]) -> dict[str, Any]:
    out = {k: v for k, v in record.items() if k not in ("p_success", "expected_cost")}
    for m in models:
        out[f"p_success.{m}"] = record["p_success"].get(m)
    for m in models:
        out[f"expected_cost.{m}"] = record["expected_cost"].get(m)
    return out


class Writer:
    """Writes records to a temporary sibling of ``path``; ``commit()`` renames it into place."""

    def __init__(self, path: Path, models: tuple[str, ...], keep: list[str]) -> None:
        self.fmt = file_format(path, "output")
        self.path, self.models = path, models
        self.columns = ["row", *keep, "model", "error", "policy", "knob"]
        self.columns += [f"p_success.{m}" for m in models] + [f"expected_cost.{m}" for m in models]
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
        self.tmp = Path(tmp)
        self._fh: Any = None
        self._csv: Any = None
        self._pq: Any = None
        if self.fmt in ("jsonl", "csv"):
            self._fh = self.tmp.open("w", encoding="utf-8", newline="", errors="backslashreplace")
        if self.fmt == "csv":
            delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
            self._csv = csv.DictWriter(self._fh, self.columns, delimiter=delimiter)
            self._csv.writeheader()

    def write(self, records: list[dict[str, Any]]) -> None:
        if self.fmt == "jsonl":
            self._fh.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
        elif self.fmt == "csv":
            self._csv.writerows(flat(r, self.models) for r in records)
        else:
            self._write_parquet([flat(r, self.models) for r in records])

    def _write_parquet(self, rows: list[dict[str, Any]]) -> None:
        import pyarrow as pa

        pq = _pyarrow_parquet()
        table = pa.Table.from_pylist(rows, schema=self._schema(pa, rows))
        if self._pq is None:
            self._pq = pq.ParquetWriter(self.tmp, table.schema)
        self._pq.write_table(table)

    def _schema(self, pa: Any, rows: list[dict[str, Any]]) -> Any:
        if self._pq is not None:
            return self._pq.schema
        fixed = {
            "row": pa.int64(),
            "model": pa.string(),
            "error": pa.string(),
            "policy": pa.string(),
            "knob": pa.float64(),
        }
        fields = []
        for c in self.columns:
            if c in fixed:
                fields.append(pa.field(c, fixed[c]))
            elif c.startswith(("p_success.", "expected_cost.")):
                fields.append(pa.field(c, pa.float64()))
            else:  # a kept column: let pyarrow infer it from the first chunk
                kind = pa.array([r.get(c) for r in rows]).type
                fields.append(pa.field(c, pa.string() if kind == pa.null() else kind))
        return pa.schema(fields)

    def commit(self) -> None:
        self.close()
        os.replace(self.tmp, self.path)

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        if self._pq is not None:
            self._pq.close()
            self._pq = None

    def abort(self) -> None:
        self.close()
        self.tmp.unlink(missing_ok=True)


# ---------------------------------------------------------------- routing


def route_rows(router: Any, rows: list[Row], knob: float | None) -> list[dict[str, Any]]:
    """Decisions for one chunk; rows already broken keep their error, the rest are routed."""
    todo = [r for r in rows if r.error is None]
    decisions = iter(router.route([r.prompt for r in todo], knob=knob) if todo else [])
    out = []
    for r in rows:
        rec: dict[str, Any] = {"row": r.number, **r.keep}
        if r.error is None:
            d = next(decisions)
            error = d.error.replace(f"`prompt[{d.index}]`", f"row {r.number}") if d.error else None
            rec |= {
                "model": d.model,
                "error": error,
                "policy": d.policy,
                "knob": d.knob,
                "p_success": d.p_success,
                "expected_cost": d.expected_cost,
            }
        else:
            rec |= {
                "model": None,
                "error": r.error,
                "policy": router.config.policy.name,
                "knob": knob if knob is not None else router.knob_,
                "p_success": {},
                "expected_cost": {},
            }
        out.append(rec)
    return out


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


def run(args: argparse.Namespace) -> int:
    from router.runtime import load_runtime

    if args.chunk_size < 1:
        raise ConfigError(f"--chunk-size must be a positive integer, got {args.chunk_size}")
    out: Path = args.output
    file_format(out, "output")
    if out.exists() and not args.overwrite:
        raise ConfigError(f"output {str(out)!r} exists; choose another path or pass --overwrite")
    if not out.parent.is_dir():
        raise ConfigError(f"output directory {str(out.parent)!r} does not exist; create it first")
    if out.resolve() == args.input.resolve():
        raise ConfigError("OUTPUT must differ from INPUT")
    keep = list(dict.fromkeys(args.keep))
    clash = {"row", "model", "error", "policy", "knob", "p_success", "expected_cost"} & set(keep)
    if clash:
        raise ConfigError(f"--keep {sorted(clash)} would clash with an output column; drop it")
    rows_iter = read_rows(args.input, args.prompt_column, keep, args.chunk_size)
    router = load_runtime(args.artifact)
    writer = Writer(out, tuple(router.models_), keep)
    fmt = file_format(args.input, "input")
    total = args.input.stat().st_size if fmt != "parquet" else _parquet_rows(args.input)
    bar = _bar(not args.no_progress, total, "B" if fmt != "parquet" else "row")
    counts: Counter[str] = Counter()
    errors, n, t0, seen = 0, 0, time.perf_counter(), 0
    try:
        chunk: list[Row] = []
        for row, progress in rows_iter:
            chunk.append(row)
            if bar is not None:
                bar.update(progress - seen)
            seen = progress
            if len(chunk) >= args.chunk_size:
                errors += _flush(router, chunk, args.knob, writer, counts)
                n += len(chunk)
                chunk = []
        if chunk:
            errors += _flush(router, chunk, args.knob, writer, counts)
            n += len(chunk)
        writer.commit()
    except BaseException:
        writer.abort()
        raise
    finally:
        if bar is not None:
            bar.close()
    seconds = time.perf_counter() - t0
    rate = n / seconds if seconds > 0 else float("inf")
    print(f"{n} rows routed in {seconds:.1f}s ({rate:.0f}/s), {errors} errors -> {out}")
    for model, count in counts.most_common():
        print(f"  {model:<40} {count:>8}  ({count / max(n - errors, 1):.1%})")
    return 1 if errors else 0


def _flush(
    router: Any, chunk: list[Row], knob: float | None, writer: Writer, counts: Counter[str]
) -> int:
    records = route_rows(router, chunk, knob)
    writer.write(records)
    counts.update(r["model"] for r in records if r["model"] is not None)
    return sum(r["error"] is not None for r in records)


def _parquet_rows(path: Path) -> int:
    try:
        return int(_pyarrow_parquet().ParquetFile(path).metadata.num_rows)
    except Exception:
        return 0
