"""Writing to an MLflow store: batched params/metrics/tags, the pyfunc model, version notes.

Shared by the training/chosen-router runs (runs.py) and the spool replay (pending.py), which
import it and not each other's loggers (that was an import circle).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from tierwise.experiments.tracking.config import ResolvedTracking

__all__ = ["describe_version", "log_batch", "log_model"]


def log_batch(
    client: MlflowClient,
    run_id: str,
    *,
    params: Mapping[str, str] = {},
    metrics: Mapping[str, float] = {},
    tags: Mapping[str, str] = {},
) -> None:
    """MLflow takes at most 100 params/tags and 1000 metrics per batch."""
    from mlflow.entities import Metric, Param, RunTag

    now = int(time.time() * 1000)
    p = [Param(k, v) for k, v in params.items()]
    t = [RunTag(k, v) for k, v in tags.items()]
    m = [Metric(k, v, now, 0) for k, v in metrics.items()]
    for i in range(0, max(len(p), len(t), 1), 100):
        client.log_batch(run_id, params=p[i : i + 100], tags=t[i : i + 100])
    for i in range(0, len(m), 1000):
        client.log_batch(run_id, metrics=m[i : i + 1000])


def log_model(
    tracking: ResolvedTracking,
    run_id: str,
    artifact: Path,
    example_prompts: list[str],
    register: bool,
) -> str | None:
    """Log (and maybe register) the pyfunc model in the run; the new version, if registered."""
    import mlflow

    from tierwise.experiments.tracking.pyfunc import log_router_model

    previous = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    mlflow.set_tracking_uri(tracking.uri)
    mlflow.set_registry_uri(tracking.uri)
    version: Any = None
    try:
        with mlflow.start_run(run_id=run_id):
            info = log_router_model(
                artifact,
                example_prompts=example_prompts,
                registered_model_name=tracking.registered_model if register else None,
            )
            mlflow.set_tag("tierwise.model_uri", info.model_uri)
            version = info.registered_model_version
            if version is not None:
                mlflow.set_tag(
                    "tierwise.registered_model", f"{tracking.registered_model}/{version}"
                )
    finally:
        mlflow.set_tracking_uri(previous[0])
        mlflow.set_registry_uri(previous[1])
    return None if version is None else str(version)


def describe_version(
    client: MlflowClient,
    name: str,
    version: str,
    tags: Mapping[str, str],
    metrics: Mapping[str, float],
) -> None:
    """The registry page says what each version is and how it scored on test."""
    keep = ("tierwise.kind", "tierwise.policy", "tierwise.config", "tierwise.dataset_fingerprint")
    for key in keep:
        if key in tags:
            client.set_model_version_tag(name, version, key, tags[key])
    for key in ("quality", "cost_per_1k", "pct_ref_cost", "cost_at_target", "aiq"):
        if key in metrics:
            client.set_model_version_tag(name, version, f"test.{key}", f"{metrics[key]:.6g}")
    q, c = metrics.get("quality"), metrics.get("cost_per_1k")
    text = f"{tags.get('tierwise.policy', 'router')} from `{tags.get('tierwise.config')}`"
    if q is not None and c is not None:
        text += f"; test quality {q:.4f} at ${c:.4g} per 1k queries"
    client.update_model_version(name, version, description=text)
