"""The tracker hook: hands finished trials to ``experiments.tracking`` (MLflow), never blocking.

The tuner knows nothing of MLflow: it calls ``on_trial_end`` callbacks with each finished
trial, and this one asks ``experiments.tracking.sync.sync_study`` to log whatever the store does
not have yet (idempotent), at most every ``every_s`` seconds so the study is not slowed down,
and once more at the end. A worker logs its own trials and those of workers that died on this
host (see :func:`owned_here`): two live workers of one study never both log a trial. When
tracking is unavailable (package missing, server down) the call fails fast, the study's wrapper
prints one warning and the trials stay in the Optuna storage; `tierwise track sync CONFIG`
backfills later.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial

    from tierwise.experiments.config import ExperimentConfig
    from tierwise.experiments.training import Prepared
    from tierwise.experiments.tuning.report import TuneReport


class TrackingHook:
    """An Optuna callback that logs each finished trial to MLflow as a child run."""

    __name__ = "tracking"

    def __init__(
        self,
        cfg: ExperimentConfig,
        prep: Prepared,
        *,
        tracking_uri: str | None = None,
        every_s: float = 15.0,
    ) -> None:
        self.cfg, self.prep, self.tracking_uri, self.every_s = cfg, prep, tracking_uri, every_s
        self._last = -float("inf")

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        if time.monotonic() - self._last < self.every_s:
            return
        self._last = time.monotonic()
        self.sync(study)

    def sync(self, study: optuna.Study) -> Any:
        from tierwise.experiments.tracking.sync import sync_study

        return sync_study(
            study, cfg=self.cfg, prep=self.prep, tracking_uri=self.tracking_uri, owns=owned_here
        )

    def chosen(self, study: optuna.Study, report: TuneReport) -> list[str]:
        """Log each chosen router (test metrics, artifact, Pareto chart) under the study's run."""
        from tierwise.experiments.tracking.chosen import log_chosen_router

        pareto = report.files.get("trials_png")
        run_ids = []
        for c in report.chosen:
            run_ids.append(
                log_chosen_router(
                    c.result,
                    self.prep,
                    self.cfg.model_copy(update={"router": c.config}),
                    study=study,
                    trial_number=c.trial_number,
                    label=c.label,
                    pareto_png=pareto,
                    tracking_uri=self.tracking_uri,
                )
            )
        return run_ids


def owned_here(trial: FrozenTrial) -> bool:
    """Whether this worker logs ``trial``: its own, one with no recorded worker (older
    studies), or one of a worker that died on this host. A live worker's trials, and those of
    other hosts' workers, are theirs to log (or `tierwise track sync`'s)."""
    from tierwise.experiments.tuning.study import _alive, worker_id

    worker = str(trial.user_attrs.get("worker", ""))
    if not worker or worker == worker_id():
        return True
    host, _, pid = worker.rpartition(":")
    return host == worker_id().rpartition(":")[0] and pid.isdigit() and not _alive(int(pid))


def tracking_available() -> bool:
    """Whether MLflow is installed (tracking is skipped without it)."""
    try:
        import tierwise.experiments.tracking.sync  # noqa: F401
    except ImportError:
        return False
    return True
