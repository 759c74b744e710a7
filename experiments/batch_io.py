"""Streaming readers and a writer for `tierwise batch`: JSONL, CSV/TSV and Parquet.

Readers yield one :class:`Row` at a time with how far into the file they are (for a progress
bar); a row that cannot be read carries an ``error`` instead of stopping the run. JSONL and CSV
need only the standard library; Parquet needs pyarrow, imported when used. The writer writes to
a temporary sibling and renames it into place, so a crash never leaves a half-written OUTPUT.
"""

from __future__ import annotations

import csv
import json
import os
import secrets
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tierwise.router.errors import ConfigError, DataError
from tierwise.router.tables import text_table

FORMATS = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".csv": "csv",
    ".tsv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
}
CSV_FIELD_LIMIT = 64 * 1024 * 1024  # the csv module refuses fields over 128 KiB by default
OUTPUT_COLUMNS = ("row", "model", "error", "policy", "knob", "p_success", "expected_cost")


def file_format(path: Path, role: str) -> str:
    """The format of ``path`` from its extension; ConfigError listing the supported ones."""
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
    """Rows of a JSONL file, each with the bytes read so far; a bad line is a row with an error."""
    with path.open("rb") as fh:
        for number, raw in enumerate(fh, 1):
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw)
            except UnicodeDecodeError as err:
                yield (
                    Row(
                        number,
                        None,
                        {},
                        f"not UTF-8 at byte {err.start} of the line ({err.reason}); "
                        "re-encode the file as UTF-8",
                    ),
                    fh.tell(),
                )
                continue
            except (json.JSONDecodeError, RecursionError, ValueError) as err:
                msg = err.msg if isinstance(err, json.JSONDecodeError) else type(err).__name__
                yield Row(number, None, {}, f"not valid JSON ({msg})"), fh.tell()
                continue
            if not isinstance(obj, dict):
                what = type(obj).__name__
                yield Row(number, None, {}, f"expected a JSON object, got {what}"), fh.tell()
                continue
            kept = {k: obj.get(k) for k in keep}
            if column not in obj:
                yield Row(number, None, kept, f"no `{column}` field"), fh.tell()
                continue
            yield Row(number, obj[column], kept, None), fh.tell()


def read_csv(path: Path, column: str, keep: list[str]) -> Iterator[tuple[Row, int]]:
    """Rows of a CSV/TSV file, each with the bytes read so far; a bad row is a row with an error."""
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
                yield Row(number, None, {}, f"unreadable CSV ({err})"), raw.tell()
                continue
            number += 1
            if not cells:
                continue
            kept = {k: cells[i] if i < len(cells) else None for k, i in kept_at.items()}
            if at >= len(cells):
                yield Row(number, None, kept, f"only {len(cells)} cells, no `{column}`"), raw.tell()
                continue
            yield Row(number, cells[at], kept, _bad_bytes(cells[at], column)), raw.tell()


def _bad_bytes(cell: str, column: str) -> str | None:
    """Bytes that were not UTF-8 came through as lone surrogates U+DC80..U+DCFF: name them."""
    try:
        cell.encode("utf-8")
    except UnicodeEncodeError as err:
        byte = ord(cell[err.start]) - 0xDC00
        return (
            f"`{column}` is not valid UTF-8 (byte 0x{byte:02x} at character {err.start}); "
            "re-encode the file as UTF-8"
        )
    return None


class _TextReader:
    """Line iterator decoding UTF-8 with surrogateescape (the csv module wants text lines)."""

    def __init__(self, raw: Any) -> None:
        self._raw = raw

    def __iter__(self) -> Iterator[str]:
        for line in self._raw:
            yield line.decode("utf-8", "surrogateescape")


def read_parquet(path: Path, column: str, keep: list[str], chunk: int) -> Iterator[tuple[Row, int]]:
    """Rows of a Parquet file read ``chunk`` rows at a time, each with its row number."""
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
    """A decision record with one column per model for p_success and expected_cost."""
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
        self.tmp = _create_temp(path)
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


def _create_temp(path: Path) -> Path:
    """An empty sibling of ``path`` for writing; created like any output file (0666 & ~umask,
    so 0644 as a rule), not 0600 as ``tempfile.mkstemp`` would make it."""
    for _ in range(100):
        tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            continue
        return tmp
    raise ConfigError(f"cannot create a temporary file beside {str(path)!r}; remove .*.tmp files")


def parquet_rows(path: Path) -> int:
    """Rows in a Parquet file from its footer (0 if unreadable: the reader reports why)."""
    try:
        return int(_pyarrow_parquet().ParquetFile(path).metadata.num_rows)
    except Exception:
        return 0


def counts_table(counts: Counter[str], routed: int) -> str:
    """How many rows went to each model (most first), as an indented table."""
    rows = [[m, n, f"{n / max(routed, 1):.1%}"] for m, n in counts.most_common()]
    return text_table(rows, ["model", "rows", "share"], indent="  ")


def report_summary(
    rows: int, errors: int, seconds: float, counts: Counter[str], output: Any, where: str = ""
) -> int:
    """Print a batch run's one-line summary and per-model table; the command's exit code
    (1 when any row failed). ``where`` names the engine, e.g. " on Spark (local[2])"."""
    rate = rows / seconds if seconds > 0 else float("inf")
    speed = f"{seconds:.1f}s ({rate:.0f}/s)"
    print(f"{rows} rows routed{where} in {speed}, {errors} errors -> {output}")
    if counts:
        print(counts_table(counts, rows - errors))
    return 1 if errors else 0


def route_rows(
    router: Any, rows: list[Row], knob: float | None, column: str, keep: list[str]
) -> list[dict[str, Any]]:
    """Decisions for one chunk; rows already broken keep their error, the rest are routed."""
    todo = [r for r in rows if r.error is None]
    decisions = iter(router.route([r.prompt for r in todo], knob=knob) if todo else [])
    out = []
    for r in rows:
        rec: dict[str, Any] = {"row": r.number, **{k: r.keep.get(k) for k in keep}}
        if r.error is None:
            d = next(decisions)
            error = d.error and d.error.replace(f"`prompt[{d.index}]`", f"`{column}`")
            rec |= {
                "model": d.model,
                "error": error and f"row {r.number}: {error}",
                "policy": d.policy,
                "knob": d.knob,
                "p_success": d.p_success,
                "expected_cost": d.expected_cost,
            }
        else:
            rec |= {
                "model": None,
                "error": f"row {r.number}: {r.error}",
                "policy": router.config.policy.name,
                "knob": knob if knob is not None else router.knob_,
                "p_success": {},
                "expected_cost": {},
            }
        out.append(rec)
    return out
