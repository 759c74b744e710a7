"""``tierwise gateway``: an OpenAI-compatible proxy that routes, forwards, falls back and logs.

Needs the ``serve`` extra (fastapi, uvicorn, httpx). ``import tierwise.router.gateway`` stays
light; :func:`create_gateway` loads :mod:`tierwise.router.gateway.app` on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastapi import FastAPI

    from tierwise.router.upstreams import UpstreamsConfig

__all__ = ["create_gateway"]


def create_gateway(artifact: str, upstreams: UpstreamsConfig, **kwargs: Any) -> FastAPI:
    """Build the gateway app; see :func:`tierwise.router.gateway.app.create_gateway`."""
    from tierwise.router.gateway.app import create_gateway as build

    return build(artifact, upstreams, **kwargs)
