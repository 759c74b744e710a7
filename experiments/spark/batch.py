"""`tierwise batch --engine spark`: route a dataset of any size on a Spark cluster.

The input is a Parquet, JSONL or CSV file, a directory of part files, a glob, or a table of the
session's catalog. Each Python worker loads the router once (see :mod:`.worker`) and routes
Arrow batches with ``mapInArrow`` (the local engine's reader semantics and its ``route_rows``,
so values and decisions match it). The output is a Parquet dataset (a directory of part files)
with exactly the local engine's columns; ``row`` numbers rows 1, 2, ... in input order (files in
sorted path order), as the local engine numbers a single file. A row that cannot be routed gets
its ``error``; the job goes on.
"""

from __future__ import annotations

import glob as globlib
import re
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tierwise.experiments.batch_io import FORMATS, OUTPUT_COLUMNS, file_format, report_summary
from tierwise.experiments.spark.worker import ROW, ArtifactBytes, NumberRows, RouteTask
from tierwise.router.errors import ConfigError, DataError


@dataclass
class SparkInput:
    """The input as a Spark DataFrame, in input order, and how its rows are laid out."""

    frame: Any  # a pyspark DataFrame, one partition order = input order
    fmt: str  # "jsonl" (a `value` column of lines) or "columns"
    source: str


def input_files(source: str) -> list[Path]:
    """The files behind a path, a directory of part files or a glob, in sorted order."""
    path = Path(source)
    if path.is_file():
        return [path]
    if path.is_dir():
        files = [
            p
            for p in sorted(path.rglob("*"))
            if p.is_file()
            and p.suffix.lower() in FORMATS
            and not any(part.startswith(("_", ".")) for part in p.relative_to(path).parts)
        ]
        if not files:
            raise DataError(
                f"input directory {source!r} holds no {', '.join(sorted(FORMATS))} files; "
                "point to the data files or their folder"
            )
        return files
    return [Path(p) for p in sorted(globlib.glob(source, recursive=True)) if Path(p).is_file()]


def read_input(spark: Any, source: str, column: str, keep: list[str]) -> SparkInput:
    """A DataFrame of the input whose partitions come in input order."""
    files = input_files(source)
    if not files:
        if _is_table(spark, source):
            return SparkInput(
                _check_columns(spark.table(source), source, column, keep), "columns", source
            )
        raise DataError(
            f"input {source!r} is not a file, a directory of part files, a glob that matches "
            "files, or a table in the Spark catalog; check the path or the table name"
        )
    formats = {file_format(f, "input") for f in files}
    if len(formats) > 1:
        raise DataError(
            f"input {source!r} mixes formats {sorted(formats)}; give one format at a time"
        )
    fmt = formats.pop()
    frames = [_read_one(spark, f, fmt) for f in files]
    frame = frames[0]
    for other in frames[1:]:  # union keeps each file's partitions, in this order
        frame = frame.unionByName(other)
    if fmt == "jsonl":
        return SparkInput(frame, "jsonl", source)
    if fmt == "csv":  # an empty unquoted cell is "" for the local reader, null for Spark's
        frame = frame.na.fill("")
    return SparkInput(_check_columns(frame, str(files[0]), column, keep), "columns", source)


def _is_table(spark: Any, name: str) -> bool:
    try:
        return bool(spark.catalog.tableExists(name))
    except Exception:  # not a valid table identifier
        return False


def _read_one(spark: Any, path: Path, fmt: str) -> Any:
    if fmt == "parquet":
        return spark.read.parquet(str(path))
    if fmt == "jsonl":
        return spark.read.text(str(path))
    # As the local reader: every cell is text, an empty cell is "" (not null), quotes doubled.
    return spark.read.csv(
        str(path),
        header=True,
        sep="\t" if path.suffix.lower() == ".tsv" else ",",
        multiLine=True,
        quote='"',
        escape='"',
        inferSchema=False,
        nullValue="\u0000tierwise-no-null\u0000",
        emptyValue="",
        encoding="UTF-8",
    )


def _check_columns(frame: Any, where: str, column: str, keep: list[str]) -> Any:
    have = frame.columns
    for name in [column, *keep]:
        if name not in have:
            raise DataError(
                f"{where}: column `{name}` not found; its columns are {have[:20]}; pass "
                "--prompt-column (or fix --keep)"
            )
    return frame.select(*[f"`{c}`" for c in dict.fromkeys([column, *keep])])


def partition_offsets(frame: Any) -> tuple[dict[int, int], int]:
    """Rows before each partition (for global row numbers) and the total, in one small job."""
    from pyspark.sql.functions import spark_partition_id

    counts = frame.groupBy(spark_partition_id().alias("p")).count().collect()
    sizes = {int(r["p"]): int(r["count"]) for r in counts}
    offsets, total = {}, 0
    for p in sorted(sizes):
        offsets[p] = total
        total += sizes[p]
    return offsets, total


def output_schema(spark: Any, data: SparkInput, models: tuple[str, ...], keep: list[str]) -> Any:
    """The local engine's Parquet columns; kept columns keep their input types."""
    import pyarrow as pa

    kept = _kept_types(spark, data, keep)
    fields = [pa.field("row", pa.int64())]
    fields += [pa.field(k, kept[k]) for k in keep]
    fields += [
        pa.field("model", pa.string()),
        pa.field("error", pa.string()),
        pa.field("policy", pa.string()),
        pa.field("knob", pa.float64()),
    ]
    fields += [pa.field(f"p_success.{m}", pa.float64()) for m in models]
    fields += [pa.field(f"expected_cost.{m}", pa.float64()) for m in models]
    return pa.schema(fields)


def _kept_types(spark: Any, data: SparkInput, keep: list[str]) -> dict[str, Any]:
    import pyarrow as pa
    from pyspark.sql.pandas.types import to_arrow_type

    if not keep:
        return {}
    if data.fmt == "jsonl":  # typed as Spark's JSON reader infers them (mixed types: string)
        files = [str(f) for f in input_files(data.source)]
        frame = spark.read.json(files)
        schema = {f.name: f.dataType for f in frame.schema.fields}
        return {k: to_arrow_type(schema[k]) if k in schema else pa.string() for k in keep}
    schema = {f.name: f.dataType for f in data.frame.schema.fields}
    return {k: to_arrow_type(schema[k]) for k in keep}


@dataclass
class SparkSummary:
    """Rows routed on Spark, errors, seconds and rows per model."""

    rows: int
    errors: int
    seconds: float
    counts: Counter[str]


def route_spark(
    spark: Any,
    artifact: Path,
    source: str,
    output: Path,
    *,
    prompt_column: str = "prompt",
    keep: list[str] | None = None,
    chunk_size: int = 1024,
    knob: float | None = None,
    threads: int = 1,
    overwrite: bool = False,
    partitions: int | None = None,
) -> SparkSummary:
    """Route every row of ``source`` into the Parquet dataset ``output`` on ``spark``."""
    from pyspark.sql.pandas.types import from_arrow_schema
    from pyspark.sql.types import LongType, StructField, StructType

    from tierwise.router.runtime import load_runtime

    keep = list(dict.fromkeys(keep or []))
    _check_args(source, output, keep, chunk_size, overwrite, partitions)
    t0 = time.perf_counter()
    driver_router = load_runtime(artifact, num_threads=1, warm_up=False)  # fail fast, here
    models = tuple(driver_router.models_)
    data = read_input(spark, source, prompt_column, keep)
    offsets, _ = partition_offsets(data.frame)
    numbered_schema = StructType([*data.frame.schema.fields, StructField(ROW, LongType())])
    frame = data.frame.mapInArrow(NumberRows(offsets), numbered_schema)
    if partitions is not None:  # rows are numbered already, so a shuffle cannot reorder them
        frame = frame.repartition(partitions)
    schema = output_schema(spark, data, models, keep)
    task = RouteTask(
        artifact=spark.sparkContext.broadcast(ArtifactBytes.read(artifact)),
        fmt=data.fmt,
        column=prompt_column,
        keep=tuple(keep),
        knob=knob,
        chunk_size=chunk_size,
        threads=threads,
        schema=schema,
    )
    routed = frame.mapInArrow(task, from_arrow_schema(schema))
    routed.write.mode("overwrite" if overwrite else "errorifexists").parquet(str(output))
    return _summary(spark, output, time.perf_counter() - t0)


def _check_args(
    source: str,
    output: Path,
    keep: list[str],
    chunk_size: int,
    overwrite: bool,
    partitions: int | None,
) -> None:
    if partitions is not None and (
        isinstance(partitions, bool) or not isinstance(partitions, int) or partitions < 1
    ):
        raise ConfigError(f"--partitions must be a positive integer, got {partitions!r}")
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ConfigError(f"--chunk-size must be a positive integer, got {chunk_size!r}")
    if output.suffix.lower() not in (".parquet", ".pq", ""):
        raise ConfigError(
            f"--engine spark writes a Parquet dataset (a folder of part files); OUTPUT must end "
            f"with .parquet or have no extension, got {str(output)!r}"
        )
    if output.exists() and not overwrite:
        raise ConfigError(f"output {str(output)!r} exists; choose another path or pass --overwrite")
    if Path(source).exists() and output.resolve() == Path(source).resolve():
        raise ConfigError("OUTPUT must differ from INPUT")
    clash = set(OUTPUT_COLUMNS) & set(keep)
    if clash:
        raise ConfigError(f"--keep {sorted(clash)} would clash with an output column; drop it")


def _summary(spark: Any, output: Path, seconds: float) -> SparkSummary:
    """Counts read back from the written output (cheap: two columns of Parquet)."""
    from pyspark.sql import functions as F

    literal = re.sub(r"([\[\]{}*?\\])", r"\\\1", str(output))  # Hadoop reads paths as globs
    rows = (
        spark.read.parquet(literal)
        .groupBy("model")
        .agg(F.count(F.lit(1)).alias("n"), F.count("error").alias("errors"))
        .collect()
    )
    counts: Counter[str] = Counter({r["model"]: int(r["n"]) for r in rows if r["model"]})
    total = sum(int(r["n"]) for r in rows)
    errors = sum(int(r["errors"]) for r in rows)
    return SparkSummary(total, errors, seconds, counts)


def run_batch(args: Any) -> int:
    """`tierwise batch ... --engine spark`: the CLI handler (arguments parsed by the command)."""
    artifact = Path(args.artifact)
    if not artifact.exists():
        raise ConfigError(f"artifact {str(artifact)!r} does not exist; train or export one first")
    if args.threads is not None and args.threads < 1:
        raise ConfigError(f"--threads must be a positive integer, got {args.threads}")
    from tierwise.experiments.spark.session import get_session

    spark = get_session(args.master)
    s = route_spark(
        spark,
        artifact,
        str(args.input),
        Path(args.output),
        prompt_column=args.prompt_column,
        keep=args.keep,
        chunk_size=args.chunk_size,
        knob=args.knob,
        threads=args.threads or 1,
        overwrite=args.overwrite,
        partitions=args.partitions,
    )
    where = f" on Spark ({spark.sparkContext.master})"
    return report_summary(s.rows, s.errors, s.seconds, s.counts, args.output, where)
