"""Issue 10, denial of service and unsafe loading in the HTTP service: fair slices for big
batches, a token bound per request, a client leaving mid-body, embedders an artifact may name.

Routers use the hashing embedder (milliseconds per call); the latency a big batch adds to small
requests with the real MiniLM is measured by scripts/bench_reliability.py.
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from runtime_helpers import BLOCK_HEAVY, ROOT, hashing_artifact, train_router

from tierwise.router.embed.onnx import _chunks
from tierwise.router.errors import ArtifactError
from tierwise.router.serve import Limits, create_app
from tierwise.router.serve.batcher import Batcher, Job, estimate_tokens
from tierwise.router.serve.metrics import Metrics
from tierwise.router.serve.state import RouterHolder

LONG = "Summarize this support thread and list the open questions. " * 130  # ~7.8k chars


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return hashing_artifact(tmp_path_factory.mktemp("hard") / "a.tierwise")


def test_a_big_batch_is_sliced_and_shares_calls_with_small_requests(artifact: Path) -> None:
    holder = RouterHolder(artifact)
    batcher = Batcher(holder, Metrics(), call_tokens=1024)  # never started: calls planned here
    big = batcher.enqueue(Job([f"{LONG} {i}" for i in range(40)], list(range(40)), None))
    smalls = [batcher.enqueue(Job([f"math code {i}"], [0], None)) for i in range(5)]
    calls = []
    while True:
        call = batcher.plan_call()
        if not call:
            break
        calls.append(call)
        batcher.route_slices(call)
        if len(calls) == 1:  # every small request is answered by the first call
            assert all(s.future.done() for s in smalls) and not big.future.done()
    assert len(calls) == 40  # one longest prompt per call while others could be waiting
    assert all(sum(s.job.costs[i] for s in c for i in range(s.start, s.end)) <= 1024 for c in calls)
    decisions, loaded = big.future.result(timeout=5)
    want = holder.current.router.route(big.prompts)
    assert [d.index for d in decisions] == list(range(40))
    assert [d.model for d in decisions] == [w.model for w in want]
    assert loaded is holder.current


def test_many_waiting_jobs_are_served_round_robin_within_the_call_budget(artifact: Path) -> None:
    batcher = Batcher(RouterHolder(artifact), Metrics(), call_tokens=600)
    jobs = [batcher.enqueue(Job([LONG] * 3, [0, 1, 2], None)) for _ in range(5)]
    order = []
    for _ in range(8):
        call = batcher.plan_call()
        order.append([jobs.index(s.job) for s in call])
        batcher.route_slices(call)
    # 258 tokens each: two jobs per call, the next two next time, never the same job twice.
    assert order[:3] == [[0, 1], [2, 3], [4, 0]]
    assert all(len(set(c)) == len(c) for c in order)
    assert all(job.future.done() for job in jobs[:3])


def test_token_estimate_is_capped_at_what_the_embedder_reads() -> None:
    assert estimate_tokens("x" * 7800, 256) == 258
    assert estimate_tokens("hello there", 256) == 2 + 3
    assert _chunks(np.array([256, 250, 20, 19, 18]), 32) == [(0, 2), (2, 5)]
    assert _chunks(np.array([9] * 5), 2) == [(0, 2), (2, 4), (4, 5)]


def test_requests_over_the_token_budget_are_a_413(artifact: Path) -> None:
    limits = Limits(max_request_tokens=1_000, max_body_bytes=1_000_000)
    with TestClient(create_app(str(artifact), limits=limits)) as c:
        resp = c.post("/route", json={"prompts": [LONG] * 4})  # 4 x 258 tokens
        assert resp.status_code == 413
        assert resp.json()["error"].startswith(
            "a request must cost at most 1,000 model tokens, got about 1,032 (4 prompts, each "
            "read up to 256 tokens); split the batch"
        )
        ok = c.post("/route", json={"prompts": [LONG] * 3})  # big bodies parse off the loop
        assert ok.status_code == 200 and ok.json()["errors"] == 0


def test_a_client_leaving_mid_body_is_a_client_error(artifact: Path, caplog) -> None:
    app = create_app(str(artifact))
    sent: list[dict] = []
    messages = iter(
        [
            {"type": "http.request", "body": b'{"prompts": ["a', "more_body": True},
            {"type": "http.disconnect"},
        ]
    )

    async def receive() -> dict:
        return next(messages)

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "path": "/route", "raw_path": b"/route", "query_string": b"", "root_path": "",
        "headers": [(b"content-type", b"application/json"), (b"content-length", b"5000")],
        "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 8000), "scheme": "http",
    }  # fmt: skip
    caplog.set_level(logging.INFO, logger="tierwise.serve")
    asyncio.run(app(scope, receive, send))
    metrics = app.state.metrics
    assert metrics.internal_errors.value() == 0
    assert metrics.requests.value("/route", "499") == 1
    assert not any(r.exc_info for r in caplog.records)
    assert "client closed the connection during POST /route" in caplog.text
    assert all(m.get("status", 0) != 500 for m in sent)


def _renamed(tmp_path: Path, spec: str) -> Path:
    router = train_router(n=60)
    router.config.embedder.name = spec  # what a tampered or careless manifest could say
    path = tmp_path / f"{abs(hash(spec))}.tierwise"
    router.save(str(path))
    return path


def test_an_artifact_cannot_make_the_server_load_an_arbitrary_embedder(tmp_path: Path) -> None:
    existing = tmp_path / "models"
    existing.mkdir()
    messages = []
    for target in (existing, tmp_path / "nosuch"):  # same length: same truncation
        spec = f"sentence-transformers:{target}"
        with pytest.raises(ArtifactError, match=r"which is not loaded by default") as err:
            create_app(str(_renamed(tmp_path, spec)))
        messages.append(str(err.value).split(": the artifact", 1)[1].replace(target.name, "<p>"))
    assert messages[0] == messages[1]  # nothing tells whether the path exists
    assert "--allow-embedder 'sentence-transformers:" in messages[0]
    onnx = _renamed(tmp_path, "onnx:/no/such/export")
    with pytest.raises(ArtifactError, match="not loaded by default"):
        create_app(str(onnx))
    # Allowed explicitly, the embedder is built (and here reports its own problem).
    with pytest.raises(Exception, match="does not exist or is not a directory"):
        create_app(str(onnx), allow_embedders=["onnx:/no/such/export"])


def test_refusing_an_embedder_imports_no_torch(tmp_path: Path) -> None:
    path = _renamed(tmp_path, f"sentence-transformers:{tmp_path}")
    code = BLOCK_HEAVY + (
        "from tierwise.router.serve.app import create_app\n"
        "from tierwise.router.errors import ArtifactError\n"
        f"try:\n    create_app({str(path)!r})\n"
        "except ArtifactError as err:\n    print('refused:', err)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in BLOCKED))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert "refused:" in out.stdout and "not loaded by default" in out.stdout
    assert out.stdout.strip().endswith("[]")


def test_serve_help_says_reload_is_disabled_without_a_token() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "tierwise.experiments.cli", "serve", "--help"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    text = " ".join(out.stdout.split())
    assert "POST /admin/reload is DISABLED (403) unless the environment variable" in text
    assert "--allow-embedder SPEC" in text and "--max-request-tokens" in text
