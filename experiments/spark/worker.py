"""What runs inside Spark's Python workers: the artifact loaded once per worker, batches routed.

The driver reads the artifact's files once and broadcasts their bytes; each Python worker writes
them to a private temporary folder the first time it sees that artifact (keyed by its sha256)
and keeps the loaded :class:`~tierwise.router.runtime.RuntimeRouter` for every later task.
Spark reuses Python workers between tasks (``spark.python.worker.reuse``, on by default), so a
job loads the model once per worker, not per partition or row.

Only the production runtime is imported here (numpy, onnxruntime, tokenizers, pyarrow): never
torch, sentence-transformers or pandas.
"""

from __future__ import annotations

import atexit
import hashlib
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tierwise.experiments.batch_io import Row, flat, route_rows

_ROUTERS: dict[str, Any] = {}
LOADS = 0  # routers this worker process has loaded (tests check it stays at one per artifact)


@dataclass(frozen=True)
class ArtifactBytes:
    """An artifact (one file or a directory) as relative path -> bytes, and its digest."""

    files: dict[str, bytes]
    single: bool  # a one-file ``.tierwise`` artifact rather than a directory
    name: str
    sha256: str = field(default="")

    @classmethod
    def read(cls, path: Path) -> ArtifactBytes:
        if path.is_file():
            files = {path.name: path.read_bytes()}
        else:
            files = {
                p.relative_to(path).as_posix(): p.read_bytes()
                for p in sorted(path.rglob("*"))
                if p.is_file()
            }
        h = hashlib.sha256()
        for name, data in sorted(files.items()):
            h.update(name.encode() + b"\0" + hashlib.sha256(data).digest())
        return cls(files, path.is_file(), path.name, h.hexdigest())

    def materialize(self) -> Path:
        """Write the files into a new temporary folder (removed when the worker exits)."""
        root = Path(tempfile.mkdtemp(prefix="tierwise-spark-"))
        atexit.register(shutil.rmtree, root, True)
        base = root if self.single else root / self.name
        for name, data in self.files.items():
            target = base / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        return root / self.name


def runtime_router(artifact: ArtifactBytes, threads: int) -> Any:
    """This worker's router for ``artifact``: loaded on first use, then reused."""
    router = _ROUTERS.get(artifact.sha256)
    if router is None:
        from tierwise.router.runtime import limit_blas_threads, load_runtime

        limit_blas_threads(1)
        router = load_runtime(artifact.materialize(), num_threads=threads)
        _ROUTERS[artifact.sha256] = router
        global LOADS
        LOADS += 1
    return router


ROW = "__tierwise_row"  # the 1-based input row number, attached before any repartition


@dataclass(frozen=True)
class NumberRows:
    """Adds ``ROW`` to each batch: rows before this partition + position inside it + 1."""

    offsets: dict[int, int]  # partition id -> rows in the partitions before it

    def __call__(self, batches: Iterator[Any]) -> Iterator[Any]:
        import pyarrow as pa
        from pyspark import TaskContext

        ctx = TaskContext.get()
        start = self.offsets.get(ctx.partitionId() if ctx is not None else 0, 0) + 1
        for batch in batches:
            numbers = pa.array(range(start, start + batch.num_rows), type=pa.int64())
            start += batch.num_rows
            yield pa.RecordBatch.from_arrays(
                [*batch.columns, numbers], names=[*batch.schema.names, ROW]
            )


@dataclass(frozen=True)
class RouteTask:
    """Everything a worker needs to route its partitions (pickled into each task)."""

    artifact: Any  # a pyspark Broadcast of ArtifactBytes
    fmt: str  # "jsonl" (lines of text) or "columns" (prompt and kept columns already parsed)
    column: str
    keep: tuple[str, ...]
    knob: float | None
    chunk_size: int
    threads: int
    schema: Any  # the pyarrow schema of the output batches

    def __call__(self, batches: Iterator[Any]) -> Iterator[Any]:
        router = runtime_router(self.artifact.value, self.threads)
        models = tuple(router.models_)
        for batch in batches:
            rows = self._rows(batch)
            for i in range(0, len(rows), self.chunk_size):
                records = route_rows(
                    router, rows[i : i + self.chunk_size], self.knob, self.column, list(self.keep)
                )
                yield _record_batch([flat(r, models) for r in records], self.schema)

    def _rows(self, batch: Any) -> list[Row]:
        cols = batch.to_pydict()
        numbers = cols[ROW]
        if self.fmt == "jsonl":
            return jsonl_rows(cols["value"], numbers, self.column, list(self.keep))
        return [
            Row(n, p, {k: cols[k][i] for k in self.keep}, None)
            for i, (n, p) in enumerate(zip(numbers, cols[self.column], strict=True))
        ]


def jsonl_rows(
    lines: list[str | None], numbers: list[int], column: str, keep: list[str]
) -> list[Row]:
    """Parse JSONL lines exactly as the local engine does (its own reader, line by line)."""
    import io

    from tierwise.experiments.batch_io import read_jsonl

    class _Lines:  # the local reader opens a path; hand it one line instead
        def __init__(self, line: str) -> None:
            self.data = line.encode("utf-8", "surrogateescape") + b"\n"

        def open(self, mode: str) -> io.BytesIO:
            return io.BytesIO(self.data)

    out = []
    for line, number in zip(lines, numbers, strict=True):
        for row, _ in read_jsonl(_Lines(line or ""), column, keep):  # type: ignore[arg-type]
            row.number = number  # a blank line yields nothing, as in the local engine
            out.append(row)
    return out


def _record_batch(rows: list[dict[str, Any]], schema: Any) -> Any:
    import pyarrow as pa

    columns = []
    for f in schema:
        values = [r.get(f.name) for r in rows]
        try:
            columns.append(pa.array(values, type=f.type))
        except (pa.ArrowInvalid, pa.ArrowTypeError):  # a kept value of another type: as text
            columns.append(pa.array([None if v is None else str(v) for v in values], f.type))
    return pa.RecordBatch.from_arrays(columns, schema=schema)
