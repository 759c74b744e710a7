"""OpenAI-compatible upstreams: the ``upstreams.yaml`` schema and an async client.

Shared by ``tierwise gateway`` (forwards routed requests) and ``tierwise label`` (asks models
and judges). ``import tierwise.router.upstreams`` stays light: the client (and httpx) load on
first use of :class:`UpstreamClient` and its result and error types.
"""

from __future__ import annotations

from typing import Any

from tierwise.router.upstreams.config import (
    UpstreamFields,
    UpstreamsConfig,
    UpstreamSpec,
    load_upstreams,
    upstreams_from_dict,
)
from tierwise.router.upstreams.errors import UpstreamError, UpstreamUnavailable

_CLIENT_NAMES = {
    "UpstreamClient",
    "ChatResult",
    "ChatStream",
    "Usage",
}

__all__ = [
    "ChatResult",
    "ChatStream",
    "UpstreamClient",
    "UpstreamError",
    "UpstreamFields",
    "UpstreamSpec",
    "UpstreamUnavailable",
    "UpstreamsConfig",
    "Usage",
    "load_upstreams",
    "upstreams_from_dict",
]


def __getattr__(name: str) -> Any:
    if name in _CLIENT_NAMES:
        from tierwise.router.upstreams import client

        return getattr(client, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
