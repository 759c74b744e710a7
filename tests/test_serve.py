"""The HTTP service in-process (Starlette's test client): routing, every bad input, metrics, reload.

Uses a router on the tiny hashing embedder, so each test takes milliseconds. The real server
process (uvicorn, hot swap under load, signals, startup errors) is in test_serve_process.py.
"""

from __future__ import annotations

import json
import re
import shutil
import zipfile
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from runtime_helpers import hashing_artifact

from tierwise.router.core import Router
from tierwise.router.errors import ArtifactError
from tierwise.router.serve import Limits, create_app
from tierwise.router.serve.batcher import Batcher, Job
from tierwise.router.serve.metrics import Metrics
from tierwise.router.serve.state import RouterHolder

PROMPTS = ["math code sql python", "love poem story", "history war physics", "a b c"]


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("serve")
    a = hashing_artifact(root / "a.tierwise", seed=1)
    b = hashing_artifact(root / "b.tierwise", seed=7, predictor="logreg")
    return a, b


@pytest.fixture()
def served(artifacts: tuple[Path, Path], tmp_path: Path) -> Path:
    path = tmp_path / "router.tierwise"
    shutil.copy(artifacts[0], path)
    return path


TOKEN = "s3cret"
ADMIN = {"authorization": f"Bearer {TOKEN}"}


@pytest.fixture()
def client(served: Path):
    limits = Limits(max_prompt_chars=500, max_batch=8, max_body_bytes=20_000)
    app = create_app(str(served), limits=limits, admin_token=TOKEN)
    with TestClient(app) as c:
        yield c


def checksum(path: Path) -> str:
    return str(Router.load(str(path)).manifest_["checksum"])  # type: ignore[index]


def test_single_prompt_is_routed_like_the_router(client: TestClient, served: Path) -> None:
    router = Router.load(str(served))
    for prompt in PROMPTS:
        resp = client.post("/route", json={"prompt": prompt})
        assert resp.status_code == 200, resp.text
        got = resp.json()
        want = router.route([prompt])[0]
        assert got["model"] == want.model
        assert got["p_success"] == pytest.approx(want.p_success)
        assert got["expected_cost"] == pytest.approx(want.expected_cost)
        assert (got["policy"], got["knob"], got["error"]) == ("utility", router.knob_, None)
        assert resp.headers["x-tierwise-artifact"] == router.manifest_["checksum"]


def test_batch_keeps_good_items_when_some_are_bad(client: TestClient, served: Path) -> None:
    body = '{"prompts": ["math code", "", 5, null, "love poem", "\\ud800 broken", "%s", "  "]}'
    resp = client.post("/route", content=(body % ("x" * 501)).encode())
    assert resp.status_code == 200, resp.text
    out = resp.json()
    assert out["errors"] == 6
    d = out["decisions"]
    assert [x["index"] for x in d] == list(range(8))
    want = Router.load(str(served)).route(["math code", "love poem"])
    assert [d[0]["model"], d[4]["model"]] == [w.model for w in want]
    assert d[0]["p_success"] == pytest.approx(want[0].p_success)
    reasons = {i: d[i]["error"] for i in (1, 2, 3, 5, 6, 7)}
    assert "non-whitespace" in reasons[1] and "must be a string, got int 5" in reasons[2]
    assert "None" in reasons[3] and "lone surrogate U+D800" in reasons[5]
    assert "at most 500 characters" in reasons[6] and "non-whitespace" in reasons[7]
    assert all(d[i]["model"] is None and d[i]["p_success"] == {} for i in reasons)


def test_knob_override_changes_the_policy_knob(client: TestClient, served: Path) -> None:
    router = Router.load(str(served))
    resp = client.post("/route", json={"prompts": PROMPTS, "knob": 0.0})
    assert resp.status_code == 200
    assert [x["knob"] for x in resp.json()["decisions"]] == [0.0] * len(PROMPTS)
    want = [d.model for d in router.route(PROMPTS, knob=0.0)]
    assert [x["model"] for x in resp.json()["decisions"]] == want
    bad = client.post("/route", json={"prompt": "x", "knob": -1})
    assert bad.status_code == 422 and "must be >= 0" in bad.json()["error"]


BAD_INPUTS = [
    (b"", 400, "request body is empty"),
    (b"   ", 400, "request body is empty"),
    (b"{", 400, "not valid JSON at line 1, column 2"),
    (b'{"prompt": "a",}', 400, "not valid JSON"),
    (b"\xff\xfe{}", 400, "must be UTF-8, got byte 0xff at byte offset 0"),
    (b'{"prompt": "caf\xe9"}', 400, "must be UTF-8, got byte 0xe9"),
    (b"[" * 19_000, 400, "nested too deeply"),
    (b'{"prompt": 1' + b"0" * 5000 + b"}", 400, "cannot be read"),
    (b"[1, 2]", 422, "must be a JSON object"),
    (b'"hello"', 422, "must be a JSON object"),
    (b"null", 422, "must be a JSON object"),
    (b"{}", 422, "got neither"),
    (b'{"prompt": "a", "prompts": ["b"]}', 422, "got both"),
    (b'{"prompt": "a", "temperature": 1}', 422, "unknown field(s) ['temperature']"),
    (b'{"prompt": ""}', 422, "`prompt` must contain non-whitespace text"),
    (b'{"prompt": " \\n\\t "}', 422, "non-whitespace"),
    (b'{"prompt": 5}', 422, "`prompt` must be a string, got int 5"),
    (b'{"prompt": null}', 422, "got None"),
    (b'{"prompt": ["a"]}', 422, "must be a string, got list"),
    (b'{"prompt": {"text": "a"}}', 422, "must be a string, got dict"),
    (b'{"prompt": "\\udc80"}', 422, "lone surrogate U+DC80"),
    (b'{"prompts": []}', 422, "at least one prompt"),
    (b'{"prompts": "abc"}', 422, "must be a list of strings, got str 'abc'"),
    (b'{"prompts": {"a": 1}}', 422, "must be a list of strings, got an object"),
    (b'{"prompt": "a", "knob": "high"}', 422, "`knob` must be a finite number"),
    (b'{"prompt": "a", "knob": true}', 422, "`knob` must be a finite number"),
    (b'{"prompt": "a", "knob": NaN}', 422, "`knob` must be a finite number"),
    (b'{"prompt": "a", "knob": 1e999}', 422, "`knob` must be a finite number"),
    (json.dumps({"prompt": "x" * 501}).encode(), 422, "at most 500 characters"),
    (json.dumps({"prompts": ["a"] * 9}).encode(), 413, "at most 8 prompts, got 9"),
    (json.dumps({"prompt": "x" * 30_000}).encode(), 413, "at most 20,000 bytes"),
]


@pytest.mark.parametrize(("body", "status", "message"), BAD_INPUTS)
def test_bad_input_is_a_clear_4xx(client: TestClient, body: bytes, status: int, message: str):
    resp = client.post("/route", content=body, headers={"content-type": "application/json"})
    assert resp.status_code == status, resp.text
    assert message in resp.json()["error"]
    assert client.app.state.metrics.internal_errors.value() == 0  # type: ignore[attr-defined]


def test_no_user_input_reaches_the_catch_all(client: TestClient) -> None:
    """Every bad input, plus odd methods, paths and headers: never a 500."""
    for body, _, _ in BAD_INPUTS:
        for ctype in ("application/json", "text/plain", "application/x-www-form-urlencoded"):
            assert client.post(
                "/route", content=body, headers={"content-type": ctype}
            ).is_client_error
    assert client.get("/route").status_code == 405
    assert client.get("/nope").json() == {"error": "Not Found"}
    assert client.post("/route", content=b"{}", headers={"content-length": "x"}).status_code == 400
    assert client.post("/route", json={"prompt": "a\u0000b"}).status_code == 200
    metrics = client.get("/metrics").text
    assert 'status="500"' not in metrics
    assert "tierwise_internal_errors_total 0" in metrics


def test_a_real_bug_is_a_logged_500_counted_as_internal(client: TestClient, caplog) -> None:
    holder = client.app.state.holder  # type: ignore[attr-defined]
    router = holder.current.router

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom")

    router.predict = broken  # a genuine server-side defect, not user input
    resp = client.post("/route", json={"prompt": "math"})
    assert resp.status_code == 500
    assert resp.json() == {"error": "internal server error; the server log has details"}
    assert "boom" in caplog.text
    assert "tierwise_internal_errors_total 1" in client.get("/metrics").text


def test_health_metadata_and_openapi(client: TestClient, served: Path) -> None:
    health = client.get("/health").json()
    assert health["status"] == "ok"
    assert health["artifact"]["models"] == ["small", "mid", "big"]
    assert health["artifact"]["embedder_runtime"] == "HashingEmbedder"
    assert health["artifact"]["checksum"] == checksum(served)
    assert health["limits"] == {"max_prompt_chars": 500, "max_batch": 8, "max_body_bytes": 20_000}
    with zipfile.ZipFile(served) as zf:
        manifest = json.loads(zf.read("manifest.json"))
    assert client.get("/metadata").json() == manifest
    spec = client.get("/openapi.json").json()
    body = spec["paths"]["/route"]["post"]["requestBody"]["content"]["application/json"]
    assert set(body["schema"]["properties"]) == {"prompt", "prompts", "knob"}
    assert {"/health", "/metadata", "/metrics", "/admin/reload"} <= set(spec["paths"])


SAMPLE = re.compile(r'^[a-z_]+(\{([a-z_]+="[^"]*",?)+\})? [0-9.e+-]+|\+Inf$')


def test_metrics_are_prometheus_text(client: TestClient) -> None:
    for _ in range(3):
        client.post("/route", json={"prompt": "math code"})
    client.post("/route", json={"prompts": ["love", "", "war"]})
    client.post("/route", content=b"{")
    resp = client.get("/metrics")
    assert resp.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    lines = [ln for ln in resp.text.splitlines() if ln and not ln.startswith("#")]
    assert all(SAMPLE.match(ln) for ln in lines), [ln for ln in lines if not SAMPLE.match(ln)]
    values = {ln.rsplit(" ", 1)[0]: float(ln.rsplit(" ", 1)[1]) for ln in lines}
    assert values['tierwise_http_requests_total{path="/route",status="200"}'] == 4
    assert values['tierwise_http_requests_total{path="/route",status="400"}'] == 1
    assert values["tierwise_route_item_errors_total"] == 1
    routed = sum(v for k, v in values.items() if k.startswith("tierwise_route_decisions_total"))
    assert routed == 5
    prefix = 'tierwise_http_request_duration_seconds_bucket{path="/route"'
    buckets = [v for k, v in values.items() if k.startswith(prefix)]
    assert buckets == sorted(buckets) and buckets[-1] == 5  # cumulative; +Inf = count
    assert values['tierwise_http_request_duration_seconds_count{path="/route"}'] == 5


def test_reload_swaps_and_a_bad_artifact_keeps_the_old_one(
    client: TestClient, served: Path, artifacts: tuple[Path, Path]
) -> None:
    a, b = checksum(artifacts[0]), checksum(artifacts[1])
    assert client.post("/route", json={"prompt": "x"}).headers["x-tierwise-artifact"] == a
    shutil.copy(artifacts[1], served)
    resp = client.post("/admin/reload", headers=ADMIN)
    assert resp.status_code == 200 and resp.json()["previous"] == a
    assert resp.json()["artifact"]["checksum"] == b
    assert client.post("/route", json={"prompt": "x"}).headers["x-tierwise-artifact"] == b
    for breakage in (b"not an artifact", None):
        if breakage is None:
            served.unlink()
        else:
            served.write_bytes(breakage)
        resp = client.post("/admin/reload", headers=ADMIN)
        assert resp.status_code == 409, resp.text
        assert resp.json()["error"].startswith(f"reload failed, still serving {b[:12]}: ")
        routed = client.post("/route", json={"prompt": "x"})
        assert routed.status_code == 200 and routed.headers["x-tierwise-artifact"] == b
    health = client.get("/health").json()
    assert health["reloads"] == 1 and "does not exist" in health["last_reload_error"]
    metrics = client.get("/metrics").text
    assert 'tierwise_artifact_reloads_total{result="ok"} 1' in metrics
    assert 'tierwise_artifact_reloads_total{result="error"} 2' in metrics
    assert f'tierwise_artifact_info{{checksum="{b}"}} 1' in metrics


def test_admin_token_is_required_when_set(served: Path) -> None:
    with TestClient(create_app(str(served), admin_token="s3cret")) as c:
        assert c.post("/admin/reload").status_code == 401
        wrong = c.post("/admin/reload", headers={"authorization": "Bearer nope"})
        assert wrong.status_code == 401 and "Bearer <token>" in wrong.json()["error"]
        ok = c.post("/admin/reload", headers={"authorization": "Bearer s3cret"})
        assert ok.status_code == 200


def test_reload_over_http_is_disabled_without_a_token(
    served: Path, artifacts: tuple[Path, Path]
) -> None:
    with TestClient(create_app(str(served))) as c:
        before = c.get("/health").json()["artifact"]["checksum"]
        shutil.copy(artifacts[1], served)
        for headers in ({}, {"authorization": "Bearer anything"}):
            resp = c.post("/admin/reload", headers=headers)
            assert resp.status_code == 403
            assert resp.json()["error"].startswith("reload over HTTP is disabled; start the server "
                                                   "with TIERWISE_ADMIN_TOKEN set")  # fmt: skip
        assert c.get("/health").json()["artifact"]["checksum"] == before  # nothing swapped
        assert c.app.state.metrics.internal_errors.value() == 0  # type: ignore[attr-defined]


def test_unservable_artifact_at_start_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="does not exist; pass the path of a router"):
        create_app(str(tmp_path / "missing.tierwise"))
    (tmp_path / "bad.tierwise").write_bytes(b"garbage")
    with pytest.raises(ArtifactError, match=r"bad\.tierwise"):
        create_app(str(tmp_path / "bad.tierwise"))
    with pytest.raises(ArtifactError, match="no bundled ONNX embedder"):
        create_app(str(hashing_artifact(tmp_path / "h.tierwise")), require_embedded=True)


def test_batcher_routes_queued_jobs_together_per_knob(served: Path) -> None:
    metrics = Metrics()
    holder = RouterHolder(served)
    batcher = Batcher(holder, metrics)
    router = holder.current.router
    jobs = [
        Job(["math code", "love"], [0, 2], None),
        Job(["war poem"], [5], 0.0),
        Job(["sql python", "story"], [1, 3], None),
    ]
    batcher.route_jobs(jobs)
    for job in jobs:
        decisions, loaded = job.future.result(timeout=5)
        assert loaded is holder.current
        assert [d.index for d in decisions] == job.indices
        want = router.route(job.prompts, knob=job.knob)
        assert [d.model for d in decisions] == [w.model for w in want]
        assert [d.knob for d in decisions] == [w.knob for w in want]
    # One model call for the two default-knob jobs (4 prompts), one for knob 0 (1 prompt).
    assert metrics.batch_size.count() == 2
    assert sum(metrics.decisions.value(m) for m in router.models_) == 5
