"""Wide sources: one row per prompt, a column per model and field.

A field is a template (``"{model}"``, ``"{model}|total_cost"``, ``"{model}_response"``) or an
explicit ``{model: column}`` mapping. Models are detected from the quality template: every
column it matches, except the id / prompt / task / ``ignore_columns`` and columns that a more
specific template of the same file claims (``gpt-4|total_cost`` is gpt-4's cost, not a model).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from tierwise.eval.importers.config import DataConfig, FieldSpec, SourceConfig
from tierwise.eval.importers.frame import (
    SourceData,
    check_unique,
    id_column,
    parse_field,
    read_ids,
    read_prompt_task,
    require_column,
    reserved_columns,
)
from tierwise.eval.importers.values import Where
from tierwise.router.errors import ConfigError, DataError

if TYPE_CHECKING:
    import pandas as pd

PLACEHOLDER = "{model}"


def template_regex(template: str) -> re.Pattern[str]:
    """A regex matching the column names a ``{model}`` template produces, capturing the model."""
    if PLACEHOLDER not in template:
        raise ConfigError(
            f"column template {template!r} must contain {PLACEHOLDER} (or be a mapping "
            '{model: column}); e.g. "{model}|total_cost"'
        )
    head, _, tail = template.partition(PLACEHOLDER)
    return re.compile("^" + re.escape(head) + "(?P<model>.+?)" + re.escape(tail) + "$", re.DOTALL)


def detect_models(columns: list[str], src: SourceConfig, cfg: DataConfig, name: str) -> list[str]:
    """Models named by the quality field of this wide source.

    A column another template claims for a model without a quality column (``c|cost`` but no
    ``c``) is an error: dropping that model silently would train on fewer models than the log has.
    """
    spec = src.quality
    assert spec is not None
    if isinstance(spec, dict):
        return list(spec)
    reserved = reserved_columns(src, cfg)
    others = {
        f: template_regex(s)
        for f, s in src.fields().items()
        if f != "quality" and isinstance(s, str)
    }
    claimed = {c for c in columns for rx in others.values() if rx.match(c)}
    for s in src.fields().values():
        if isinstance(s, dict):
            claimed.update(s.values())
    rx = template_regex(spec)
    models = []
    for c in columns:
        if c in reserved or c in claimed:
            continue
        m = rx.match(c)
        if m:
            models.append(m.group("model"))
    if not models:
        raise ConfigError(
            f"{name}: no column matches the quality template {spec!r} (columns: {columns}); "
            "fix `quality` or list `models`"
        )
    _check_orphans(columns, reserved, others, models, spec, name)
    return models


def _check_orphans(
    columns: list[str],
    reserved: set[str],
    others: dict[str, re.Pattern[str]],
    models: list[str],
    quality: str,
    name: str,
) -> None:
    for c in columns:
        if c in reserved:
            continue
        for fld, rx in others.items():
            m = rx.match(c)
            if m and m.group("model") not in models:
                model = m.group("model")
                raise DataError(
                    f"{name}: column {c!r} is the {fld} of model {model!r}, which has no quality "
                    f"column {quality.replace(PLACEHOLDER, model)!r} (models with one: {models}); "
                    f"add that column, or list {c!r} in `ignore_columns` to leave the model out"
                )


def column_for(spec: FieldSpec, model: str) -> str | None:
    """The column holding ``model``'s value under a template or mapping, or None."""
    if isinstance(spec, dict):
        return spec.get(model)
    return spec.replace(PLACEHOLDER, model)


def extract_wide(
    df: pd.DataFrame, src: SourceConfig, cfg: DataConfig, name: str, models: list[str]
) -> SourceData:
    """Parse this source's per-model columns for ``models`` (data names)."""
    ids = read_ids(df, src, cfg, name)
    check_unique(
        ids,
        name,
        id_column(src, cfg),
        "a wide log needs one row per prompt; deduplicate the file, or use `layout: long` if it "
        "has a row per prompt and model",
    )
    out = SourceData(name=name, ids=ids, rows=len(df))
    read_prompt_task(df, cfg, name, out)
    columns = [str(c) for c in df.columns]
    df.columns = columns
    for fld, spec in src.fields().items():
        per_model = {}
        for model in models:
            col = column_for(spec, model)
            if col is None:
                raise ConfigError(
                    f"{name}: the `{fld}` mapping has no column for model {model!r}; add it"
                )
            require_column(df, col, name, f"{fld} of model {model!r}")
            values, clipped = parse_field(df[col], fld, cfg, Where(name, col, ids))
            out.clipped += clipped
            per_model[model] = values
        out.fields[fld] = per_model
    out.models = list(models)
    return out
