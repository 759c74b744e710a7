"""The HTTP service: ``create_app(artifact)`` returns a FastAPI app (``tierwise serve`` runs it).

Endpoints: ``POST /route`` (one prompt or a batch), ``GET /health``, ``GET /metadata`` (the
artifact manifest), ``GET /metrics`` (Prometheus text), ``POST /admin/reload`` (hot swap), and
FastAPI's ``/openapi.json`` and ``/docs``.

Errors: every client mistake is a 4xx with ``{"error": "<one clear message>"}``. A catch-all
turns anything unexpected into a logged 500 with the same shape and counts it in
``tierwise_internal_errors_total`` — the test suite sends every kind of bad input and checks that
counter stays 0. FastAPI and Starlette are imported with this module, never by ``import
router`` or ``import router.serve`` (only by importing this module).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from tierwise.router import __version__
from tierwise.router.decision import Decision
from tierwise.router.errors import TierwiseError
from tierwise.router.prompts import validate_batch
from tierwise.router.serve.batcher import Batcher
from tierwise.router.serve.metrics import CONTENT_TYPE, Metrics
from tierwise.router.serve.schemas import (
    BatchOut,
    ClientError,
    DecisionOut,
    ErrorOut,
    Limits,
    RouteRequest,
    decision_json,
    decode_json,
    parse_route,
)
from tierwise.router.serve.state import Loaded, RouterHolder

log = logging.getLogger("tierwise.serve")
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[
    [Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]
]
KNOWN_PATHS = frozenset(
    {"/route", "/health", "/metadata", "/metrics", "/admin/reload", "/openapi.json", "/docs"}
)
ARTIFACT_HEADER = "x-tierwise-artifact"


def _json_bytes(obj: Any) -> bytes:
    # ensure_ascii: a lone surrogate anywhere can never make encoding the response fail.
    return json.dumps(obj, ensure_ascii=True, allow_nan=False).encode("ascii")


class ServiceMiddleware:
    """Pure ASGI: latency and status metrics per path, and the catch-all for unexpected errors."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        label = path if path in KNOWN_PATHS else "other"
        t0 = time.perf_counter()
        status = {"code": 500, "started": False}

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = int(message["status"])
                status["started"] = True
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except Exception:
            log.exception("unexpected error on %s %s", scope.get("method"), path)
            self.metrics.internal_errors.inc()
            status["code"] = 500
            if not status["started"]:
                body = _json_bytes({"error": "internal server error; the server log has details"})
                await send(
                    {
                        "type": "http.response.start",
                        "status": 500,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": body})
        finally:
            self.metrics.requests.inc(label, str(status["code"]))
            self.metrics.latency.observe(time.perf_counter() - t0, label)


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing more than ``limit`` bytes before reading it all."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise ClientError(400, f"Content-Length must be a byte count, got {declared!r}")
        if int(declared) > limit:
            raise ClientError(
                413,
                f"request body must be at most {limit:,} bytes, got {int(declared):,}; "
                "send fewer or shorter prompts (or raise --max-body-bytes)",
            )
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ClientError(413, f"request body must be at most {limit:,} bytes; send less")
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(
    artifact: str,
    *,
    limits: Limits | None = None,
    num_threads: int | None = None,
    watch_interval: float | None = None,
    admin_token: str | None = None,
    require_embedded: bool = False,
) -> FastAPI:
    """Load ``artifact`` (raising a TierwiseError if it cannot be served) and build the app."""
    limits = limits or Limits()
    metrics = Metrics()

    def on_reload(result: str, loaded: Loaded | None) -> None:
        metrics.reloads.inc(result)
        if loaded is not None:
            metrics.set_artifact(loaded.checksum)

    holder = RouterHolder(
        artifact, num_threads=num_threads, require_embedded=require_embedded, on_reload=on_reload
    )
    metrics.set_artifact(holder.current.checksum)
    batcher = Batcher(holder, metrics, max_prompts=max(limits.max_batch, 1))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> Any:
        batcher.start()
        if watch_interval:
            holder.start_watching(watch_interval)
        try:
            yield
        finally:
            holder.stop()
            batcher.stop()

    app = FastAPI(
        title="tierwise router",
        version=__version__,
        description="Routes each prompt to the cheapest model tier predicted to succeed.",
        lifespan=lifespan,
    )
    app.state.holder, app.state.metrics, app.state.batcher = holder, metrics, batcher
    app.add_middleware(ServiceMiddleware, metrics=metrics)

    def error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
        return Response(_json_bytes({"error": message}), status, headers, "application/json")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        return error(exc.status_code, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(ClientError)
    async def client_error(request: Request, exc: ClientError) -> Response:
        return error(exc.status, exc.message)

    def max_chars(loaded: Loaded) -> int:
        limit = loaded.router.config.max_prompt_chars
        return limit if limits.max_prompt_chars is None else limits.max_prompt_chars

    def merge(
        n: int, errors: list[str | None], routed: list[Decision], loaded: Loaded, knob: float | None
    ) -> list[Decision]:
        out: list[Decision | None] = [None] * n
        for d in routed:
            out[d.index] = d
        used = loaded.router.knob_ if knob is None else knob
        policy = loaded.router.config.policy.name
        for i, e in enumerate(errors):
            if e is not None:
                out[i] = Decision(index=i, model=None, policy=policy, knob=used, error=e)
        return [d for d in out if d is not None]

    @app.post(
        "/route",
        response_model=DecisionOut | BatchOut,
        responses={
            400: {"model": ErrorOut, "description": "body is not UTF-8 JSON"},
            413: {"model": ErrorOut, "description": "body or batch over the limit"},
            422: {"model": ErrorOut, "description": "wrong shape, or the one prompt is invalid"},
        },
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": RouteRequest.model_json_schema()}},
            }
        },
        summary="Route one prompt or a batch",
    )
    async def route(request: Request) -> Response:
        data = decode_json(await read_body(request, limits.max_body_bytes))
        parsed = parse_route(data, limits)
        loaded = holder.current
        texts, errors = validate_batch(parsed.prompts, max_chars=max_chars(loaded))
        if parsed.single and errors[0] is not None:
            raise ClientError(422, errors[0].replace("`prompt[0]`", "`prompt`"))
        good = [i for i, t in enumerate(texts) if t is not None]
        routed: list[Decision] = []
        if good:
            job = batcher.submit([texts[i] or "" for i in good], good, parsed.knob)
            try:
                routed, loaded = await asyncio.wrap_future(job.future)
            except TierwiseError as err:  # e.g. a knob the policy refuses
                raise ClientError(422, str(err)) from None
        n_err = len(parsed.prompts) - len(good)
        if n_err:
            metrics.item_errors.inc(amount=n_err)
        decisions = merge(len(parsed.prompts), errors, routed, loaded, parsed.knob)
        body = (
            decision_json(decisions[0])
            if parsed.single
            else {"decisions": [decision_json(d) for d in decisions], "errors": n_err}
        )
        return Response(
            _json_bytes(body), 200, {ARTIFACT_HEADER: loaded.checksum}, "application/json"
        )

    @app.get("/health", summary="Liveness and what is being served")
    async def health() -> Response:
        cur = holder.current
        body = {
            "status": "ok",
            "artifact": cur.info(),
            "reloads": holder.reloads,
            "last_reload_error": holder.last_error,
            "limits": {
                "max_prompt_chars": max_chars(cur),
                "max_batch": limits.max_batch,
                "max_body_bytes": limits.max_body_bytes,
            },
        }
        return Response(_json_bytes(body), 200, None, "application/json")

    @app.get("/metadata", summary="The served artifact's manifest")
    async def metadata() -> Response:
        cur = holder.current
        return Response(
            _json_bytes(cur.router.manifest_ or {}),
            200,
            {ARTIFACT_HEADER: cur.checksum},
            "application/json",
        )

    @app.get("/metrics", summary="Prometheus metrics")
    async def metrics_endpoint() -> Response:
        return Response(metrics.render(), 200, None, CONTENT_TYPE)

    @app.post(
        "/admin/reload",
        summary="Load the artifact again from disk and swap it in atomically",
        responses={
            401: {"model": ErrorOut, "description": "missing or wrong admin token"},
            409: {"model": ErrorOut, "description": "new artifact unusable; old one still serves"},
        },
    )
    async def reload(request: Request) -> Response:
        if admin_token is not None:
            given = request.headers.get("authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {admin_token}".encode()):
                raise ClientError(401, "admin endpoints need `Authorization: Bearer <token>`")
        old = holder.current
        try:
            new = await run_in_threadpool(holder.reload)
        except TierwiseError as err:
            raise ClientError(
                409, f"reload failed, still serving {old.checksum[:12]}: {err}"
            ) from None
        body = {"status": "reloaded", "previous": old.checksum, "artifact": new.info()}
        return Response(_json_bytes(body), 200, None, "application/json")

    return app
