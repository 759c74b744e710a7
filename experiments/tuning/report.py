"""After a study: pick the chosen routers, re-fit them, score them ONCE on the test split.

Constrained mode chooses the cheapest feasible trial (quality target met on calibration); when
no trial is feasible, the report says so and shows the closest one (highest calibration
quality). Multi-objective mode chooses up to ``report_top`` trials spread along the Pareto front.
Each chosen router is re-fitted with ``experiments.training.train`` (the path `tierwise train`
takes: fit, certification when the config has a `target`, evaluation once on test beside every
baseline) and printed beside its calibration-split numbers; the untuned router of the config,
at the same quality target, is scored the same way for comparison.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tierwise.router.tables import num, text_table, usd

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial

    from tierwise.eval.reporting import Row
    from tierwise.experiments.training import TrainResult
    from tierwise.router.config import RouterConfig


def complete_trials(study: optuna.Study) -> list[FrozenTrial]:
    """The study's complete trials that recorded metrics."""
    return [
        t
        for t in study.get_trials(deepcopy=False)
        if t.state.name == "COMPLETE" and "cost_per_1k" in (t.user_attrs.get("metrics") or {})
    ]


def choose_trials(study: optuna.Study, mode: str, top: int) -> tuple[list[FrozenTrial], bool]:
    """The trials to re-fit and test, and whether the constrained target was met by any."""
    done = complete_trials(study)
    if not done:
        return [], False

    def m(t: FrozenTrial) -> dict[str, float]:
        return dict(t.user_attrs["metrics"])

    if mode == "constrained":
        feasible = [t for t in done if t.user_attrs.get("feasible")]
        if feasible:
            best = min(feasible, key=lambda t: (m(t)["cost_per_1k"], -m(t)["quality"], t.number))
            return [best], True
        closest = max(done, key=lambda t: (m(t)["max_quality"], -m(t)["cost_per_1k"], -t.number))
        return [closest], False
    # Multi-objective: the front of trials that reach their own operating point (a trial that
    # asked for 94% of the reference and got 60% is cheap, hence "Pareto", but useless).
    pool = [t for t in done if t.user_attrs.get("feasible")] or done
    cost = np.array([m(t)["cost_per_1k"] for t in pool])
    qual = np.array([m(t)["quality"] for t in pool])
    keep = [
        t
        for i, t in enumerate(pool)
        if not ((cost <= cost[i]) & (qual >= qual[i]) & ((cost < cost[i]) | (qual > qual[i]))).any()
    ]
    front = sorted(keep, key=lambda t: (m(t)["cost_per_1k"], -m(t)["quality"], t.number))
    if len(front) <= top:
        return front, True
    picks = np.unique(np.round(np.linspace(0, len(front) - 1, top)).astype(int))
    return [front[i] for i in picks], True


def describe_config(rc: dict[str, Any]) -> str:
    """Short text for a RouterConfig dict: "knn(k=37, weights=softmax) platt threshold(gap)"."""

    def params(p: dict[str, Any]) -> str:
        shown = []
        for k, v in sorted(p.items()):
            shown.append(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}")
        return f"({', '.join(shown)})" if shown else ""

    pred, pol = rc.get("predictor", {}), rc.get("policy", {})
    norm = rc.get("normalization", {}).get("mode", "?")
    return (
        f"{rc.get('embedder', {}).get('name', '?')}/{norm} {pred.get('name')}"
        f"{params(pred.get('params', {}))} {rc.get('calibration', {}).get('method')} "
        f"{pol.get('name')}{params(pol.get('params', {}))}"
        f" @{pol.get('select', {}).get('quality_fraction', 0):.3g}"
    )


@dataclass
class Chosen:
    """A chosen (or the untuned) router: its config, tuning numbers and test report."""

    label: str
    trial_number: int | None  # None for the config's untuned router
    config: RouterConfig
    calibration: dict[str, float]  # tuning metrics (out of sample, never test)
    result: TrainResult  # re-fitted router and its test report

    @property
    def test(self) -> Row:
        return self.result.report.row(self.result.policy_name)


@dataclass
class TuneReport:
    """What ``tierwise tune`` prints and writes: counts, the chosen routers, files."""

    study_name: str
    storage: str
    mode: str
    target: str
    target_quality: float
    reference_model: str
    scheme: str  # which prompts scored the trials
    counts: dict[str, int]
    feasible: bool
    chosen: list[Chosen]
    default: Chosen | None
    files: dict[str, str] = field(default_factory=dict)

    def rows(self) -> list[Chosen]:
        return self.chosen + ([self.default] if self.default is not None else [])

    def table(self) -> str:
        """Each chosen router (and the default) on the tuning prompts and once on test."""
        targets = list(self.chosen[0].test.cost_at) if self.chosen else []
        head = ["router", "tune q", "tune $/1k", "tune %ref$", "tune AIQ", "tune gap"]
        head += ["test q", "test $/1k", "%ref$", "%refQ", "AIQ", "gap"]
        head += [f"$/1k@{t}" for t in targets]
        rows = []
        for c in self.rows():
            cal, t = c.calibration, c.test
            rows.append(
                [
                    c.label,
                    num(cal.get("quality")),
                    usd(cal.get("cost_per_1k")),
                    num(cal.get("pct_ref_cost"), ".1f") + "%",
                    num(cal.get("aiq")),
                    num(cal.get("gap_closed"), ".2f"),
                    num(t.quality),
                    usd(t.cost_per_1k),
                    num(t.pct_ref_cost, ".1f") + "%",
                    num(t.pct_ref_quality, ".1f") + "%",
                    num(t.aiq),
                    num(t.gap_closed, ".2f"),
                    *(usd(v) for v in t.cost_at.values()),
                ]
            )
        return text_table(rows, head)

    def summary(self) -> str:
        c = self.counts
        head = (
            f"study {self.study_name!r} ({self.mode}) in {self.storage}: {c['finished']} finished "
            f"trials ({c['complete']} complete, {c['pruned']} pruned, {c['failed']} failed, "
            f"{c['feasible']} meeting the target)"
        )
        lines = [
            head,
            f"trials scored on: {self.scheme}",
            f"target: {self.target} = quality {self.target_quality:.4f} on those prompts",
        ]
        if self.mode == "constrained" and not self.feasible:
            closest = self.chosen[0] if self.chosen else None
            lines.append(
                "NO TRIAL MET THE TARGET"
                + (
                    f"; closest: trial #{closest.trial_number} reaches quality "
                    f"{closest.calibration.get('max_quality', float('nan')):.4f} "
                    f"({100 * closest.calibration.get('max_quality', 0) / self.target_quality:.1f}%"
                    " of the target). Lower the target or widen the search space."
                    if closest
                    else ""
                )
            )
        if not self.chosen:
            lines.append("no complete trial to report yet: run more trials")
        for ch in self.chosen:
            lines.append(f"{ch.label}: {describe_config(ch.config.model_dump(mode='json'))}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        def entry(c: Chosen) -> dict[str, Any]:
            return {
                "label": c.label,
                "trial": c.trial_number,
                "router_config": c.config.model_dump(mode="json"),
                "calibration": c.calibration,
                "test": c.test.to_dict(),
                "knob": c.result.router.knob_,
            }

        return {
            "study": self.study_name,
            "storage": self.storage,
            "mode": self.mode,
            "target": self.target,
            "target_quality": self.target_quality,
            "reference_model": self.reference_model,
            "scheme": self.scheme,
            "counts": self.counts,
            "feasible": self.feasible,
            "chosen": [entry(c) for c in self.chosen],
            "default": entry(self.default) if self.default else None,
            "files": self.files,
        }


def counts(study: optuna.Study) -> dict[str, int]:
    """Trials by state and how many met the target."""
    states = [t.state.name for t in study.get_trials(deepcopy=False)]
    feasible = sum(
        1
        for t in study.get_trials(deepcopy=False)
        if t.state.name == "COMPLETE" and t.user_attrs.get("feasible")
    )
    return {
        "finished": states.count("COMPLETE") + states.count("PRUNED"),
        "complete": states.count("COMPLETE"),
        "pruned": states.count("PRUNED"),
        "failed": states.count("FAIL"),
        "running": states.count("RUNNING"),
        "feasible": feasible,
    }


def plot_trials(
    study: optuna.Study,
    path: Path,
    *,
    chosen: list[int],
    target_quality: float | None,
    title: str,
) -> Path | None:
    """Every complete trial at its chosen knob on the tuning prompts; feasible ones, the Pareto
    front, the target line and the chosen trials marked."""
    done = complete_trials(study)
    if not done:
        return None
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    cost = np.array([t.user_attrs["metrics"]["cost_per_1k"] for t in done])
    qual = np.array([t.user_attrs["metrics"]["quality"] for t in done])
    ok = np.array([bool(t.user_attrs.get("feasible")) for t in done])
    front: list[int] = []
    for i in np.lexsort((-qual, cost)):  # by cost; a point joins the front if it is better
        if not front or qual[i] > qual[front[-1]]:
            front.append(int(i))
    fig, ax = plt.subplots(figsize=(8, 5), dpi=110)
    if (~ok).any():
        ax.scatter(cost[~ok], qual[~ok], s=14, color="#999999", marker="x",
                   label="trial missing the target")  # fmt: skip
    ax.scatter(
        cost[ok], qual[ok], s=16, color="#1f77b4", alpha=0.7, label="trial meeting the target"
    )
    ax.plot(cost[front], qual[front], "-", color="#ff7f0e", lw=1.4, label="Pareto front")
    if target_quality is not None:
        ax.axhline(target_quality, color="#2ca02c", ls="--", lw=1, label="target")
    for k, t_num in enumerate(chosen):
        i = next((j for j, t in enumerate(done) if t.number == t_num), None)
        if i is not None:
            ax.scatter([cost[i]], [qual[i]], s=120, marker="*", color="#d62728", zorder=5,
                       label="chosen trial" if k == 0 else None)  # fmt: skip
            # Stagger the labels: two chosen trials often sit on the same point.
            ax.annotate(f"#{t_num}", (cost[i], qual[i]), xytext=(6, 6 + 11 * k),
                        textcoords="offset points", fontsize=8)  # fmt: skip
    if (cost > 0).all():
        from matplotlib.ticker import FuncFormatter

        ax.set_xscale("log")
        money = FuncFormatter(lambda v, _: f"${v:.3g}")
        ax.xaxis.set_major_formatter(money)
        ax.xaxis.set_minor_formatter(money if cost.max() / cost.min() < 10 else "")
        ax.tick_params(axis="x", which="minor", labelsize=7)
    ax.set_xlabel("cost per 1k queries, USD, log scale (tuning prompts, out of sample)")
    ax.set_ylabel("mean quality (tuning prompts)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def write_json(report: TuneReport, path: Path) -> Path:
    """Write the tune report to ``path`` as JSON; returns the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report.to_dict(), indent=2, default=str), encoding="utf-8")
    return path
