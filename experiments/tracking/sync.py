"""A tuning study in MLflow: a parent run per study, a child run per finished trial.

Idempotent: a trial whose child run already exists (tag ``tierwise.trial_number``, completed
with tag ``tierwise.synced``) is skipped; a child left half-written by an outage is deleted and
written again. So a study keeps running while the tracking server is down (the callback raises
:class:`TrackingUnavailable` quickly and the tuner carries on) and the next sync — the next
trial's callback, the next run, or `tierwise track sync CONFIG` — logs whatever is missing.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from tierwise.experiments.tracking.mlflow_log import log_batch
from tierwise.experiments.tracking.runs import CURVE_TAG, curve_tag, finite_metrics, flatten
from tierwise.experiments.tracking.store import connect, ensure_experiment, tracking_errors

if TYPE_CHECKING:
    import optuna
    from mlflow import MlflowClient

    from tierwise.experiments.config import ExperimentConfig
    from tierwise.experiments.tracking.config import ResolvedTracking
    from tierwise.experiments.training import Prepared

SYNCED_TAG = "tierwise.synced"


@dataclass
class SyncResult:
    """What a study sync did: the parent run, trials logged now, trials already tracked."""

    parent_run_id: str
    logged: list[int] = field(default_factory=list)  # trial numbers written now
    existing: int = 0  # trials already tracked
    rewritten: list[int] = field(default_factory=list)  # half-written children replaced


def cost_at_target(curve: Any, target_quality: float) -> float | None:
    """Cheapest cost per 1k among (cost per 1k, quality) points that reach the target."""
    pts = np.asarray(curve, dtype=np.float64).reshape(-1, 2)
    ok = pts[pts[:, 1] >= target_quality - 1e-12]
    return float(ok[:, 0].min()) if len(ok) else None


def trial_curve(trial: optuna.trial.FrozenTrial) -> list[list[float]]:
    """The trial's tuning curve as (cost per 1k, quality); user_attrs hold (quality, cost per
    query) per knob like ``Router.calibration_curve_``."""
    raw = trial.user_attrs.get("calibration_curve") or []
    try:
        arr = np.asarray(raw, dtype=np.float64).reshape(-1, 2)
    except ValueError:
        return []
    return [[1000.0 * c, q] for q, c in arr]


def trial_metrics(trial: optuna.trial.FrozenTrial) -> dict[str, float]:
    """A trial's finite metrics plus its objective values."""
    metrics = finite_metrics(trial.user_attrs.get("metrics") or {})
    values = trial.values or []
    if len(values) == 1:
        metrics["objective"] = float(values[0])
    for i, v in enumerate(values if len(values) > 1 else []):
        metrics[f"objective.{i}"] = float(v)
    if trial.duration is not None:
        metrics["trial_seconds"] = trial.duration.total_seconds()
    if "cost_at_target" not in metrics:
        q, pct = metrics.get("quality"), metrics.get("pct_ref_quality")
        rcfg = trial.user_attrs.get("router_config") or {}
        frac = (rcfg.get("policy", {}).get("select", {}) or {}).get("quality_fraction", 0.95)
        if q is not None and pct:
            cat = cost_at_target(trial_curve(trial), float(frac) * q / (pct / 100.0))
            if cat is not None:
                metrics["cost_at_target"] = cat
    return finite_metrics(metrics)


def _router_config(trial: optuna.trial.FrozenTrial) -> dict[str, Any]:
    raw = trial.user_attrs.get("router_config") or {}
    return json.loads(raw) if isinstance(raw, str) else dict(raw)


def _policy_label(rcfg: Mapping[str, Any]) -> str:
    pred = (rcfg.get("predictor") or {}).get("name", "?")
    pol = (rcfg.get("policy") or {}).get("name", "?")
    return f"router ({pred}/{pol})"


def _q(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'")


def search_all(client: MlflowClient, exp_id: str, filter_string: str) -> list[Any]:
    """Every run of an experiment matching ``filter_string`` (all result pages)."""
    runs: list[Any] = []
    token = None
    while True:
        page = client.search_runs([exp_id], filter_string, max_results=1000, page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def parent_run(
    client: MlflowClient,
    exp_id: str,
    study: optuna.Study,
    cfg: ExperimentConfig,
    prep: Prepared | None,
) -> str:
    """The study's parent run id (created on first sync)."""
    found = search_all(
        client,
        exp_id,
        f"tags.`tierwise.kind` = 'study' and tags.`tierwise.study` = '{_q(study.study_name)}'",
    )
    if found:
        return str(found[0].info.run_id)
    tags = {
        "tierwise.kind": "study",
        "tierwise.study": study.study_name,
        "tierwise.config": cfg.name,
    }
    run = client.create_run(exp_id, run_name=f"study {study.study_name}", tags=tags)
    params = flatten(cfg.model_dump(mode="json", by_alias=True))
    params["study.directions"] = json.dumps([d.name.lower() for d in study.directions])
    params["study.sampler"] = type(study.sampler).__name__
    if prep is not None:
        params["dataset.fingerprint"] = prep.dataset.fingerprint()
        tags["tierwise.dataset_fingerprint"] = params["dataset.fingerprint"]
    log_batch(client, run.info.run_id, params=params, tags=tags)
    return str(run.info.run_id)


def log_trial(
    client: MlflowClient,
    exp_id: str,
    parent_id: str,
    study: optuna.Study,
    trial: optuna.trial.FrozenTrial,
) -> str:
    """Log one finished trial as a child run of ``parent_id``; returns the run id."""
    rcfg = _router_config(trial)
    curve = trial_curve(trial)
    tags = {
        "mlflow.parentRunId": parent_id,
        "tierwise.kind": "trial",
        "tierwise.study": study.study_name,
        "tierwise.trial_number": str(trial.number),
        "tierwise.trial_state": trial.state.name,
        # Out-of-sample tuning prompts (cross-validation or the calibration split), never test.
        "tierwise.split": "tuning",
        "tierwise.policy": _policy_label(rcfg),
    }
    if curve:
        tags[CURVE_TAG] = curve_tag(curve)
    start = int(trial.datetime_start.timestamp() * 1000) if trial.datetime_start else None
    run = client.create_run(exp_id, start_time=start, tags=tags, run_name=f"trial {trial.number}")
    run_id = str(run.info.run_id)
    params = {f"router.{k}": v for k, v in flatten(rcfg).items()} if rcfg else {}
    params.update({f"optuna.{k}": str(v) for k, v in trial.params.items()})
    log_batch(client, run_id, params=params, metrics=trial_metrics(trial))
    if curve:
        client.log_dict(run_id, {"split": "tuning", "points": curve}, "cost_quality.json")
    client.set_tag(run_id, SYNCED_TAG, "1")
    end = trial.datetime_complete
    client.set_terminated(
        run_id,
        status="FAILED" if trial.state.name == "FAIL" else "FINISHED",
        end_time=int(end.timestamp() * 1000) if end else None,
    )
    return run_id


def sync_study(
    study: optuna.Study,
    *,
    cfg: ExperimentConfig,
    prep: Prepared | None = None,
    tracking_uri: str | None = None,
    tracking: ResolvedTracking | None = None,
    owns: Callable[[optuna.trial.FrozenTrial], bool] | None = None,
) -> SyncResult:
    """Log every finished trial of ``study`` that MLflow does not have yet.

    With ``owns``, only the trials it accepts are logged (and only their half-written runs are
    rewritten): a tune worker passes its own trials, so that two workers of one study never
    log the same trial twice, nor delete a run another worker is still writing. Without it
    (``tierwise track sync``) every trial is caught up.

    Raises TrackingUnavailable (within seconds) when the store is down; call again later.
    """
    tracking = tracking or cfg.tracking.resolve(cfg.name, tracking_uri=tracking_uri)
    client = connect(tracking)
    exp_id = ensure_experiment(client, tracking)
    with tracking_errors(tracking.uri):
        parent_id = parent_run(client, exp_id, study, cfg, prep)
        result = SyncResult(parent_id)
        children = search_all(
            client,
            exp_id,
            f"tags.`tierwise.kind` = 'trial' and tags.`tierwise.study` = '{_q(study.study_name)}'",
        )
        trials = study.get_trials(deepcopy=False)
        mine = {t.number for t in trials if owns is None or owns(t)}
        done: set[int] = set()
        for run in children:
            number = int(run.data.tags.get("tierwise.trial_number", -1))
            if run.data.tags.get(SYNCED_TAG) == "1" or number not in mine:
                done.add(number)
            else:  # an outage cut it short: write it again, whole
                client.delete_run(run.info.run_id)
                result.rewritten.append(number)
        result.existing = len(done)
        for trial in trials:
            if trial.state.is_finished() and trial.number not in done and trial.number in mine:
                log_trial(client, exp_id, parent_id, study, trial)
                result.logged.append(trial.number)
                done.add(trial.number)
        _update_parent(client, parent_id, study, len(done))
    return result


def _update_parent(client: MlflowClient, parent_id: str, study: optuna.Study, n: int) -> None:
    metrics: dict[str, float] = {"n_trials_tracked": float(n)}
    completed = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    metrics["n_trials_complete"] = float(len(completed))
    if len(study.directions) == 1 and completed:
        metrics["best_value"] = float(study.best_value)
        client.set_tag(parent_id, "tierwise.best_trial", str(study.best_trial.number))
    log_batch(client, parent_id, metrics=metrics)
    # Finished as of this sync (a later sync updates it): a RUNNING parent would look stuck.
    client.set_terminated(parent_id, status="FINISHED")


class StudyTracker:
    """An Optuna callback: ``study.optimize(..., callbacks=[StudyTracker(cfg)])``.

    Each call syncs the whole study (so trials missed during an outage are caught up by the
    next call) and raises TrackingUnavailable quickly when the store is down.
    """

    def __init__(
        self,
        cfg: ExperimentConfig,
        *,
        prep: Prepared | None = None,
        tracking_uri: str | None = None,
    ) -> None:
        self.cfg = cfg
        self.prep = prep
        self.tracking = cfg.tracking.resolve(cfg.name, tracking_uri=tracking_uri)

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> SyncResult:
        return sync_study(study, cfg=self.cfg, prep=self.prep, tracking=self.tracking)
