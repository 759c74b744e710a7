"""Optuna studies over the router: predictor, policy, normalization, embedder and calibration.

``config`` holds the `tune:` section (imported by experiments.config, so this package imports
nothing heavy); ``space`` resolves and suggests; ``workspace`` embeds once; ``fastknn`` sorts
neighbours once; ``objective`` scores a configuration out of sample (never on test);
``storage`` opens journal files and databases; ``study`` creates/resumes/runs; ``hooks`` hands
finished trials to MLflow tracking; ``report`` re-fits the chosen routers and scores them once
on test; ``session`` ties them together.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tierwise.experiments.tuning.config import TuneConfig

if TYPE_CHECKING:
    from tierwise.experiments.config import ExperimentConfig

__all__ = ["TuneConfig", "default_storage"]


def default_storage(cfg: ExperimentConfig) -> str:
    """Where `tierwise tune` keeps this config's study (journal file or database URL)."""
    from tierwise.experiments.tuning.storage import default_storage as _default

    return _default(cfg)
