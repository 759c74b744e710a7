"""MLflow tracing of the gateway: one trace per request (read back with MLflow's own API and
as tierwise records), spans and attributes, the experiment kinds, and the GenAI overview in a
headless browser (scripts/mlflow_ui_check.py drives chromium)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from runtime_helpers import ROOT, hashing_artifact
from upstream_helpers import GatewayProcess, start_fake_upstream

pytestmark = pytest.mark.integration
openai = pytest.importorskip("openai")
mlflow = pytest.importorskip("mlflow")
EXPERIMENT = "gateway-traffic"


def ui_module() -> Any:
    sys.path.insert(0, str(ROOT / "scripts"))
    import mlflow_ui_check

    return mlflow_ui_check


@pytest.fixture(scope="module")
def traced(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The traces of 9 requests through a gateway: in an MLflow server (sqlite store) when
    chromium can look at its UI, else straight in the sqlite store (no server to start)."""
    root = tmp_path_factory.mktemp("traced")
    store = f"sqlite:///{root / 'mlflow.db'}"
    if ui_module().find_chromium() is None:
        artifact = hashing_artifact(root / "router.tierwise")
        yield {"uri": store, "sent": send_requests(root, artifact, store), "root": root}
        return
    server = ui_module().Server(store, root)
    try:
        artifact = hashing_artifact(root / "router.tierwise")  # while the server starts
        server.wait(180)
        yield {"uri": server.url, "sent": send_requests(root, artifact, server.url), "root": root}
    finally:
        server.stop()


def send_requests(root: Path, artifact: Path, uri: str) -> dict[str, str]:
    sent: dict[str, str] = {}  # request id -> kind of request
    with start_fake_upstream() as up:
        ups = root / "up.yaml"
        ups.write_text(
            f"default: {{base_url: '{up.base_url}', max_retries: 1, backoff_s: 0.01,"
            " usd_per_1m_input: 1.0, usd_per_1m_output: 4.0}\n"
        )
        args = ("--mlflow-experiment", EXPERIMENT, "--mlflow-tracking-uri", uri)
        env = {"MLFLOW_TRACKING_URI": ""}
        with GatewayProcess(artifact, ups, *args, log=root / "gw.log", env=env) as gw:
            c = openai.OpenAI(base_url=gw.base_url, api_key="unused", max_retries=0)

            def send(kind: str, model: str = "tierwise", text: str = "math code", **kw: Any):
                raw = c.chat.completions.with_raw_response.create(
                    model=model, messages=[{"role": "user", "content": text}], **kw
                )
                sent[raw.headers["x-tierwise-request-id"]] = kind
                return raw

            for i in range(6):
                send("routed", text=f"{'math code sql' if i % 2 else 'love poem'} {i}")
            send("pinned", model="small")
            list(send("stream", stream=True).parse())
            up.fault(model="mid", fail_next=2, status=503)
            assert send("fallback", model="mid").headers["x-tierwise-model"] == "big"
        assert "Traceback" not in gw.log.read_text()
    return sent


def test_one_trace_per_request_with_spans_usage_and_cost(traced: dict[str, Any]) -> None:
    from mlflow import MlflowClient

    from tierwise.router.gateway.tracing import read_traces

    mlflow.set_tracking_uri(traced["uri"])
    exp = MlflowClient().get_experiment_by_name(EXPERIMENT)
    assert exp.tags["mlflow.experimentKind"] == "genai_development"
    traces = mlflow.search_traces(locations=[exp.experiment_id], return_type="list")
    records = {r["request_id"]: r for r in read_traces(EXPERIMENT, tracking_uri=traced["uri"])}
    assert len(traces) == len(traced["sent"]) == 9 and set(records) == set(traced["sent"])
    by_id = {}
    for t in traces:
        root = next(s for s in t.data.spans if s.parent_id is None)
        by_id[root.attributes["tierwise.decision"]["request_id"]] = t
    for rid, kind in traced["sent"].items():
        t, rec = by_id[rid], records[rid]
        names = [s.name for s in t.data.spans]
        assert ("route" in names) == (kind in ("routed", "stream"))
        assert t.info.token_usage["input_tokens"] == rec["prompt_tokens"] > 0
        assert t.info.cost["total_cost"] == pytest.approx(rec["cost_usd"])
        assert t.info.state == "OK"
        if kind == "routed":
            route = next(s for s in t.data.spans if s.name == "route")
            assert set(route.attributes["tierwise.p_success"]) == {"small", "mid", "big"}
            assert route.attributes["tierwise.chosen_model"] == rec["model"]
    fb = by_id[next(r for r, k in traced["sent"].items() if k == "fallback")]
    ups = [s for s in fb.data.spans if s.name.startswith("upstream")]
    assert [s.name for s in ups] == ["upstream mid", "upstream big"]
    assert [s.status.status_code for s in ups] == ["ERROR", "OK"]
    assert fb.info.tags["tierwise.fallback"] == "mid:http_503"


def test_training_experiments_open_on_runs(traced: dict[str, Any]) -> None:
    from mlflow import MlflowClient

    from tierwise.experiments.tracking.config import ResolvedTracking
    from tierwise.experiments.tracking.store import ensure_experiment

    uri = traced["uri"]  # a fresh store takes seconds to create: share the traced one
    client = MlflowClient(tracking_uri=uri)
    old = client.create_experiment("made-before-tagging")
    for name in ("made-before-tagging", "new-one"):
        tracking = ResolvedTracking(uri, name, "router", False, None)
        exp_id = ensure_experiment(client, tracking)
        kind = client.get_experiment(exp_id).tags["mlflow.experimentKind"]
        assert kind == "custom_model_development"
    assert exp_id != old


def test_genai_overview_shows_the_requests(traced: dict[str, Any]) -> None:
    ui = ui_module()
    browser = ui.find_chromium()
    if browser is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium): UI not checked")
    from mlflow import MlflowClient

    from tierwise.router.gateway.tracing import read_traces

    exp = MlflowClient(tracking_uri=traced["uri"]).get_experiment_by_name(EXPERIMENT)
    url = f"{traced['uri']}/#/experiments/{exp.experiment_id}/overview/usage"
    dom = ui.chromium(browser, ["--virtual-time-budget=20000", "--dump-dom", url],
                      traced["root"] / "profile", timeout=120)  # fmt: skip
    text = ui.page_text(dom)
    records = read_traces(EXPERIMENT, tracking_uri=traced["uri"])
    tokens_in = sum(r["prompt_tokens"] for r in records)
    tokens_out = sum(r["completion_tokens"] for r in records)
    assert "Traces 9" in text and "Errors 0" in text, text[:3000]
    assert f"Token Usage {tokens_in + tokens_out} ({tokens_in} input, {tokens_out} output)" in text
    assert "Cost Breakdown" in text
    assert all(f" {r['model']} " in text for r in records)  # cost per tier, by model name
