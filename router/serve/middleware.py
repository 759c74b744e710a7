"""The service's outermost layer: per-path metrics, and the catch-all for unexpected errors.

Pure ASGI (no Starlette BaseHTTPMiddleware), so it sees every request, including those FastAPI
refuses before a handler runs. A client that goes away is the client's doing: it is recorded as
status 499 (nginx's "client closed request"), logged in one line without a traceback, and never
counted in ``tierwise_internal_errors_total``, which only genuine server defects increase.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.requests import ClientDisconnect

from tierwise.router.serve.metrics import Metrics

log = logging.getLogger("tierwise.serve")
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[
    [Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]
]
KNOWN_PATHS = frozenset(
    {"/route", "/health", "/metadata", "/metrics", "/admin/reload", "/openapi.json", "/docs"}
)
CLIENT_CLOSED = 499  # nginx's status for "the client closed the connection first"


def json_bytes(obj: Any) -> bytes:
    """A response body; ``ensure_ascii``: a lone surrogate can never make encoding it fail."""
    return json.dumps(obj, ensure_ascii=True, allow_nan=False).encode("ascii")


async def send_json(send: Any, status: int, obj: Any) -> None:
    """Send a whole JSON response through a raw ASGI ``send``."""
    body = json_bytes(obj)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class ServiceMiddleware:
    """Latency and status metrics per path, and the catch-all turning defects into logged 500s."""

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
        except ClientDisconnect:
            status["code"] = CLIENT_CLOSED
            log.info("client closed the connection during %s %s", scope.get("method"), path)
        except Exception:
            log.exception("unexpected error on %s %s", scope.get("method"), path)
            self.metrics.internal_errors.inc()
            status["code"] = 500
            if not status["started"]:
                error = "internal server error; the server log has details"
                await send_json(send, 500, {"error": error})
        finally:
            self.metrics.requests.inc(label, str(status["code"]))
            self.metrics.latency.observe(time.perf_counter() - t0, label)
