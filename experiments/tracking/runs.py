"""Log a trained router as an MLflow run: params, test metrics, charts, artifact, pyfunc model.

``log_training`` is `tierwise train`'s run; ``log_chosen_router`` is a tuning study's chosen
policy (a child of the study's parent run). Both go through the MlflowClient (no global active
run), except the pyfunc model, which MLflow logs only into an active run.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import yaml

from tierwise.experiments.tracking.pending import RunRecord, record_id_for, spool, write_record

if TYPE_CHECKING:
    from tierwise.eval.reporting import ComparisonReport
    from tierwise.experiments.config import ExperimentConfig
    from tierwise.experiments.tracking.config import ResolvedTracking
    from tierwise.experiments.training import Prepared, TrainResult

MAX_PARAM = 6000  # MLflow's limit on a param value
CURVE_TAG = "tierwise.curve"  # (cost per 1k, quality) points, read back by `tierwise compare`
CURVE_POINTS = 60
LATENCY_PROMPTS = 32


def flatten(obj: Any, prefix: str = "") -> dict[str, str]:
    """Nested config → ``{"router.predictor.name": "knn", ...}``; scalar lists stay one value."""
    out: dict[str, str] = {}
    if isinstance(obj, Mapping):
        if not obj and prefix:
            out[prefix] = "{}"
        for k, v in obj.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    elif isinstance(obj, list | tuple) and any(isinstance(v, Mapping | list) for v in obj):
        for i, v in enumerate(obj):
            out.update(flatten(v, f"{prefix}.{i}"))
    else:
        text = json.dumps(obj) if isinstance(obj, list | tuple) else str(obj)
        out[prefix] = text if len(text) <= MAX_PARAM else text[: MAX_PARAM - 1] + "…"
    return out


def metric_key(name: str) -> str:
    """``name`` with the characters MLflow refuses in metric keys replaced by ``_``."""
    return "".join(ch if ch.isalnum() or ch in "_-./ " else "_" for ch in name)


def finite_metrics(values: Mapping[str, Any]) -> dict[str, float]:
    """The finite numeric entries of ``values`` as floats (MLflow rejects the others)."""
    out = {}
    for k, v in values.items():
        if isinstance(v, bool) or not isinstance(v, int | float | np.floating | np.integer):
            continue
        if np.isfinite(v):
            out[metric_key(k)] = float(v)
    return out


def curve_tag(points: Iterable[Iterable[float]]) -> str:
    """Compact JSON of at most CURVE_POINTS (cost per 1k, quality) points, for a run tag."""
    arr = np.asarray([list(p) for p in points], dtype=np.float64).reshape(-1, 2)
    arr = arr[np.isfinite(arr).all(axis=1)]
    if len(arr) > CURVE_POINTS:
        arr = arr[np.unique(np.round(np.linspace(0, len(arr) - 1, CURVE_POINTS)).astype(int))]
    return json.dumps([[float(f"{c:.6g}"), float(f"{q:.6g}")] for c, q in arr])


def policy_metrics(report: ComparisonReport, name: str) -> dict[str, float]:
    """The policy's headline numbers under plain names (shared with trial runs)."""
    row = report.row(name)
    values: dict[str, Any] = {
        "quality": row.quality,
        "cost_per_1k": row.cost_per_1k,
        "pct_ref_cost": row.pct_ref_cost,
        "pct_ref_quality": row.pct_ref_quality,
        "aiq": row.aiq,
        "gap_closed": row.gap_closed,
        "apgr": row.apgr,
    }
    for label, v in row.cost_at.items():
        values[f"cost_at_{label.rstrip('%')}pct"] = v
    first = next(iter(row.cost_at.values()), None)
    values["cost_at_target"] = first
    return finite_metrics(values)


def routing_latency_ms(artifact: Path, prompts: Iterable[str]) -> dict[str, float]:
    """Per-prompt latency of the saved router, one prompt per call, no embedding cache."""
    from tierwise.router.core import Router

    router = Router.load(str(artifact))
    router.config = router.config.model_copy(update={"cache_dir": None})
    sample = [p for p in prompts][:LATENCY_PROMPTS]
    if not sample:
        return {}
    router.route(sample[:1])  # loads the embedding model
    times = []
    for p in sample:
        t0 = time.perf_counter()
        router.route([p])
        times.append(1000.0 * (time.perf_counter() - t0))
    times.sort()
    return {
        "routing_latency_ms": statistics.median(times),
        "routing_latency_p95_ms": times[min(len(times) - 1, int(0.95 * len(times)))],
    }


def run_params(result: TrainResult, prep: Prepared, cfg: ExperimentConfig) -> dict[str, str]:
    """The MLflow params of a training run: its config, data and fitted choices."""
    from tierwise.router import __version__

    r = result.router
    params = flatten(cfg.model_dump(mode="json", by_alias=True))
    prices = prep.prices.version if prep.prices is not None else prep.dataset.price_table_version
    params.update(
        {
            "dataset.fingerprint": prep.dataset.fingerprint(),
            "dataset.n_prompts": str(prep.dataset.n_prompts),
            "dataset.n_train": str(prep.train.n_prompts),
            "dataset.n_calibration": str(prep.calibration.n_prompts),
            "dataset.n_test": str(prep.test.n_prompts),
            "dataset.models": json.dumps(list(prep.dataset.models)),
            "price_table_version": str(prices),
            "fitted.knob": f"{r.knob_:.6g}",
            "fitted.reference_model": r.reference_model_,
            "fitted.target_quality": f"{r.target_quality_:.6g}",
            "fitted.policy": r.policy_.name,
            "fitted.static_fallback": str(bool(getattr(r, "static_fallback_", False))).lower(),
            "tierwise_version": __version__,
        }
    )
    return params


def _files(
    result: TrainResult, cfg: ExperimentConfig, tmp: Path, title: str
) -> tuple[Path, list[Path]]:
    """The router artifact (saved now if train() had no out_dir) and the files to log."""
    artifact = result.artifact
    if artifact is None:
        artifact = Path(result.router.save(str(tmp / "router.tierwise")))
    plot = result.plot or result.report.plot(tmp / "cost_quality.png", title=title)
    cfg_yaml = tmp / "config.resolved.yaml"
    cfg_yaml.write_text(
        yaml.safe_dump(cfg.model_dump(mode="json", by_alias=True), sort_keys=False),
        encoding="utf-8",
    )
    report_json = tmp / "report.json"
    report_json.write_text(json.dumps(result.report.to_dict(), indent=1), encoding="utf-8")
    return artifact, [plot, cfg_yaml, report_json]


def collect_record(
    result: TrainResult,
    prep: Prepared,
    cfg: ExperimentConfig,
    tmp: Path,
    *,
    kind: str,
    tracking: ResolvedTracking,
    run_name: str | None = None,
    tags: Mapping[str, str] | None = None,
    extra_files: Iterable[Path] = (),
    register: bool | None = None,
    study: str | None = None,
    identity: dict[str, Any] | None = None,
) -> RunRecord:
    """What a fitted router's run logs (computed without MLflow); files are written to ``tmp``."""
    r = result.router
    row = result.report.row(result.policy_name)
    all_tags = {
        "tierwise.kind": kind,
        "tierwise.config": cfg.name,
        "tierwise.policy": result.policy_name,
        "tierwise.split": "test",
        "tierwise.dataset_fingerprint": prep.dataset.fingerprint(),
        CURVE_TAG: curve_tag(row.points),
        **(tags or {}),
    }
    artifact, files = _files(result, cfg, tmp, f"{cfg.name}: test split")
    metrics = {
        **policy_metrics(result.report, result.policy_name),
        **routing_latency_ms(artifact, prep.test.prompts),
        "fit_seconds": float(result.seconds),
        **{f"report.{k}": v for k, v in finite_metrics(result.report.flat_metrics()).items()},
    }
    cert = getattr(result, "certificate", None)
    if cert is not None:  # the quality guarantee, beside the metrics it promises
        metrics.update({f"certificate.{k}": v for k, v in finite_metrics(cert.metrics()).items()})
    return RunRecord(
        record_id=record_id_for(kind, identity),
        kind=kind,
        run_name=run_name or f"{kind} {r.config.predictor.name}/{r.config.policy.name}",
        tags=all_tags,
        params=run_params(result, prep, cfg),
        metrics=metrics,
        files=[str(f) for f in [*files, *extra_files]],
        artifact=str(artifact),
        example_prompts=list(prep.test.prompts[:3]),
        register=tracking.register if register is None else register,
        study=study,
        guarantee=cert.explain()[:4900] if cert is not None else None,
    )


def log_router_run(
    result: TrainResult,
    prep: Prepared,
    cfg: ExperimentConfig,
    *,
    kind: str,
    tracking: ResolvedTracking,
    **options: Any,
) -> str:
    """One run for a fitted router scored on test; returns the run id.

    When the store is down the run is spooled for `tierwise track sync` and TrackingUnavailable
    (saying so) is raised. ``options`` are :func:`collect_record`'s keywords.
    """
    from tierwise.experiments.tracking.store import TrackingUnavailable

    with tempfile.TemporaryDirectory(prefix="tierwise-track-") as tmp:
        record = collect_record(
            result, prep, cfg, Path(tmp), kind=kind, tracking=tracking, **options
        )
        try:
            return write_record(record, tracking)[0]
        except TrackingUnavailable as err:
            where = spool(record, cfg)
            raise TrackingUnavailable(
                f"{err}; the run is saved in {where} — `tierwise track sync {cfg.name}.yaml` "
                "(your config) logs it when the store is back"
            ) from None


def log_training(
    result: TrainResult,
    prep: Prepared,
    cfg: ExperimentConfig,
    *,
    tracking_uri: str | None = None,
) -> str:
    """The run of `tierwise train`; returns its run id. Raises TrackingUnavailable quickly."""
    tracking = cfg.tracking.resolve(cfg.name, tracking_uri=tracking_uri)
    return log_router_run(result, prep, cfg, kind="train", tracking=tracking)
