"""Upstream failures (light: no httpx), raised by :mod:`tierwise.router.upstreams.client`."""

from __future__ import annotations

from tierwise.router.errors import TierwiseError


class UpstreamError(TierwiseError):
    """An upstream refused the request (``status`` >= 400 with ``body``) or could not be reached.

    ``reason`` is short and stable (``"http_400"``, ``"timeout"``, ``"connect"``...) for headers
    and metrics; ``retryable`` tells whether another tier might succeed.
    """

    def __init__(
        self,
        tier: str,
        reason: str,
        message: str,
        *,
        status: int | None = None,
        body: bytes = b"",
        content_type: str = "application/json",
        attempts: int = 1,
    ) -> None:
        super().__init__(message)
        self.tier, self.reason, self.status = tier, reason, status
        self.body, self.content_type, self.attempts = body, content_type, attempts

    @property
    def retryable(self) -> bool:
        return False


class UpstreamUnavailable(UpstreamError):
    """Timeouts, 429/5xx or connection failures on every attempt the retry budget allowed."""

    @property
    def retryable(self) -> bool:
        return True
