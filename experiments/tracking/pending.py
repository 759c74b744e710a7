"""Router runs that could not be logged yet, and the idempotent writer both paths share.

A trained or chosen router's run is first *collected* (params, metrics, tags, files: no MLflow
involved), then *written*. When the store is down the collected record is spooled to
``runs/<config>/mlflow-pending/<record id>/`` and `tierwise track sync CONFIG` writes it later.

Each run carries its record id (tag ``tierwise.record``): a record already written completely
(tag ``tierwise.synced``) is never written twice, and a run an outage or a kill left
half-written is deleted with its model versions and written again. A chosen router's record id
is derived from what was chosen (study, trial, label, data, router config), so re-running a
finished study registers nothing new.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tierwise.experiments.tracking.mlflow_log import describe_version, log_batch, log_model
from tierwise.experiments.tracking.store import connect, ensure_experiment, tracking_errors

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from tierwise.experiments.config import ExperimentConfig
    from tierwise.experiments.tracking.config import ResolvedTracking

RECORD_TAG = "tierwise.record"
SYNCED_TAG = "tierwise.synced"
PENDING_DIR = "mlflow-pending"
STALE_RUNNING_S = 15 * 60  # a RUNNING tierwise run older than this has lost its process


@dataclass
class RunRecord:
    """Everything one router run logs; ``files`` are paths (spooled: relative to the record)."""

    record_id: str
    kind: str  # train | chosen
    run_name: str
    tags: dict[str, str]
    params: dict[str, str]
    metrics: dict[str, float]
    files: list[str]  # charts (*.png under charts/), config and report at the root
    artifact: str  # the router artifact (logged under router/ and as the pyfunc model)
    example_prompts: list[str]
    register: bool
    study: str | None = None  # a chosen router's study: its run becomes the parent
    guarantee: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def record_id_for(kind: str, identity: dict[str, Any] | None) -> str:
    """A fresh id per training; a stable one for a chosen router (same choice, same id)."""
    if identity is None:
        return f"{kind}-{time.time_ns():x}"
    blob = json.dumps(identity, sort_keys=True, default=str).encode()
    return f"{kind}-{hashlib.sha256(blob).hexdigest()[:20]}"


def pending_dir(cfg: ExperimentConfig) -> Path:
    """Where unlogged runs of this config wait (beside the tuner's default journal)."""
    return Path("runs") / cfg.name / PENDING_DIR


def spool(record: RunRecord, cfg: ExperimentConfig) -> Path:
    """Copy the record's files next to its JSON so that a later sync needs nothing else."""
    dest = pending_dir(cfg) / record.record_id
    dest.mkdir(parents=True, exist_ok=True)
    files = []
    for i, f in enumerate([*record.files, record.artifact]):
        src = Path(f)
        target = dest / f"{i}-{src.name}"
        if src.is_dir():
            shutil.copytree(src, target, dirs_exist_ok=True)
        else:
            shutil.copy2(src, target)
        files.append(target.name)
    saved = RunRecord(**{**asdict(record), "files": files[:-1], "artifact": files[-1]})
    (dest / "record.json").write_text(json.dumps(asdict(saved), indent=1), encoding="utf-8")
    return dest


def load_spooled(path: Path) -> RunRecord:
    """A run record spooled to ``path`` while the store was down."""
    data = json.loads((path / "record.json").read_text(encoding="utf-8"))
    rec = RunRecord(**data)
    rec.files = [str(path / f) for f in rec.files]
    rec.artifact = str(path / rec.artifact)
    return rec


def _q(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'")


def _existing(client: MlflowClient, exp_id: str, record_id: str) -> str | None:
    """The run id of this record if written completely; half-written ones are removed."""
    runs = client.search_runs([exp_id], f"tags.`{RECORD_TAG}` = '{_q(record_id)}'")
    done = None
    for run in runs:
        if run.data.tags.get(SYNCED_TAG) == "1" and done is None:
            done = str(run.info.run_id)
            continue
        for v in client.search_model_versions(f"run_id = '{run.info.run_id}'"):
            client.delete_model_version(v.name, v.version)
        client.delete_run(run.info.run_id)
    return done


def _study_parent(client: MlflowClient, exp_id: str, study: str | None) -> str | None:
    if study is None:
        return None
    found = client.search_runs(
        [exp_id], f"tags.`tierwise.kind` = 'study' and tags.`tierwise.study` = '{_q(study)}'"
    )
    return str(found[0].info.run_id) if found else None


def write_record(record: RunRecord, tracking: ResolvedTracking) -> tuple[str, bool]:
    """Log ``record`` unless already logged; (run id, whether it was written now)."""
    client = connect(tracking)
    exp_id = ensure_experiment(client, tracking)
    with tracking_errors(tracking.uri):
        done = _existing(client, exp_id, record.record_id)
        if done is not None:
            return done, False
        tags = {**record.tags, RECORD_TAG: record.record_id}
        parent = _study_parent(client, exp_id, record.study)
        if parent is not None:
            tags["mlflow.parentRunId"] = parent
        run_id = str(client.create_run(exp_id, run_name=record.run_name, tags=tags).info.run_id)
        try:
            if record.guarantee:
                client.set_tag(run_id, "tierwise.guarantee", record.guarantee)
            log_batch(client, run_id, params=record.params, metrics=record.metrics)
            for f in record.files:
                client.log_artifact(
                    run_id, f, artifact_path="charts" if f.endswith(".png") else None
                )
            client.log_artifact(run_id, record.artifact, artifact_path="router")
            version = log_model(
                tracking, run_id, Path(record.artifact), record.example_prompts, record.register
            )
            if version is not None:
                describe_version(client, tracking.registered_model, version, tags, record.metrics)
            client.set_tag(run_id, SYNCED_TAG, "1")
        except BaseException:
            client.set_terminated(run_id, status="FAILED")
            raise
        client.set_terminated(run_id, status="FINISHED")
    return run_id, True


@dataclass
class PendingResult:
    """What replaying the spool did: runs written, already logged, orphans closed."""

    written: list[str] = field(default_factory=list)  # run ids written now
    already: int = 0  # records found already logged (their spool is removed)
    closed: list[str] = field(default_factory=list)  # orphaned RUNNING runs marked KILLED


def sync_pending(cfg: ExperimentConfig, tracking: ResolvedTracking) -> PendingResult:
    """Write every spooled record of ``cfg``, oldest first; each spool goes once it is logged."""
    out = PendingResult()
    root = pending_dir(cfg)
    spools = sorted(root.glob("*/record.json"), key=lambda p: p.stat().st_mtime)
    for path in spools:
        run_id, now = write_record(load_spooled(path.parent), tracking)
        if now:
            out.written.append(run_id)
        else:
            out.already += 1
        shutil.rmtree(path.parent)
    return out


def close_orphans(
    tracking: ResolvedTracking, *, stale_after_s: float = STALE_RUNNING_S
) -> list[str]:
    """Mark KILLED the tierwise runs left RUNNING by a killed process (started long ago)."""
    client = connect(tracking)
    exp = client.get_experiment_by_name(tracking.experiment)
    if exp is None:
        return []
    cutoff = int((time.time() - stale_after_s) * 1000)
    closed = []
    with tracking_errors(tracking.uri):
        runs = client.search_runs(
            [exp.experiment_id],
            f"attributes.status = 'RUNNING' and attributes.start_time < {cutoff}",
            max_results=1000,
        )
        for run in runs:
            if "tierwise.kind" in run.data.tags:
                client.set_terminated(run.info.run_id, status="KILLED")
                closed.append(str(run.info.run_id))
    return closed
