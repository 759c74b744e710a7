"""Read the gateway's decision log (router/gateway/decision_log.py) as prompts to label.

``source: {kind: gateway_log, path: DIR_OR_FILE}``: a directory of ``decisions-*.jsonl`` /
``decisions-*.parquet`` files (every file, in name order, i.e. time order) or one such file;
or ``path: postgresql://user@host:port/db`` (+ ``table``, default ``tierwise_decisions``)
for a gateway started with ``--log postgresql://...``.
Each record is one request; ``request_id`` becomes the id and ``prompt`` the prompt. The
gateway logs prompt text only when started with ``--log-prompts``; records without it are
skipped and counted, and a log with none at all is an error saying how to fix it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tierwise.router.errors import DataError

PATTERNS = ("decisions-*.jsonl", "decisions-*.parquet")


def log_files(path: Path) -> list[Path]:
    """The decision log files at ``path``: the file itself, or a directory's decisions-* files."""
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise DataError(f"decision log {str(path)!r} does not exist; check `source.path`")
    files = sorted(f for p in PATTERNS for f in path.glob(p))
    if not files:
        raise DataError(
            f"decision log directory {str(path)!r} has no decisions-*.jsonl or "
            "decisions-*.parquet files; point `source.path` at the gateway's --log directory"
        )
    return files


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    rows = []
    with path.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except ValueError:
                # the gateway may be writing the last line right now: skip a torn tail only
                if fh.readline() == "":
                    break
                raise DataError(
                    f"{path}, line {n}: not JSON; the decision log is damaged"
                ) from None
    return rows


def _redact(url: str) -> str:
    """The URL without its password (the gateway's own rule, for the same URLs)."""
    from tierwise.router.gateway.decision_log import _redact as redact

    return redact(url)


def read_postgres(url: str, table: str) -> list[dict[str, Any]]:
    """The decision log table's rows, oldest first."""
    if not table.replace("_", "").isalnum():
        raise DataError(f"`source.table` must be a plain SQL name, got {table!r}")
    try:
        import psycopg2
    except ImportError:
        raise DataError(
            "a postgresql:// decision log needs psycopg2; `pip install psycopg2-binary`"
        ) from None
    try:
        with psycopg2.connect(url, connect_timeout=10) as conn, conn.cursor() as cur:
            cur.execute(f"SELECT * FROM {table} ORDER BY time")
            names = [d[0] for d in cur.description]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
    except psycopg2.Error as err:
        raise DataError(
            f"decision log {_redact(url)}, table {table!r}: {' '.join(str(err).split())}; check "
            "the URL and `source.table` (the gateway's --log-table)"
        ) from None


def _read_files(path: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for f in log_files(path):
        if f.suffix == ".parquet":
            import pandas as pd

            records = pd.read_parquet(f).to_dict(orient="records")
            rows.extend({str(k): v for k, v in r.items()} for r in records)
        else:
            rows.extend(_read_jsonl(f))
    return rows


def read_gateway_log(
    path: str, base: Path, table: str = "tierwise_decisions"
) -> list[dict[str, Any]]:
    """Every record that carries a prompt, oldest first."""
    if path.startswith(("postgresql://", "postgres://")):
        rows = read_postgres(path, table)
    else:
        p = Path(path)
        rows = _read_files(p if p.is_absolute() else base / p)
    with_prompt = [r for r in rows if isinstance(r.get("prompt"), str) and r["prompt"].strip()]
    if rows and not with_prompt:
        raise DataError(
            f"decision log {str(path)!r}: none of its {len(rows)} records has the prompt text "
            "(the gateway logs only a hash unless started with --log-prompts); restart the "
            "gateway with --log-prompts to collect prompts to label"
        )
    return [{str(k): v for k, v in r.items()} for r in with_prompt]
