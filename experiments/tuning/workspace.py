"""Everything trials share, computed once: embeddings per (embedder, normalization), expected
costs, the calibration split's labels, reference model, baselines and cross-fitting folds.

Embeddings of the train and calibration prompts go through the on-disk cache (a re-run embeds
nothing) and stay in memory for every trial, which fits routers with ``Router.fit(...,
embeddings=...)``-equivalent inputs. The test split is not touched here.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from experiments.tuning.config import TuneConfig
from experiments.tuning.fastknn import NeighbourTable
from experiments.tuning.space import ResolvedSpace
from router.config import RouterConfig
from router.core import Router
from router.errors import ConfigError
from router.expected_cost import ExpectedCostModel, prompt_chars
from router.normalize import NormalizationConfig
from router.policies import reference_cost
from router.predictors.base import FloatArray
from router.predictors.knn import KNNPredictor

if TYPE_CHECKING:
    from experiments.training import Prepared


@dataclass
class EmbeddingSpace:
    """One (embedder, normalization): the matrices every trial on it reuses."""

    embedder: str
    normalization: NormalizationConfig
    X_train: np.ndarray
    X_cal: np.ndarray
    C_train: FloatArray  # expected cost per prompt and tier, as Router.fit computes it
    C_cal: FloatArray
    cost_scale: float  # utility's reference cost (mean cost of the priciest tier on train)
    tables: dict[str, NeighbourTable] = field(default_factory=dict)


def _group_folds(prompts: tuple[str, ...], k: int, seed: int) -> np.ndarray:
    """Fold per row; identical texts (up to case and spacing) share a fold, as in the splits."""
    groups: dict[str, int] = {}
    gid = np.array(
        [groups.setdefault(" ".join(p.split()).casefold(), len(groups)) for p in prompts]
    )
    if k > len(groups):
        raise ConfigError(
            f"`tune.calibration_folds` must be <= the {len(groups)} distinct calibration "
            f"prompts, got {k}; lower it (1 = no cross-fitting)"
        )
    order = np.random.default_rng([seed, 7]).permutation(len(groups))
    fold_of_group = np.empty(len(groups), dtype=np.int64)
    fold_of_group[order] = np.arange(len(groups)) % k
    return fold_of_group[gid]


def _max_k(tune: TuneConfig) -> int:
    """The largest k the space can suggest: the neighbour table's width."""
    spec = tune.space.predictors.get("knn", {}).get("k")
    if spec is None:
        return int(KNNPredictor().k)
    return int(max(spec.corners()))


class Workspace:
    """The calibration split's fixed quantities and the embedding spaces of a search space."""

    def __init__(
        self,
        prep: Prepared,
        tune: TuneConfig,
        space: ResolvedSpace,
        base: RouterConfig,
        *,
        progress: bool = True,
    ) -> None:
        from eval.report import EvaluationConfig, compare
        from experiments.training import cache_dir

        self.prep, self.tune, self.resolved, self.base = prep, tune, space, base
        train, cal = prep.train, prep.calibration
        self.models = tuple(train.models)
        self.Y_train = np.asarray(train.quality, dtype=np.float64)
        self.Y_cal = np.asarray(cal.quality, dtype=np.float64)
        self.q_cal = np.nan_to_num(self.Y_cal, nan=0.0)
        self.cost_cal = np.asarray(cal.cost, dtype=np.float64)
        reference = base.policy.select.reference
        if reference == "best":
            self.ref = int(np.argmax(self.q_cal.mean(axis=0)))
        elif reference in self.models:
            self.ref = self.models.index(reference)
        else:
            raise ConfigError(
                f"`router.policy.select.reference` must be 'best' or one of "
                f"{list(self.models)}, got {reference!r}"
            )
        self.reference_model = self.models[self.ref]
        self.ref_quality = float(self.q_cal[:, self.ref].mean())
        self.ref_cost = float(self.cost_cal[:, self.ref].mean())
        self.c_max = float(self.cost_cal.mean(axis=0).max())
        base_rows = compare(
            self.q_cal, self.cost_cal, self.models, None, EvaluationConfig(bootstrap_samples=0)
        )
        self.aiq_zero = base_rows.row("zero router").aiq
        self.aiq_oracle = base_rows.row("oracle").aiq
        self.folds = _group_folds(cal.prompts, tune.calibration_folds, tune.seed)
        self.max_k = _max_k(tune)
        self.cache_dir = cache_dir(base)
        self.embed_seconds = 0.0
        self.spaces: dict[tuple[str, str], EmbeddingSpace] = {}
        for emb in space.embedders:
            for label, norm in space.normalization.items():
                self.spaces[(emb, label)] = self._embed(emb, norm, progress=progress)

    # -- targets ------------------------------------------------------------------------------
    def quality_fraction(self) -> float:
        """The constrained target as a fraction of the reference model's calibration quality."""
        t = self.tune.target
        if t.absolute is None:
            return float(t.quality_fraction or 0.95)
        frac = t.absolute / self.ref_quality if self.ref_quality > 0 else float("inf")
        if frac > 1.5:
            raise ConfigError(
                f"`tune.target.absolute` must be reachable, got {t.absolute:g}: the reference "
                f"model {self.reference_model!r} scores {self.ref_quality:.3f} on calibration; "
                "lower the target"
            )
        return float(frac)

    def describe(self) -> dict[str, Any]:
        """What makes scores comparable across runs of one study (hashed with the space)."""
        return {
            "dataset": self.prep.dataset.fingerprint(),
            "split": self.prep.config.split.model_dump(mode="json"),
            "reference": self.base.policy.select.reference,
            "cost": self.base.cost.model_dump(mode="json"),
            "grid_size": self.base.policy.grid_size,
            "seed": self.base.seed,
        }

    # -- embedding spaces ---------------------------------------------------------------------
    def _embed(self, embedder: str, norm: NormalizationConfig, *, progress: bool) -> EmbeddingSpace:
        train, cal = self.prep.train, self.prep.calibration
        rcfg = self.base.model_copy(
            update={
                "embedder": self.base.embedder.model_copy(update={"name": embedder}),
                "normalization": norm,
                "cache_dir": self.cache_dir,
            }
        )
        t0 = time.perf_counter()
        X = Router(rcfg).embed(list(train.prompts) + list(cal.prompts), progress=progress)
        self.embed_seconds += time.perf_counter() - t0
        X_tr, X_cal = X[: len(train.prompts)], X[len(train.prompts) :]
        chars_tr, chars_cal = prompt_chars(train.prompts), prompt_chars(cal.prompts)
        cost_model = ExpectedCostModel(
            self.base.cost.predict_output_tokens, self.base.cost.chars_per_token
        ).fit(
            X_tr,
            chars_tr,
            train.cost,
            self.models,
            input_tokens=train.input_tokens,
            output_tokens=train.output_tokens,
            prices=self.prep.prices,
        )
        C_tr = cost_model.predict(X_tr, chars_tr)
        return EmbeddingSpace(
            embedder=embedder,
            normalization=norm,
            X_train=X_tr,
            X_cal=X_cal,
            C_train=C_tr,
            C_cal=cost_model.predict(X_cal, chars_cal),
            cost_scale=reference_cost(C_tr),
        )

    def space_for(self, cfg: RouterConfig) -> EmbeddingSpace:
        from experiments.tuning.space import normalization_label

        key = (cfg.embedder.name, normalization_label(cfg.normalization))
        if key not in self.spaces:
            raise ConfigError(f"embedding space {key} is not in this study's search space")
        return self.spaces[key]

    def ensure(self, cfg: RouterConfig, *, progress: bool = False) -> EmbeddingSpace:
        """The space for ``cfg``, embedding it first if the search space did not include it."""
        from experiments.tuning.space import normalization_label

        key = (cfg.embedder.name, normalization_label(cfg.normalization))
        if key not in self.spaces:
            self.spaces[key] = self._embed(cfg.embedder.name, cfg.normalization, progress=progress)
        return self.spaces[key]

    def neighbours(self, space: EmbeddingSpace, store_dtype: str) -> NeighbourTable:
        table = space.tables.get(store_dtype)
        if table is None:
            table = NeighbourTable(
                space.X_train,
                self.Y_train,
                space.X_cal,
                max_k=self.max_k,
                store_dtype=store_dtype,
            )
            space.tables[store_dtype] = table
        return table
