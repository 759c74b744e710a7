"""An async client for OpenAI-compatible chat endpoints, one per set of upstreams.

One pooled ``httpx.AsyncClient`` per base URL (tiers on the same server share connections) and
one semaphore per tier bounding its concurrent calls (``max_concurrency``). Timeouts, 408, 429
and 5xx answers and dropped connections are retried with exponential backoff (``backoff_s``,
doubled each attempt, ``Retry-After`` honoured) up to ``max_retries`` and within
``retry_budget_s``; then :class:`UpstreamUnavailable` is raised. Any other 4xx raises
:class:`UpstreamError` at once with the upstream's status and body: the request is wrong and
sending it again (or to another tier) would not help.

Create and use the client inside one running event loop (``async with UpstreamClient(cfg) as
c: ...``): httpx connections belong to the loop that opened them. httpx is imported here, not by
``import tierwise.router.upstreams``.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from tierwise.router.errors import TierwiseError
from tierwise.router.upstreams.config import UpstreamsConfig, UpstreamSpec
from tierwise.router.upstreams.errors import UpstreamError, UpstreamUnavailable

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
BODY_PREVIEW = 2000


@dataclass
class Usage:
    """Token counts an upstream reported for one call (None when it did not say)."""

    prompt_tokens: int | None = None
    completion_tokens: int | None = None

    @classmethod
    def from_json(cls, data: Any) -> Usage:
        u = data.get("usage") if isinstance(data, dict) else None
        if not isinstance(u, dict):
            return cls()
        p, c = u.get("prompt_tokens"), u.get("completion_tokens")
        return cls(p if isinstance(p, int) else None, c if isinstance(c, int) else None)


@dataclass
class ChatResult:
    """One answered call: the text, the raw JSON, token usage, latency and attempts."""

    tier: str
    model: str
    text: str
    raw: dict[str, Any]
    usage: Usage
    latency_s: float
    status: int
    attempts: int
    cost_usd: float | None = None


@dataclass
class ChatStream:
    """An opened streaming call: iterate for the SSE ``data:`` payloads, chunk by chunk.

    Returned by :meth:`UpstreamClient.stream_chat` once the upstream answered 200, so every
    retryable failure happened (and was retried) before the first chunk. ``text`` and ``usage``
    fill in as chunks pass; ``usage`` needs ``stream_options: {include_usage: true}``.
    """

    tier: str
    model: str
    status: int
    attempts: int
    ttfb_s: float
    _response: httpx.Response
    _release: Any
    text_parts: list[str] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    done: bool = False

    @property
    def text(self) -> str:
        return "".join(self.text_parts)

    async def __aiter__(self) -> AsyncIterator[str]:
        try:
            async for line in self._response.aiter_lines():
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    self.done = True
                    yield data
                    break
                self._observe(data)
                yield data
        finally:
            await self.aclose()

    def _observe(self, data: str) -> None:
        try:
            chunk = json.loads(data)
        except ValueError:
            return
        if not isinstance(chunk, dict):
            return
        usage = Usage.from_json(chunk)
        if usage.prompt_tokens is not None:
            self.usage = usage
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") if isinstance(choice, dict) else None
            if isinstance(delta, dict) and isinstance(delta.get("content"), str):
                self.text_parts.append(delta["content"])

    async def aclose(self) -> None:
        if self._release is not None:
            release, self._release = self._release, None
            try:
                await self._response.aclose()
            finally:  # even when cancelled (a client gone mid-stream): free the slot
                release()


def _retry_after(response: httpx.Response | None) -> float | None:
    value = response.headers.get("retry-after") if response is not None else None
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


class UpstreamClient:
    """Calls the tiers of an :class:`UpstreamsConfig`; every tier is resolved (and its API key
    read) when the client is built, so a missing key fails at startup, not on a request."""

    def __init__(
        self,
        config: UpstreamsConfig,
        tiers: Iterable[str] | None = None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        names = list(tiers) if tiers is not None else list(config.upstreams)
        self.specs: dict[str, UpstreamSpec] = {s.tier: s for s in config.check_covers(names)}
        self._headers: dict[str, dict[str, str]] = {}
        for tier, spec in self.specs.items():
            key = spec.api_key()
            self._headers[tier] = (
                {"authorization": f"Bearer {key.get_secret_value()}"} if key else {}
            )
        self._transport = transport
        self._clients: dict[str, httpx.AsyncClient] = {}
        self._sems = {t: asyncio.Semaphore(s.max_concurrency) for t, s in self.specs.items()}

    def __repr__(self) -> str:  # never the headers: they hold the keys
        return f"UpstreamClient(tiers={list(self.specs)})"

    async def __aenter__(self) -> UpstreamClient:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        for c in clients:
            await c.aclose()

    def spec(self, tier: str) -> UpstreamSpec:
        try:
            return self.specs[tier]
        except KeyError:
            raise TierwiseError(
                f"tier `{tier}` has no upstream; configured: {sorted(self.specs)}"
            ) from None

    def _http(self, spec: UpstreamSpec) -> httpx.AsyncClient:
        client = self._clients.get(spec.base_url)
        if client is None:
            total = sum(
                s.max_concurrency for s in self.specs.values() if s.base_url == spec.base_url
            )
            client = httpx.AsyncClient(
                base_url=spec.base_url,
                transport=self._transport,
                limits=httpx.Limits(max_connections=total, max_keepalive_connections=total),
                timeout=httpx.Timeout(spec.timeout_s),
            )
            self._clients[spec.base_url] = client
        return client

    def _body(self, spec: UpstreamSpec, messages: Sequence[Any], params: dict[str, Any]) -> Any:
        return {**params, "model": spec.model, "messages": list(messages)}

    async def chat(self, tier: str, messages: Sequence[Any], **params: Any) -> ChatResult:
        """One chat completion from ``tier`` (``params``: temperature, max_tokens, tools...)."""
        spec = self.spec(tier)
        body = self._body(spec, messages, {k: v for k, v in params.items() if k != "stream"})
        response, attempts, elapsed = await self._send(spec, "/chat/completions", body)
        raw = response.json()
        if not isinstance(raw, dict):
            raise UpstreamError(
                tier, "bad_json", f"upstream `{tier}` answered JSON that is not an object",
                status=response.status_code, body=response.content, attempts=attempts,
            )  # fmt: skip
        usage = Usage.from_json(raw)
        return ChatResult(
            tier=tier,
            model=spec.model,
            text=_first_text(raw),
            raw=raw,
            usage=usage,
            latency_s=elapsed,
            status=response.status_code,
            attempts=attempts,
            cost_usd=spec.cost(usage.prompt_tokens, usage.completion_tokens),
        )

    async def post(self, tier: str, path: str, body: dict[str, Any]) -> tuple[httpx.Response, int]:
        """POST ``body`` (with the tier's ``model`` set) to ``path`` under the tier's base URL."""
        spec = self.spec(tier)
        response, attempts, _ = await self._send(spec, path, {**body, "model": spec.model})
        return response, attempts

    async def stream_chat(self, tier: str, messages: Sequence[Any], **params: Any) -> ChatStream:
        """Open a streaming chat completion; retries happen before this returns."""
        spec = self.spec(tier)
        body = {**self._body(spec, messages, params), "stream": True}
        return await self.open_stream(tier, "/chat/completions", body)

    async def open_stream(self, tier: str, path: str, body: dict[str, Any]) -> ChatStream:
        """Open a streaming POST of ``body`` (``model`` set to the tier's) to ``path``."""
        spec = self.spec(tier)
        body = {**body, "model": spec.model, "stream": True}
        sem = self._sems[tier]
        t0 = time.perf_counter()
        attempt = 0
        while True:
            attempt += 1
            await sem.acquire()
            response: httpx.Response | None = None
            try:
                request = self._http(spec).build_request(
                    "POST", path.lstrip("/"), json=body, headers=self._headers[tier]
                )
                response = await self._http(spec).send(request, stream=True)
                if response.status_code == 200:
                    return ChatStream(
                        tier, spec.model, 200, attempt, time.perf_counter() - t0, response,
                        sem.release,
                    )  # fmt: skip
                await response.aread()
                error = self._status_error(spec, response, attempt)
            except httpx.HTTPError as err:
                error = self._transport_error(spec, err, attempt)
            except BaseException:
                sem.release()
                raise
            if response is not None:
                await response.aclose()
            sem.release()
            await self._backoff_or_raise(spec, error, attempt, t0, response)

    async def _send(
        self, spec: UpstreamSpec, path: str, body: dict[str, Any]
    ) -> tuple[httpx.Response, int, float]:
        sem = self._sems[spec.tier]
        t0 = time.perf_counter()
        attempt = 0
        while True:
            attempt += 1
            response: httpx.Response | None = None
            async with sem:
                try:
                    response = await self._http(spec).post(
                        path.lstrip("/"), json=body, headers=self._headers[spec.tier]
                    )
                except httpx.HTTPError as err:
                    error = self._transport_error(spec, err, attempt)
                else:
                    if response.status_code < 400:
                        return response, attempt, time.perf_counter() - t0
                    error = self._status_error(spec, response, attempt)
            await self._backoff_or_raise(spec, error, attempt, t0, response)

    def _status_error(
        self, spec: UpstreamSpec, response: httpx.Response, attempt: int
    ) -> UpstreamError:
        status = response.status_code
        cls = UpstreamUnavailable if status in RETRY_STATUSES else UpstreamError
        preview = response.content[:BODY_PREVIEW].decode("utf-8", "replace")
        return cls(
            spec.tier,
            f"http_{status}",
            f"upstream `{spec.tier}` ({spec.base_url}, model {spec.model}) answered HTTP {status}: "
            f"{preview}",
            status=status,
            body=response.content,
            content_type=response.headers.get("content-type", "application/json"),
            attempts=attempt,
        )

    def _transport_error(
        self, spec: UpstreamSpec, err: httpx.HTTPError, attempt: int
    ) -> UpstreamError:
        if isinstance(err, httpx.TimeoutException):
            reason = "timeout"
        elif isinstance(err, httpx.ConnectError):
            reason = "connect"
        elif isinstance(err, httpx.TransportError):
            reason = "connection"
        else:
            reason = "http_error"
        return UpstreamUnavailable(
            spec.tier,
            reason,
            f"upstream `{spec.tier}` ({spec.base_url}) failed: {type(err).__name__}: {err}",
            attempts=attempt,
        )

    async def _backoff_or_raise(
        self,
        spec: UpstreamSpec,
        error: UpstreamError,
        attempt: int,
        t0: float,
        response: httpx.Response | None,
    ) -> None:
        if not error.retryable or attempt > spec.max_retries:
            raise error
        delay = spec.backoff_s * 2 ** (attempt - 1) * (0.5 + random.random())  # jitter
        hinted = _retry_after(response)
        if hinted is not None:
            delay = max(delay, hinted)
        if time.perf_counter() - t0 + delay > spec.retry_budget_s:
            raise error
        await asyncio.sleep(delay)


def _first_text(raw: dict[str, Any]) -> str:
    choices = raw.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return ""
    first = choices[0]
    message = first.get("message")
    if isinstance(message, dict) and isinstance(message.get("content"), str):
        return str(message["content"])
    return str(first.get("text") or "")
