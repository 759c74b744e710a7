"""The call cache: every finished upstream call, in SQLite, keyed by model × messages × params.

A rerun (after a crash, a kill or a budget stop) looks each call up here first and sends only
what is missing, so no finished call is paid for twice. Each call is committed as it finishes
(WAL journal), so a process killed mid-run loses at most the calls still in flight. The key
is the upstream *model* (not the tier name), the exact messages and the generation params:
renaming a tier reuses its answers, changing a prompt template or ``max_tokens`` does not.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tierwise.router.errors import DataError

SCHEMA = """
CREATE TABLE IF NOT EXISTS calls (
    key TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    text TEXT NOT NULL,
    input_tokens INTEGER,
    output_tokens INTEGER,
    cost_usd REAL,
    latency_s REAL,
    created REAL NOT NULL
)
"""


def call_key(model: str, messages: list[dict[str, Any]], params: dict[str, Any]) -> str:
    """Stable hash of what determines an answer."""
    blob = json.dumps(
        {"model": model, "messages": messages, "params": params},
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class CachedCall:
    """One stored model call: key, model, answer, tokens, cost and latency."""

    key: str
    model: str
    text: str
    input_tokens: int | None
    output_tokens: int | None
    cost_usd: float | None
    latency_s: float


class CallCache:
    """One SQLite file; use from one thread (the runner's event loop)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")  # durable against a process crash
            self._db.execute(SCHEMA)
        except sqlite3.DatabaseError as err:
            raise DataError(
                f"call cache {self.path}: not a usable SQLite file ({err}); delete it or set "
                "`output.cache` to another path"
            ) from None

    def get_many(self, keys: Iterable[str]) -> dict[str, CachedCall]:
        found: dict[str, CachedCall] = {}
        keys = list(dict.fromkeys(keys))
        for i in range(0, len(keys), 500):
            chunk = keys[i : i + 500]
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(
                "SELECT key, model, text, input_tokens, output_tokens, cost_usd, latency_s "
                f"FROM calls WHERE key IN ({marks})",
                chunk,
            )
            for r in rows:
                found[r[0]] = CachedCall(*r)
        return found

    def get(self, key: str) -> CachedCall | None:
        return self.get_many([key]).get(key)

    def put(self, call: CachedCall) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO calls VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                call.key,
                call.model,
                call.text,
                call.input_tokens,
                call.output_tokens,
                call.cost_usd,
                call.latency_s,
                time.time(),
            ),
        )

    def __len__(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM calls").fetchone()[0])

    def close(self) -> None:
        self._db.close()
