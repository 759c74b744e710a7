"""On-disk embedding cache, so re-running an experiment never embeds the same prompt twice.

One SQLite file (stdlib, no server) holds float32 vectors keyed by (embedder identity,
normalizer key, sha256 of the raw prompt). The embedder identity includes a hash of the model's
weights and the normalizer key everything that changes the text the model sees, so a stale or
foreign vector is never returned. WAL mode and a busy timeout let several processes read and write
the same cache at once; writes are idempotent (same key, same vector).
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tierwise.router.errors import ConfigError, DataError

if TYPE_CHECKING:
    from tierwise.router.embed.base import Embedder
    from tierwise.router.normalize import Normalizer

FILENAME = "embeddings.sqlite3"
_SCHEMA_VERSION = "1"
_CHUNK = 500  # keys per SELECT: below SQLite's host-parameter limit on every version
_IDENTITY_KEY = "norm-v1:none"  # cache key part when no normalizer is given
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS spaces (
    id INTEGER PRIMARY KEY,
    embedder TEXT NOT NULL,
    normalizer TEXT NOT NULL,
    dim INTEGER NOT NULL,
    UNIQUE (embedder, normalizer)
);
CREATE TABLE IF NOT EXISTS vectors (
    space INTEGER NOT NULL,
    text_sha256 BLOB NOT NULL,
    vec BLOB NOT NULL,
    PRIMARY KEY (space, text_sha256)
) WITHOUT ROWID;
"""


def text_digest(text: str) -> bytes:
    """sha256 of the prompt's UTF-8 bytes (surrogates pass through rather than crash)."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()


class EmbeddingCache:
    """A directory holding one SQLite file of embeddings; safe for concurrent processes."""

    def __init__(self, directory: str | os.PathLike[str], *, timeout: float = 60.0) -> None:
        self.directory = Path(directory).expanduser()
        self.path = self.directory / FILENAME
        self.timeout = timeout
        self.hits = 0  # lookups answered from disk, over this object's life
        self.misses = 0
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._pid = -1
        self._spaces: dict[tuple[str, str], tuple[int, int]] = {}
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise ConfigError(
                f"embedding cache directory {str(self.directory)!r} cannot be created "
                f"({err.strerror}); choose a writable `cache_dir`."
            ) from None
        with self._db():
            pass  # open now, so a bad path or a corrupt file fails here with a clear message

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                if self._conn is None or self._pid != os.getpid():  # never reuse across fork
                    self._conn = self._connect()
                    self._pid = os.getpid()
                    self._spaces.clear()
                yield self._conn
            except sqlite3.OperationalError as err:
                if "readonly" in str(err) or "read-only" in str(err):
                    raise ConfigError(
                        f"embedding cache {str(self.path)!r} is read-only; make it writable or "
                        "choose another `cache_dir`."
                    ) from None
                if "locked" not in str(err) and "busy" not in str(err):
                    raise _unusable(self.path, err) from None
                raise DataError(
                    f"embedding cache {str(self.path)!r} stayed locked by another process for "
                    f"{self.timeout:g} s; retry, or give this run its own `cache_dir`."
                ) from None
            except sqlite3.DatabaseError as err:
                raise _unusable(self.path, err) from None

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path, timeout=self.timeout, isolation_level=None, check_same_thread=False
        )
        try:
            return self._prepare(conn)
        except BaseException:
            conn.close()
            raise

    def _prepare(self, conn: sqlite3.Connection) -> sqlite3.Connection:
        conn.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.executescript(_SCHEMA)  # IF NOT EXISTS: harmless when another process won the race
        conn.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (_SCHEMA_VERSION,))
        (version,) = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        if version != _SCHEMA_VERSION:
            raise sqlite3.DatabaseError(f"schema version {version}, expected {_SCHEMA_VERSION}")
        return conn

    def _space(self, conn: sqlite3.Connection, embedder: str, normalizer: str, dim: int) -> int:
        cached = self._spaces.get((embedder, normalizer))
        if cached is None:
            conn.execute(
                "INSERT OR IGNORE INTO spaces (embedder, normalizer, dim) VALUES (?, ?, ?)",
                (embedder, normalizer, dim),
            )
            row = conn.execute(
                "SELECT id, dim FROM spaces WHERE embedder=? AND normalizer=?",
                (embedder, normalizer),
            ).fetchone()
            cached = self._spaces[(embedder, normalizer)] = (int(row[0]), int(row[1]))
        space, stored_dim = cached
        if stored_dim != dim:
            raise DataError(
                f"embedding cache {str(self.path)!r} holds {stored_dim}-dim vectors for "
                f"{embedder!r}, but the embedder now returns {dim}; delete the cache file."
            )
        return space

    def get_many(
        self, embedder: str, normalizer: str, dim: int, digests: Sequence[bytes]
    ) -> dict[bytes, np.ndarray]:
        """Vectors found for ``digests`` (sha256 of each text); absent keys are misses."""
        found: dict[bytes, np.ndarray] = {}
        with self._db() as conn:
            space = self._space(conn, embedder, normalizer, dim)
            for i in range(0, len(digests), _CHUNK):
                chunk = list(digests[i : i + _CHUNK])
                marks = ",".join("?" * len(chunk))
                sql = (
                    "SELECT text_sha256, vec FROM vectors "
                    f"WHERE space=? AND text_sha256 IN ({marks})"
                )
                rows = conn.execute(sql, [space, *chunk]).fetchall()
                for key, blob in rows:
                    if len(blob) == 4 * dim:  # a short blob (torn write) is treated as a miss
                        found[bytes(key)] = np.frombuffer(blob, dtype="<f4")
        self.hits += len(found)
        self.misses += len(set(digests)) - len(found)
        return found

    def put_many(
        self, embedder: str, normalizer: str, digests: Sequence[bytes], vectors: np.ndarray
    ) -> None:
        """Store one row of ``vectors`` per digest (float32)."""
        vecs = np.ascontiguousarray(vectors, dtype="<f4")
        if vecs.ndim != 2 or vecs.shape[0] != len(digests):
            raise ValueError(f"need one vector per digest, got {vecs.shape} for {len(digests)}")
        with self._db() as conn:
            space = self._space(conn, embedder, normalizer, vecs.shape[1])
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany(
                    "INSERT OR REPLACE INTO vectors VALUES (?, ?, ?)",
                    [(space, d, v.tobytes()) for d, v in zip(digests, vecs, strict=True)],
                )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    def count(self, embedder: str | None = None) -> int:
        """Vectors stored, for one embedder identity or in total."""
        with self._db() as conn:
            if embedder is None:
                row = conn.execute("SELECT COUNT(*) FROM vectors").fetchone()
            else:
                row = conn.execute(
                    "SELECT COUNT(*) FROM vectors JOIN spaces ON vectors.space = spaces.id "
                    "WHERE spaces.embedder = ?",
                    (embedder,),
                ).fetchone()
        return int(row[0])

    def close(self) -> None:
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                self._conn.close()
            self._conn = None

    def __enter__(self) -> EmbeddingCache:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"EmbeddingCache({str(self.directory)!r})"


def _unusable(path: Path, err: Exception) -> DataError:
    return DataError(
        f"embedding cache {str(path)!r} is unusable ({err}); delete the file and it will be "
        "rebuilt (it only holds recomputable embeddings)."
    )


def embed_with_cache(
    embedder: Embedder,
    normalizer: Normalizer | None,
    texts: Sequence[str],
    cache: EmbeddingCache | None,
    *,
    progress: bool = True,
    batch_size: int = 32,
    chunk_size: int = 1024,
) -> np.ndarray:
    """Embed ``texts`` (normalized first), computing only what ``cache`` does not already hold.

    Identical texts are embedded once; misses are embedded ``chunk_size`` at a time and each chunk
    is saved before the next starts, so an interrupted run keeps its progress. A tqdm bar shows
    progress on misses when tqdm is installed and ``progress`` is true.
    """
    if isinstance(texts, str):
        raise DataError("`texts` must be a sequence of strings, got a single str; wrap it: [text].")
    items = list(texts)
    for i, t in enumerate(items):
        if not isinstance(t, str):
            raise DataError(
                f"`texts[{i}]` must be a str, got {type(t).__name__}; "
                "validate prompts with router.prompts.validate_batch first."
            )
    out = np.zeros((len(items), embedder.dim), dtype=np.float32)
    if not items:
        return out
    digests = [text_digest(t) for t in items]
    first: dict[bytes, int] = {}
    for i, d in enumerate(digests):
        first.setdefault(d, i)
    unique = list(first)
    norm_key = normalizer.key if normalizer is not None else _IDENTITY_KEY
    known = cache.get_many(embedder.identity, norm_key, embedder.dim, unique) if cache else {}
    missing = [d for d in unique if d not in known]
    if missing:
        bar = _progress_bar(len(missing), progress)
        try:
            for start in range(0, len(missing), chunk_size):
                chunk = missing[start : start + chunk_size]
                seen = [items[first[d]] for d in chunk]
                shown = [normalizer.apply(t) for t in seen] if normalizer is not None else seen
                # Different prompts can normalize to the same text (e.g. same tail): embed once.
                order = {s: k for k, s in enumerate(dict.fromkeys(shown))}
                vecs = embedder.embed(list(order), batch_size=batch_size)
                rows = vecs[[order[s] for s in shown]]
                if cache is not None:
                    cache.put_many(embedder.identity, norm_key, chunk, rows)
                known.update(zip(chunk, rows, strict=True))
                if bar is not None:
                    bar.update(len(chunk))
        finally:
            if bar is not None:
                bar.close()
    for i, d in enumerate(digests):
        out[i] = known[d]
    return out


def _progress_bar(total: int, enabled: bool) -> Any | None:
    if not enabled:
        return None
    try:
        from tqdm import tqdm
    except ImportError:  # tqdm is optional in the production install
        return None
    return tqdm(total=total, desc="embedding", unit="prompt", leave=False)
