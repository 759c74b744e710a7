"""`tierwise gateway` as a real process between the official `openai` client and fake
OpenAI-compatible upstream processes (tests/fake_upstream.py): routing, pinning, streaming,
fallback, 4xx pass-through, headers, metrics and the decision log."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from runtime_helpers import ROOT, hashing_artifact, http
from upstream_helpers import FakeUpstream, GatewayProcess, start_fake_upstream

openai = pytest.importorskip("openai")

KEY_ENV = "TW_GATEWAY_TEST_KEY"
SECRET = "sk-test-secret-4711"
PRICES = {"small": (0.1, 0.2), "mid": (1.0, 2.0), "big": (10.0, 20.0)}
HARD = "math code sql python physics"
EASY = "love poem story war history"


def write_upstreams(path: Path, small: FakeUpstream, rest: FakeUpstream, **default: Any) -> Path:
    tiers = {t: {"usd_per_1m_input": p, "usd_per_1m_output": c} for t, (p, c) in PRICES.items()}
    tiers["small"]["base_url"] = small.base_url  # type: ignore[assignment]
    cfg = {
        "default": {"base_url": rest.base_url, "api_key_env": KEY_ENV, "backoff_s": 0.01,
                    "max_retries": 1, **default},
        "upstreams": tiers,
    }  # fmt: skip
    path.write_text(json.dumps(cfg))  # JSON is YAML
    return path


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one Prometheus sample (0 when absent)."""
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in text.splitlines():
        m = re.match(rf"^{re.escape(name)}(\{{[^}}]*\}})? (\S+)$", line)
        if m and (m.group(1) or "{}")[1:-1] == want:
            return float(m.group(2))
    return 0.0


def log_records(folder: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for f in sorted(folder.glob("decisions-*.jsonl")) for x in f.open()]


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Any:
    root = tmp_path_factory.mktemp("gateway")
    artifact = hashing_artifact(root / "router.tierwise")
    # the upstreams answer 401 unless the gateway sends the key from the environment
    with (
        start_fake_upstream(require_key=SECRET) as small,
        start_fake_upstream(require_key=SECRET) as rest,
    ):
        ups = write_upstreams(root / "upstreams.yaml", small, rest)
        args = ("--log", str(root / "log"), "--log-rotate-mb", "0.002", "--log-prompts")
        env = {KEY_ENV: SECRET}
        with GatewayProcess(artifact, ups, *args, log=root / "gw.log", env=env) as gw:
            client = openai.OpenAI(base_url=gw.base_url, api_key="unused", max_retries=0)
            yield {"gw": gw, "client": client, "small": small, "rest": rest, "root": root,
                   "artifact": artifact}  # fmt: skip


def ask(client: Any, content: str, model: str = "tierwise", **kw: Any) -> tuple[Any, dict]:
    raw = client.chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "system", "content": "be brief"},
                               {"role": "user", "content": content}], **kw
    )  # fmt: skip
    return raw.parse(), {k: v for k, v in raw.headers.items() if k.startswith("x-tierwise")}


def test_routes_pins_and_reports_the_decision(setup: dict[str, Any]) -> None:
    client = setup["client"]
    hard, h_hard = ask(client, HARD)
    easy, h_easy = ask(client, EASY)
    for resp, h in ((hard, h_hard), (easy, h_easy)):
        tier = h["x-tierwise-model"]
        assert resp.choices[0].message.content.startswith(f"[{tier}] you said: ")
        assert h["x-tierwise-mode"] == "routed" and h["x-tierwise-routed-model"] == tier
        assert 0 < float(h["x-tierwise-predicted-success"]) <= 1
        assert float(h["x-tierwise-expected-cost"]) > 0 and "x-tierwise-fallback-reason" not in h
        assert resp.usage.prompt_tokens == 7  # "be brief" + five words
    # the router tells hard from easy: the hard prompt goes to a dearer tier
    order = list(PRICES)
    assert order.index(h_hard["x-tierwise-model"]) > order.index(h_easy["x-tierwise-model"])
    _, h = ask(client, HARD, model="small")
    assert h["x-tierwise-model"] == "small" and h["x-tierwise-mode"] == "pinned"
    assert "x-tierwise-predicted-success" not in h
    _, h = ask(client, EASY, model="tierwise:0.9")
    assert h["x-tierwise-knob"] == "0.9"
    assert [m.id for m in client.models.list()] == ["tierwise", "small", "mid", "big"]
    raw = client.completions.with_raw_response.create(model="tierwise", prompt=HARD)
    tier = raw.headers["x-tierwise-model"]
    assert tier == h_hard["x-tierwise-model"] and raw.parse().choices[0].text.startswith(
        f"[{tier}]"
    )
    with pytest.raises(openai.NotFoundError, match=r"must be 'tierwise'.*got 'gpt-5'"):
        ask(client, EASY, model="gpt-5")
    with pytest.raises(openai.BadRequestError, match="knob in `model` must be a finite number"):
        ask(client, EASY, model="tierwise:high")


def test_streams_chunk_by_chunk(setup: dict[str, Any]) -> None:
    client = setup["client"]
    whole, h_whole = ask(client, HARD)
    raw = client.chat.completions.with_raw_response.create(
        model="tierwise", messages=[{"role": "user", "content": HARD}], stream=True,
        stream_options={"include_usage": True},
    )  # fmt: skip
    assert raw.headers["x-tierwise-model"] == h_whole["x-tierwise-model"]
    chunks = list(raw.parse())
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert len(chunks) >= 8 and text == whole.choices[0].message.content
    assert chunks[-1].usage.completion_tokens == len(text.split())
    # without include_usage the client gets no usage chunk, but /metrics still counts tokens
    plain = list(client.chat.completions.create(
        model="mid", messages=[{"role": "user", "content": EASY}], stream=True))  # fmt: skip
    assert all(c.choices for c in plain)
    text = setup["gw"].metrics()
    assert metric(text, "tierwise_gateway_tokens_total", model="mid", kind="completion") >= 8


def test_upstream_400_is_passed_through_without_fallback(setup: dict[str, Any]) -> None:
    rest: FakeUpstream = setup["rest"]
    error = {"message": "max_tokens is too large", "type": "invalid_request_error"}
    rest.fault(model="mid", fail_next=1, status=400, body={"error": error})
    before = rest.stats()["calls"]
    with pytest.raises(openai.BadRequestError, match="max_tokens is too large") as err:
        ask(setup["client"], EASY, model="mid", max_tokens=10**9)
    assert err.value.status_code == 400
    assert err.value.response.headers["x-tierwise-model"] == "none"
    after = rest.stats()["calls"]
    assert after["mid"] == before.get("mid", 0) + 1 and after.get("big") == before.get("big")


def test_5xx_is_retried_then_falls_back_up_with_reason(setup: dict[str, Any]) -> None:
    rest: FakeUpstream = setup["rest"]
    rest.fault(model="mid", fail_next=2, status=503)  # max_retries 1: both attempts fail
    resp, h = ask(setup["client"], EASY, model="mid")
    assert h["x-tierwise-model"] == "big" and h["x-tierwise-routed-model"] == "mid"
    assert h["x-tierwise-fallback-reason"] == "mid:http_503" and h["x-tierwise-attempts"] == "3"
    assert resp.choices[0].message.content.startswith("[big]")
    text = setup["gw"].metrics()
    labels = {"from_model": "mid", "to_model": "big", "reason": "http_503"}
    assert metric(text, "tierwise_gateway_fallbacks_total", **labels) == 1
    # the top tier has nowhere to go: a 502 naming what failed
    rest.fault(model="big", fail_next=2, status=500)
    with pytest.raises(openai.InternalServerError, match="big:http_500") as err:
        ask(setup["client"], EASY, model="big")
    assert err.value.status_code == 502


def test_metrics_count_usd_and_the_log_has_one_record_per_request(setup: dict[str, Any]) -> None:
    gw, client = setup["gw"], setup["client"]
    for i in range(5):
        ask(client, f"{EASY} {i}", model="small")
    with pytest.raises(openai.NotFoundError) as refused:  # refused by the gateway: logged too
        ask(client, EASY, model="gpt-5")
    refused_id = refused.value.response.headers["x-tierwise-request-id"]
    text = gw.metrics()
    tokens = metric(text, "tierwise_gateway_tokens_total", model="small", kind="prompt")
    out = metric(text, "tierwise_gateway_tokens_total", model="small", kind="completion")
    usd = metric(text, "tierwise_gateway_cost_usd_total", model="small")
    assert tokens > 0 and usd == pytest.approx((tokens * 0.1 + out * 0.2) / 1e6)
    assert metric(text, "tierwise_gateway_log_records_total", result="dropped") == 0
    served = sum(
        metric(text, "tierwise_gateway_requests_total", model=m, mode=mode, outcome=o)
        for m in ("small", "mid", "big", "none") for mode in ("routed", "pinned", "rejected")
        for o in ("ok", "upstream_4xx", "failed", "rejected")
    )  # fmt: skip
    records = log_records(setup["root"] / "log")  # JSONL is flushed per batch
    assert len(records) == served >= 5
    assert len(list((setup["root"] / "log").glob("decisions-*.jsonl"))) > 1  # rotated by size
    last = [r for r in records if r["mode"] == "pinned" and r["model"] == "small"][-1]
    assert last["prompt"].startswith(EASY) and last["cost_usd"] > 0 and last["status"] == 200
    assert len({r["request_id"] for r in records}) == len(records)
    rejected = next(r for r in records if r["request_id"] == refused_id)
    assert (rejected["mode"], rejected["status"], rejected["model"]) == ("rejected", 404, None)


def test_killed_upstream_falls_back_to_the_next_tier(tmp_path: Path) -> None:
    artifact = hashing_artifact(tmp_path / "router.tierwise")
    with start_fake_upstream() as small, start_fake_upstream() as rest:
        ups = write_upstreams(tmp_path / "up.yaml", small, rest)
        with GatewayProcess(artifact, ups, log=tmp_path / "gw.log", env={KEY_ENV: "k"}) as gw:
            client = openai.OpenAI(base_url=gw.base_url, api_key="unused", max_retries=0)
            assert ask(client, EASY, model="small")[1]["x-tierwise-model"] == "small"
            small.kill()
            resp, h = ask(client, EASY, model="small")
            assert h["x-tierwise-model"] == "mid" and resp.choices[0].message.content[:5] == "[mid]"
            assert h["x-tierwise-fallback-reason"] == "small:connect"
            labels = {"from_model": "small", "to_model": "mid", "reason": "connect"}
            assert metric(gw.metrics(), "tierwise_gateway_fallbacks_total", **labels) == 1


def test_a_missing_api_key_is_a_startup_error_naming_the_variable(tmp_path: Path) -> None:
    artifact = hashing_artifact(tmp_path / "router.tierwise")
    ups = tmp_path / "up.yaml"
    ups.write_text(f"default: {{base_url: 'http://127.0.0.1:9/v1', api_key_env: {KEY_ENV}}}\n")
    env = {k: v for k, v in os.environ.items() if k != KEY_ENV}
    cmd = [sys.executable, "-m", "tierwise.experiments.cli", "gateway", str(artifact),
           "--upstreams", str(ups), "--port", "0"]  # fmt: skip
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert f"environment variable `{KEY_ENV}`" in proc.stderr and "Traceback" not in proc.stderr


def test_admin_reload_follows_serves_rule_and_health_names_the_upstreams(setup: dict[str, Any]):
    gw = setup["gw"]
    status, body, _ = http("POST", gw.url + "/admin/reload")
    assert status == 403 and "TIERWISE_ADMIN_TOKEN" in json.loads(body)["error"]["message"]
    health = json.loads(http("GET", gw.url + "/health")[1])
    assert health["fallback_order"] == ["small", "mid", "big"]
    assert health["upstreams"]["small"]["base_url"] == setup["small"].base_url
    shown = json.dumps(health) + gw.metrics() + gw.log.read_text()
    assert SECRET not in shown


def test_routed_text_is_the_last_user_message_or_the_conversation() -> None:
    from tierwise.router.gateway.prompt import routed_text
    from tierwise.router.serve.schemas import ClientError

    chat = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "What is 2+2?"},
        {"role": "assistant", "content": "4"},
        {"role": "user", "content": [{"type": "text", "text": "And 3+3?"}, {"type": "image_url"}]},
    ]
    assert routed_text(chat) == "And 3+3?"
    assert routed_text(chat, "conversation") == (
        "User: What is 2+2?\n\nAssistant: 4\n\nUser: And 3+3?"
    )
    with pytest.raises(ClientError, match="must hold a user message with text"):
        routed_text([{"role": "system", "content": "hi"}])


def test_a_client_leaving_mid_stream_still_gets_its_record(setup: dict[str, Any]) -> None:
    import httpx

    gw, rest = setup["gw"], setup["rest"]
    rest.fault(chunk_delay_s=0.2)
    try:
        body = {"model": "mid", "stream": True, "messages": [{"role": "user", "content": EASY}]}
        with httpx.stream("POST", gw.base_url + "/chat/completions", json=body) as resp:
            rid = resp.headers["x-tierwise-request-id"]
            next(resp.iter_lines())  # one chunk, then hang up
    finally:
        rest.reset()
    for _ in range(50):  # the upstream notices on its next write
        records = [r for r in log_records(setup["root"] / "log") if r["request_id"] == rid]
        if records:
            break
        time.sleep(0.1)
    assert len(records) == 1 and records[0]["stream"] and records[0]["model"] == "mid"
    assert ask(setup["client"], EASY, model="mid")[1]["x-tierwise-model"] == "mid"
