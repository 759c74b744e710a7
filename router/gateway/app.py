"""The OpenAI-compatible gateway: ``create_gateway(artifact, upstreams)`` returns a FastAPI app.

Endpoints: ``POST /v1/chat/completions`` and ``POST /v1/completions`` (``stream`` too),
``GET /v1/models``, ``GET /health``, ``GET /metrics``, ``POST /admin/reload``. Limits, metrics,
hot swap (the same :class:`RouterHolder` and batching worker) and the admin token rule are those
of ``tierwise serve``. Errors are OpenAI-shaped (``{"error": {"message", "type", "code"}}``) so
SDKs show them; an upstream's 4xx is returned with its own status and body.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException as StarletteHTTPException

from tierwise.router import __version__
from tierwise.router.decision import Decision
from tierwise.router.errors import ConfigError, TierwiseError
from tierwise.router.gateway.decision_log import DecisionLog
from tierwise.router.gateway.forward import Forwarder, Outcome, artifact_prices, tier_order
from tierwise.router.gateway.metrics import GatewayMetrics
from tierwise.router.gateway.prompt import (
    ROUTE_MODEL,
    EmbedMode,
    check_messages,
    parse_model,
    routed_text,
)
from tierwise.router.gateway.tracing import Tracer
from tierwise.router.prompts import validate_prompt
from tierwise.router.serve.app import ServiceMiddleware, lifespan_of
from tierwise.router.serve.batcher import Batcher
from tierwise.router.serve.metrics import CONTENT_TYPE
from tierwise.router.serve.routes import Service, check_admin, read_body
from tierwise.router.serve.schemas import ClientError, Limits, decode_json
from tierwise.router.serve.state import Loaded, RouterHolder
from tierwise.router.upstreams import UpstreamsConfig
from tierwise.router.upstreams.client import UpstreamClient, Usage

log = logging.getLogger("tierwise.gateway")
HEADER = "x-tierwise-"


def _json(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=True, allow_nan=False).encode("ascii")


def openai_error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    """An error response shaped like OpenAI's (``error.message``, ``type``, ``code``)."""
    kind = "invalid_request_error" if status < 500 else "upstream_error"
    body = {"error": {"message": message, "type": kind, "code": status}}
    return Response(_json(body), status, headers, "application/json")


@dataclass
class Exchange:
    """One request as it passes through the gateway; becomes a log record and a trace."""

    request_id: str
    path: str
    body: dict[str, Any]
    stream: bool
    t_start: float = field(default_factory=time.time)
    requested: str = ""
    text: str = ""
    decision: Decision | None = None
    tier: str = ""
    t_routed: float = 0.0
    loaded: Loaded | None = None

    @property
    def mode(self) -> str:
        if self.decision is not None:
            return "routed"
        return "pinned" if self.tier else "rejected"  # rejected: refused before a tier was set

    def headers(self, out: Outcome) -> dict[str, str]:
        h = {
            HEADER + "request-id": self.request_id,
            HEADER + "mode": self.mode,
            HEADER + "routed-model": self.tier,
            HEADER + "model": out.tier or "none",
            HEADER + "attempts": str(out.attempts),
        }
        if self.loaded is not None:
            h[HEADER + "artifact"] = self.loaded.checksum
        d, answered = self.decision, out.tier or self.tier
        if d is not None:
            h[HEADER + "knob"] = "" if d.knob is None else f"{d.knob:g}"
            if answered in d.p_success:
                h[HEADER + "predicted-success"] = f"{d.p_success[answered]:.4f}"
                h[HEADER + "expected-cost"] = f"{d.expected_cost[answered]:.6g}"
        if out.fallback_reason:
            h[HEADER + "fallback-reason"] = out.fallback_reason
        return h


def create_gateway(
    artifact: str,
    upstreams: UpstreamsConfig,
    *,
    limits: Limits | None = None,
    num_threads: int | None = None,
    watch_interval: float | None = None,
    admin_token: str | None = None,
    require_embedded: bool = False,
    allow_embedders: Sequence[str] | None = (),
    embed: EmbedMode = "last_user",
    decision_log: DecisionLog | None = None,
    tracer: Tracer | None = None,
    metrics: GatewayMetrics | None = None,
    log_prompts: bool = False,
) -> FastAPI:
    """Load ``artifact``, check every tier has an upstream (and its API key), build the app.

    ``admin_token``, ``allow_embedders``, ``limits``, hot swap: as :func:`serve.create_app`.
    """
    limits = limits or Limits()
    metrics = metrics or GatewayMetrics()

    def on_reload(result: str, loaded: Loaded | None) -> None:
        metrics.reloads.inc(result)
        if loaded is not None:
            metrics.set_artifact(loaded.checksum)

    holder = RouterHolder(
        artifact,
        num_threads=num_threads,
        require_embedded=require_embedded,
        allow_embedders=allow_embedders,
        on_reload=on_reload,
    )
    router = holder.current.router
    tiers = tuple(router.models_)
    specs = upstreams.check_covers(tiers)
    client = UpstreamClient(upstreams, tiers)  # reads every API key: a missing one fails here
    forwarder = Forwarder(
        client, tier_order(router, upstreams, specs), metrics, artifact_prices(router)
    )
    metrics.set_artifact(holder.current.checksum)
    service = Service(
        holder, Batcher(holder, metrics, max_prompts=limits.max_batch), metrics, limits
    )
    batcher = service.batcher
    serve_lifespan = lifespan_of(service, watch_interval)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> Any:
        async with serve_lifespan(app):
            try:
                yield
            finally:
                await client.aclose()
                for sink in (app.state.decision_log, app.state.tracer):
                    if sink is not None:
                        await run_in_threadpool(sink.close)

    app = FastAPI(
        title="tierwise gateway",
        version=__version__,
        description="OpenAI-compatible: routes each request to the cheapest tier predicted to "
        "succeed, forwards it, falls back on failure and logs the decision.",
        lifespan=lifespan,
    )
    app.state.holder, app.state.metrics, app.state.forwarder = holder, metrics, forwarder
    # Read on every request, so a caller may attach them after building the app.
    app.state.decision_log, app.state.tracer = decision_log, tracer
    app.add_middleware(ServiceMiddleware, metrics=metrics)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        return openai_error(exc.status_code, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(ClientError)
    async def client_error(request: Request, exc: ClientError) -> Response:
        return openai_error(exc.status, exc.message)

    async def route(ex: Exchange, knob: float | None) -> None:
        try:
            validate_prompt(
                ex.text, max_chars=service.max_chars(holder.current), name="the routed message"
            )
        except TierwiseError as err:
            raise ClientError(400, str(err)) from None
        t0 = time.perf_counter()
        job = batcher.submit([ex.text], [0], knob)
        try:
            decisions, loaded = await asyncio.wrap_future(job.future)
            ex.loaded = loaded
        except TierwiseError as err:  # e.g. a knob the policy refuses
            raise ClientError(400, str(err)) from None
        metrics.routing_latency.observe(time.perf_counter() - t0)
        ex.decision = decisions[0]
        if ex.decision.model is None:
            raise ClientError(400, ex.decision.error or "the prompt could not be routed")
        ex.tier = ex.decision.model

    async def handle(request: Request, path: str) -> Response:
        ex = Exchange(uuid.uuid4().hex, path, {}, False)
        try:
            return await forward(request, ex)
        except ClientError as err:  # refused by the gateway itself: still one record
            finish(ex, Outcome(status=err.status), Usage())
            return openai_error(err.status, err.message, {HEADER + "request-id": ex.request_id})

    async def forward(request: Request, ex: Exchange) -> Response:
        data = decode_json(await read_body(request, limits.max_body_bytes))
        if not isinstance(data, dict):
            raise ClientError(400, "request body must be a JSON object")
        ex.body, ex.stream = data, bool(data.get("stream"))
        pinned, knob = parse_model(data.get("model"), tiers)
        ex.requested = str(data.get("model"))
        if ex.path == "/chat/completions":
            messages = check_messages(data.get("messages"))
            ex.text = routed_text(messages, embed) if pinned is None else _hash_text(messages)
        else:
            prompt = data.get("prompt")
            if not isinstance(prompt, str):
                raise ClientError(400, "`prompt` must be one string (lists are not routed)")
            ex.text = prompt
        if pinned is None:
            await route(ex, knob)
        else:
            ex.tier, ex.loaded = pinned, holder.current
        ex.t_routed = time.time()
        if ex.tier not in forwarder.order:
            raise ClientError(
                503,
                f"tier `{ex.tier}` of the reloaded artifact has no upstream; "
                "add it to the upstreams config and restart",
            )
        body = dict(data)
        wants_usage = bool((data.get("stream_options") or {}).get("include_usage"))
        if ex.stream:  # usage for metrics and the log; not passed on unless asked for
            body["stream_options"] = {**(data.get("stream_options") or {}), "include_usage": True}
        out = await forwarder.send(ex.tier, ex.path, body, ex.stream)
        if out.stream is not None:
            return StreamingResponse(
                relay(ex, out, wants_usage),
                200,
                ex.headers(out),
                media_type="text/event-stream",
                # Runs even if the client left before the first chunk (relay never started).
                background=BackgroundTask(end_stream, ex, out),
            )
        finish(ex, out, out.usage)
        if out.error is not None and out.error.retryable:
            return openai_error(
                502,
                f"every tier from `{ex.tier}` up failed: {out.fallback_reason}",
                ex.headers(out),
            )
        return Response(out.body, out.status, ex.headers(out), out.content_type)

    async def relay(ex: Exchange, out: Outcome, wants_usage: bool) -> AsyncIterator[bytes]:
        stream = out.stream
        assert stream is not None
        try:
            async for data in stream:
                if not wants_usage and _usage_only(data):
                    continue  # the usage chunk the gateway asked for, not the client
                yield b"data: " + data.encode() + b"\n\n"
        except Exception as err:  # the upstream broke mid-stream: say so in-band
            out.status = 502
            msg = {
                "error": {
                    "message": f"upstream `{out.tier}` failed mid-stream: {err}",
                    "type": "upstream_error",
                }
            }
            yield b"data: " + _json(msg) + b"\n\n"
        finally:
            await end_stream(ex, out)

    async def end_stream(ex: Exchange, out: Outcome) -> None:
        """Record a streamed request once, then close the upstream stream (idempotent)."""
        stream = out.stream
        assert stream is not None
        if not out.finished:
            out.finished = True  # before any await: a cancellation cannot skip the record
            finish(ex, out, stream.usage, stream.text)
        await stream.aclose()

    def finish(ex: Exchange, out: Outcome, usage: Usage, text: str | None = None) -> None:
        if out.status == 200:
            outcome = "ok"
        elif not out.calls:
            outcome = "rejected"  # by the gateway, before any upstream call
        else:
            outcome = "upstream_4xx" if out.status < 500 else "failed"
        metrics.completions.inc(out.tier or "none", ex.mode, outcome)
        cost = forwarder.count_usage(out.tier, usage) if out.tier else None
        if out.calls and out.tier:
            out.calls[-1].update(
                prompt_tokens=usage.prompt_tokens,
                completion_tokens=usage.completion_tokens,
                cost_usd=cost,
                text=text,
            )
        decision_log, tracer = app.state.decision_log, app.state.tracer
        if decision_log is None and tracer is None:
            return
        d = ex.decision
        record = {
            "time": ex.t_start,
            "request_id": ex.request_id,
            "prompt_sha256": hashlib.sha256(ex.text.encode("utf-8", "replace")).hexdigest(),
            "prompt": ex.text if log_prompts else None,
            "mode": ex.mode,
            "requested_model": ex.requested,
            "routed_model": ex.tier,
            "model": out.tier,
            "knob": d.knob if d else None,
            "p_success": d.p_success if d else None,
            "expected_cost": d.expected_cost if d else None,
            "fallback_reason": out.fallback_reason,
            "attempts": out.attempts,
            "upstream_latency_s": round(out.upstream_s, 6),
            "routing_latency_s": round(ex.t_routed - ex.t_start, 6),
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "cost_usd": cost,
            "status": out.status,
            "stream": ex.stream,
            "artifact": ex.loaded.checksum if ex.loaded else None,
        }
        if decision_log is not None:
            decision_log.record(record)
        if tracer is not None:
            inputs = {"model": ex.requested, "prompt": record["prompt"] or record["prompt_sha256"]}
            spans = {
                "t_start": ex.t_start,
                "t_routed": ex.t_routed,
                "t_end": time.time(),
                "calls": out.calls,
                "inputs": inputs,
                "outputs": {"model": out.tier},
            }
            tracer.trace(record, spans)

    @app.post("/v1/chat/completions", summary="OpenAI chat completions, routed")
    async def chat(request: Request) -> Response:
        return await handle(request, "/chat/completions")

    @app.post("/v1/completions", summary="OpenAI (legacy) completions, routed")
    async def completions(request: Request) -> Response:
        return await handle(request, "/completions")

    @app.get("/v1/models", summary="The routing models and the tiers")
    async def models() -> Response:
        names = [ROUTE_MODEL, *tiers]
        data = [{"id": n, "object": "model", "owned_by": "tierwise"} for n in names]
        return Response(_json({"object": "list", "data": data}), 200, None, "application/json")

    @app.get("/health", summary="Liveness, the artifact and the upstreams")
    async def health() -> Response:
        cur = holder.current
        body = {
            "status": "ok",
            "artifact": cur.info(),
            "reloads": holder.reloads,
            "last_reload_error": holder.last_error,
            "fallback_order": forwarder.order,
            "upstreams": {
                t: {"base_url": s.base_url, "model": s.model} for t, s in client.specs.items()
            },
        }
        return Response(_json(body), 200, None, "application/json")

    @app.get("/metrics", summary="Prometheus metrics")
    async def metrics_endpoint() -> Response:
        return Response(metrics.render(), 200, None, CONTENT_TYPE)

    @app.post("/admin/reload", summary="Load the artifact again and swap it in atomically")
    async def reload(request: Request) -> Response:
        check_admin(request, admin_token)  # serve's rule: 403 unless a token is configured
        old = holder.current
        try:
            new = await asyncio.wrap_future(holder.reload_in_background())
        except TierwiseError as err:
            raise ClientError(
                409, f"reload failed, still serving {old.checksum[:12]}: {err}"
            ) from None
        missing = [t for t in new.router.models_ if t not in forwarder.order]
        if missing:
            log.error("reloaded artifact has tiers without upstreams: %s", missing)
        body = {
            "status": "reloaded",
            "previous": old.checksum,
            "artifact": new.info(),
            "tiers_without_upstream": missing,
        }
        return Response(_json(body), 200, None, "application/json")

    return app


def _usage_only(data: str) -> bool:
    if '"usage"' not in data:
        return False
    try:
        chunk = json.loads(data)
    except ValueError:
        return False
    return isinstance(chunk, dict) and not chunk.get("choices") and "usage" in chunk


def _hash_text(messages: list[dict[str, Any]]) -> str:
    """For pinned requests: a stable text of the last user message (only hashed)."""
    try:
        return routed_text(messages)
    except ClientError:
        return json.dumps(messages, sort_keys=True, default=str)[:10_000]


__all__ = ["ConfigError", "create_gateway"]
