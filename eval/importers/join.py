"""Join the sources of one log on the id: the rows, the per-model fields, prompts and tasks."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from tierwise.eval.importers.config import DataConfig
from tierwise.eval.importers.frame import SourceData, shown_columns
from tierwise.router.errors import ConfigError, DataError

if TYPE_CHECKING:
    import pandas as pd

FloatArray = npt.NDArray[np.float64]


@dataclass
class Joined:
    """All sources aligned to the rows of the source holding the prompts."""

    ids: list[str]
    prompts: list[str | None]
    fields: dict[str, dict[str, FloatArray]]  # field -> model (data name) -> values per row
    notes: list[str] = field(default_factory=list)


def check_configured_columns(cfg: DataConfig, frames: list[pd.DataFrame], names: list[str]) -> None:
    """A column named in `columns` or `ignore_columns` must exist in some source.

    Checked before models are detected: a misspelt name would otherwise leave the real column to
    be taken for a model, and the error would be about its values instead of the name.
    """
    present = {str(c) for df in frames for c in df.columns}
    wanted = [("columns.prompt", cfg.columns.prompt)]
    if cfg.columns.task is not None:
        wanted.append(("columns.task", cfg.columns.task))
    wanted += [("ignore_columns", c) for c in cfg.ignore_columns]
    for key, col in wanted:
        if col not in present:
            cols = shown_columns([c for df in frames for c in df.columns])
            raise ConfigError(
                f"`{key}` must name a column of the data, got {col!r}, which is in no source "
                f"({', '.join(names)}); columns are {cols}; fix `{key}`"
            )


def _align(data: SourceData, ids: list[str]) -> npt.NDArray[np.int64]:
    pos = {pid: i for i, pid in enumerate(data.ids)}
    return np.array([pos.get(pid, -1) for pid in ids], dtype=np.int64)


def _take(values: FloatArray, idx: npt.NDArray[np.int64]) -> FloatArray:
    return np.where(idx >= 0, values[np.maximum(idx, 0)], np.nan)


def _main_source(cfg: DataConfig, datas: list[SourceData], names: list[str]) -> SourceData:
    main = next((d for d in datas if d.prompts is not None), None)
    if main is None:
        raise DataError(
            f"no source has the prompt column {cfg.columns.prompt!r} ({', '.join(names)}); "
            "set `columns.prompt`"
        )
    assert main.prompts is not None
    for i, p in enumerate(main.prompts):
        if p is None or not p.strip():
            raise DataError(
                f"{main.name}, column {cfg.columns.prompt!r}, row {i + 1} (id {main.ids[i]!r}): "
                "the prompt is empty; fill it in or remove the row"
            )
    return main


def join_sources(cfg: DataConfig, datas: list[SourceData], names: list[str]) -> Joined:
    """Align every source's fields to the rows of the first source holding the prompts."""
    main = _main_source(cfg, datas, names)
    assert main.prompts is not None
    out = Joined(ids=main.ids, prompts=main.prompts, fields={})
    out.notes.extend(n for d in datas for n in d.notes)
    n = len(main.ids)
    for d in datas:
        idx = _align(d, main.ids)
        absent = int((idx < 0).sum())
        if absent:
            out.notes.append(f"{absent} of {n} prompts of {main.name} are not in {d.name}")
        extra = len(set(d.ids) - set(main.ids))
        if extra:
            out.notes.append(f"{extra} ids of {d.name} are not in {main.name}; ignored")
        for fld, per_model in d.fields.items():
            if fld in out.fields:
                raise ConfigError(f"`{fld}` is given by two sources; keep it in one")
            out.fields[fld] = {m: _take(v, idx) for m, v in per_model.items()}
    return out


def read_tasks(cfg: DataConfig, datas: list[SourceData], ids: list[str]) -> tuple[str, ...] | None:
    """Each row's task (the task column, through `columns.task_pattern`), or None."""
    if cfg.columns.task is None:
        return None
    holder = next((d for d in datas if d.tasks is not None), None)
    if holder is None or holder.tasks is None:
        raise DataError(f"no source has the task column {cfg.columns.task!r}; fix `columns.task`")
    raw = [holder.tasks[k] if k >= 0 else None for k in _align(holder, ids)]
    return _apply_pattern(raw, cfg.columns.task_pattern, holder.name, cfg.columns.task, ids)


def _apply_pattern(
    raw: list[str | None], pattern: str | None, name: str, col: str, ids: list[str]
) -> tuple[str, ...]:
    rx = re.compile(pattern) if pattern else None
    out = []
    for i, t in enumerate(raw):
        text = "" if t is None else t
        if rx is not None:
            m = rx.search(text)
            if m is None:
                raise DataError(
                    f"{name}, column {col!r}, row {i + 1} (id {ids[i]!r}): value {text!r} does not "
                    f"match `columns.task_pattern` {pattern!r}; fix the pattern"
                )
            text = m.group(1) if m.groups() else m.group(0)
        out.append(text)
    return tuple(out)
