"""The routing dataset: prompts × models with quality and per-query cost.

Every importer produces this one table; every router, metric and baseline consumes it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace

import numpy as np
import numpy.typing as npt

from tierwise.router.errors import DataError

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class ImportReport:
    """What happened while importing: counts people need to trust the numbers."""

    source: str
    rows_read: int
    rows_kept: int
    dropped: dict[str, int] = field(default_factory=dict)  # reason -> row count
    missing_labels: dict[str, int] = field(default_factory=dict)  # model -> blank labels seen
    missing_label_rule: str = "drop_row"
    cost_source: dict[str, str] = field(default_factory=dict)  # model -> logged|tokens|estimated
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class RoutingDataset:
    """Prompts × models.

    ``quality[i, j]`` is model j's quality on prompt i in [0, 1] (NaN = unknown);
    ``cost[i, j]`` is the USD cost of that answer. Token matrices are optional.
    """

    name: str
    ids: npt.NDArray[np.str_]
    prompts: tuple[str, ...]
    models: tuple[str, ...]
    quality: FloatArray
    cost: FloatArray
    tasks: tuple[str, ...] | None = None
    input_tokens: FloatArray | None = None
    output_tokens: FloatArray | None = None
    price_table_version: str | None = None
    report: ImportReport | None = None

    def __post_init__(self) -> None:
        n, m = len(self.prompts), len(self.models)
        if len(self.ids) != n:
            raise DataError(f"`ids` must have one entry per prompt ({n}), got {len(self.ids)}")
        for name in ("quality", "cost", "input_tokens", "output_tokens"):
            arr = getattr(self, name)
            if arr is not None and arr.shape != (n, m):
                raise DataError(f"`{name}` must have shape ({n}, {m}), got {arr.shape}")
        if self.tasks is not None and len(self.tasks) != n:
            raise DataError(f"`tasks` must have one entry per prompt ({n}), got {len(self.tasks)}")
        if len(set(self.models)) != m:
            raise DataError(f"`models` must be unique, got {list(self.models)}")

    @property
    def n_prompts(self) -> int:
        return len(self.prompts)

    @property
    def n_models(self) -> int:
        return len(self.models)

    def model_index(self, model: str) -> int:
        try:
            return self.models.index(model)
        except ValueError:
            raise DataError(
                f"model {model!r} is not in dataset {self.name!r}; "
                f"valid models: {list(self.models)}"
            ) from None

    def subset(self, index: npt.ArrayLike) -> RoutingDataset:
        """Rows ``index`` (an integer array or boolean mask) as a new dataset."""
        idx = np.asarray(index)
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)

        def take(a: FloatArray | None) -> FloatArray | None:
            return None if a is None else a[idx]

        return replace(
            self,
            ids=self.ids[idx],
            prompts=tuple(self.prompts[i] for i in idx),
            tasks=None if self.tasks is None else tuple(self.tasks[i] for i in idx),
            quality=self.quality[idx],
            cost=self.cost[idx],
            input_tokens=take(self.input_tokens),
            output_tokens=take(self.output_tokens),
        )

    def fingerprint(self) -> str:
        """A short stable hash of the content, for artifacts and experiment tracking."""
        h = hashlib.sha256()
        h.update("\x1f".join(self.models).encode())
        for pid, text in zip(self.ids, self.prompts, strict=True):
            h.update(str(pid).encode() + b"\x1e" + text.encode("utf-8", "surrogatepass") + b"\x1d")
        h.update(np.ascontiguousarray(np.nan_to_num(self.quality, nan=-1.0)).tobytes())
        h.update(np.ascontiguousarray(self.cost).tobytes())
        return h.hexdigest()[:16]

    def require_complete_labels(self) -> None:
        """Evaluation needs every label: fail clearly instead of computing a wrong mean."""
        missing = np.isnan(self.quality)
        if missing.any():
            rows, cols = np.nonzero(missing)
            raise DataError(
                f"dataset {self.name!r} has {int(missing.sum())} unknown quality labels "
                f"(first: prompt id {self.ids[rows[0]]!r}, model {self.models[cols[0]]!r}); "
                "set `missing_labels: drop_row` or `as_failure` in the data config"
            )
