"""`tierwise data inspect CONFIG`: what the importer made of a traffic log, before any routing.

Rows read and kept, why rows were dropped, label coverage per model, each model's mean quality
and cost per 1,000 queries with the cost's source, and the oracle (per prompt the cheapest model
with the best quality) as the ceiling any router can reach.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from tierwise.router.tables import num, pct, text_table


def register(subparsers: Any) -> None:
    """Add ``tierwise data`` (and ``data inspect``) to the CLI."""
    parser = subparsers.add_parser(
        "data", help="inspect routing data", description="Inspect routing data sets."
    )
    sub = parser.add_subparsers(dest="data_command", metavar="SUBCOMMAND")
    sub.required = True
    inspect = sub.add_parser(
        "inspect",
        help="load a dataset through its config and summarise it",
        description=(
            "Load the dataset an experiment config describes and print rows read/kept, dropped "
            "rows and why, label coverage, per-model mean quality and cost per 1,000 queries "
            "(with the cost's source), and the oracle."
        ),
    )
    inspect.add_argument("config", help="experiment YAML, e.g. configs/routerbench.yaml")
    inspect.add_argument("--json", action="store_true", help="print machine-readable JSON")
    inspect.set_defaults(func=run_inspect)


def summarize(config: str | Path) -> dict[str, Any]:
    """Everything `inspect` prints, as a JSON-ready dict."""
    from tierwise.eval.baselines import oracle_choices
    from tierwise.experiments.config import load_dataset, load_experiment

    cfg = load_experiment(config)
    t0 = time.perf_counter()
    ds = load_dataset(cfg, progress=False)
    seconds = time.perf_counter() - t0
    rep = ds.report
    assert rep is not None
    n = ds.n_prompts
    choice = oracle_choices(ds.quality, ds.cost)
    rows = np.arange(n)
    picks = Counter(ds.models[j] for j in choice)
    models = []
    for j, m in enumerate(ds.models):
        missing = rep.missing_labels.get(m, 0)
        models.append(
            {
                "model": m,
                "label_coverage": (rep.rows_read - missing) / rep.rows_read
                if rep.rows_read
                else 0.0,
                "missing_labels": missing,
                "mean_quality": float(ds.quality[:, j].mean()),
                "cost_per_1k": float(ds.cost[:, j].mean() * 1000),
                "cost_source": rep.cost_source.get(m, "logged"),
                "oracle_share": picks.get(m, 0) / n,
            }
        )
    task_counts = Counter(ds.tasks) if ds.tasks is not None else None
    return {
        "name": ds.name,
        "config": str(config),
        "source": rep.source,
        "load_seconds": round(seconds, 3),
        "rows_read": rep.rows_read,
        "rows_kept": rep.rows_kept,
        "dropped": dict(rep.dropped),
        "missing_label_rule": rep.missing_label_rule,
        "unique_prompts": len(set(ds.prompts)),
        "n_models": ds.n_models,
        "tasks": None if task_counts is None else dict(sorted(task_counts.items())),
        "price_table_version": ds.price_table_version,
        "fingerprint": ds.fingerprint(),
        "models": models,
        "oracle": {
            "mean_quality": float(ds.quality[rows, choice].mean()),
            "cost_per_1k": float(ds.cost[rows, choice].mean() * 1000),
        },
        "notes": list(rep.notes),
    }


def _model_table(s: dict[str, Any]) -> str:
    """Per model (cheapest first): label coverage, quality, cost, oracle share; then the oracle."""
    rows: list[list[Any]] = [
        [
            m["model"],
            pct(m["label_coverage"]),
            m["missing_labels"],
            num(m["mean_quality"]),
            num(m["cost_per_1k"], ".4f"),
            pct(m["oracle_share"]),
            m["cost_source"],
        ]
        for m in sorted(s["models"], key=lambda m: m["cost_per_1k"])
    ]
    o = s["oracle"]
    rows.append(["oracle", "", "", num(o["mean_quality"]), num(o["cost_per_1k"], ".4f"), "", ""])
    head = ["model", "labels", "missing", "quality", "$/1k q", "oracle %", "cost source"]
    return text_table(rows, head, align=["left", *["right"] * 5, "left"])


def _format(s: dict[str, Any]) -> str:
    lines = [f"dataset {s['name']}  ({s['config']}, loaded in {s['load_seconds']:.2f} s)"]
    lines.append(f"source: {s['source']}")
    dropped = sum(s["dropped"].values())
    why = ", ".join(f"{k}: {v}" for k, v in s["dropped"].items()) or "none"
    lines.append(
        f"rows: {s['rows_read']} read, {s['rows_kept']} kept, {dropped} dropped ({why}); "
        f"missing labels rule: {s['missing_label_rule']}"
    )
    lines.append(f"prompts: {s['rows_kept']} ({s['unique_prompts']} distinct texts)")
    if s["tasks"] is not None:
        tasks = sorted(s["tasks"].items(), key=lambda kv: -kv[1])
        shown = ", ".join(f"{k} {v}" for k, v in tasks[:8])
        more = f", ... ({len(tasks)} tasks)" if len(tasks) > 8 else ""
        lines.append(f"tasks: {shown}{more}")
    lines.append(
        f"price table: {s['price_table_version'] or 'none'}; fingerprint {s['fingerprint']}"
    )
    lines.append("")
    lines.append(_model_table(s))
    if s["notes"]:
        lines.append("")
        lines.append("notes:")
        lines.extend(f"  - {note}" for note in s["notes"])
    return "\n".join(lines)


def run_inspect(args: argparse.Namespace) -> int:
    """Run ``tierwise data inspect``; returns the exit code."""
    summary = summarize(args.config)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(_format(summary))
    return 0
