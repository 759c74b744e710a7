"""MLflow tracing of gateway requests (``tierwise gateway --mlflow-experiment NAME``).

Each finished request becomes one MLflow trace, built on a background thread after the answer
was sent (so tracing never delays or fails a request; a full queue drops traces and counts them).
Spans: the request (``chat.completions``), ``route`` (the router's choice, predicted success and
expected cost per tier) and one ``upstream <tier>`` LLM span per tier tried, carrying MLflow's
token-usage and cost attributes, so the GenAI overview charts requests, latency, errors, tokens
and cost. The whole decision-log record is kept on the root span as ``tierwise.decision``;
:func:`read_traces` turns traces back into those records (traffic for labelling and retraining).
The gateway's experiment is tagged as a GenAI experiment, apart from training experiments.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from tierwise.router.errors import ConfigError
from tierwise.router.gateway.background import BackgroundWriter

log = logging.getLogger("tierwise.gateway")
RECORD_ATTR = "tierwise.decision"
KIND_TAG = "mlflow.experimentKind"


def _ns(t: float) -> int:
    return int(t * 1e9)


def ensure_experiment(name: str, tracking_uri: str | None) -> str:
    """The experiment's id, created (tagged as a GenAI experiment) when missing."""
    try:
        import mlflow
        from mlflow import MlflowClient
    except ImportError:
        raise ConfigError(
            "--mlflow-experiment needs MLflow's tracing SDK; `pip install mlflow-tracing` "
            "(or mlflow)"
        ) from None
    if tracking_uri:
        mlflow.set_tracking_uri(tracking_uri)
    client = MlflowClient()
    try:
        exp = client.get_experiment_by_name(name)
        if exp is None:
            return str(client.create_experiment(name, tags={KIND_TAG: "genai_development"}))
        if exp.lifecycle_stage == "deleted":
            client.restore_experiment(exp.experiment_id)
        return str(exp.experiment_id)
    except Exception as err:  # any store failure: one line at startup
        raise ConfigError(
            f"--mlflow-experiment {name!r}: cannot use the MLflow store at "
            f"{mlflow.get_tracking_uri()}: {type(err).__name__}: {err}"
        ) from None


class Tracer:
    """Turns finished request records into MLflow traces on a background thread."""

    def __init__(self, experiment_id: str, count: Any, *, maxsize: int = 10_000) -> None:
        self.experiment_id = experiment_id
        self._writer = BackgroundWriter(
            "mlflow-tracing", self._write, count, maxsize=maxsize, max_batch=64, close=_flush
        )

    def trace(self, record: dict[str, Any], spans: dict[str, Any]) -> bool:
        return self._writer.put((record, spans))

    def close(self) -> None:
        self._writer.close(timeout=60)

    def _write(self, batch: list[tuple[dict[str, Any], dict[str, Any]]]) -> None:
        failed = 0
        for record, spans in batch:
            try:
                self._one(record, spans)
            except Exception:
                log.exception(
                    "mlflow tracing: could not write the trace of %s", record.get("request_id")
                )
                failed += 1
        if failed:
            raise RuntimeError(f"{failed} of {len(batch)} trace(s) failed")

    def _one(self, record: dict[str, Any], spans: dict[str, Any]) -> None:
        import mlflow

        ok = record.get("status") == 200
        root = mlflow.start_span_no_context(
            "chat.completions",
            span_type="CHAIN",
            inputs=spans.get("inputs"),
            attributes={RECORD_ATTR: json.dumps(record, default=str)},
            tags={
                "tierwise.model": str(record.get("model")),
                "tierwise.mode": str(record.get("mode")),
                "tierwise.fallback": str(record.get("fallback_reason") or ""),
            },
            experiment_id=self.experiment_id,
            start_time_ns=_ns(spans["t_start"]),
        )
        if record.get("mode") == "routed":
            route = mlflow.start_span_no_context(
                "route",
                span_type="UNKNOWN",
                parent_span=root,
                inputs={"prompt_sha256": record.get("prompt_sha256"), "knob": record.get("knob")},
                start_time_ns=_ns(spans["t_start"]),
            )
            route.end(
                outputs={"model": record.get("routed_model")},
                attributes={
                    "tierwise.chosen_model": str(record.get("routed_model")),
                    "tierwise.p_success": record.get("p_success") or {},
                    "tierwise.expected_cost": record.get("expected_cost") or {},
                },
                end_time_ns=_ns(spans["t_routed"]),
            )
        for call in spans.get("calls", []):
            self._upstream_span(root, call)
        root.end(
            outputs=spans.get("outputs"),
            attributes={
                "tierwise.model": str(record.get("model")),
                "tierwise.fallback_reason": str(record.get("fallback_reason") or ""),
                "tierwise.expected_cost": record.get("expected_cost") or {},
                "tierwise.cost_usd": record.get("cost_usd"),
            },
            status="OK" if ok else "ERROR",
            end_time_ns=_ns(spans["t_end"]),
        )

    @staticmethod
    def _upstream_span(root: Any, call: dict[str, Any]) -> None:
        import mlflow

        span = mlflow.start_span_no_context(
            f"upstream {call['tier']}",
            span_type="LLM",
            parent_span=root,
            inputs={"model": call.get("model")},
            start_time_ns=_ns(call["t_start"]),
        )
        attrs: dict[str, Any] = {
            "mlflow.llm.model": str(call.get("model")),
            "tierwise.tier": call["tier"],
            "tierwise.attempts": call.get("attempts", 1),
        }
        p, c = call.get("prompt_tokens"), call.get("completion_tokens")
        if p is not None and c is not None:
            attrs["mlflow.chat.tokenUsage"] = {
                "input_tokens": p,
                "output_tokens": c,
                "total_tokens": p + c,
            }
        if call.get("cost_usd") is not None:
            attrs["mlflow.llm.cost"] = {"total_cost": call["cost_usd"]}
        if call.get("error"):
            attrs["tierwise.error"] = call["error"]
        span.end(
            outputs={"text": call.get("text")} if call.get("text") is not None else None,
            attributes=attrs,
            status="ERROR" if call.get("error") else "OK",
            end_time_ns=_ns(call["t_end"]),
        )


def _flush() -> None:
    try:
        import mlflow

        mlflow.flush_trace_async_logging(terminate=True)
    except Exception:  # older MLflow or nothing to flush
        pass


def read_traces(
    experiment: str, *, tracking_uri: str | None = None, max_results: int | None = None
) -> list[dict[str, Any]]:
    """Decision-log records of the gateway traces in ``experiment`` (newest first)."""
    import mlflow
    from mlflow import MlflowClient

    if tracking_uri:
        mlflow.set_tracking_uri(tracking_uri)
    exp = MlflowClient().get_experiment_by_name(experiment)
    if exp is None:
        raise ConfigError(f"MLflow experiment {experiment!r} does not exist")
    traces = mlflow.search_traces(
        experiment_ids=[exp.experiment_id], max_results=max_results, return_type="list"
    )
    out = []
    for t in traces:
        root = next((s for s in t.data.spans if s.parent_id is None), None)
        value = root.attributes.get(RECORD_ATTR) if root is not None else None
        if isinstance(value, str):
            out.append(json.loads(value))
    return out
