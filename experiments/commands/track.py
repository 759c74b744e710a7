"""`tierwise track`: check the MLflow store, and backfill tuning studies into it (`sync`)."""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tierwise.router.errors import ConfigError

if TYPE_CHECKING:
    from tierwise.experiments.config import ExperimentConfig
    from tierwise.experiments.training import Prepared, TrainResult

HELP = """\
MLflow tracking. `tierwise track check CONFIG` says where runs go and whether that store
answers. `tierwise track sync CONFIG` logs what MLflow missed while it was down: every
finished trial of the config's tuning studies (a parent run per study, a child run per trial),
and the training and chosen-router runs saved in runs/<name>/mlflow-pending/ (with their
registered model versions); it also marks KILLED the runs a killed process left RUNNING.
Running it twice logs nothing twice.
"""


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``tierwise track`` (``check``, ``sync``) to the CLI."""
    p = sub.add_parser(
        "track",
        help="check MLflow tracking, backfill studies",
        description=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = p.add_subparsers(dest="track_action", metavar="ACTION")
    actions.required = True
    check = actions.add_parser("check", help="where runs go and whether the store answers")
    check.add_argument("config", help="experiment YAML")
    check.add_argument("--tracking-uri", default=None, help="MLflow tracking URI")
    check.set_defaults(func=run_check)
    sync = actions.add_parser(
        "sync", help="log what the store missed: trials, train and chosen runs, versions"
    )
    sync.add_argument("config", help="experiment YAML")
    sync.add_argument(
        "--storage",
        default=None,
        help="Optuna storage: a journal file or a database URL "
        "(default: the tuner's storage for this config)",
    )
    sync.add_argument("--study", default=None, help="study name (default: every study there)")
    sync.add_argument("--tracking-uri", default=None, help="MLflow tracking URI")
    sync.add_argument(
        "--close-running-after",
        type=float,
        default=15.0,
        metavar="MINUTES",
        help="mark KILLED the tierwise runs still RUNNING this long after they started: their "
        "process was killed (default: 15)",
    )
    sync.set_defaults(func=run_sync)


def track_training(
    result: TrainResult, prep: Prepared, cfg: ExperimentConfig, tracking_uri: str | None
) -> str | None:
    """`tierwise train`'s hook: log the run; an outage is a warning (the artifact is saved)."""
    from tierwise.experiments.tracking.runs import log_training
    from tierwise.experiments.tracking.store import TrackingUnavailable

    tracking = cfg.tracking.resolve(cfg.name, tracking_uri=tracking_uri)
    try:
        run_id = log_training(result, prep, cfg, tracking_uri=tracking_uri)
    except TrackingUnavailable as err:
        print(f"tierwise: warning: run not tracked: {err}", file=sys.stderr)
        return None
    print(f"mlflow:   run {run_id} in experiment {tracking.experiment!r} at {tracking.uri}")
    if tracking.register:
        print(f"          registered as a new version of model {tracking.registered_model!r}")
    return run_id


def run_check(args: argparse.Namespace) -> int:
    """Run ``tierwise track check``: is the tracking store reachable and writable?"""
    from tierwise.experiments.config import load_experiment
    from tierwise.experiments.tracking.store import connect

    cfg = load_experiment(args.config)
    tracking = cfg.tracking.resolve(cfg.name, tracking_uri=args.tracking_uri)
    client = connect(tracking)
    exp = client.get_experiment_by_name(tracking.experiment)
    n = len(client.search_runs([exp.experiment_id], max_results=1000)) if exp else 0
    print(f"tracking URI:     {tracking.uri} (reachable)")
    print(
        f"experiment:       {tracking.experiment} ({n} runs)"
        if exp
        else f"experiment:       {tracking.experiment} (not created yet)"
    )
    print(f"registered model: {tracking.registered_model} (register: {tracking.register})")
    print(f"enabled:          {cfg.tracking.enabled}")
    return 0


def _tuning_storage() -> Any:
    """The tuner's storage helpers (flock-locked journals), when the tuning package is there."""
    try:
        return importlib.import_module("tierwise.experiments.tuning.storage")
    except ImportError:
        return None


def open_storage(spec: str) -> Any:
    """An Optuna storage (read for syncing) from a journal file path or a database URL."""
    if "://" not in spec and not Path(spec).is_file():
        raise ConfigError(open_storage_error(spec))
    tuning = _tuning_storage()
    if tuning is not None:
        return tuning.open_storage(spec, heartbeat=False)
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    if "://" in spec:
        return optuna.storages.RDBStorage(spec)
    return JournalStorage(JournalFileBackend(spec))


def default_storage(cfg: ExperimentConfig) -> str:
    """The tuner's storage for this config (runs/<name>/optuna.journal unless configured)."""
    tuning = _tuning_storage()
    if tuning is None:
        raise ConfigError("`--storage` is required: pass the Optuna storage the study used")
    return str(tuning.default_storage(cfg))


def run_sync(args: argparse.Namespace) -> int:
    """Run ``tierwise track sync``: write spooled runs and backfill a study's trials."""
    from tierwise.experiments.config import load_experiment
    from tierwise.experiments.tracking.pending import close_orphans, pending_dir, sync_pending

    cfg = load_experiment(args.config)
    tracking = cfg.tracking.resolve(cfg.name, tracking_uri=args.tracking_uri)
    spec = args.storage or _default_storage_or_none(cfg)
    has_study = spec is not None and ("://" in spec or Path(spec).is_file())
    if has_study:
        _sync_studies(args, cfg, str(spec))
    pending = sync_pending(cfg, tracking)
    print(
        f"runs saved while the store was down ({pending_dir(cfg)}): {len(pending.written)} "
        f"logged, {pending.already} already tracked"
    )
    closed = close_orphans(tracking, stale_after_s=60.0 * args.close_running_after)
    print(
        f"orphaned RUNNING runs (started over {args.close_running_after:g} min ago) marked "
        f"KILLED: {len(closed)}"
    )
    if not has_study and args.storage is not None:
        raise ConfigError(open_storage_error(args.storage))
    return 0


def _default_storage_or_none(cfg: ExperimentConfig) -> str | None:
    tuning = _tuning_storage()
    return None if tuning is None else str(tuning.default_storage(cfg))


def open_storage_error(spec: str) -> str:
    """The one-line error for a ``--storage`` that is neither a journal file nor a database URL."""
    return (
        f"`--storage` must be an existing journal file or a database URL, got {spec!r}; "
        "run `tierwise tune` first or pass the tuner's storage"
    )


def _sync_studies(args: argparse.Namespace, cfg: ExperimentConfig, spec: str) -> None:
    import optuna

    from tierwise.experiments.tracking.sync import sync_study

    storage = open_storage(spec)
    names = [args.study] if args.study else optuna.get_all_study_names(storage)
    if not names:
        raise ConfigError(f"no Optuna study in storage {spec!r}; run `tierwise tune` first")
    for name in names:
        try:
            study = optuna.load_study(study_name=name, storage=storage)
        except KeyError:
            known = optuna.get_all_study_names(storage)
            raise ConfigError(f"`--study` must be one of {known}, got {name!r}") from None
        res = sync_study(study, cfg=cfg, tracking_uri=args.tracking_uri)
        print(
            f"study {name}: logged {len(res.logged)} trial run(s), {res.existing} already "
            f"tracked, {len(res.rewritten)} half-written rewritten (parent run "
            f"{res.parent_run_id})"
        )
