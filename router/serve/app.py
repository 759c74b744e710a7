"""The HTTP service: ``create_app(artifact)`` returns a FastAPI app (``tierwise serve`` runs it).

Endpoints (:mod:`router.serve.routes`): ``POST /route`` (one prompt or a batch), ``GET /health``,
``GET /metadata`` (the artifact manifest), ``GET /metrics`` (Prometheus text), ``POST
/admin/reload`` (hot swap; disabled unless an admin token is configured), and FastAPI's
``/openapi.json`` and ``/docs``.

Errors: every client mistake is a 4xx with ``{"error": "<one clear message>"}``. A catch-all
(:mod:`router.serve.middleware`) turns anything unexpected into a logged 500 with the same shape
and counts it in ``tierwise_internal_errors_total`` — the test suite sends every kind of bad
input and checks that counter stays 0. FastAPI and Starlette are imported with this module,
never by ``import router`` or ``import router.serve``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from fastapi import FastAPI, Request, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from tierwise.router import __version__
from tierwise.router.serve.batcher import DEFAULT_CALL_TOKENS, Batcher
from tierwise.router.serve.metrics import Metrics
from tierwise.router.serve.middleware import ServiceMiddleware, json_bytes
from tierwise.router.serve.routes import (
    ARTIFACT_HEADER,
    Service,
    add_admin,
    add_info,
    add_route,
    json_response,
    read_body,
)
from tierwise.router.serve.schemas import ClientError, Limits
from tierwise.router.serve.state import Loaded, RouterHolder

__all__ = ["ARTIFACT_HEADER", "ServiceMiddleware", "create_app", "json_bytes", "read_body"]


def build_service(
    artifact: str,
    limits: Limits,
    *,
    num_threads: int | None,
    require_embedded: bool,
    allow_embedders: Sequence[str] | None,
    call_tokens: int,
) -> Service:
    """Load the artifact (raising a TierwiseError if it cannot be served) and wire the parts."""
    metrics = Metrics()

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
    metrics.set_artifact(holder.current.checksum)
    batcher = Batcher(holder, metrics, max_prompts=limits.max_batch, call_tokens=call_tokens)
    return Service(holder, batcher, metrics, limits)


def lifespan_of(
    service: Service, watch_interval: float | None
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """Start the batching worker (and the file watcher) with the app; stop them after."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service.batcher.start()
        if watch_interval:
            service.holder.start_watching(watch_interval)
        try:
            yield
        finally:
            service.holder.stop()
            service.batcher.stop()

    return lifespan


def add_error_handlers(app: FastAPI) -> None:
    """Client errors and Starlette's own HTTP errors as ``{"error": ...}`` JSON."""

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        return json_response({"error": str(exc.detail)}, exc.status_code, exc.headers)

    @app.exception_handler(ClientError)
    async def client_error(request: Request, exc: ClientError) -> Response:
        return json_response({"error": exc.message}, exc.status)


def create_app(
    artifact: str,
    *,
    limits: Limits | None = None,
    num_threads: int | None = None,
    watch_interval: float | None = None,
    admin_token: str | None = None,
    require_embedded: bool = False,
    allow_embedders: Sequence[str] | None = (),
    call_tokens: int = DEFAULT_CALL_TOKENS,
) -> FastAPI:
    """Load ``artifact`` (raising a TierwiseError if it cannot be served) and build the app.

    ``admin_token``: enables ``POST /admin/reload`` for requests carrying it (disabled when
    None). ``allow_embedders``: embedder specs the artifact may name besides a bundled ONNX
    embedder and ``hashing:<dim>`` (None: any, as in the library). ``call_tokens``: the token
    budget of one model call, which bounds how long a big batch delays other requests.
    """
    limits = limits or Limits()
    service = build_service(
        artifact,
        limits,
        num_threads=num_threads,
        require_embedded=require_embedded,
        allow_embedders=allow_embedders,
        call_tokens=call_tokens,
    )
    app = FastAPI(
        title="tierwise router",
        version=__version__,
        description="Routes each prompt to the cheapest model tier predicted to succeed.",
        lifespan=lifespan_of(service, watch_interval),
    )
    app.state.holder, app.state.metrics = service.holder, service.metrics
    app.state.batcher, app.state.service = service.batcher, service
    app.add_middleware(ServiceMiddleware, metrics=service.metrics)
    add_error_handlers(app)
    add_route(app, service)
    add_info(app, service)
    add_admin(app, service, admin_token)
    return app
