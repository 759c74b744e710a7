"""The gateway's decision log: rotating Parquet files, the bounded queue that drops (and counts)
instead of blocking, and one PostgreSQL row per request under a 16-client load."""

from __future__ import annotations

import json
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from runtime_helpers import hashing_artifact
from upstream_helpers import GatewayProcess, start_fake_upstream

from tierwise.router.errors import ConfigError
from tierwise.router.gateway.decision_log import COLUMNS, DecisionLog, FileSink, open_log

PG_URL = "postgresql://postgres@127.0.0.1:5432/test"


class Tally:
    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def __call__(self, result: str, n: int) -> None:
        self.counts[result] = self.counts.get(result, 0) + n


def record(i: int) -> dict[str, Any]:
    return {"request_id": f"r{i}", "time": time.time(), "model": "small", "status": 200,
            "p_success": {"small": 0.5}, "prompt_tokens": i}  # fmt: skip


def test_parquet_files_rotate_by_size_and_hold_every_record(tmp_path: Path) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    tally = Tally()
    log = open_log(str(tmp_path / "log"), tally, fmt="parquet", rotate_mb=0.004)
    for i in range(300):
        log.record(record(i))
        if i % 50 == 49:
            time.sleep(0.05)  # let the writer take several batches
    log.close()
    files = sorted((tmp_path / "log").glob("decisions-*.parquet"))
    tables = [pq.read_table(f) for f in files]
    assert len(files) > 1 and tally.counts == {"written": 300}
    assert sum(t.num_rows for t in tables) == 300 and tables[0].column_names == list(COLUMNS)
    ids = [x for t in tables for x in t.column("request_id").to_pylist()]
    assert ids == [f"r{i}" for i in range(300)]
    assert json.loads(tables[0].column("p_success")[0].as_py()) == {"small": 0.5}


def test_full_queue_drops_and_counts_instead_of_blocking(tmp_path: Path) -> None:
    gate = threading.Event()

    class SlowSink(FileSink):
        def write(self, records: list[dict[str, Any]]) -> None:
            gate.wait(10)
            super().write(records)

    tally = Tally()
    log = DecisionLog(SlowSink(tmp_path / "log"), tally, maxsize=5)
    t0 = time.perf_counter()
    accepted = sum(log.record(record(i)) for i in range(50))
    assert time.perf_counter() - t0 < 0.5  # never waits for the sink
    gate.set()
    log.close()
    lines = sum(1 for f in (tmp_path / "log").glob("*.jsonl") for _ in f.open())
    assert tally.counts["dropped"] == 50 - accepted and 5 <= accepted <= 6
    assert tally.counts["written"] == accepted == lines


def test_bad_destinations_are_clear_errors(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match=r"--log .* must be a directory"):
        open_log(str(tmp_path / "file" / "sub"), Tally())
    with pytest.raises(
        ConfigError, match=r"cannot connect to PostgreSQL at postgresql://u:\*\*\*@"
    ):
        open_log("postgresql://u:secret@127.0.0.1:1/test", Tally())


@pytest.mark.integration
def test_load_writes_exactly_one_postgres_row_per_request(tmp_path: Path) -> None:
    psycopg2 = pytest.importorskip("psycopg2")
    openai = pytest.importorskip("openai")
    try:
        psycopg2.connect(PG_URL, connect_timeout=3).close()
    except psycopg2.OperationalError as err:
        pytest.skip(f"PostgreSQL is not reachable at {PG_URL}: {err}")
    table = f"tw_gateway_{uuid.uuid4().hex[:10]}"
    artifact = hashing_artifact(tmp_path / "router.tierwise")
    with start_fake_upstream() as up:
        ups = tmp_path / "up.yaml"
        ups.write_text(f"default: {{base_url: '{up.base_url}', max_retries: 0}}\n")
        args = ("--log", PG_URL, "--log-table", table)
        with GatewayProcess(artifact, ups, *args, log=tmp_path / "gw.log") as gw:
            results: list[tuple[int, str]] = []
            stop = time.monotonic() + 3.0

            def client_loop(i: int) -> None:
                c = openai.OpenAI(base_url=gw.base_url, api_key="unused", max_retries=0)
                n = 0
                while time.monotonic() < stop:
                    model = "tierwise" if n % 3 else "small"
                    r = c.chat.completions.with_raw_response.create(
                        model=model, messages=[{"role": "user", "content": f"math poem {i} {n}"}]
                    )
                    results.append(
                        (r.http_response.status_code, r.headers["x-tierwise-request-id"])
                    )
                    n += 1

            threads = [threading.Thread(target=client_loop, args=(i,)) for i in range(16)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(60)
            metrics = gw.metrics()
        # the gateway has stopped: its queue is flushed
        assert "Traceback" not in gw.log.read_text()
    conn = psycopg2.connect(PG_URL)
    try:
        with conn.cursor() as cur:
            cur.execute(f"SELECT request_id, status, mode FROM {table}")
            rows = cur.fetchall()
            cur.execute(f"DROP TABLE {table}")
        conn.commit()
    finally:
        conn.close()
    assert len(results) >= 32 and all(status == 200 for status, _ in results)
    assert sorted(r[0] for r in rows) == sorted(rid for _, rid in results)  # 0 lost, 0 extra
    assert {r[2] for r in rows} == {"routed", "pinned"}
    assert 'tierwise_gateway_log_records_total{result="dropped"}' not in metrics
