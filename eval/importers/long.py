"""Long sources: one row per (prompt, model), as most request logs are written."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from tierwise.eval.importers.config import DataConfig, SourceConfig
from tierwise.eval.importers.frame import (
    SourceData,
    id_column,
    parse_field,
    read_ids,
    read_prompt_task,
    require_column,
)
from tierwise.eval.importers.values import Where, parse_text
from tierwise.router.errors import ConfigError, DataError

if TYPE_CHECKING:
    import pandas as pd


def detect_models(df: pd.DataFrame, src: SourceConfig, name: str) -> list[str]:
    """The model names of a long-format log, in order of first appearance."""
    assert src.model is not None
    require_column(df, src.model, name, "the model")
    seen: dict[str, None] = {}
    for i, v in enumerate(parse_text(df[src.model])):
        if v is None or not v.strip():
            raise DataError(
                f"{name}, column {src.model!r}, row {i + 1}: the model name is empty; fill it in"
            )
        seen.setdefault(v, None)
    return list(seen)


def extract_long(
    df: pd.DataFrame, src: SourceConfig, cfg: DataConfig, name: str, models: list[str]
) -> SourceData:
    """Pivot this source to one value per (id, model) for ``models`` (data names)."""
    assert src.model is not None
    if id_column(src, cfg) is None:
        raise ConfigError(
            f"{name}: a long log needs `columns.id` (or the source's `id`): the column that "
            "tells which rows belong to the same prompt"
        )
    row_ids = read_ids(df, src, cfg, name)
    require_column(df, src.model, name, "the model")
    row_models = [v if v is not None else "" for v in parse_text(df[src.model])]
    wanted = {m: j for j, m in enumerate(models)}
    ids: list[str] = []
    pos: dict[str, int] = {}
    first_row: list[int] = []
    for i, pid in enumerate(row_ids):
        if pid not in pos:
            pos[pid] = len(ids)
            ids.append(pid)
            first_row.append(i)
    out = SourceData(name=name, ids=ids, rows=len(df))
    # Which (prompt, model) cell each row fills; a second row for the same cell is an error.
    cell = np.full((len(ids), len(models)), -1, dtype=np.int64)
    skipped = 0
    for i, (pid, model) in enumerate(zip(row_ids, row_models, strict=True)):
        j = wanted.get(model)
        if j is None:
            skipped += 1
            continue
        r = pos[pid]
        if cell[r, j] >= 0:
            raise DataError(
                f"{name}: prompt id {pid!r} has two rows for model {model!r} "
                f"(rows {cell[r, j] + 1} and {i + 1}); a long log needs one row per prompt and "
                "model — deduplicate it"
            )
        cell[r, j] = i
    if skipped:
        out.notes.append(f"{name}: {skipped} rows of models not imported were skipped")
    read_prompt_task(df, cfg, name, out, rows=np.asarray(first_row, dtype=np.int64))
    _check_consistent(df, cfg, name, row_ids, pos, out)
    for fld, col in src.fields().items():
        assert isinstance(col, str)
        require_column(df, col, name, fld)
        values, clipped = parse_field(df[col], fld, cfg, Where(name, col, row_ids))
        out.clipped += clipped
        per_model = {}
        for model, j in wanted.items():
            idx = cell[:, j]
            per_model[model] = np.where(idx >= 0, values[np.maximum(idx, 0)], np.nan)
        out.fields[fld] = per_model
    out.models = list(models)
    return out


def _check_consistent(
    df: pd.DataFrame,
    cfg: DataConfig,
    name: str,
    row_ids: list[str],
    pos: dict[str, int],
    out: SourceData,
) -> None:
    """Rows of one prompt must agree on its text: otherwise the id does not identify a prompt."""
    for col, first in ((cfg.columns.prompt, out.prompts), (cfg.columns.task, out.tasks)):
        if col is None or first is None:
            continue
        for i, (pid, v) in enumerate(zip(row_ids, parse_text(df[col]), strict=True)):
            if v != first[pos[pid]]:
                raise DataError(
                    f"{name}, column {col!r}, row {i + 1}: prompt id {pid!r} has a different "
                    f"{col!r} than its first row; ids must identify one prompt — fix the id column"
                )
