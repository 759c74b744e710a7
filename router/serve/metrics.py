"""Prometheus metrics of the service, written in the text exposition format (version 0.0.4).

Written here rather than with prometheus_client: the service needs three counters and two
histograms, and a dependency-free writer keeps the serving install small. Every metric lives in
one :class:`Metrics` object per app (no process-global registry), so several apps in one process
(tests) do not mix their numbers. Thread-safe: handlers and the batching worker both record.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Sequence

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Seconds; dense below 50 ms where a router's latency lives.
LATENCY_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(names: Sequence[str], values: Sequence[str], extra: str = "") -> str:
    parts = [f'{n}="{_escape(v)}"' for n, v in zip(names, values, strict=True)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


def _num(x: float) -> str:
    if math.isinf(x):
        return "+Inf" if x > 0 else "-Inf"
    return repr(float(x)) if not float(x).is_integer() else str(int(x))


class Counter:
    """A Prometheus counter with optional labels (thread-safe, text exposition format)."""

    def __init__(self, name: str, help_text: str, labels: Sequence[str] = ()) -> None:
        self.name, self.help, self.labels = name, help_text, tuple(labels)
        self._values: dict[tuple[str, ...], float] = {} if labels else {(): 0.0}
        self._lock = threading.Lock()

    def inc(self, *values: str, amount: float = 1.0) -> None:
        with self._lock:
            self._values[values] = self._values.get(values, 0.0) + amount

    def value(self, *values: str) -> float:
        return self._values.get(values, 0.0)

    def render(self) -> Iterable[str]:
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} counter"
        with self._lock:
            items = sorted(self._values.items())
        for values, v in items:
            yield f"{self.name}{_labels(self.labels, values)} {_num(v)}"


class Gauge(Counter):
    """A Prometheus gauge: a labelled value that can go down as well as up."""

    def set(self, *values: str, value: float) -> None:
        with self._lock:
            self._values[values] = value

    def render(self) -> Iterable[str]:
        lines = list(super().render())
        lines[1] = f"# TYPE {self.name} gauge"
        return lines


class Histogram:
    """A Prometheus histogram over fixed buckets, with optional labels."""

    def __init__(
        self, name: str, help_text: str, buckets: Sequence[float], labels: Sequence[str] = ()
    ) -> None:
        self.name, self.help, self.labels = name, help_text, tuple(labels)
        self.buckets = tuple(sorted(buckets))
        self._data: dict[tuple[str, ...], list[float]] = {}  # bucket counts..., sum, count
        self._lock = threading.Lock()

    def observe(self, value: float, *values: str) -> None:
        with self._lock:
            row = self._data.setdefault(values, [0.0] * (len(self.buckets) + 2))
            for i, bound in enumerate(self.buckets):
                if value <= bound:
                    row[i] += 1
            row[-2] += value
            row[-1] += 1

    def count(self, *values: str) -> float:
        row = self._data.get(values)
        return row[-1] if row else 0.0

    def render(self) -> Iterable[str]:
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} histogram"
        with self._lock:
            items = sorted((k, list(v)) for k, v in self._data.items())
        for values, row in items:
            for bound, n in zip(self.buckets, row, strict=False):
                le = 'le="' + _num(bound) + '"'
                yield f"{self.name}_bucket{_labels(self.labels, values, le)} {_num(n)}"
            inf = 'le="+Inf"'
            yield f"{self.name}_bucket{_labels(self.labels, values, inf)} {_num(row[-1])}"
            yield f"{self.name}_sum{_labels(self.labels, values)} {_num(row[-2])}"
            yield f"{self.name}_count{_labels(self.labels, values)} {_num(row[-1])}"


class Metrics:
    """The service's metrics; ``render()`` is the /metrics body."""

    def __init__(self) -> None:
        self.requests = Counter(
            "tierwise_http_requests_total",
            "HTTP requests by path and status code.",
            ("path", "status"),
        )
        self.latency = Histogram(
            "tierwise_http_request_duration_seconds",
            "HTTP request latency (request received to response ready), by path.",
            LATENCY_BUCKETS,
            ("path",),
        )
        self.decisions = Counter(
            "tierwise_route_decisions_total", "Routed prompts by chosen model.", ("model",)
        )
        self.item_errors = Counter(
            "tierwise_route_item_errors_total", "Prompts refused (invalid input) inside requests."
        )
        self.batch_size = Histogram(
            "tierwise_route_batch_size",
            "Prompts per model call (requests are batched together).",
            BATCH_BUCKETS,
        )
        self.reloads = Counter(
            "tierwise_artifact_reloads_total", "Artifact reload attempts by result.", ("result",)
        )
        self.internal_errors = Counter(
            "tierwise_internal_errors_total", "Unexpected server errors (HTTP 500); should be 0."
        )
        self.artifact = Gauge(
            "tierwise_artifact_info", "The artifact being served (value 1).", ("checksum",)
        )

    def set_artifact(self, checksum: str) -> None:
        with self.artifact._lock:
            self.artifact._values.clear()
        self.artifact.set(checksum, value=1.0)

    def render(self) -> bytes:
        lines: list[str] = []
        for metric in (
            self.requests,
            self.latency,
            self.decisions,
            self.item_errors,
            self.batch_size,
            self.reloads,
            self.internal_errors,
            self.artifact,
        ):
            lines.extend(metric.render())
        return ("\n".join(lines) + "\n").encode("utf-8")
