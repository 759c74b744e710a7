"""Request parsing and response shapes of the HTTP service.

Bodies are parsed by hand from the raw bytes, not by FastAPI's validation layer, so every bad
input gets one specific 4xx message ("request body is not valid JSON at line 1, column 9: ...")
instead of a generic report, and nothing a client sends can reach a 500. The pydantic models
below only *document* the shapes in /openapi.json.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class ClientError(Exception):
    """A request the client must fix: HTTP ``status`` with one clear ``message``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Limits:
    """Input limits (``tierwise serve --max-batch`` etc.); over a limit is a 413 or a 422.

    ``max_prompt_chars=None``: the artifact's own ``max_prompt_chars`` setting.
    """

    max_prompt_chars: int | None = None
    max_batch: int = 256
    max_body_bytes: int = 8 * 1024 * 1024
    # Estimated model tokens per request (each prompt counts at most the embedder's token
    # limit): a full default batch of 256 longest MiniLM prompts (~66k) fits.
    max_request_tokens: int = 100_000


class RouteRequest(BaseModel):
    """Either ``prompt`` (one) or ``prompts`` (a batch); ``knob`` overrides the policy's."""

    model_config = ConfigDict(extra="forbid")
    prompt: str | None = Field(None, description="one prompt (returns a single decision)")
    prompts: list[str] | None = Field(
        None, description="a batch of prompts (a bad item gets its own error; the rest route)"
    )
    knob: float | None = Field(None, description="policy knob override (default: the trained one)")


class DecisionOut(BaseModel):
    """One routing decision as the HTTP API returns it."""

    index: int
    model: str | None = Field(description="chosen model; null when `error` is set")
    p_success: dict[str, float] = Field(description="calibrated P(success) of every model")
    expected_cost: dict[str, float] = Field(description="expected USD cost of every model")
    policy: str
    knob: float | None
    error: str | None = None


class BatchOut(BaseModel):
    """The decisions for a batch request and how many prompts failed."""

    decisions: list[DecisionOut]
    errors: int = Field(description="how many items could not be routed")


class ErrorOut(BaseModel):
    """An error response body: one line saying what was wrong and how to fix it."""

    error: str


@dataclass(frozen=True)
class ParsedRoute:
    """A validated ``/route`` request: its prompts, whether it was a single prompt, the knob."""

    prompts: list[Any]
    single: bool
    knob: float | None


def _json_error(err: json.JSONDecodeError) -> str:
    return f"request body is not valid JSON at line {err.lineno}, column {err.colno}: {err.msg}"


def decode_json(body: bytes) -> Any:
    """Strict UTF-8 JSON; every failure is a ClientError(400) saying where and what."""
    if not body.strip():
        raise ClientError(
            400, 'request body is empty; send JSON such as {"prompt": "..."} or {"prompts": [...]}'
        )
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ClientError(
            400,
            f"request body must be UTF-8, got byte 0x{body[err.start]:02x} at byte offset "
            f"{err.start} that does not decode; encode the JSON as UTF-8",
        ) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise ClientError(400, _json_error(err)) from None
    except RecursionError:
        raise ClientError(
            400, "request body JSON is nested too deeply; send a flat object"
        ) from None
    except ValueError as err:  # e.g. an integer literal beyond Python's digit limit
        raise ClientError(
            400, f"request body JSON has a value that cannot be read: {err}"
        ) from None


def _describe(value: Any) -> str:
    """``type value`` for scalars, just the JSON type for containers (their repr is noise)."""
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return f"a list of {len(value)}"
    text = f"{type(value).__name__} {value!r}"
    return text if len(text) <= 60 else text[:57] + "..."


def parse_route(data: Any, limits: Limits) -> ParsedRoute:
    """Check the shape of a /route body; item-level problems are left to routing (per item)."""
    if not isinstance(data, dict):
        raise ClientError(
            422,
            f'request body must be a JSON object such as {{"prompt": "..."}}, got '
            f"{_describe(data)}",
        )
    unknown = sorted(set(data) - {"prompt", "prompts", "knob"})
    if unknown:
        raise ClientError(
            422, f"unknown field(s) {unknown}; use `prompt` (one) or `prompts` (a list), and `knob`"
        )
    knob = data.get("knob")
    if knob is not None and (
        isinstance(knob, bool) or not isinstance(knob, int | float) or not math.isfinite(knob)
    ):
        raise ClientError(422, f"`knob` must be a finite number or null, got {_describe(knob)}")
    knob_value = None if knob is None else float(knob)
    has_one, has_many = "prompt" in data, "prompts" in data
    if has_one == has_many:
        raise ClientError(
            422,
            "send exactly one of `prompt` (a string) or `prompts` (a list of strings), got "
            + ("both" if has_one else "neither"),
        )
    if has_one:
        return ParsedRoute([data["prompt"]], True, knob_value)
    prompts = data["prompts"]
    if not isinstance(prompts, list):
        raise ClientError(
            422,
            f"`prompts` must be a list of strings, got {_describe(prompts)}; "
            "for one prompt send `prompt`",
        )
    if not prompts:
        raise ClientError(422, "`prompts` must hold at least one prompt, got an empty list")
    if len(prompts) > limits.max_batch:
        raise ClientError(
            413,
            f"`prompts` must hold at most {limits.max_batch} prompts, got {len(prompts)}; "
            "split the batch (or raise --max-batch)",
        )
    return ParsedRoute(prompts, False, knob_value)


def decision_json(d: Any) -> dict[str, Any]:
    """A Decision as the JSON object the API returns."""
    return {
        "index": d.index,
        "model": d.model,
        "p_success": d.p_success,
        "expected_cost": d.expected_cost,
        "policy": d.policy,
        "knob": d.knob,
        "error": d.error,
    }
