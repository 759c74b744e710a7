"""Read the routing policies tracked in MLflow back into one table and one cost–quality chart.

Every run tierwise logs (a trained router, a study's trials and chosen routers) carries the same
metric names (quality, cost_per_1k, pct_ref_cost, aiq, gap_closed, cost_at_target, ...) and its
cost–quality points in the ``tierwise.curve`` tag, so one search returns everything compared.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tierwise.experiments.tracking.runs import CURVE_TAG
from tierwise.experiments.tracking.store import find_experiment, tracking_errors
from tierwise.experiments.tracking.sync import search_all
from tierwise.router.errors import ConfigError
from tierwise.router.tables import SEPARATOR, text_table

if TYPE_CHECKING:
    from mlflow import MlflowClient

# Sort keys: (metric, True when lower is better).
SORT_KEYS: dict[str, tuple[str, bool]] = {
    "cost_at_target": ("cost_at_target", True),
    "cost_per_1k": ("cost_per_1k", True),
    "quality": ("quality", False),
    "aiq": ("aiq", False),
    "gap_closed": ("gap_closed", False),
    "pct_ref_cost": ("pct_ref_cost", True),
    "routing_latency_ms": ("routing_latency_ms", True),
    "start_time": ("start_time", False),
}
KINDS = ("train", "chosen", "trial")
# Measured end to end (embedding included) on the saved router of a train or chosen run only.
PER_RUN_ONLY = {"routing_latency_ms", "routing_latency_p95_ms"}
COLUMNS = (  # header, metric, format
    ("quality", "quality", "{:.4f}"),
    ("cost/1k $", "cost_per_1k", "{:.4g}"),
    ("% ref cost", "pct_ref_cost", "{:.1f}"),
    ("cost@target $", "cost_at_target", "{:.4g}"),
    ("AIQ", "aiq", "{:.4f}"),
    ("gap closed", "gap_closed", "{:.3f}"),
    ("latency ms", "routing_latency_ms", "{:.2f}"),
)


@dataclass
class PolicyRun:
    """One tracked router, chosen router or tuning trial with its metrics and curve."""

    run_id: str
    name: str
    kind: str
    policy: str
    split: str
    metrics: dict[str, float]
    curve: list[tuple[float, float]] = field(default_factory=list)  # (cost per 1k, quality)
    start_time: int = 0
    study: str | None = None

    def value(self, metric: str) -> float | None:
        if metric == "start_time":
            return float(self.start_time)
        if metric in PER_RUN_ONLY and self.kind == "trial":
            return None  # a trial times cached-embedding scoring, not comparable with a router
        v = self.metrics.get(metric)
        return v if v is not None and math.isfinite(v) else None


def _curve(text: str | None) -> list[tuple[float, float]]:
    if not text:
        return []
    try:
        return [(float(c), float(q)) for c, q in json.loads(text)]
    except (ValueError, TypeError):
        return []


def load_runs(
    client: MlflowClient, uri: str, experiment: str, *, kinds: tuple[str, ...] = KINDS
) -> list[PolicyRun]:
    """Every finished tierwise policy run of the experiment (parents of studies left out)."""
    exp = find_experiment(client, experiment, uri)
    runs: list[Any] = []
    with tracking_errors(uri):
        for kind in kinds:  # MLflow's filter has no IN for tags
            runs += search_all(client, exp.experiment_id, f"tags.`tierwise.kind` = '{kind}'")
    out = []
    for r in runs:
        if r.info.status not in ("FINISHED",):
            continue
        tags = r.data.tags
        out.append(
            PolicyRun(
                run_id=r.info.run_id,
                name=r.info.run_name or r.info.run_id[:8],
                kind=tags.get("tierwise.kind", "?"),
                policy=tags.get("tierwise.policy", "?"),
                split=tags.get("tierwise.split", "?"),
                metrics={k: float(v) for k, v in r.data.metrics.items()},
                curve=_curve(tags.get(CURVE_TAG)),
                start_time=int(r.info.start_time or 0),
                study=tags.get("tierwise.study"),
            )
        )
    return out


def sort_runs(runs: list[PolicyRun], key: str) -> list[PolicyRun]:
    """``runs`` ordered by ``key`` (best first); ConfigError listing the sort keys."""
    if key not in SORT_KEYS:
        raise ConfigError(f"`--sort` must be one of {sorted(SORT_KEYS)}, got {key!r}")
    metric, ascending = SORT_KEYS[key]

    def k(r: PolicyRun) -> tuple[int, float, str]:
        v = r.value(metric)
        if v is None:
            return (1, 0.0, r.name)
        return (0, v if ascending else -v, r.name)

    return sorted(runs, key=k)


def select(runs: list[PolicyRun], limit: int | None) -> list[PolicyRun]:
    """Every trained and chosen router, then the first ``limit`` trials (all if None).

    Trials far outnumber routers and score on the tuning prompts (often higher than on test), so
    a plain top-N would show only trials.
    """
    routers = [r for r in runs if r.kind != "trial"]
    trials = [r for r in runs if r.kind == "trial"]
    return routers + trials[:limit] if limit is not None else routers + trials


def format_table(runs: list[PolicyRun], *, sort: str) -> str:
    """The runs as one table (routers above a rule, trials below) and a note on the sort."""
    header = ["#", "run", "kind", "split", "policy", *(c[0] for c in COLUMNS), "run id"]
    rows: list[Any] = []
    for i, r in enumerate(runs, 1):
        cells = [str(i), r.name, r.kind, r.split, r.policy]
        for _, metric, fmt in COLUMNS:
            v = r.value(metric)
            cells.append("—" if v is None else fmt.format(v))
        cells.append(r.run_id[:12])
        rows.append(cells)
    n_routers = sum(r.kind != "trial" for r in runs)
    if 0 < n_routers < len(rows):
        rows.insert(n_routers, SEPARATOR)  # trained and chosen routers above, trials below
    align = ["left"] * 5 + ["right"] * len(COLUMNS) + ["left"]
    out = [text_table(rows, header, align=align)]
    note = f"sorted by {sort} (trained and chosen routers first, then tuning trials)"
    if len({r.split for r in runs}) > 1:
        note += "; splits differ: trials are scored out of sample on the tuning prompts, trained "
        note += "and chosen routers once on test"
    if any(r.kind != "trial" for r in runs):
        note += "; latency: per prompt, embedding included, of the saved router (not for trials)"
    out.append(note)
    return "\n".join(out)


def plot_runs(runs: list[PolicyRun], path: str | Path, *, title: str, highlight: int = 10) -> Path:
    """Every run's cost–quality points on one log-cost chart; the first ``highlight`` in color."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 5.5), dpi=110)
    # tab10 without its grey (the colour of the runs not highlighted), plus a dark blue
    colors = [plt.get_cmap("tab10")(i) for i in range(10) if i != 7] + ["#393b79"]
    for i, r in reversed(list(enumerate(runs))):
        pts = [(c, q) for c, q in r.curve if c > 0] or (
            [(r.metrics["cost_per_1k"], r.metrics["quality"])]
            if r.value("cost_per_1k") and r.value("quality") is not None
            else []
        )
        if not pts:
            continue
        xs, ys = zip(*sorted(pts), strict=True)
        if i < highlight:
            color: Any = colors[i % len(colors)]
            ax.plot(xs, ys, ".-", color=color, lw=1.4, ms=4, label=f"#{i + 1} {r.name} ({r.split})")
            op = (r.value("cost_per_1k"), r.value("quality"))
            if op[0] and op[1] is not None:
                ax.scatter([op[0]], [op[1]], s=60, color=color, edgecolor="black", zorder=5)
        else:
            label = f"#{highlight + 1}–#{len(runs)}: other runs" if i == highlight else None
            ax.plot(xs, ys, "-", color="#bbbbbb", lw=0.8, zorder=0, label=label)
    ax.scatter([], [], s=60, color="white", edgecolor="black", label="operating point (knob)")
    ax.set_xscale("log")
    ax.set_xlabel("cost per 1k queries (USD, log scale)")
    ax.set_ylabel("mean quality")
    ax.set_title(title)
    ax.grid(alpha=0.3, which="both")
    from matplotlib.ticker import FuncFormatter

    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"${v:g}"))
    ax.xaxis.set_minor_formatter(FuncFormatter(_minor_money(ax)))
    ax.tick_params(axis="x", which="minor", labelsize=7)
    handles, labels = ax.get_legend_handles_labels()
    if handles:  # drawn last-to-first so the best sit on top; list them first-to-last
        ax.legend(handles[::-1], labels[::-1], fontsize=7, loc="lower right")
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out


def _minor_money(ax: Any) -> Any:
    """Minor tick labels on a log axis: only 2× and 5× a power of ten, and only when the axis
    spans under two decades (more would crowd the major labels)."""

    def fmt(v: float, _: Any) -> str:
        lo, hi = ax.get_xlim()
        if lo <= 0 or math.log10(hi / lo) >= 2:
            return ""
        lead = round(v / 10 ** math.floor(math.log10(v)), 6)
        return f"${v:g}" if lead in (2.0, 5.0) else ""

    return fmt
