"""The shared upstream layer: upstreams.yaml schema and the async client, against a real
OpenAI-compatible process (tests/fake_upstream.py)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from upstream_helpers import FakeUpstream, start_fake_upstream

from tierwise.router.errors import ConfigError
from tierwise.router.upstreams import (
    UpstreamClient,
    UpstreamError,
    UpstreamUnavailable,
    load_upstreams,
    upstreams_from_dict,
)

TIERS = ["small", "mid", "big"]


def shout(model: str, messages: list[dict[str, Any]], params: dict[str, Any]) -> str:
    """A behaviour plugged into the fake upstream by file path (as other test modules do)."""
    return f"{model.upper()} t={params.get('temperature')}"


def test_config_merges_default_and_overrides(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "up.yaml"
    path.write_text(
        "default: {base_url: 'http://127.0.0.1:9/v1/', api_key_env: TW_KEY, timeout_s: 5}\n"
        "upstreams:\n"
        "  big: {model: gpt-big, timeout_s: 50, usd_per_1m_input: 2, usd_per_1m_output: 8}\n"
        "  small: {base_url: 'http://other:1/v1', api_key_env: null}\n"
    )
    cfg = load_upstreams(path)
    big, mid, small = cfg.for_tier("big"), cfg.for_tier("mid"), cfg.for_tier("small")
    assert (big.model, big.timeout_s, big.base_url) == ("gpt-big", 50, "http://127.0.0.1:9/v1")
    assert (mid.model, mid.timeout_s, mid.api_key_env) == ("mid", 5, "TW_KEY")
    assert (small.base_url, small.api_key_env) == ("http://other:1/v1", None)
    assert big.cost(1_000_000, 500_000) == pytest.approx(6.0) and mid.cost(10, 10) is None
    assert len(cfg.check_covers(TIERS)) == 3
    monkeypatch.delenv("TW_KEY", raising=False)
    with pytest.raises(ConfigError, match=r"environment variable `TW_KEY`.*upstream `mid`"):
        cfg.check_keys(TIERS)
    monkeypatch.setenv("TW_KEY", "sk-secret-123")
    client = UpstreamClient(cfg, TIERS)
    assert "sk-secret" not in repr(client) + repr(cfg) + repr(big)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"upstreams": {"small": {"base_url": "http://x/v1"}}}, r"tier\(s\) \['mid', 'big'\]"),
        ({"default": {"base_url": "http://x"}, "upstreams": {"huge": {}}}, "huge.*does not have"),
        ({"default": {"base_url": "ftp://x"}}, "base_url.*http://"),
        ({"default": {"base_url": "http://x", "api_key": "sk-1"}}, "unknown key `default.api_key`"),
        ({"default": {"base_url": "http://x"}, "fallback_order": ["big"]}, "missing.*small"),
        ({"default": {"base_url": "http://x", "max_concurrency": 0}}, "max_concurrency"),
    ],
)
def test_config_errors_name_the_problem(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        upstreams_from_dict(data).check_covers(TIERS)


@pytest.fixture(scope="module")
def upstream() -> Any:
    with start_fake_upstream() as up:
        yield up


def client_for(up: FakeUpstream, **default: Any) -> UpstreamClient:
    cfg = upstreams_from_dict(
        {
            "default": {"base_url": up.base_url, "backoff_s": 0.01, **default},
            "upstreams": {"big": {"model": "big-v2"}},
        }
    )
    return UpstreamClient(cfg, TIERS)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_chat_answers_with_usage_and_latency(upstream: FakeUpstream) -> None:
    upstream.reset()

    async def go() -> Any:
        async with client_for(upstream) as c:
            return await c.chat("big", [{"role": "user", "content": "hello there"}], max_tokens=5)

    r = run(go())
    assert r.text == "[big-v2] you said: hello there" and r.status == 200 and r.attempts == 1
    assert (r.usage.prompt_tokens, r.usage.completion_tokens) == (2, 5)
    assert r.raw["model"] == "big-v2" and 0 < r.latency_s < 5


def test_retries_5xx_and_dropped_connections_then_succeeds(upstream: FakeUpstream) -> None:
    upstream.reset()
    upstream.fault(model="small", fail_next=2, status=503)

    async def go() -> Any:
        async with client_for(upstream, max_retries=3) as c:
            first = await c.chat("small", [{"role": "user", "content": "a"}])
            upstream.fault(model="small", drop_next=1)
            second = await c.chat("small", [{"role": "user", "content": "b"}])
            return first, second

    first, second = run(go())
    assert first.attempts == 3 and second.attempts == 2 and second.text.endswith("b")
    assert upstream.stats()["statuses"]["small:503"] == 2


def test_4xx_is_not_retried_and_exhausted_retries_raise_unavailable(
    upstream: FakeUpstream,
) -> None:
    upstream.reset()
    upstream.fault(model="mid", fail_next=1, status=400, body={"error": {"message": "bad tool"}})
    upstream.fault(model="small", fail_next=10, status=429)
    before = upstream.stats()["calls"]

    async def go() -> tuple[UpstreamError, UpstreamError]:
        async with client_for(upstream, max_retries=2) as c:
            with pytest.raises(UpstreamError, match=r"HTTP 400.*bad tool") as bad:
                await c.chat("mid", [{"role": "user", "content": "x"}])
            with pytest.raises(UpstreamUnavailable, match="HTTP 429") as busy:
                await c.chat("small", [{"role": "user", "content": "x"}])
            return bad.value, busy.value

    bad, busy = run(go())
    assert (bad.status, bad.retryable, bad.attempts) == (400, False, 1) and b"bad tool" in bad.body
    assert (busy.reason, busy.retryable, busy.attempts) == ("http_429", True, 3)
    after = upstream.stats()["calls"]
    assert after["mid"] - before.get("mid", 0) == 1 and after["small"] - before["small"] == 3


def test_stream_yields_chunks_text_and_usage(upstream: FakeUpstream) -> None:
    upstream.reset()

    async def go() -> tuple[list[str], Any]:
        async with client_for(upstream) as c:
            s = await c.stream_chat(
                "mid", [{"role": "user", "content": "one two three"}],
                stream_options={"include_usage": True},
            )  # fmt: skip
            return [d async for d in s], s

    chunks, s = run(go())
    assert len(chunks) >= 6 and chunks[-1] == "[DONE]" and s.done
    assert s.text == "[mid] you said: one two three"
    assert (s.usage.prompt_tokens, s.usage.completion_tokens) == (3, 6)


def test_concurrency_is_bounded_per_upstream(upstream: FakeUpstream) -> None:
    upstream.reset()
    upstream.fault(latency_s=0.2)

    async def go() -> float:
        async with client_for(upstream, max_concurrency=1) as c:
            t0 = time.perf_counter()
            await asyncio.gather(*(c.chat("small", [{"role": "user", "content": "x"}])
                                   for _ in range(3)))  # fmt: skip
            return time.perf_counter() - t0

    try:
        assert run(go()) >= 0.6  # three calls of 0.2 s, one at a time
    finally:
        upstream.reset()


def test_killed_upstream_and_custom_behaviour() -> None:
    with start_fake_upstream(behaviour=f"{__file__}:shout") as up:

        async def ask() -> Any:
            async with client_for(up, max_retries=1) as c:
                return await c.chat("mid", [{"role": "user", "content": "x"}], temperature=0.5)

        assert run(ask()).text == "MID t=0.5"
        up.kill()
        with pytest.raises(UpstreamUnavailable, match="upstream `mid`") as err:
            run(ask())
        assert err.value.reason == "connect" and err.value.attempts == 2
