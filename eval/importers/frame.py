"""What one source contributes, and the column handling shared by wide and long sources."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from tierwise.eval.importers.config import DataConfig, SourceConfig
from tierwise.eval.importers.labels import to_quality
from tierwise.eval.importers.values import Where, parse_numbers, parse_text, text_lengths
from tierwise.router.errors import ConfigError, DataError

if TYPE_CHECKING:
    import pandas as pd

FloatArray = npt.NDArray[np.float64]
WHAT = {
    "quality": "a quality label",
    "cost": "a cost (USD)",
    "input_tokens": "an input token count",
    "output_tokens": "an output token count",
    "output_chars": "an output length (characters)",
}


@dataclass
class SourceData:
    """One source's content, aligned to its own unique ``ids`` (file order)."""

    name: str
    ids: list[str]
    rows: int  # rows in the file
    prompts: list[str | None] | None = None
    tasks: list[str | None] | None = None
    # field -> model (data name) -> values per id; quality already in [0, 1], text as characters
    fields: dict[str, dict[str, FloatArray]] = field(default_factory=dict)
    models: list[str] = field(default_factory=list)
    clipped: int = 0
    notes: list[str] = field(default_factory=list)


def shown_columns(columns: Iterable[object]) -> list[str]:
    """Column names for a message: the first 30, then how many there are."""
    cols = [str(c) for c in columns]
    return cols if len(cols) <= 30 else [*cols[:30], f"... ({len(cols)} columns)"]


def require_column(df: pd.DataFrame, column: str, name: str, role: str) -> None:
    """DataError naming the file, the missing column and the columns it has."""
    if column not in df.columns:
        raise DataError(
            f"{name}: column {column!r} ({role}) is missing; columns are "
            f"{shown_columns(df.columns)}; fix the column name in the config"
        )


def id_column(src: SourceConfig, cfg: DataConfig) -> str | None:
    """The id column of a source (its own setting, else the config's), or None."""
    return src.id if src.id is not None else cfg.columns.id


def read_ids(df: pd.DataFrame, src: SourceConfig, cfg: DataConfig, name: str) -> list[str]:
    """The id of each row (generated from row numbers when no id column is configured)."""
    col = id_column(src, cfg)
    if col is None:
        return [f"row{i + 1}" for i in range(len(df))]
    require_column(df, col, name, "the id")
    ids = parse_text(df[col])
    for i, v in enumerate(ids):
        if v is None or not v.strip():
            raise DataError(
                f"{name}, column {col!r}, row {i + 1}: the id is empty; give every row an id"
            )
    out = [_canonical_id(v) for v in ids if v is not None]
    return out


def _canonical_id(v: str) -> str:
    # Parquet/JSON ids may come as floats ("12.0") where a CSV has "12": join them as equal.
    if v.endswith(".0") and v[:-2].lstrip("-").isdigit():
        return v[:-2]
    return v


def check_unique(ids: list[str], name: str, col: str | None, hint: str) -> None:
    """DataError naming the first repeated id and its rows, unless every id is unique."""
    if len(set(ids)) == len(ids):
        return
    seen: dict[str, int] = {}
    for i, v in enumerate(ids):
        if v in seen:
            raise DataError(
                f"{name}, column {col!r}: duplicate id {v!r} at rows {seen[v] + 1} and {i + 1}; "
                + hint
            )
        seen[v] = i


def read_prompt_task(
    df: pd.DataFrame,
    cfg: DataConfig,
    name: str,
    out: SourceData,
    rows: npt.NDArray[np.int64] | None = None,
) -> None:
    """Fill prompts / tasks from this source's rows (``rows``: one row index per id)."""
    sel = (lambda s: s) if rows is None else (lambda s: s.iloc[rows])
    if cfg.columns.prompt in df.columns:
        out.prompts = parse_text(sel(df[cfg.columns.prompt]))
    if cfg.columns.task is not None and cfg.columns.task in df.columns:
        out.tasks = parse_text(sel(df[cfg.columns.task]))


def parse_field(
    values: pd.Series, fld: str, cfg: DataConfig, where: Where
) -> tuple[FloatArray, int]:
    """Parse one per-model column: returns values and how many labels were clipped."""
    if fld == "output_text":
        return text_lengths(values), 0
    if fld == "quality":
        raw = parse_numbers(values, where, WHAT[fld], allow_bool=True)
        return to_quality(raw, cfg.labels, where)
    return parse_numbers(values, where, WHAT[fld], min_value=0.0), 0


def reserved_columns(src: SourceConfig, cfg: DataConfig) -> set[str]:
    """Columns that are never model columns: prompt, id, task and the ignored ones."""
    cols = {cfg.columns.prompt, *cfg.ignore_columns}
    for c in (id_column(src, cfg), cfg.columns.task):
        if c is not None:
            cols.add(c)
    return cols


def check_models_exist(wanted: list[str], found: list[str], what: str) -> None:
    """ConfigError naming the models asked for that the log does not have."""
    missing = [m for m in wanted if m not in found]
    if missing:
        raise ConfigError(
            f"{what} lists models not in the data: {missing}; models in the data: {found}; "
            "fix the names (use the names as they appear in the data)"
        )
