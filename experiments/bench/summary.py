"""Benchmark results → mean ± 95% t-interval tables (Markdown), JSON, and a generated doc block."""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import numpy as np

from tierwise.experiments.bench.engine import Result
from tierwise.router.errors import DataError

T_975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306}
BEGIN, END = "<!-- bench_router tables: begin -->", "<!-- bench_router tables: end -->"


def mean_ci(values: Sequence[float]) -> tuple[float, float]:
    """Mean and the half-width of a 95% t-interval over seeds (NaN with one seed)."""
    a = np.asarray(values, dtype=np.float64)
    if a.size < 2:
        return float(a.mean()), float("nan")
    half = T_975.get(a.size - 1, 1.96) * float(a.std(ddof=1)) / math.sqrt(a.size)
    return float(a.mean()), half


def _pm(values: Sequence[float], scale: float = 100.0, digits: int = 1) -> str:
    m, h = mean_ci([scale * v for v in values])
    return f"{m:.{digits}f} ± {h:.{digits}f}" if math.isfinite(h) else f"{m:.{digits}f}"


def _cost_cell(values: Sequence[float | None]) -> str:
    reached = [100.0 * v for v in values if v is not None]
    if not reached:
        return "never"
    m, h = mean_ci(reached)
    note = "" if len(reached) == len(values) else f" ({len(values) - len(reached)} never)"
    return (f"{m:.1f} ± {h:.1f}" if math.isfinite(h) else f"{m:.1f}") + note


def group_key(r: Result) -> tuple[str, str, str, str, str, str]:
    """The configuration a result belongs to (results of several seeds share it)."""
    return (r.dataset, r.variant, r.normalization, r.predictor, r.policy, r.calibration)


def aggregate(results: Sequence[Result]) -> list[dict[str, Any]]:
    """One row per dataset × configuration: means over seeds, formatted cells."""
    groups: dict[tuple[str, ...], list[Result]] = {}
    for r in results:
        groups.setdefault(group_key(r), []).append(r)
    rows = []
    for (dsk, variant, norm, pred, pol, calib), rs in groups.items():
        n = len(rs)
        rows.append(
            {
                "dataset": dsk,
                "variant": variant,
                "normalization": norm,
                "predictor": pred,
                "policy": pol,
                "calibration": calib,
                "seeds": sorted(r.seed for r in rs),
                "gap": float(np.mean([r.gap_closed for r in rs])),
                "aiq_cell": _pm([r.aiq for r in rs], 1.0, 4),
                "gap_cell": _pm([r.gap_closed for r in rs]),
                "cost95_cell": _cost_cell([r.cost_at_95 for r in rs]),
                "cost100_cell": _cost_cell([r.cost_at_100 for r in rs]),
                "op_cell": f"{100 * np.mean([r.op_quality for r in rs]):.1f} / "
                f"{100 * np.mean([r.op_cost for r in rs]):.1f}",
                "meets_cell": f"{sum(r.op_meets_bar for r in rs)}/{n}",
                "fallback_cell": f"{sum(r.fallback for r in rs)}/{n}",
                "cal_gap": float(np.nanmean([r.cal_gap for r in rs]))
                if any(math.isfinite(r.cal_gap) for r in rs)
                else float("nan"),
                "fit_s": float(np.mean([r.fit_seconds for r in rs])),
                "zero": float(np.mean([r.zero_aiq for r in rs])),
                "oracle": float(np.mean([r.oracle_aiq for r in rs])),
            }
        )
    return rows


HEADER = (
    "| configuration | AIQ | gap closed % | cost @95% | cost @100% | op quality / cost % "
    "| op meets bar | fallback | cal gap % | fit s |"
)


def _label(r: dict[str, Any]) -> str:
    parts = [r["predictor"]]
    for key, default in (("policy", "default"), ("calibration", "default")):
        if r[key] != default:
            parts.append(r[key])
    if r["normalization"] != "default":
        parts.append(r["normalization"])
    label = " / ".join(parts)
    return f"{label} [{r['variant']}]" if r["variant"] else label


def table(rows: Sequence[dict[str, Any]], dataset: str) -> str:
    """Markdown table of one dataset's configurations, best gap closed first."""
    sel = sorted((r for r in rows if r["dataset"] == dataset), key=lambda r: -r["gap"])
    if not sel:
        return ""
    lines = [HEADER, "|---" * 10 + "|"]
    for r in sel:
        cal = "n/a" if not math.isfinite(r["cal_gap"]) else f"{100 * r['cal_gap']:.1f}"
        lines.append(
            f"| {_label(r)} | {r['aiq_cell']} | {r['gap_cell']} | {r['cost95_cell']} "
            f"| {r['cost100_cell']} | {r['op_cell']} | {r['meets_cell']} | {r['fallback_cell']} "
            f"| {cal} | {r['fit_s']:.1f} |"
        )
    z = np.mean([r["zero"] for r in sel])
    o = np.mean([r["oracle"] for r in sel])
    lines.append(f"| zero router | {z:.4f} | 0 | | | | | | | |")
    lines.append(f"| oracle | {o:.4f} | 100 | | | | | | | |")
    return "\n".join(lines)


def tables(rows: Sequence[dict[str, Any]], notes: dict[str, str]) -> str:
    """One markdown table per dataset, with its notes."""
    parts = []
    for key in dict.fromkeys(r["dataset"] for r in rows):
        parts.append(f"### {key}\n\n{notes.get(key, '')}\n\n{table(rows, key)}")
    return "\n\n".join(parts)


def write_json(path: Path, results: Sequence[Result], notes: dict[str, str], wall: float) -> None:
    """Write every result and the notes to ``path`` as JSON."""
    blob = {"notes": notes, "wall_seconds": wall, "results": [asdict(r) for r in results]}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(blob, indent=1))


def read_json(path: Path) -> tuple[list[Result], dict[str, str], float]:
    """Results of an earlier ``--json`` run (unknown keys are ignored, missing ones defaulted)."""
    try:
        blob = json.loads(path.read_text())
        names = {f.name for f in fields(Result)}
        results = [Result(**{k: v for k, v in r.items() if k in names}) for r in blob["results"]]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise DataError(
            f"`--merge` file {str(path)!r} must be a JSON file written by `tierwise bench "
            f"--json`, got an unreadable one ({err})"
        ) from None
    return results, dict(blob.get("notes", {})), float(blob.get("wall_seconds", 0.0))


def write_markdown(
    path: Path, rows: Sequence[dict[str, Any]], notes: dict[str, str], wall: float, cmd: str
) -> None:
    """Replace the generated block of ``path`` (hand-written text around it is kept)."""
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    block = "\n\n".join(
        [
            BEGIN,
            f"Generated by `{cmd}` ({time.strftime('%Y-%m-%d')}; {os.cpu_count()} CPUs, load "
            f"average {load:.1f} at the end; wall time of the runs shown {wall:.0f} s). Mean ± "
            "95% t-interval over the split seeds; cost columns are % of the best single model's "
            "cost on the test split; `op` is the knob chosen on calibration scored on test (% of "
            "the best model's quality / cost); `op meets bar`: seeds where it reached its quality "
            "bar on test; `fallback`: seeds where the router shipped the static mixture; `cal "
            "gap` scores the sweep on the calibration split (selection without test data).",
            tables(rows, notes),
            END,
        ]
    )
    old = path.read_text() if path.exists() else ""
    if BEGIN in old and END in old:
        head, rest = old.split(BEGIN, 1)
        text = head + block + rest.split(END, 1)[1]
    else:
        text = (old.rstrip() + "\n\n" if old.strip() else "") + block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
