"""The gateway's Prometheus metrics: the service's own (tierwise serve) plus traffic and money.

Counted from each upstream answer's ``usage``: tokens per tier, and USD per tier when the
upstream config has prices (``usd_per_1m_input``/``usd_per_1m_output``). Fallbacks are counted by
the tier that failed, the tier that took over and the reason; the decision log's and tracer's
dropped records are counted too, since both may drop rather than slow a request.
"""

from __future__ import annotations

from tierwise.router.serve.metrics import LATENCY_BUCKETS, Counter, Histogram, Metrics

UPSTREAM_BUCKETS = (*LATENCY_BUCKETS, 30.0, 60.0, 120.0)


class GatewayMetrics(Metrics):
    """``Metrics`` of ``tierwise serve`` with the gateway's counters appended."""

    def __init__(self) -> None:
        super().__init__()
        self.completions = Counter(
            "tierwise_gateway_requests_total",
            "Completion requests by the tier that answered (or 'none'), mode (routed, pinned, "
            "rejected) and outcome (ok, rejected, upstream_4xx, failed).",
            ("model", "mode", "outcome"),
        )
        self.fallbacks = Counter(
            "tierwise_gateway_fallbacks_total",
            "Requests moved to the next tier up, by failed tier, new tier and reason.",
            ("from_model", "to_model", "reason"),
        )
        self.tokens = Counter(
            "tierwise_gateway_tokens_total",
            "Tokens reported by the upstreams' usage, by tier and kind (prompt, completion).",
            ("model", "kind"),
        )
        self.cost = Counter(
            "tierwise_gateway_cost_usd_total",
            "USD spent per tier: usage times the upstream config's prices.",
            ("model",),
        )
        self.upstream_latency = Histogram(
            "tierwise_gateway_upstream_seconds",
            "Upstream call time per tier (to the full answer, or to the first chunk of a stream).",
            UPSTREAM_BUCKETS,
            ("model",),
        )
        self.routing_latency = Histogram(
            "tierwise_gateway_routing_seconds",
            "Time to route a request (queue + embed + predict), the gateway's own added work.",
            LATENCY_BUCKETS,
        )
        self.log_records = Counter(
            "tierwise_gateway_log_records_total",
            "Decision-log records by result: written, dropped (queue full), failed (sink error).",
            ("result",),
        )
        self.traces = Counter(
            "tierwise_gateway_traces_total",
            "MLflow traces by result: written, dropped (queue full), failed.",
            ("result",),
        )

    def render(self) -> bytes:
        lines: list[str] = []
        for metric in (
            self.completions,
            self.fallbacks,
            self.tokens,
            self.cost,
            self.upstream_latency,
            self.routing_latency,
            self.log_records,
            self.traces,
        ):
            lines.extend(metric.render())
        return super().render() + ("\n".join(lines) + "\n").encode("utf-8")
