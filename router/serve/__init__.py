"""The HTTP routing service (``tierwise serve``): FastAPI app, dynamic batching, hot swap.

Needs the ``serve`` extra (fastapi, uvicorn). ``import router.serve`` stays light: FastAPI is
imported by :mod:`router.serve.app`, which :func:`create_app` loads on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tierwise.router.serve.schemas import Limits

if TYPE_CHECKING:
    from fastapi import FastAPI

__all__ = ["Limits", "create_app"]


def create_app(artifact: str, **kwargs: Any) -> FastAPI:
    """Build the service for ``artifact``; see :func:`router.serve.app.create_app`."""
    from tierwise.router.serve.app import create_app as build

    return build(artifact, **kwargs)
