"""The endpoints of the HTTP service, each added to an app by one ``add_*`` function.

``POST /route`` reads the body with a byte limit, parses and validates it (off the event loop
when it is large), checks the request's estimated token work, and hands the prompts to the
fair :class:`~tierwise.router.serve.batcher.Batcher`. ``POST /admin/reload`` is disabled unless
an admin token is configured: anyone who can reach the port could otherwise swap the router.
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.concurrency import run_in_threadpool

from tierwise.router.decision import Decision
from tierwise.router.errors import TierwiseError
from tierwise.router.prompts import validate_batch
from tierwise.router.serve.batcher import Batcher, estimate_tokens, prompt_token_limit
from tierwise.router.serve.metrics import CONTENT_TYPE, Metrics
from tierwise.router.serve.middleware import json_bytes
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

ARTIFACT_HEADER = "x-tierwise-artifact"
TOKEN_ENV = "TIERWISE_ADMIN_TOKEN"
# Bodies above this are parsed in the threadpool: json.loads of 2 MB holds the loop ~20 ms.
INLINE_PARSE_BYTES = 64 * 1024


@dataclass(frozen=True)
class Service:
    """What the endpoints share: the served router, the batcher, metrics and limits."""

    holder: RouterHolder
    batcher: Batcher
    metrics: Metrics
    limits: Limits

    def max_chars(self, loaded: Loaded) -> int:
        limit = loaded.router.config.max_prompt_chars
        return limit if self.limits.max_prompt_chars is None else self.limits.max_prompt_chars


def json_response(
    obj: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    """A JSON response from any JSON-able object."""
    return Response(json_bytes(obj), status, headers, "application/json")


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing more than ``limit`` bytes before reading it all."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise ClientError(400, f"Content-Length must be a byte count, got {declared[:40]!r}")
        if int(declared) > limit:
            raise ClientError(
                413,
                f"request body must be at most {limit:,} bytes, got {int(declared):,}; "
                "send fewer or shorter prompts (or raise --max-body-bytes)",
            )
    chunks, size = [], 0
    async for chunk in request.stream():  # a client leaving raises ClientDisconnect (a 499)
        size += len(chunk)
        if size > limit:
            raise ClientError(413, f"request body must be at most {limit:,} bytes; send less")
        chunks.append(chunk)
    return b"".join(chunks)


@dataclass(frozen=True)
class Checked:
    """A parsed /route request: the prompts to route and the per-item errors."""

    single: bool
    knob: float | None
    texts: list[str | None]
    errors: list[str | None]


def check_request(body: bytes, service: Service, loaded: Loaded) -> Checked:
    """Parse and validate a /route body; ClientError on anything the client must fix."""
    parsed = parse_route(decode_json(body), service.limits)
    texts, errors = validate_batch(parsed.prompts, max_chars=service.max_chars(loaded))
    if parsed.single and errors[0] is not None:
        raise ClientError(422, errors[0].replace("`prompt[0]`", "`prompt`"))
    limit = prompt_token_limit(loaded.router)
    tokens = sum(estimate_tokens(t, limit) for t in texts if t is not None)
    budget = service.limits.max_request_tokens
    if tokens > budget:
        raise ClientError(
            413,
            f"a request must cost at most {budget:,} model tokens, got about {tokens:,} "
            f"({len(texts)} prompts, each read up to {limit} tokens); split the batch "
            "(or raise --max-request-tokens)",
        )
    return Checked(parsed.single, parsed.knob, texts, errors)


def merge(checked: Checked, routed: list[Decision], loaded: Loaded) -> list[Decision]:
    """Routed decisions and per-item errors, in request order."""
    out: list[Decision | None] = [None] * len(checked.texts)
    for d in routed:
        out[d.index] = d
    used = loaded.router.knob_ if checked.knob is None else checked.knob
    policy = loaded.router.config.policy.name
    for i, e in enumerate(checked.errors):
        if e is not None:
            out[i] = Decision(index=i, model=None, policy=policy, knob=used, error=e)
    return [d for d in out if d is not None]


async def route_checked(service: Service, checked: Checked, loaded: Loaded) -> Response:
    """Route the valid prompts through the batcher and build the response."""
    good = [i for i, t in enumerate(checked.texts) if t is not None]
    routed: list[Decision] = []
    if good:
        job = service.batcher.submit([checked.texts[i] or "" for i in good], good, checked.knob)
        try:
            routed, loaded = await asyncio.wrap_future(job.future)
        except TierwiseError as err:  # e.g. a knob the policy refuses
            raise ClientError(422, str(err)) from None
    n_err = len(checked.texts) - len(good)
    if n_err:
        service.metrics.item_errors.inc(amount=n_err)
    decisions = merge(checked, routed, loaded)
    body = (
        decision_json(decisions[0])
        if checked.single
        else {"decisions": [decision_json(d) for d in decisions], "errors": n_err}
    )
    return json_response(body, headers={ARTIFACT_HEADER: loaded.checksum})


def add_route(app: FastAPI, service: Service) -> None:
    """``POST /route``: one prompt or a batch."""

    @app.post(
        "/route",
        response_model=DecisionOut | BatchOut,
        responses={
            400: {"model": ErrorOut, "description": "body is not UTF-8 JSON"},
            413: {"model": ErrorOut, "description": "body, batch or token work over the limit"},
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
        body = await read_body(request, service.limits.max_body_bytes)
        loaded = service.holder.current
        if len(body) > INLINE_PARSE_BYTES:
            checked = await run_in_threadpool(check_request, body, service, loaded)
        else:
            checked = check_request(body, service, loaded)
        return await route_checked(service, checked, loaded)


def add_info(app: FastAPI, service: Service) -> None:
    """``GET /health``, ``GET /metadata`` and ``GET /metrics``."""

    @app.get("/health", summary="Liveness and what is being served")
    async def health() -> Response:
        cur = service.holder.current
        limits = service.limits
        return json_response(
            {
                "status": "ok",
                "artifact": cur.info(),
                "reloads": service.holder.reloads,
                "last_reload_error": service.holder.last_error,
                "limits": {
                    "max_prompt_chars": service.max_chars(cur),
                    "max_batch": limits.max_batch,
                    "max_body_bytes": limits.max_body_bytes,
                },
            }
        )

    @app.get("/metadata", summary="The served artifact's manifest")
    async def metadata() -> Response:
        cur = service.holder.current
        return json_response(cur.router.manifest_ or {}, headers={ARTIFACT_HEADER: cur.checksum})

    @app.get("/metrics", summary="Prometheus metrics")
    async def metrics() -> Response:
        return Response(service.metrics.render(), 200, None, CONTENT_TYPE)


def check_admin(request: Request, token: str | None) -> None:
    """Refuse an admin request unless a token is configured and the request carries it."""
    if token is None:
        raise ClientError(
            403,
            f"reload over HTTP is disabled; start the server with {TOKEN_ENV} set and send "
            "`Authorization: Bearer <token>`, or reload with SIGHUP or --watch",
        )
    given = request.headers.get("authorization", "")
    if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
        raise ClientError(401, "admin endpoints need `Authorization: Bearer <token>`")


def add_admin(app: FastAPI, service: Service, admin_token: str | None) -> None:
    """``POST /admin/reload``: only with ``admin_token`` configured (403 otherwise)."""

    @app.post(
        "/admin/reload",
        summary="Load the artifact again from disk and swap it in atomically",
        description=f"Disabled (403) unless the server was started with {TOKEN_ENV} set.",
        responses={
            401: {"model": ErrorOut, "description": "missing or wrong admin token"},
            403: {"model": ErrorOut, "description": f"disabled: no {TOKEN_ENV} configured"},
            409: {"model": ErrorOut, "description": "new artifact unusable; old one still serves"},
        },
    )
    async def reload(request: Request) -> Response:
        check_admin(request, admin_token)
        old = service.holder.current
        try:
            new = await asyncio.wrap_future(service.holder.reload_in_background())
        except TierwiseError as err:
            raise ClientError(
                409, f"reload failed, still serving {old.checksum[:12]}: {err}"
            ) from None
        body = {"status": "reloaded", "previous": old.checksum, "artifact": new.info()}
        return json_response(body)
