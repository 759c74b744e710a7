"""The prompts to label: read from a source, deduplicated by normalized text, sampled.

A source is anything the importers read (CSV, TSV, Parquet, JSONL, JSON, a Hugging Face
dataset), or the gateway's decision log (``kind: gateway_log``). Sampling is reproducible
(``seed``) and, with ``stratify``, proportional to each stratum's size (largest remainder),
so a rare task keeps its share instead of vanishing.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tierwise.eval.labelling.config import LabellingConfig
from tierwise.router.errors import DataError

_SPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class Example:
    """One prompt to label and what the source says about it."""

    id: str
    prompt: str
    task: str | None = None
    reference: str | None = None
    response: str | None = None  # the logged answer (length estimates only)
    row: dict[str, Any] = field(default_factory=dict, compare=False)


@dataclass
class PromptSet:
    """The prompts read for labelling and how many rows were skipped and why."""

    examples: list[Example]
    read: int  # rows in the source
    skipped_empty: int = 0
    duplicates: int = 0
    notes: list[str] = field(default_factory=list)


def normalize_text(text: str) -> str:
    """The dedup key: NFKC, case-folded, whitespace collapsed."""
    return _SPACE.sub(" ", unicodedata.normalize("NFKC", text)).strip().casefold()


def _cell(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value if isinstance(value, str) else str(value)


def _read_table(cfg: LabellingConfig) -> tuple[list[dict[str, Any]], str]:
    from tierwise.eval.importers.config import SourceConfig
    from tierwise.eval.importers.readers import read_source, source_path

    s = cfg.source
    src = SourceConfig(
        path=s.path,
        format=s.format,
        hf=s.hf,
        hf_config=s.hf_config,
        data_files=s.data_files,
        split=s.split,
        sep=s.sep,
        encoding=s.encoding,
        quality="{model}",
    )
    df = read_source(src, cfg.base_dir)
    rows = [{str(k): v for k, v in r.items()} for r in df.to_dict(orient="records")]
    return rows, source_path(src, cfg.base_dir)


def _require(rows: list[dict[str, Any]], column: str | None, name: str, role: str) -> None:
    if column is not None and rows and column not in rows[0]:
        raise DataError(
            f"{name}: column {column!r} ({role}) is missing; columns are {list(rows[0])[:30]}; "
            f"fix `columns.{role}` in the labelling config"
        )


def read_examples(cfg: LabellingConfig) -> PromptSet:
    """Every usable prompt of the source, in file order, deduplicated when configured."""
    if cfg.source.kind == "gateway_log":
        from tierwise.eval.labelling.gateway_log import read_gateway_log

        name = cfg.source.path or ""
        rows = read_gateway_log(name, cfg.base_dir, cfg.source.table)
    else:
        rows, name = _read_table(cfg)
    c = cfg.columns
    if cfg.source.kind == "gateway_log" and c.id is None:
        c = c.model_copy(update={"id": "request_id"})
    for role in ("id", "prompt", "task", "reference", "response"):
        _require(rows, getattr(c, role), name, role)
    if cfg.sample.stratify is not None:
        _require(rows, cfg.sample.stratify, name, "stratify")
    out = PromptSet(examples=[], read=len(rows))
    seen: dict[str, str] = {}
    ids: set[str] = set()
    for i, row in enumerate(rows):
        prompt = _cell(row.get(c.prompt))
        if prompt is None or not prompt.strip():
            out.skipped_empty += 1
            continue
        rid = _cell(row.get(c.id)) if c.id else str(i)
        if rid is None or rid in ids:
            raise DataError(
                f"{name}, column {c.id!r}, row {i + 1}: id {rid!r} is "
                f"{'empty' if rid is None else 'repeated'}; ids must be unique and non-empty"
            )
        ids.add(rid)
        if cfg.sample.dedup:
            key = normalize_text(prompt)
            if key in seen:
                out.duplicates += 1
                continue
            seen[key] = rid
        out.examples.append(
            Example(
                id=rid,
                prompt=prompt,
                task=_cell(row.get(c.task)) if c.task else None,
                reference=_cell(row.get(c.reference)) if c.reference else None,
                response=_cell(row.get(c.response)) if c.response else None,
                row=row,
            )
        )
    if not out.examples:
        raise DataError(f"{name}: no non-empty prompt in column {c.prompt!r}; check the source")
    return out


def allocate(sizes: Sequence[int], n: int) -> list[int]:
    """Split ``n`` over strata proportionally to ``sizes`` (largest remainder, capped)."""
    total = sum(sizes)
    if n >= total:
        return list(sizes)
    exact = [n * s / total for s in sizes]
    take = [min(s, math.floor(e)) for s, e in zip(sizes, exact, strict=True)]
    order = sorted(range(len(sizes)), key=lambda i: exact[i] - math.floor(exact[i]), reverse=True)
    left = n - sum(take)
    while left > 0:
        for i in order:
            if left and take[i] < sizes[i]:
                take[i] += 1
                left -= 1
    return take


def sample(examples: list[Example], cfg: LabellingConfig) -> list[Example]:
    """``sample.n`` examples (all when None), stratified by ``sample.stratify``; source order."""
    n = cfg.sample.n
    if n is None or n >= len(examples):
        return list(examples)
    rng = np.random.default_rng(cfg.sample.seed)
    strata: dict[str, list[int]] = defaultdict(list)
    col = cfg.sample.stratify
    for i, ex in enumerate(examples):
        strata[str(_cell(ex.row.get(col))) if col else ""].append(i)
    keys = sorted(strata)
    counts = allocate([len(strata[k]) for k in keys], n)
    chosen: list[int] = []
    for k, take in zip(keys, counts, strict=True):
        chosen.extend(int(i) for i in rng.choice(strata[k], size=take, replace=False))
    return [examples[i] for i in sorted(chosen)]


def load_prompts(cfg: LabellingConfig) -> tuple[list[Example], PromptSet]:
    """Read, deduplicate and sample: the examples to label and what reading them found."""
    found = read_examples(cfg)
    return sample(found.examples, cfg), found


def source_name(cfg: LabellingConfig) -> str:
    """A printable name for the job's prompt source (credentials redacted)."""
    s = cfg.source
    if s.path is not None and s.path.startswith(("postgresql://", "postgres://")):
        from tierwise.eval.labelling.gateway_log import _redact

        return _redact(s.path)
    return str(cfg.resolve(s.path)) if s.path is not None else f"hf:{s.hf}"


__all__ = ["Example", "PromptSet", "allocate", "load_prompts", "normalize_text", "sample"]
