"""Send a request to its tier, falling back to the next tier up when the tier is unavailable.

Order: ``fallback_order`` of the upstreams config, else by the upstreams' prices when every
tier has them, else by the artifact's expected cost of a typical prompt (cheapest first). A
request that fails on tier T (timeouts, 429, 5xx or a dropped connection, after the client's
retries) moves to the tier just above T, and so on up; never down to a cheaper tier. A 4xx
from an upstream is the request's own fault: it is returned as is, with no fallback.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from tierwise.router.gateway.metrics import GatewayMetrics
from tierwise.router.runtime import RuntimeRouter
from tierwise.router.upstreams import UpstreamsConfig, UpstreamSpec
from tierwise.router.upstreams.client import ChatStream, UpstreamClient, Usage
from tierwise.router.upstreams.errors import UpstreamError

PROBE = "Explain briefly how a hash table handles collisions, with a short example."


def tier_order(
    router: RuntimeRouter, config: UpstreamsConfig, specs: list[UpstreamSpec]
) -> list[str]:
    """Tiers from cheapest to dearest (see the module docstring)."""
    tiers = list(router.models_)
    if config.fallback_order is not None:
        return list(config.fallback_order)
    if all(s.has_prices for s in specs):
        price = {s.tier: (s.usd_per_1m_input or 0) + 3 * (s.usd_per_1m_output or 0) for s in specs}
        return sorted(tiers, key=lambda t: (price[t], tiers.index(t)))
    cost = router.route([PROBE])[0].expected_cost
    return sorted(tiers, key=lambda t: (cost.get(t, 0.0), tiers.index(t)))


def artifact_prices(router: RuntimeRouter) -> dict[str, dict[str, float]]:
    """Per-tier prices the artifact was trained with, if it was trained with a price table."""
    model = getattr(router, "cost_model_", None)
    if getattr(model, "source_", None) != "prices":
        return {}
    table = getattr(model, "prices_", None) or {}
    return dict(table.get("models") or {})


@dataclass
class Outcome:
    """What happened to one request upstream."""

    tier: str | None = None  # the tier that answered
    body: bytes = b""
    status: int = 502
    content_type: str = "application/json"
    stream: ChatStream | None = None
    usage: Usage = field(default_factory=Usage)
    error: UpstreamError | None = None
    fallback: list[str] = field(default_factory=list)  # "tier:reason" per tier given up
    calls: list[dict[str, Any]] = field(default_factory=list)  # one per tier tried (tracing)
    attempts: int = 0
    upstream_s: float = 0.0
    finished: bool = False  # a streamed request's record was written

    @property
    def fallback_reason(self) -> str | None:
        return ",".join(self.fallback) or None


class Forwarder:
    """Calls upstreams for the gateway: fallback order, usage, cost and metrics."""

    def __init__(
        self,
        client: UpstreamClient,
        order: list[str],
        metrics: GatewayMetrics,
        prices: dict[str, dict[str, float]],
    ) -> None:
        self.client, self.order, self.metrics, self.prices = client, order, metrics, prices

    def candidates(self, tier: str) -> list[str]:
        return self.order[self.order.index(tier) :]

    def cost(self, tier: str, usage: Usage) -> float | None:
        spec = self.client.spec(tier)
        if spec.has_prices:
            return spec.cost(usage.prompt_tokens, usage.completion_tokens)
        p = self.prices.get(tier)
        if p is None or usage.prompt_tokens is None or usage.completion_tokens is None:
            return None
        return (
            usage.prompt_tokens * float(p.get("input_per_1m", 0.0))
            + usage.completion_tokens * float(p.get("output_per_1m", 0.0))
        ) / 1e6 + float(p.get("per_request", 0.0))

    def count_usage(self, tier: str, usage: Usage) -> float | None:
        """Add a finished call's tokens and USD to the metrics; returns the USD (or None)."""
        if usage.prompt_tokens is not None:
            self.metrics.tokens.inc(tier, "prompt", amount=usage.prompt_tokens)
        if usage.completion_tokens is not None:
            self.metrics.tokens.inc(tier, "completion", amount=usage.completion_tokens)
        usd = self.cost(tier, usage)
        if usd is not None:
            self.metrics.cost.inc(tier, amount=usd)
        return usd

    async def send(self, tier: str, path: str, body: dict[str, Any], stream: bool) -> Outcome:
        """Try ``tier`` then the tiers above it until one answers or refuses (4xx)."""
        out = Outcome()
        tiers = self.candidates(tier)
        for i, t in enumerate(tiers):
            t0 = time.time()
            call: dict[str, Any] = {"tier": t, "model": self.client.spec(t).model, "t_start": t0}
            try:
                if stream:
                    out.stream = await self.client.open_stream(t, path, body)
                    out.attempts += out.stream.attempts
                    out.status = 200
                else:
                    response, attempts = await self.client.post(t, path, body)
                    out.attempts += attempts
                    out.body, out.status = response.content, response.status_code
                    out.content_type = response.headers.get("content-type", "application/json")
                    out.usage = _usage(out.body)
            except UpstreamError as err:
                out.attempts += err.attempts
                call.update(
                    t_end=time.time(), error=f"{err.reason}: {err}"[:500], attempts=err.attempts
                )
                out.calls.append(call)
                self.metrics.upstream_latency.observe(call["t_end"] - t0, t)
                out.error = err
                if not err.retryable:
                    out.status, out.body, out.content_type = (
                        err.status or 502,
                        err.body,
                        err.content_type,
                    )
                    return out
                out.fallback.append(f"{t}:{err.reason}")
                if i + 1 < len(tiers):
                    self.metrics.fallbacks.inc(t, tiers[i + 1], err.reason)
                continue
            out.error, out.tier = None, t
            out.upstream_s = time.time() - t0
            call.update(t_end=time.time(), attempts=out.attempts)
            out.calls.append(call)
            self.metrics.upstream_latency.observe(out.upstream_s, t)
            return out
        out.status = 502
        return out


def _usage(body: bytes) -> Usage:
    try:
        return Usage.from_json(json.loads(body))
    except ValueError:
        return Usage()
