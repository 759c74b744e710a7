"""The decision log: one record per gateway request, written off the request path.

Destinations (``tierwise gateway --log ...``):

- a directory: JSONL (default) or Parquet files named ``decisions-<UTC start>-<n>.jsonl``,
  rotated when a file passes ``rotate_mb`` (Parquet: of uncompressed data) or is
  ``rotate_minutes`` old. Files are complete
  after rotation or shutdown; a JSONL file is readable line by line while being written.
- ``postgresql://user@host:port/db``: rows in table ``tierwise_decisions`` (created if
  missing), inserted in batches.

A record (see :data:`COLUMNS`): time, request id, prompt hash (and the routed text with
``--log-prompts``), mode (routed/pinned), requested model, the router's choice, the tier that
answered, knob, predicted success and expected cost of every tier (JSON), fallback reason,
attempts, upstream and routing latency, usage, cost, status, and whether it streamed. Read it
back as traffic with ``tierwise data inspect`` (docs: README, "Put tierwise in front of your
models").
"""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from tierwise.router.errors import ConfigError
from tierwise.router.gateway.background import BackgroundWriter

# name -> PostgreSQL type; also the order of Parquet/JSONL fields.
COLUMNS: dict[str, str] = {
    "time": "double precision",
    "request_id": "text",
    "prompt_sha256": "text",
    "prompt": "text",
    "mode": "text",
    "requested_model": "text",
    "routed_model": "text",
    "model": "text",
    "knob": "double precision",
    "p_success": "text",
    "expected_cost": "text",
    "fallback_reason": "text",
    "attempts": "integer",
    "upstream_latency_s": "double precision",
    "routing_latency_s": "double precision",
    "prompt_tokens": "integer",
    "completion_tokens": "integer",
    "cost_usd": "double precision",
    "status": "integer",
    "stream": "boolean",
    "artifact": "text",
}
Format = Literal["jsonl", "parquet"]


def _row(record: dict[str, Any], nested: bool = False) -> dict[str, Any]:
    """The record's columns; per-tier mappings as JSON text unless ``nested`` (JSONL)."""
    out = {k: record.get(k) for k in COLUMNS}
    for k in ("p_success", "expected_cost"):
        if isinstance(out[k], dict) and not nested:
            out[k] = json.dumps(out[k], sort_keys=True)
    return out


class FileSink:
    """Rotating JSONL or Parquet files in a directory."""

    def __init__(
        self, folder: Path, fmt: Format = "jsonl", rotate_mb: float = 64, rotate_minutes: float = 60
    ) -> None:
        self.folder, self.fmt = folder, fmt
        self.rotate_bytes = int(rotate_mb * 1024 * 1024)
        self.rotate_s = rotate_minutes * 60
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise ConfigError(
                f"--log {str(folder)!r} must be a directory the gateway can create and write, "
                f"got {err.strerror}; pass another directory"
            ) from None
        if fmt == "parquet":
            try:
                import pyarrow  # noqa: F401
            except ImportError:
                raise ConfigError(
                    "--log-format parquet needs pyarrow; `pip install pyarrow` or use jsonl"
                ) from None
        self._file: Any = None
        self._path: Path | None = None
        self._opened = 0.0
        self._bytes = 0
        self._seq = 0

    def _open(self) -> None:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        self._seq += 1
        self._path = self.folder / f"decisions-{stamp}-{os.getpid()}-{self._seq}.{self.fmt}"
        self._opened = time.monotonic()
        self._bytes = 0
        if self.fmt == "jsonl":
            self._file = self._path.open("a", encoding="utf-8")
        else:
            import pyarrow.parquet as pq

            self._file = pq.ParquetWriter(self._path, _arrow_schema())

    def write(self, records: list[dict[str, Any]]) -> None:
        if self._file is None:
            self._open()
        rows = [_row(r, nested=self.fmt == "jsonl") for r in records]
        if self.fmt == "jsonl":
            text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
            self._file.write(text)
            self._file.flush()
            self._bytes += len(text.encode("utf-8"))
        else:
            import pyarrow as pa

            table = pa.Table.from_pylist(rows, schema=_arrow_schema())
            self._file.write_table(table)
            self._bytes += table.nbytes  # in memory; the file (compressed) is smaller
        if self._bytes >= self.rotate_bytes or time.monotonic() - self._opened >= self.rotate_s:
            self.close()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def _arrow_schema() -> Any:
    import pyarrow as pa

    kinds = {
        "text": pa.string(),
        "double precision": pa.float64(),
        "integer": pa.int64(),
        "boolean": pa.bool_(),
    }
    return pa.schema([(name, kinds[sql]) for name, sql in COLUMNS.items()])


class PostgresSink:
    """Batched inserts into ``table`` (created when missing)."""

    def __init__(self, url: str, table: str = "tierwise_decisions") -> None:
        if not table.replace("_", "").isalnum():
            raise ConfigError(f"--log-table must be a plain SQL name, got {table!r}")
        try:
            import psycopg2
        except ImportError:
            raise ConfigError(
                "--log postgresql://... needs psycopg2; `pip install psycopg2-binary`"
            ) from None
        self.table = table
        try:
            self._conn = psycopg2.connect(url, connect_timeout=10)
        except psycopg2.Error as err:
            raise ConfigError(
                f"--log cannot connect to PostgreSQL at {_redact(url)}: {str(err).strip()}"
            ) from None
        self._conn.autocommit = True
        cols = ", ".join(f"{name} {sql}" for name, sql in COLUMNS.items())
        with self._conn.cursor() as cur:
            cur.execute(f"CREATE TABLE IF NOT EXISTS {table} ({cols})")

    def write(self, records: list[dict[str, Any]]) -> None:
        from psycopg2.extras import execute_values

        rows = [tuple(_row(r).values()) for r in records]
        with self._conn.cursor() as cur:
            execute_values(cur, f"INSERT INTO {self.table} ({', '.join(COLUMNS)}) VALUES %s", rows)

    def close(self) -> None:
        self._conn.close()


def _redact(url: str) -> str:
    """The URL without its password."""
    head, sep, tail = url.partition("@")
    if not sep or ":" not in head.split("//", 1)[-1]:
        return url
    scheme, _, cred = head.partition("//")
    return f"{scheme}//{cred.split(':', 1)[0]}:***@{tail}"


class DecisionLog:
    """Queue records for a sink on a background thread; see the module docstring."""

    def __init__(self, sink: FileSink | PostgresSink, count: Any, *, maxsize: int = 10_000):
        self.sink = sink
        self._writer = BackgroundWriter(
            "decision-log", sink.write, count, maxsize=maxsize, close=sink.close
        )

    def record(self, record: dict[str, Any]) -> bool:
        return self._writer.put(record)

    def close(self) -> None:
        self._writer.close()


def open_log(
    target: str,
    count: Any,
    *,
    fmt: Format = "jsonl",
    rotate_mb: float = 64,
    rotate_minutes: float = 60,
    table: str = "tierwise_decisions",
    maxsize: int = 10_000,
) -> DecisionLog:
    """A DecisionLog writing to ``target`` (a directory or a ``postgresql://`` URL)."""
    sink: FileSink | PostgresSink
    if target.startswith(("postgresql://", "postgres://")):
        sink = PostgresSink(target, table)
    else:
        sink = FileSink(Path(target), fmt, rotate_mb, rotate_minutes)
    return DecisionLog(sink, count, maxsize=maxsize)
