"""Read every source of a data config, join them on the id, and build the RoutingDataset."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import numpy.typing as npt

from tierwise.eval import costs
from tierwise.eval.dataset import ImportReport, RoutingDataset
from tierwise.eval.importers import long, wide
from tierwise.eval.importers.config import DataConfig
from tierwise.eval.importers.frame import SourceData, check_models_exist
from tierwise.eval.importers.labels import apply_missing_rule
from tierwise.eval.importers.readers import read_source, source_path
from tierwise.router.errors import ConfigError, DataError
from tierwise.router.pricing import PriceTable

FloatArray = npt.NDArray[np.float64]


def _resolve(base: Path, p: str) -> Path:
    q = Path(p)
    return q if q.is_absolute() else base / q


def _pick_models(cfg: DataConfig, frames: list, names: list[str]) -> list[str]:
    qi = next(i for i, s in enumerate(cfg.sources) if s.quality is not None)
    src, df = cfg.sources[qi], frames[qi]
    if src.layout == "long":
        found = long.detect_models(df, src, names[qi])
        if cfg.models is not None:
            check_models_exist(cfg.models, found, "`models`")
    elif cfg.models is None:
        found = wide.detect_models([str(c) for c in df.columns], src, cfg, names[qi])
    else:
        found = list(cfg.models)  # each model's columns are checked when they are read
    models = list(cfg.models) if cfg.models is not None else found
    check_models_exist(cfg.exclude_models, models, "`exclude_models`")
    models = [m for m in models if m not in cfg.exclude_models]
    if not models:
        raise ConfigError("no models left to import; check `models` and `exclude_models`")
    return models


def _align(data: SourceData, ids: list[str]) -> npt.NDArray[np.int64]:
    pos = {pid: i for i, pid in enumerate(data.ids)}
    return np.array([pos.get(pid, -1) for pid in ids], dtype=np.int64)


def _take(values: FloatArray, idx: npt.NDArray[np.int64]) -> FloatArray:
    return np.where(idx >= 0, values[np.maximum(idx, 0)], np.nan)


def _tasks(
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


def import_dataset(
    cfg: DataConfig,
    base_dir: str | Path = ".",
    name: str | None = None,
    progress: bool | None = None,
) -> RoutingDataset:
    """Build a RoutingDataset from ``cfg``; relative paths are resolved against ``base_dir``."""
    from tqdm.auto import tqdm

    base = Path(base_dir)
    names = [source_path(s, base) for s in cfg.sources]
    frames = []
    bar = tqdm(
        cfg.sources,
        desc="reading data",
        unit="file",
        disable=None if progress is None else not progress,
        leave=False,
    )
    for src in bar:
        frames.append(read_source(src, base))
    models = _pick_models(cfg, frames, names)
    datas = []
    for src, df, nm in zip(cfg.sources, frames, names, strict=True):
        extract = long.extract_long if src.layout == "long" else wide.extract_wide
        datas.append(extract(df, src, cfg, nm, models))
    notes: list[str] = [n for d in datas for n in d.notes]
    if cfg.exclude_models:
        notes.append(f"models excluded by the config: {cfg.exclude_models}")

    main = next((d for d in datas if d.prompts is not None), None)
    if main is None:
        raise DataError(
            f"no source has the prompt column {cfg.columns.prompt!r} ({', '.join(names)}); "
            "set `columns.prompt`"
        )
    ids = main.ids
    n = len(ids)
    fields: dict[str, dict[str, FloatArray]] = {}
    for d in datas:
        idx = _align(d, ids)
        absent = int((idx < 0).sum())
        if absent:
            notes.append(f"{absent} of {n} prompts of {main.name} are not in {d.name}")
        extra = len(set(d.ids) - set(ids))
        if extra:
            notes.append(f"{extra} ids of {d.name} are not in {main.name}; ignored")
        for fld, per_model in d.fields.items():
            if fld in fields:
                raise ConfigError(f"`{fld}` is given by two sources; keep it in one")
            fields[fld] = {m: _take(v, idx) for m, v in per_model.items()}
    prompts = main.prompts
    assert prompts is not None
    for i, p in enumerate(prompts):
        if p is None or not p.strip():
            raise DataError(
                f"{main.name}, column {cfg.columns.prompt!r}, row {i + 1} (id {ids[i]!r}): the "
                "prompt is empty; fill it in or remove the row"
            )
    tasks = None
    if cfg.columns.task is not None:
        holder = next((d for d in datas if d.tasks is not None), None)
        if holder is None:
            raise DataError(
                f"no source has the task column {cfg.columns.task!r}; fix `columns.task`"
            )
        raw_tasks = [holder.tasks[k] if k >= 0 else None for k in _align(holder, ids)]  # type: ignore[index]
        tasks = _tasks(raw_tasks, cfg.columns.task_pattern, holder.name, cfg.columns.task, ids)

    quality = np.column_stack([fields["quality"][m] for m in models])
    clipped = sum(d.clipped for d in datas)
    if clipped:
        notes.append(f"{clipped} quality scores outside `labels.range` were clipped into it")
    miss = apply_missing_rule(quality, models, cfg.labels.missing)
    keep = miss.keep
    dropped = {}
    if not keep.all():
        dropped["missing label"] = int((~keep).sum())
    if not keep.any():
        raise DataError(
            "every prompt has a missing label for some model; nothing is left to import "
            "(set `labels.missing: as_failure` or `exclude_models` for sparse models)"
        )

    final = _rename(models, cfg.rename_models)
    kept = np.flatnonzero(keep)

    def col(fld: str, m: str) -> FloatArray | None:
        v = fields.get(fld, {}).get(m)
        return None if v is None else v[kept]

    inputs = {}
    for m, fm in zip(models, final, strict=True):
        chars = col("output_chars", m)
        text_chars = col("output_text", m)
        if chars is None:
            chars = text_chars
        elif text_chars is not None:
            chars = np.where(np.isfinite(chars), chars, text_chars)
        inputs[fm] = costs.ModelCostInputs(
            cost=col("cost", m),
            input_tokens=col("input_tokens", m),
            output_tokens=col("output_tokens", m),
            output_chars=chars,
        )
    kept_prompts = tuple(prompts[i] or "" for i in kept)
    prices = _prices(cfg, base, final, inputs)
    res = costs.resolve_costs(
        final,
        inputs,
        costs.text_chars(kept_prompts),
        prices,
        chars_per_token=cfg.cost.chars_per_token,
        assumed_output_tokens=cfg.cost.assumed_output_tokens,
        ids=[ids[i] for i in kept],
    )
    notes.extend(res.notes)
    report = ImportReport(
        source="; ".join(names),
        rows_read=n,
        rows_kept=len(kept),
        dropped=dropped,
        missing_labels=(
            {fm: miss.missing_per_model[m] for m, fm in zip(models, final, strict=True)}
            if any(miss.missing_per_model.values())
            else {}
        ),
        missing_label_rule=cfg.labels.missing,
        cost_source=res.source,
        notes=tuple(notes),
    )
    return RoutingDataset(
        name=name or cfg.name or "dataset",
        ids=np.asarray([ids[i] for i in kept], dtype=np.str_),
        prompts=kept_prompts,
        models=tuple(final),
        quality=miss.quality[kept],
        cost=res.cost,
        tasks=None if tasks is None else tuple(tasks[i] for i in kept),
        input_tokens=res.input_tokens,
        output_tokens=res.output_tokens,
        price_table_version=None if prices is None else prices.version,
        report=report,
    )


def _rename(models: list[str], renames: dict[str, str]) -> list[str]:
    check_models_exist(list(renames), models, "`rename_models`")
    final = [renames.get(m, m) for m in models]
    if len(set(final)) != len(final):
        raise ConfigError(
            f"`rename_models` makes two models share a name: {final}; fix the renames"
        )
    return final


def _prices(
    cfg: DataConfig, base: Path, models: list[str], inputs: dict[str, costs.ModelCostInputs]
) -> PriceTable | None:
    if cfg.cost.prices is None:
        return None
    table = PriceTable.load(_resolve(base, cfg.cost.prices))
    needed = [
        m
        for m in models
        if inputs[m].cost is None or bool(np.isnan(inputs[m].cost).any())  # type: ignore[arg-type]
    ]
    missing = [m for m in needed if m not in table]
    if missing:
        raise DataError(
            f"price table {table.path} has no price for models {missing}, which have queries "
            f"without a logged cost; add them to the table (it has {sorted(table.models)})"
        )
    excluded = {cfg.rename_models.get(m, m) for m in cfg.exclude_models}
    unused = [m for m in table.models if m not in models and m not in excluded]
    # With `models` listed the user picked a subset on purpose; a table for more is expected.
    if unused and cfg.cost.unused_prices == "error" and cfg.models is None:
        raise DataError(
            f"price table {table.path} has models that are not in the data: {unused}; data "
            f"models: {models}; fix `rename_models`, remove them from the table, or set "
            "`cost.unused_prices: ignore` for a shared table"
        )
    return table
