"""Compare routing policies against every baseline, with paired bootstrap intervals.

The one entry point routers use::

    report = compare(quality, cost, models, {"knn": choices_k_by_n}, EvaluationConfig())
    print(report.table()); mlflow.log_metrics(report.flat_metrics()); report.plot("curve.png")

``policies`` maps a name to ``(n,)`` choices (one model per prompt) or ``(k, n)`` choices (a swept
policy, one row per knob value). Beside them the report always has every single model, the zero
router (mixtures of single models), random routing at the policy's costs (``random @ <name>``;
over a cost grid when no policy is given), and the oracle (point: best model per prompt; curve:
the exact frontier of argmax quality − λ·cost over all λ). Metric definitions are in
:mod:`eval.metrics`. AIQ and gap closed are defined for curves only (swept policies, zero router,
random, oracle); single models and ``(n,)`` policies show them as undefined (None / "n/a").

Every row is scored on the same prompts, and each bootstrap resample re-scores every row, the
zero router, the oracle and the reference on the same resampled prompts (paired resampling).
With ``bootstrap_samples: 0`` a report on ~3,000 prompts × 11 models takes ~0.1 s.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from pydantic import Field, field_validator

from tierwise.eval.baselines import (
    OracleFrontier,
    best_model,
    check_matrices,
    oracle_choices,
    random_matched,
    single_model_points,
    zero_router,
)
from tierwise.eval.bootstrap import Interval, percentile_interval, resample_weights
from tierwise.eval.dataset import RoutingDataset
from tierwise.eval.metrics import as_choices
from tierwise.eval.reporting._scoring import CPT_TARGETS, Entry, Scores, score_all
from tierwise.router.errors import ConfigError
from tierwise.router.schema import StrictModel

FloatArray = npt.NDArray[np.float64]

HEADLINE = ("quality", "cost_per_1k", "aiq", "gap_closed")


class EvaluationConfig(StrictModel):
    """How a comparison is scored. ``bootstrap_samples: 0`` skips intervals (for tuning loops)."""

    reference: str = "best"
    bootstrap_samples: int = Field(default=300, ge=0, le=100_000)
    ci_level: float = Field(default=0.95, gt=0.0, lt=1.0)
    seed: int = 0
    quality_targets: list[float] = Field(default_factory=lambda: [0.95, 1.0], min_length=1)
    random_levels: int = Field(default=11, ge=2, le=1000)

    @field_validator("quality_targets")
    @classmethod
    def _targets_positive(cls, v: list[float]) -> list[float]:
        bad = [t for t in v if not 0.0 < t <= 2.0]
        if bad:
            raise ValueError(f"each quality target must be a fraction in (0, 2], got {bad[0]}")
        return v


@dataclass(frozen=True)
class Row:
    """One line of the comparison. Costs are USD per 1,000 queries; None means "never"."""

    name: str
    kind: str  # "policy" | "model" | "zero" | "random" | "oracle"
    quality: float
    cost_per_1k: float
    pct_ref_cost: float
    pct_ref_quality: float
    aiq: float
    gap_closed: float
    cost_at: dict[str, float | None]  # "95%" -> cost per 1k to reach 95% of reference quality
    points: tuple[tuple[float, float], ...]  # (cost per 1k, quality) per knob value / vertex
    hull: tuple[tuple[float, float], ...]
    apgr: float | None = None
    cpt: dict[str, float | None] = field(default_factory=dict)  # "50%" -> strong-call share
    ci: dict[str, Interval] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "quality": _finite(self.quality),
            "cost_per_1k": _finite(self.cost_per_1k),
            "pct_ref_cost": _finite(self.pct_ref_cost),
            "pct_ref_quality": _finite(self.pct_ref_quality),
            "aiq": _finite(self.aiq),
            "gap_closed": _finite(self.gap_closed),
            "cost_at": dict(self.cost_at),
            "apgr": None if self.apgr is None else _finite(self.apgr),
            "cpt": dict(self.cpt),
            "ci": {k: v.to_dict() for k, v in self.ci.items()},
            "points": [list(p) for p in self.points],
            "hull": [list(p) for p in self.hull],
        }


def _finite(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


def _target_label(t: float) -> str:
    return f"{100 * t:g}%"


@dataclass(frozen=True)
class ComparisonReport:
    """Every policy beside every baseline on one set of prompts: rows, table, JSON, chart."""

    rows: tuple[Row, ...]
    models: tuple[str, ...]
    reference: str
    n_prompts: int
    c_max_per_1k: float
    config: EvaluationConfig
    two_model: tuple[str, str] | None = None  # (weak, strong) when APGR/CPT apply

    def row(self, name: str) -> Row:
        for r in self.rows:
            if r.name == name:
                return r
        raise ConfigError(f"no row {name!r} in the report; rows: {[r.name for r in self.rows]}")

    def table(self) -> str:
        from tierwise.eval.reporting._table import format_table

        return format_table(self)

    def to_dict(self) -> dict[str, Any]:
        return {
            "n_prompts": self.n_prompts,
            "models": list(self.models),
            "reference": self.reference,
            "c_max_per_1k": self.c_max_per_1k,
            "two_model": list(self.two_model) if self.two_model else None,
            "config": self.config.model_dump(),
            "rows": [r.to_dict() for r in self.rows],
        }

    def flat_metrics(self) -> dict[str, float]:
        """``{"<row>.<metric>": value}`` for MLflow; undefined and "never" values are left out."""
        out: dict[str, float] = {}
        for r in self.rows:
            key = "".join(ch if ch.isalnum() or ch in "_-./" else "_" for ch in r.name)
            values: dict[str, float | None] = {
                "quality": r.quality,
                "cost_per_1k": r.cost_per_1k,
                "aiq": r.aiq,
                "gap_closed": r.gap_closed,
                "apgr": r.apgr,
            }
            for label, v in r.cost_at.items():
                values[f"cost_at_{label.rstrip('%')}pct"] = v
            for metric, v in values.items():
                if v is not None and np.isfinite(v):
                    out[f"{key}.{metric}"] = float(v)
        return out

    def plot(self, path: str | Path, title: str | None = None) -> Path:
        from tierwise.eval.reporting._plots import plot_comparison

        return plot_comparison(self, path, title=title)


def _entries(
    q: FloatArray,
    c: FloatArray,
    models: tuple[str, ...],
    policies: Mapping[str, npt.ArrayLike],
    operating_points: Mapping[str, int],
    cfg: EvaluationConfig,
) -> list[Entry]:
    n, m = q.shape
    entries: list[Entry] = []
    random_seed = int(np.random.SeedSequence([cfg.seed, 1]).generate_state(1)[0])
    reserved = set(models) | {"zero router", "oracle", "random"}
    for name, raw in policies.items():
        if name in reserved or name.startswith("random @"):
            raise ConfigError(f"policy name {name!r} clashes with a baseline; rename the policy")
        ch = as_choices(raw, n, m, name=f"policies[{name!r}]")
        op = _operating_index(name, ch, q, c, operating_points)
        entries.append(Entry.policy(name, "policy", q, c, ch, op))
        costs = c[np.arange(n)[None, :], ch].mean(axis=1)
        entries.append(
            Entry.policy(
                f"random @ {name}", "random", q, c, random_matched(q, c, costs, random_seed), op
            )
        )
    for j, model in enumerate(models):
        entries.append(Entry.policy(model, "model", q, c, np.full((1, n), j, dtype=np.int64), 0))
    entries.append(Entry.zero())
    if not policies:
        # The hull's own vertices are on the grid so the expected random curve *is* the hull.
        hc, _, _ = zero_router(q, c)
        grid = np.union1d(hc, np.linspace(hc[0], hc[-1], cfg.random_levels))
        ch = random_matched(q, c, grid, random_seed)
        mid = int(np.argmin(np.abs(grid - (hc[0] + hc[-1]) / 2)))
        entries.append(Entry.policy("random", "random", q, c, ch, mid))
    entries.append(Entry.oracle_entry(q, c, oracle_choices(q, c), OracleFrontier(q, c)))
    return entries


def _operating_index(
    name: str, ch: npt.NDArray[np.int64], q: FloatArray, c: FloatArray, ops: Mapping[str, int]
) -> int:
    k = ch.shape[0]
    if name in ops:
        op = int(ops[name])
        if not 0 <= op < k:
            raise ConfigError(
                f"`operating_points[{name!r}]` must be a knob row in [0, {k - 1}], got {op}"
            )
        return op
    # Default: the highest-quality knob value, the cheaper one on ties.
    rows = np.arange(q.shape[0])[None, :]
    kq, kc = q[rows, ch].mean(axis=1), c[rows, ch].mean(axis=1)
    return int(np.lexsort((kc, -kq))[0])


def compare(
    quality: npt.ArrayLike,
    cost: npt.ArrayLike,
    models: tuple[str, ...] | list[str],
    policies: Mapping[str, npt.ArrayLike] | None = None,
    config: EvaluationConfig | None = None,
    *,
    operating_points: Mapping[str, int] | None = None,
) -> ComparisonReport:
    """Score ``policies`` and every baseline on the same prompts; see the module docstring.

    ``operating_points[name]`` picks which knob row of a swept policy fills the point columns
    (quality, cost, % of reference); by default its highest-quality row (cheapest on ties).
    """
    cfg = config or EvaluationConfig()
    q, c = check_matrices(quality, cost)
    models = tuple(models)
    if len(models) != q.shape[1]:
        raise ConfigError(f"`models` must name the {q.shape[1]} quality columns, got {len(models)}")
    if cfg.reference == "best":
        ref = best_model(q, c)
    elif cfg.reference in models:
        ref = models.index(cfg.reference)
    else:
        raise ConfigError(
            f"`reference` must be 'best' or one of the models {list(models)}, got {cfg.reference!r}"
        )
    entries = _entries(q, c, models, policies or {}, operating_points or {}, cfg)
    pair = _two_model_pair(q, c, models)
    point = score_all(entries, q, c, ref, cfg.quality_targets, None, pair)
    weights = resample_weights(q.shape[0], cfg.bootstrap_samples, cfg.seed)
    reps = [score_all(entries, q, c, ref, cfg.quality_targets, w, None) for w in weights]
    rows = tuple(_to_row(e.name, e.kind, point, reps, cfg) for e in entries)
    mc, _ = single_model_points(q, c)
    return ComparisonReport(
        rows=_ordered(rows),
        models=models,
        reference=models[ref],
        n_prompts=q.shape[0],
        c_max_per_1k=1000.0 * float(mc.max()),
        config=cfg,
        two_model=(models[pair[0]], models[pair[1]]) if pair else None,
    )


def _two_model_pair(
    q: FloatArray, c: FloatArray, models: tuple[str, ...]
) -> tuple[int, int] | None:
    """(weak, strong) when RouteLLM's metrics apply: two models, the better one costs more."""
    if len(models) != 2:
        return None
    mc, mq = single_model_points(q, c)
    strong = int(np.argmax(mq))
    weak = 1 - strong
    if mq[strong] <= mq[weak] or mc[strong] <= mc[weak]:
        return None  # no quality to buy, or it is free: PGR per strong call says nothing
    return (weak, strong)


def _ordered(rows: tuple[Row, ...]) -> tuple[Row, ...]:
    """Policies (each followed by its random twin), single models by cost, zero router, oracle."""
    head = [r for r in rows if r.kind in ("policy", "random")]
    models = sorted((r for r in rows if r.kind == "model"), key=lambda r: r.cost_per_1k)
    tail = [r for r in rows if r.kind == "zero"] + [r for r in rows if r.kind == "oracle"]
    return tuple(head + models + tail)


def compare_dataset(
    ds: RoutingDataset,
    policies: Mapping[str, npt.ArrayLike] | None = None,
    config: EvaluationConfig | None = None,
    *,
    operating_points: Mapping[str, int] | None = None,
) -> ComparisonReport:
    """:func:`compare` on a dataset; fails clearly if any quality label is unknown."""
    ds.require_complete_labels()
    return compare(
        ds.quality, ds.cost, ds.models, policies, config, operating_points=operating_points
    )


def _to_row(
    name: str,
    kind: str,
    point: dict[str, Scores],
    reps: list[dict[str, Scores]],
    cfg: EvaluationConfig,
) -> Row:
    s = point[name]
    labels = [_target_label(t) for t in cfg.quality_targets]
    ci: dict[str, Interval] = {}
    if reps:
        series = {
            "quality": [r[name].quality for r in reps],
            "cost_per_1k": [1000.0 * r[name].cost for r in reps],
            "aiq": [r[name].aiq for r in reps],
            "gap_closed": [r[name].gap_closed for r in reps],
        }
        for i, label in enumerate(labels):
            series[f"cost_at_{label}"] = [1000.0 * r[name].cost_at[i] for r in reps]
        est = {
            "quality": s.quality,
            "cost_per_1k": 1000.0 * s.cost,
            "aiq": s.aiq,
            "gap_closed": s.gap_closed,
        }
        est.update({f"cost_at_{lb}": 1000.0 * s.cost_at[i] for i, lb in enumerate(labels)})
        ci = {k: percentile_interval(v, cfg.ci_level, est[k]) for k, v in series.items()}

    def per_1k(x: float) -> float | None:
        return None if not np.isfinite(x) else 1000.0 * x

    def pairs(xy: tuple[FloatArray, FloatArray]) -> tuple[tuple[float, float], ...]:
        xs, ys = _thin(*xy)
        return tuple((1000.0 * float(a), float(b)) for a, b in zip(xs, ys, strict=True))

    nan = float("nan")
    return Row(
        name=name,
        kind=kind,
        quality=s.quality,
        cost_per_1k=1000.0 * s.cost,
        pct_ref_cost=100.0 * s.cost / s.ref_cost if s.ref_cost > 0 else nan,
        pct_ref_quality=100.0 * s.quality / s.ref_quality if s.ref_quality > 0 else nan,
        aiq=s.aiq,
        gap_closed=s.gap_closed,
        cost_at={lab: per_1k(v) for lab, v in zip(labels, s.cost_at, strict=True)},
        points=pairs(s.points),
        hull=pairs(s.hull),
        apgr=s.apgr,
        cpt={_target_label(t): v for t, v in zip(CPT_TARGETS, s.cpt, strict=False)},
        ci=ci,
    )


def _thin(x: FloatArray, y: FloatArray, keep: int = 400) -> tuple[FloatArray, FloatArray]:
    """At most ~``keep`` vertices for storage and plots (metrics use the exact curve).

    Half are spread evenly by index, half evenly in log cost, so the curve still looks right on
    the plot's log axis; the first and last vertices are always kept.
    """
    if x.size <= keep:
        return x, y
    idx = np.round(np.linspace(0, x.size - 1, keep // 2)).astype(np.int64)
    positive = x[x > 0]
    if positive.size:
        grid = np.geomspace(positive[0], x[-1], keep // 2)
        idx = np.concatenate((idx, np.clip(np.searchsorted(x, grid), 0, x.size - 1)))
    idx = np.unique(np.concatenate((idx, [0, x.size - 1])))
    return x[idx], y[idx]
