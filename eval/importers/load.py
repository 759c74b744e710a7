"""Read every source of a data config, join them on the id, and build the RoutingDataset."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from tierwise.eval import costs
from tierwise.eval.dataset import ImportReport, RoutingDataset
from tierwise.eval.importers import long, wide
from tierwise.eval.importers.config import DataConfig
from tierwise.eval.importers.frame import SourceData, check_models_exist
from tierwise.eval.importers.join import Joined, check_configured_columns, join_sources, read_tasks
from tierwise.eval.importers.labels import MissingResult, apply_missing_rule
from tierwise.eval.importers.readers import read_source, source_path
from tierwise.router.errors import ConfigError, DataError
from tierwise.router.pricing import PriceTable

if TYPE_CHECKING:
    import pandas as pd

FloatArray = npt.NDArray[np.float64]


def _resolve(base: Path, p: str) -> Path:
    q = Path(p)
    return q if q.is_absolute() else base / q


def _read_frames(cfg: DataConfig, base: Path, progress: bool | None) -> list[pd.DataFrame]:
    from tqdm.auto import tqdm

    bar = tqdm(
        cfg.sources,
        desc="reading data",
        unit="file",
        disable=None if progress is None else not progress,
        leave=False,
    )
    return [read_source(src, base) for src in bar]


def _pick_models(cfg: DataConfig, frames: list[pd.DataFrame], names: list[str]) -> list[str]:
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


def _extract(
    cfg: DataConfig, frames: list[pd.DataFrame], names: list[str], models: list[str]
) -> list[SourceData]:
    datas = []
    for src, df, nm in zip(cfg.sources, frames, names, strict=True):
        extract = long.extract_long if src.layout == "long" else wide.extract_wide
        datas.append(extract(df, src, cfg, nm, models))
    return datas


def import_dataset(
    cfg: DataConfig,
    base_dir: str | Path = ".",
    name: str | None = None,
    progress: bool | None = None,
) -> RoutingDataset:
    """Build a RoutingDataset from ``cfg``; relative paths are resolved against ``base_dir``."""
    base = Path(base_dir)
    names = [source_path(s, base) for s in cfg.sources]
    frames = _read_frames(cfg, base, progress)
    check_configured_columns(cfg, frames, names)
    models = _pick_models(cfg, frames, names)
    datas = _extract(cfg, frames, names, models)
    joined = join_sources(cfg, datas, names)
    if cfg.exclude_models:
        joined.notes.append(f"models excluded by the config: {cfg.exclude_models}")
    tasks = read_tasks(cfg, datas, joined.ids)
    miss = _labels(joined, models, cfg.labels.missing, sum(d.clipped for d in datas))
    kept = np.flatnonzero(miss.keep)
    final = _rename(models, cfg.rename_models)
    kept_prompts = tuple(joined.prompts[i] or "" for i in kept)
    inputs = _cost_inputs(joined, models, final, kept)
    prices = _prices(cfg, base, final, inputs)
    res = costs.resolve_costs(
        final,
        inputs,
        costs.text_chars(kept_prompts),
        prices,
        chars_per_token=cfg.cost.chars_per_token,
        assumed_output_tokens=cfg.cost.assumed_output_tokens,
        ids=[joined.ids[i] for i in kept],
    )
    joined.notes.extend(res.notes)
    return RoutingDataset(
        name=name or cfg.name or "dataset",
        ids=np.asarray([joined.ids[i] for i in kept], dtype=np.str_),
        prompts=kept_prompts,
        models=tuple(final),
        quality=miss.quality[kept],
        cost=res.cost,
        tasks=None if tasks is None else tuple(tasks[i] for i in kept),
        input_tokens=res.input_tokens,
        output_tokens=res.output_tokens,
        price_table_version=None if prices is None else prices.version,
        report=_report(cfg, names, joined, miss, models, final, res),
    )


def _labels(joined: Joined, models: list[str], rule: str, clipped: int) -> MissingResult:
    quality = np.column_stack([joined.fields["quality"][m] for m in models])
    if clipped:
        joined.notes.append(f"{clipped} quality scores outside `labels.range` were clipped into it")
    miss = apply_missing_rule(quality, models, rule)
    if not miss.keep.any():
        raise DataError(
            "every prompt has a missing label for some model; nothing is left to import "
            "(set `labels.missing: as_failure` or `exclude_models` for sparse models)"
        )
    return miss


def _cost_inputs(
    joined: Joined, models: list[str], final: list[str], kept: npt.NDArray[np.int64]
) -> dict[str, costs.ModelCostInputs]:
    def col(fld: str, m: str) -> FloatArray | None:
        v = joined.fields.get(fld, {}).get(m)
        return None if v is None else v[kept]

    inputs = {}
    for m, fm in zip(models, final, strict=True):
        chars, text_chars = col("output_chars", m), col("output_text", m)
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
    return inputs


def _report(
    cfg: DataConfig,
    names: list[str],
    joined: Joined,
    miss: MissingResult,
    models: list[str],
    final: list[str],
    res: costs.CostResult,
) -> ImportReport:
    n_missing = int((~miss.keep).sum())
    return ImportReport(
        source="; ".join(names),
        rows_read=len(joined.ids),
        rows_kept=int(miss.keep.sum()),
        dropped={"missing label": n_missing} if n_missing else {},
        missing_labels=(
            {fm: miss.missing_per_model[m] for m, fm in zip(models, final, strict=True)}
            if any(miss.missing_per_model.values())
            else {}
        ),
        missing_label_rule=cfg.labels.missing,
        cost_source=res.source,
        notes=tuple(joined.notes),
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
