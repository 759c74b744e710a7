"""Embed a large traffic log on Spark into the embedding cache that training reuses.

`tierwise embed CONFIG --engine spark` reads the prompt column of every file source of an
experiment config on Spark (each file split across tasks, never whole into memory), embeds each
distinct prompt on the executors with a torch-free copy of the config's embedder, and stores the
vectors under exactly the keys :func:`tierwise.router.cache.embed_with_cache` uses: (embedder
identity, normalizer key, sha256 of the raw prompt). `tierwise train` / `tune` / `bench` on the
same config and cache folder (``router.cache_dir`` or ``$TIERWISE_CACHE_DIR``) then find every
vector and embed nothing.

The vectors land first in a Parquet embedding store (``embedder``, ``normalizer``,
``text_sha256``, ``vector``) written by the executors in parallel; the driver then copies it
into the SQLite cache a chunk of rows at a time.

Torch-free executors: ``minilm`` and other sentence-transformers models are exported once to
ONNX fp32 (same identity as the torch model, cached under the cache folder) and shipped as
bytes; ``hashing:*``, ``onnx:*`` and other torch-free embedders are rebuilt from their spec.
"""

from __future__ import annotations

import hashlib
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tierwise.router.errors import ConfigError, DataError

TORCH_FAMILIES = ("minilm", "sentence-transformers")
STORE_COLUMNS = ("embedder", "normalizer", "text_sha256", "vector")


@dataclass(frozen=True)
class PortableEmbedder:
    """An embedder spec, or an ONNX export's files, that an executor can rebuild without torch."""

    spec: str
    onnx_files: dict[str, bytes] | None = None

    def build(self) -> Any:
        from tierwise.router.embed import get_embedder

        if self.onnx_files is None:
            return get_embedder(self.spec)
        from tierwise.router.embed.onnx import (
            CONFIG_FILE,
            MODEL_FILE,
            TOKENIZER_FILE,
            OnnxEmbedder,
            OnnxEmbedderConfig,
        )

        config = OnnxEmbedderConfig.model_validate_json(self.onnx_files[CONFIG_FILE])
        tokenizer = self.onnx_files[TOKENIZER_FILE].decode("utf-8")
        return OnnxEmbedder.from_bytes(
            config, self.onnx_files[MODEL_FILE], tokenizer, where=f"spark:{self.spec}",
            num_threads=1,
        )  # fmt: skip


def portable_embedder(spec: str, cache_dir: Path) -> PortableEmbedder:
    """What executors run for ``spec``: the spec itself, or its ONNX fp32 export (made once)."""
    if spec.split(":", 1)[0] not in TORCH_FAMILIES:
        return PortableEmbedder(spec)
    from tierwise.router.artifact import export_onnx
    from tierwise.router.embed import SentenceTransformerEmbedder, get_embedder

    source = get_embedder(spec)
    assert isinstance(source, SentenceTransformerEmbedder)  # what TORCH_FAMILIES build
    tag = hashlib.sha256(source.identity.encode()).hexdigest()[:16]
    folder = cache_dir / "onnx" / tag
    if not (folder / "embedder.json").is_file():
        tmp = folder.with_name(tag + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        export_onnx(source, tmp)
        tmp.replace(folder)
    return PortableEmbedder(spec, {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()})


_EMBEDDERS: dict[int, tuple[Any, Any]] = {}  # per worker: (embedder, normalizer) by task hash


@dataclass(frozen=True)
class EmbedTask:
    """Embeds the distinct prompts of each Arrow batch; returns (keys, vectors) rows."""

    embedder: Any  # Broadcast of PortableEmbedder
    normalization: dict[str, Any]
    column: str
    identity: str
    norm_key: str
    batch_size: int

    def _models(self) -> tuple[Any, Any]:
        key = hash((self.identity, self.norm_key))
        if key not in _EMBEDDERS:
            from tierwise.router.normalize import NormalizationConfig, Normalizer

            emb = self.embedder.value.build()
            norm = Normalizer.for_embedder(NormalizationConfig(**self.normalization), emb)
            if (emb.identity, norm.key) != (self.identity, self.norm_key):
                raise RuntimeError(  # a driver/executor version skew: refuse wrong keys
                    f"executor embedder {emb.identity!r}/{norm.key!r} differs from the driver's "
                    f"{self.identity!r}/{self.norm_key!r}"
                )
            _EMBEDDERS[key] = (emb, norm)
        return _EMBEDDERS[key]

    def __call__(self, batches: Iterator[Any]) -> Iterator[Any]:
        import numpy as np
        import pyarrow as pa

        from tierwise.router.cache import text_digest

        emb, norm = self._models()
        for batch in batches:
            texts = [t for t in batch.column(self.column).to_pylist() if isinstance(t, str)]
            if not texts:
                continue
            shown = [norm.apply(t) for t in texts]
            order = {s: k for k, s in enumerate(dict.fromkeys(shown))}
            vecs = emb.embed(list(order), batch_size=self.batch_size)
            rows = np.ascontiguousarray(vecs[[order[s] for s in shown]], dtype="<f4")
            n = len(texts)
            yield pa.RecordBatch.from_pydict(
                {
                    "embedder": pa.array([self.identity] * n, pa.string()),
                    "normalizer": pa.array([self.norm_key] * n, pa.string()),
                    "text_sha256": pa.array([text_digest(t) for t in texts], pa.binary()),
                    "vector": pa.array([r.tobytes() for r in rows], pa.binary()),
                }
            )


def log_prompts(spark: Any, cfg: Any) -> Any:
    """A one-column DataFrame (``prompt``) of the distinct prompts of the config's files."""
    from pyspark.sql.functions import col

    from tierwise.eval.importers.readers import detect_format

    column = cfg.data.columns.prompt
    frames = []
    for src in cfg.data.sources:
        if src.path is None:
            raise ConfigError(
                f"`tierwise embed --engine spark` reads files; source `hf: {src.hf}` is a Hugging "
                "Face dataset: export it to Parquet and point `path` at it"
            )
        path = Path(src.path) if Path(src.path).is_absolute() else cfg.base_dir / src.path
        if not path.exists():
            raise DataError(f"data file {str(path)!r} does not exist; check `path` in the config")
        frame = _read(spark, path, detect_format(path, src.format), src)
        if column in frame.columns:  # a source of scores only (joined by id) has no prompts
            frames.append(frame.select(col(f"`{column}`").cast("string").alias("prompt")))
    if not frames:
        raise DataError(f"no source of the config has the prompt column `{column}`")
    out = frames[0]
    for f in frames[1:]:
        out = out.unionByName(f)
    return out.where("prompt IS NOT NULL").distinct()


def _read(spark: Any, path: Path, fmt: str, src: Any) -> Any:
    if fmt == "parquet":
        return spark.read.parquet(str(path))
    if fmt in ("jsonl", "json"):
        return spark.read.json(str(path), multiLine=(fmt == "json"), primitivesAsString=True)
    sep = src.sep if src.sep is not None else ("\t" if fmt == "tsv" else ",")
    return spark.read.csv(
        str(path), header=True, sep=sep, multiLine=True, quote='"', escape='"',
        inferSchema=False, nullValue="\u0000tierwise-no-null\u0000", emptyValue="",
        encoding=src.encoding,
    )  # fmt: skip


@dataclass
class EmbedSummary:
    """Prompts embedded on Spark, vectors added to the cache and seconds taken."""

    prompts: int
    added: int  # vectors the cache did not hold before
    seconds: float
    store: Path
    cache: Path
    identity: str


def embed_on_spark(
    spark: Any,
    cfg: Any,
    *,
    cache_dir: str | Path,
    store: Path | None = None,
    partitions: int | None = None,
    chunk_rows: int = 8192,
) -> EmbedSummary:
    """Embed every distinct prompt of ``cfg``'s log on ``spark`` into the cache at ``cache_dir``."""
    from tierwise.router.cache import EmbeddingCache
    from tierwise.router.normalize import Normalizer

    t0 = time.perf_counter()
    rcfg = cfg.router
    cache_path = Path(cache_dir)
    portable = portable_embedder(rcfg.embedder.name, cache_path)
    local = portable.build()  # the same keys on the driver as on every executor
    norm = Normalizer.for_embedder(rcfg.normalization, local)
    task = EmbedTask(
        embedder=spark.sparkContext.broadcast(portable),
        normalization=rcfg.normalization.model_dump(mode="json"),
        column="prompt",
        identity=local.identity,
        norm_key=norm.key,
        batch_size=rcfg.embedder.batch_size,
    )
    prompts = log_prompts(spark, cfg)
    if partitions is not None:
        prompts = prompts.repartition(partitions)
    schema = "embedder string, normalizer string, text_sha256 binary, vector binary"
    tag = hashlib.sha256(f"{local.identity}|{norm.key}".encode()).hexdigest()[:8]
    store = store or cache_path / "stores" / f"{cfg.name}-{tag}.parquet"
    prompts.mapInArrow(task, schema).write.mode("overwrite").parquet(str(store))
    with EmbeddingCache(cache_path) as cache:
        before = cache.count(local.identity)
        n = import_store(cache, store, dim=local.dim, chunk_rows=chunk_rows)
        added = cache.count(local.identity) - before
    return EmbedSummary(n, added, time.perf_counter() - t0, store, cache.path, local.identity)


def import_store(cache: Any, store: Path, *, dim: int, chunk_rows: int = 8192) -> int:
    """Copy a Parquet embedding store into ``cache``, ``chunk_rows`` rows at a time."""
    import numpy as np
    import pyarrow.dataset as ds

    n = 0
    for batch in ds.dataset(str(store), format="parquet").to_batches(batch_size=chunk_rows):
        cols = batch.to_pydict()
        groups: dict[tuple[str, str], list[int]] = {}
        for i, key in enumerate(zip(cols["embedder"], cols["normalizer"], strict=True)):
            groups.setdefault(key, []).append(i)
        for (identity, norm_key), idx in groups.items():
            vecs = np.frombuffer(b"".join(cols["vector"][i] for i in idx), dtype="<f4")
            cache.put_many(
                identity, norm_key, [cols["text_sha256"][i] for i in idx], vecs.reshape(-1, dim)
            )
        n += batch.num_rows
    return n
