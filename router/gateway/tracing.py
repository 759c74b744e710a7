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
STARTUP_TIMEOUT_S = 120.0
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
    """Sends finished request records to a tracing process that writes MLflow traces.

    Building and exporting a trace costs ~10-50 ms of Python; in the gateway's process that
    would compete with the event loop for the GIL (measured: 16 clients fell from ~150 to ~20
    requests in 4 s), so traces are written by a separate process fed through a pipe by a
    background thread (the gateway's own process never imports MLflow). The process makes the
    experiment at startup; the pipe answers each batch with how many traces failed.
    """

    def __init__(
        self, experiment: str, count: Any, *, tracking_uri: str | None = None,
        maxsize: int = 10_000,
    ) -> None:  # fmt: skip
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(
            target=_trace_worker, args=(child, experiment, tracking_uri), name="tierwise-tracing",
            daemon=True,
        )  # fmt: skip
        self._proc.start()
        child.close()
        self._count, self._maxsize = count, maxsize
        self._writer: BackgroundWriter | None = None
        self.experiment_id = ""

    def wait_ready(self) -> None:
        """Wait until the process has made the experiment (importing MLflow takes seconds,
        so start the Tracer early and wait late); a ConfigError if it could not."""
        if self._writer is not None:
            return
        reply = self._conn.recv() if self._conn.poll(STARTUP_TIMEOUT_S) else None
        if not isinstance(reply, tuple) or reply[0] != "ready":
            self._proc.kill()
            raise ConfigError(
                reply[1] if isinstance(reply, tuple) else
                f"--mlflow-experiment: the tracing process did not start within "
                f"{STARTUP_TIMEOUT_S:.0f}s; the gateway log has its error"
            )  # fmt: skip
        self.experiment_id = str(reply[1])
        self._writer = BackgroundWriter(
            "mlflow-tracing", self._send, self._count, maxsize=self._maxsize, max_batch=256,
            close=self._stop,
        )  # fmt: skip

    def trace(self, record: dict[str, Any], spans: dict[str, Any]) -> bool:
        if self._writer is None:
            self.wait_ready()
        assert self._writer is not None
        return self._writer.put((record, spans))

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close(timeout=120)
        elif self._proc.is_alive():
            self._proc.kill()

    def _send(self, batch: list[tuple[dict[str, Any], dict[str, Any]]]) -> int:
        self._conn.send(batch)
        return int(self._conn.recv())  # EOFError if the process died: all counted as failed

    def _stop(self) -> None:
        try:
            self._conn.send(None)
            self._conn.recv()  # the worker flushed MLflow's exporter
        except (EOFError, OSError):
            pass
        self._proc.join(timeout=30)
        if self._proc.is_alive():
            self._proc.kill()


def _trace_worker(conn: Any, experiment: str, tracking_uri: str | None) -> None:
    """The tracing process: write each received batch, answer with the number that failed."""
    import signal

    # The gateway's shutdown (SIGTERM/SIGINT to its process group) must not kill this process
    # before the gateway has sent the last traces; it exits when the pipe says so or closes.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        experiment_id = ensure_experiment(experiment, tracking_uri)
    except ConfigError as err:
        conn.send(("error", str(err)))
        return
    writer = TraceWriter(experiment_id)
    conn.send(("ready", experiment_id))
    while True:
        try:
            batch = conn.recv()
        except EOFError:
            break
        if batch is None:
            _flush()
            conn.send(0)
            break
        conn.send(writer.write(batch))


class TraceWriter:
    """Builds one MLflow trace per request record (runs in the tracing process)."""

    def __init__(self, experiment_id: str) -> None:
        self.experiment_id = experiment_id

    def write(self, batch: list[tuple[dict[str, Any], dict[str, Any]]]) -> int:
        failed = 0
        for record, spans in batch:
            try:
                self._one(record, spans)
            except Exception:
                log.exception("mlflow tracing: no trace for %s", record.get("request_id"))
                failed += 1
        return failed

    def _one(self, record: dict[str, Any], spans: dict[str, Any]) -> None:
        import mlflow

        ok = record.get("status") == 200
        root = mlflow.start_span_no_context(
            "chat.completions",
            span_type="CHAIN",
            inputs=spans.get("inputs"),
            attributes={RECORD_ATTR: json.loads(json.dumps(record, default=str))},
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
        locations=[exp.experiment_id], max_results=max_results, return_type="list"
    )
    out = []
    for t in traces:
        root = next((s for s in t.data.spans if s.parent_id is None), None)
        value = root.attributes.get(RECORD_ATTR) if root is not None else None
        if isinstance(value, str):  # stored as JSON text by some MLflow versions
            value = json.loads(value)
        if isinstance(value, dict):
            out.append(value)
    return out
