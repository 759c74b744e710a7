"""Write what a labelling run produced, ready to train on.

``<output.dir>/``
- ``table.parquet`` (or .csv/.jsonl): the wide table tierwise imports: ``id``, ``prompt``,
  ``task``, ``reference``, and per tier ``<tier>`` (quality in [0, 1], blank when the scorer
  could not score), ``<tier>|total_cost`` (usage × the upstream's prices),
  ``<tier>|input_tokens``, ``<tier>|output_tokens``. Only prompts every tier answered and
  that were scored are rows (a stopped run's table is complete for the rows it has);
- ``answers.jsonl``: every answer with its score, the scorer's note, the judge's raw output,
  tokens, cost, latency, and the error of calls that failed;
- ``prices.yaml``: the upstreams' prices as a tierwise price table (per tier);
- ``<name>.yaml``: the experiment config to train on it (``tierwise train`` runs it as is).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tierwise.eval.labelling.runner import Outcome, RunResult
from tierwise.router.errors import ConfigError

RESERVED = ("id", "prompt", "task", "reference")


@dataclass
class Written:
    """The files a labelling run wrote."""

    dir: Path
    table: Path
    answers: Path
    prices: Path
    config: Path
    rows: int  # complete prompts written
    incomplete: int  # prompts with some tier missing (not reached, failed, or not scored)


def _atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _rows(result: RunResult) -> tuple[list[list[Outcome]], int]:
    """Outcomes grouped per example; only examples whose every tier is complete."""
    per: dict[int, list[Outcome]] = {}
    for o in result.outcomes:
        if o is not None:
            per.setdefault(o.call.index, []).append(o)
    n_tiers = len(result.plan.tiers)
    complete = [
        per[i] for i in sorted(per) if len(per[i]) == n_tiers and all(o.complete for o in per[i])
    ]
    return complete, len(result.plan.examples) - len(complete)


def _cost(result: RunResult, o: Outcome) -> float:
    assert o.answer is not None
    spec = result.plan.specs[o.call.tier]
    cost = spec.cost(o.answer.input_tokens, o.answer.output_tokens)
    return cost if cost is not None else float(o.answer.cost_usd or 0.0)


def _table_records(result: RunResult, rows: list[list[Outcome]]) -> list[dict[str, Any]]:
    has_task = any(e.task is not None for e in result.plan.examples)
    has_ref = any(e.reference is not None for e in result.plan.examples)
    records = []
    for outs in rows:
        ex = outs[0].call.example
        rec: dict[str, Any] = {"id": ex.id, "prompt": ex.prompt}
        if has_task:
            rec["task"] = ex.task or ""
        if has_ref:
            rec["reference"] = ex.reference or ""
        for o in sorted(outs, key=lambda o: result.plan.tiers.index(o.call.tier)):
            assert o.answer is not None and o.score is not None
            t = o.call.tier
            rec[t] = math.nan if o.score.value is None else o.score.value
            rec[f"{t}|total_cost"] = _cost(result, o)
            rec[f"{t}|input_tokens"] = o.answer.input_tokens
            rec[f"{t}|output_tokens"] = o.answer.output_tokens
        records.append(rec)
    return records


def _write_table(records: list[dict[str, Any]], path: Path, fmt: str) -> None:
    import pandas as pd

    df = pd.DataFrame.from_records(records)
    tmp = path.with_name(path.name + ".tmp")
    if fmt == "parquet":
        df.to_parquet(tmp, index=False)
    elif fmt == "csv":
        df.to_csv(tmp, index=False)
    else:
        df.to_json(tmp, orient="records", lines=True, force_ascii=False)
    os.replace(tmp, path)


def _answer_line(result: RunResult, o: Outcome) -> dict[str, Any]:
    a, s, r = o.answer, o.score, o.reference_score
    return {
        "id": o.call.example.id,
        "tier": o.call.tier,
        "model": result.plan.specs[o.call.tier].model,
        "answer": None if a is None else a.text,
        "score": None if s is None else s.value,
        "note": None if s is None else s.note,
        "judge_raw": None if s is None else s.raw,
        "reference_score": None if r is None else r.value,
        "input_tokens": None if a is None else a.input_tokens,
        "output_tokens": None if a is None else a.output_tokens,
        "cost_usd": None if a is None else _cost(result, o),
        "latency_s": None if a is None else round(a.latency_s, 4),
        "cached": o.from_cache,
        "error": o.error,
    }


def price_table(result: RunResult) -> dict[str, Any]:
    """The upstreams' prices, per tier, in tierwise's price-table format."""
    models = {}
    for t in result.plan.tiers:
        s = result.plan.specs[t]
        models[t] = {
            "input_per_1m": s.usd_per_1m_input,
            "output_per_1m": s.usd_per_1m_output,
            "note": f"upstream model {s.model} at {s.base_url}",
        }
    return {
        "version": f"upstreams of {result.plan.cfg.name}",
        "currency": "USD",
        "source": "the upstreams config used by `tierwise label`",
        "models": models,
    }


def experiment_config(result: RunResult, table: Path, source: str) -> dict[str, Any]:
    """An experiment config (as a dict) that trains a router on the labelled table."""
    cfg = result.plan.cfg
    has_task = any(e.task is not None for e in result.plan.examples)
    has_ref = any(e.reference is not None for e in result.plan.examples)
    labels: dict[str, Any] = {"kind": "binary", "missing": cfg.score.missing_rule()}
    if cfg.score.method != "reference":
        labels = {"kind": "score", "range": [0.0, 1.0], "missing": cfg.score.missing_rule()}
        if cfg.score.threshold is not None:
            labels["threshold"] = cfg.score.threshold
    columns: dict[str, str] = {"id": "id", "prompt": "prompt"}
    if has_task:
        columns["task"] = "task"
    data: dict[str, Any] = {
        "sources": [
            {
                "path": table.name,
                "quality": "{model}",
                "cost": "{model}|total_cost",
                "input_tokens": "{model}|input_tokens",
                "output_tokens": "{model}|output_tokens",
            }
        ],
        "columns": columns,
        "models": list(result.plan.tiers),
        "ignore_columns": ["reference"] if has_ref else [],
        "labels": labels,
        "cost": {"prices": "prices.yaml", "chars_per_token": cfg.generation.chars_per_token},
    }
    return {
        "name": cfg.name,
        "description": f"labelled by `tierwise label` from {source} ({cfg.score.method} scoring)",
        "data": data,
        **cfg.output.experiment,
    }


def write_outputs(result: RunResult, source: str) -> Written:
    """Write the table, answers, prices and experiment config of ``result``."""
    cfg = result.plan.cfg
    clash = sorted(set(cfg.tiers) & set(RESERVED))
    if clash:
        raise ConfigError(
            f"tier names {clash} clash with the table's own columns {list(RESERVED)}; rename "
            "the tiers in the upstreams config"
        )
    out = cfg.out_dir()
    out.mkdir(parents=True, exist_ok=True)
    rows, incomplete = _rows(result)
    ext = {"parquet": "parquet", "csv": "csv", "jsonl": "jsonl"}[cfg.output.format]
    table = out / f"table.{ext}"
    _write_table(_table_records(result, rows), table, cfg.output.format)
    answers = out / "answers.jsonl"
    lines = [
        json.dumps(_answer_line(result, o), ensure_ascii=False)
        for o in result.outcomes
        if o is not None
    ]
    _atomic(answers, "\n".join(lines) + ("\n" if lines else ""))
    prices = out / "prices.yaml"
    _atomic(prices, yaml.safe_dump(price_table(result), sort_keys=False))
    config = out / f"{cfg.name}.yaml"
    exp = experiment_config(result, table, source)
    _atomic(config, yaml.safe_dump(exp, sort_keys=False, allow_unicode=True))
    return Written(out, table, answers, prices, config, len(rows), incomplete)
