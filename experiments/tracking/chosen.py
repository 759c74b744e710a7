"""Log a tuning study's chosen routers: test-split metrics, charts, artifact, registered model.

The chosen router is refitted and scored once on test (``experiments.training.train``) by the
tuner; this logs it as a child of the study's parent run, with the study's Pareto chart.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tierwise.experiments.tracking.runs import finite_metrics, log_router_run
from tierwise.experiments.tracking.store import (
    TrackingUnavailable,
    connect,
    ensure_experiment,
    tracking_errors,
)
from tierwise.experiments.tracking.sync import parent_run

if TYPE_CHECKING:
    import optuna

    from tierwise.experiments.config import ExperimentConfig
    from tierwise.experiments.training import Prepared, TrainResult


def pareto_mask(cost: np.ndarray, quality: np.ndarray) -> np.ndarray:
    """True where no other point is at most as costly and at least as good (one strictly)."""
    keep = np.ones(len(cost), dtype=bool)
    for i in range(len(cost)):
        dominated = (
            (cost <= cost[i])
            & (quality >= quality[i])
            & ((cost < cost[i]) | (quality > quality[i]))
        )
        keep[i] = not dominated.any()
    return keep


def plot_pareto(
    study: optuna.Study, path: str | Path, *, chosen: set[int] | None = None, title: str = ""
) -> Path | None:
    """Every completed trial's tuning (cost per 1k, quality); the Pareto front joined."""
    pts = []
    for t in study.get_trials(deepcopy=False):
        m = finite_metrics(t.user_attrs.get("metrics") or {})
        if t.state.name == "COMPLETE" and "cost_per_1k" in m and "quality" in m:
            pts.append((t.number, m["cost_per_1k"], m["quality"]))
    if not pts:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    num = np.array([p[0] for p in pts])
    cost = np.array([p[1] for p in pts])
    qual = np.array([p[2] for p in pts])
    front = pareto_mask(cost, qual)
    order = np.argsort(cost[front])
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    ax.scatter(cost[~front], qual[~front], s=14, color="#bbbbbb", label="trial")
    ax.plot(cost[front][order], qual[front][order], "o-", color="#1f77b4", label="Pareto front")
    for n in sorted(chosen or ()):
        hit = num == n
        if hit.any():
            ax.scatter(cost[hit], qual[hit], s=90, marker="*", color="#d62728", zorder=5)
            ax.annotate(
                f"trial {n}",
                (cost[hit][0], qual[hit][0]),
                textcoords="offset points",
                xytext=(5, 5),
                fontsize=8,
            )
    if (cost > 0).all():
        ax.set_xscale("log")
    ax.set_xlabel("cost per 1k queries (USD, tuning prompts)")
    ax.set_ylabel("mean quality (tuning prompts)")
    ax.set_title(title or f"study {study.study_name}: {len(pts)} trials")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out)
    plt.close(fig)
    return out


def log_chosen_router(
    result: TrainResult,
    prep: Prepared,
    cfg: ExperimentConfig,
    *,
    study: optuna.Study | None = None,
    trial_number: int | None = None,
    label: str | None = None,
    pareto_png: str | Path | None = None,
    tracking_uri: str | None = None,
    register: bool | None = None,
) -> str:
    """One run for a study's chosen router (child of the study's parent run); its run id.

    ``label`` names the choice (e.g. "cheapest at 95%"); the router is registered as a new
    version of ``tracking.registered_model`` unless ``register=False`` / ``register: false``.
    """
    tracking = cfg.tracking.resolve(cfg.name, tracking_uri=tracking_uri)
    tags: dict[str, Any] = {"tierwise.choice": label or "chosen"}
    if trial_number is not None:
        tags["tierwise.trial_number"] = str(trial_number)
    # The same choice from the same study and data is one run and one model version, however
    # often `tierwise tune` is re-run.
    identity = {
        "study": study.study_name if study is not None else None,
        "trial": trial_number,
        "label": label,
        "data": prep.dataset.fingerprint(),
        "router": cfg.router.model_dump(mode="json"),
    }
    with tempfile.TemporaryDirectory(prefix="tierwise-chosen-") as tmp:
        files = []
        if study is not None:
            try:
                client = connect(tracking)
                exp_id = ensure_experiment(client, tracking)
                with tracking_errors(tracking.uri):
                    parent_run(client, exp_id, study, cfg, prep)
            except TrackingUnavailable:
                pass  # the run is spooled below; `track sync` writes the study's parent first
            tags["tierwise.study"] = study.study_name
            if pareto_png is None:
                chosen = {trial_number} if trial_number is not None else None
                pareto_png = plot_pareto(study, Path(tmp) / "pareto.png", chosen=chosen)
        if pareto_png is not None:
            files.append(Path(pareto_png))
        return log_router_run(
            result,
            prep,
            cfg,
            kind="chosen",
            tracking=tracking,
            run_name=f"chosen {label or result.policy_name}",
            tags={k: str(v) for k, v in tags.items()},
            extra_files=files,
            register=register,
            study=study.study_name if study is not None else None,
            identity=identity,
        )
