"""Seeded train / calibration / test splits that never put the same prompt text in two splits."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from pydantic import Field, model_validator

from tierwise.eval.dataset import RoutingDataset
from tierwise.router.errors import ConfigError
from tierwise.router.schema import StrictModel

IntArray = npt.NDArray[np.int64]


class SplitConfig(StrictModel):
    """Fractions of prompt *groups* (identical texts form one group) per split."""

    train: float = Field(0.6, gt=0, lt=1)
    calibration: float = Field(0.2, gt=0, lt=1)
    test: float = Field(0.2, gt=0, lt=1)
    seed: int = 0
    stratify_by_task: bool = True

    @model_validator(mode="after")
    def _sum_to_one(self) -> SplitConfig:
        total = self.train + self.calibration + self.test
        if abs(total - 1.0) > 1e-6:
            raise ValueError(
                f"train + calibration + test must sum to 1, got {total:.4f}; adjust the fractions"
            )
        return self


@dataclass(frozen=True)
class Splits:
    """Row indices of the train, calibration and test splits."""

    train: IntArray
    calibration: IntArray
    test: IntArray

    def apply(self, ds: RoutingDataset) -> tuple[RoutingDataset, RoutingDataset, RoutingDataset]:
        return ds.subset(self.train), ds.subset(self.calibration), ds.subset(self.test)


def _normalize_text(text: str) -> str:
    # Duplicates in real logs differ only in whitespace or case often enough to matter.
    return " ".join(text.split()).casefold()


def _group_ids(prompts: tuple[str, ...]) -> IntArray:
    seen: dict[str, int] = {}
    return np.array(
        [seen.setdefault(_normalize_text(p), len(seen)) for p in prompts], dtype=np.int64
    )


def _allocate(groups: IntArray, cfg: SplitConfig, rng: np.random.Generator) -> list[IntArray]:
    """Shuffle groups and cut them by cumulative prompt count, so fractions hold for prompts."""
    uniq, sizes = np.unique(groups, return_counts=True)
    order = rng.permutation(len(uniq))
    cum = np.cumsum(sizes[order]) / sizes.sum()
    cut1, cut2 = cfg.train, cfg.train + cfg.calibration
    parts = [
        uniq[order][cum <= cut1 + 1e-12],
        uniq[order][(cum > cut1 + 1e-12) & (cum <= cut2 + 1e-12)],
    ]
    parts.append(uniq[order][cum > cut2 + 1e-12])
    return parts


def make_splits(ds: RoutingDataset, cfg: SplitConfig | None = None) -> Splits:
    """Split ``ds`` into train / calibration / test row indices (sorted), grouped by prompt text."""
    cfg = cfg or SplitConfig()
    if ds.n_prompts < 3:
        raise ConfigError(f"a split needs at least 3 prompts, got {ds.n_prompts}; import more data")
    rng = np.random.default_rng(cfg.seed)
    groups = _group_ids(ds.prompts)
    strata = ds.tasks if (cfg.stratify_by_task and ds.tasks is not None) else ("",) * ds.n_prompts
    strata_arr = np.asarray(strata, dtype=object)
    chosen: list[list[IntArray]] = [[], [], []]
    # A group may span strata (same text, two tasks): assign it by its first row's stratum.
    first_stratum: dict[int, object] = {}
    for g, s in zip(groups, strata_arr, strict=True):
        first_stratum.setdefault(int(g), s)
    for stratum in sorted(set(first_stratum.values()), key=str):
        mask = np.array([first_stratum[int(g)] == stratum for g in groups])
        for k, part in enumerate(_allocate(groups[mask], cfg, rng)):
            chosen[k].append(part)
    out = []
    for parts in chosen:
        gset = np.concatenate(parts) if parts else np.array([], dtype=np.int64)
        out.append(np.flatnonzero(np.isin(groups, gset)).astype(np.int64))
    if any(len(o) == 0 for o in out):
        raise ConfigError(
            f"split of {ds.n_prompts} prompts left a split empty; use more data or larger fractions"
        )
    return Splits(train=out[0], calibration=out[1], test=out[2])
