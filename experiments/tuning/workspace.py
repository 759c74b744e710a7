"""Everything trials share, computed once: embeddings per (embedder, normalization), expected
costs, the scored prompts' labels (calibration split, or train + calibration for `cv`), the
reference model, the baselines' AIQ and the folds.

Embeddings of the train and calibration prompts go through the on-disk cache (a re-run embeds
nothing) and stay in memory for every trial, which fits routers with ``Router.fit(...,
embeddings=...)``-equivalent inputs. The test split is not touched here.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from tierwise.experiments.tuning.config import TuneConfig
from tierwise.experiments.tuning.fastknn import NeighbourTable
from tierwise.experiments.tuning.space import ResolvedSpace
from tierwise.router.config import RouterConfig
from tierwise.router.core import Router
from tierwise.router.errors import ConfigError
from tierwise.router.expected_cost import ExpectedCostModel, prompt_chars
from tierwise.router.normalize import NormalizationConfig
from tierwise.router.predictors.base import FloatArray
from tierwise.router.predictors.knn import KNNPredictor

if TYPE_CHECKING:
    from tierwise.experiments.training import Prepared


@dataclass
class EmbeddingSpace:
    """One (embedder, normalization): the matrices every trial on it reuses."""

    embedder: str
    normalization: NormalizationConfig
    X_train: np.ndarray
    X_cal: np.ndarray
    X_eval: np.ndarray  # the scored prompts: X_cal, or train + calibration for `cv`
    C_train: FloatArray  # expected cost per prompt and tier, as Router.fit computes it
    C_eval: FloatArray
    tables: dict[str, NeighbourTable] = field(default_factory=dict)


def _group_folds(prompts: tuple[str, ...], k: int, seed: int) -> np.ndarray:
    """Fold per row; identical texts (up to case and spacing) share a fold, as in the splits."""
    groups: dict[str, int] = {}
    gid = np.array(
        [groups.setdefault(" ".join(p.split()).casefold(), len(groups)) for p in prompts]
    )
    if k > len(groups):
        raise ConfigError(
            f"`tune.folds` must be <= the {len(groups)} distinct scored prompts, got {k}; lower it"
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


def describe_data(prep: Prepared, base: RouterConfig) -> dict[str, Any]:
    """What makes scores comparable across runs of one study (hashed with the space)."""
    return {
        "dataset": prep.dataset.fingerprint(),
        "split": prep.config.split.model_dump(mode="json"),
        "reference": base.policy.select.reference,
        "cost": base.cost.model_dump(mode="json"),
        "grid_size": base.policy.grid_size,
        "seed": base.seed,
    }


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
        from tierwise.eval.reporting import EvaluationConfig, compare
        from tierwise.experiments.training import cache_dir

        self.prep, self.tune, self.resolved, self.base = prep, tune, space, base
        train, cal = prep.train, prep.calibration
        self.cv = tune.scheme == "cv"
        self.models = tuple(train.models)
        self.Y_train = np.asarray(train.quality, dtype=np.float64)
        Y_cal = np.asarray(cal.quality, dtype=np.float64)
        self.eval_prompts = tuple(train.prompts) + tuple(cal.prompts) if self.cv else cal.prompts
        self.Y_eval = np.vstack([self.Y_train, Y_cal]) if self.cv else Y_cal
        self.q_eval = np.nan_to_num(self.Y_eval, nan=0.0)
        cost = np.asarray(cal.cost, dtype=np.float64)
        self.cost_eval = (
            np.vstack([np.asarray(train.cost, dtype=np.float64), cost]) if self.cv else cost
        )
        reference = base.policy.select.reference
        if reference == "best":
            self.ref = int(np.argmax(np.nan_to_num(Y_cal).mean(axis=0)))  # as Router: on cal
        elif reference in self.models:
            self.ref = self.models.index(reference)
        else:
            raise ConfigError(
                f"`router.policy.select.reference` must be 'best' or one of "
                f"{list(self.models)}, got {reference!r}"
            )
        self.reference_model = self.models[self.ref]
        self.ref_quality_cal = float(np.nan_to_num(Y_cal)[:, self.ref].mean())
        self.ref_quality = float(self.q_eval[:, self.ref].mean())
        self.ref_cost = float(self.cost_eval[:, self.ref].mean())
        self.c_max = float(self.cost_eval.mean(axis=0).max())
        base_rows = compare(
            self.q_eval, self.cost_eval, self.models, None, EvaluationConfig(bootstrap_samples=0)
        )
        self.aiq_zero = base_rows.row("zero router").aiq
        self.aiq_oracle = base_rows.row("oracle").aiq
        self.folds = _group_folds(self.eval_prompts, tune.folds, tune.seed)
        self.max_k = _max_k(tune)
        self.cache_dir = cache_dir(base)
        self.embed_seconds = 0.0
        self.spaces: dict[tuple[str, str], EmbeddingSpace] = {}
        for emb in space.embedders:
            for label, norm in space.normalization.items():
                self.spaces[(emb, label)] = self._embed(emb, norm, progress=progress)

    # -- targets ------------------------------------------------------------------------------
    def quality_fraction(self) -> float:
        """The target as the router's `select.quality_fraction` (of the reference model's
        calibration quality, which is what Router.fit reads)."""
        t = self.tune.target
        if t.absolute is None:
            return float(t.quality_fraction or 0.95)
        frac = t.absolute / self.ref_quality_cal if self.ref_quality_cal > 0 else float("inf")
        if frac > 1.5:
            raise ConfigError(
                f"`tune.target.absolute` must be reachable, got {t.absolute:g}: the reference "
                f"model {self.reference_model!r} scores {self.ref_quality_cal:.3f} on "
                "calibration; lower the target"
            )
        return float(frac)

    def target_quality(self, fraction: float) -> float:
        """The quality a trial must reach on the scored prompts."""
        t = self.tune.target
        if t.absolute is not None and self.tune.mode == "constrained":
            return float(t.absolute)
        return fraction * self.ref_quality

    @property
    def scheme_text(self) -> str:
        n, k = len(self.eval_prompts), self.tune.folds
        if self.cv:
            return f"{k}-fold cross-validation over train + calibration ({n} prompts)"
        return f"calibration split ({n} prompts), calibrator cross-fitted over {k} fold(s)"

    def describe(self) -> dict[str, Any]:
        return describe_data(self.prep, self.base)

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
        C_cal = cost_model.predict(X_cal, chars_cal)
        return EmbeddingSpace(
            embedder=embedder,
            normalization=norm,
            X_train=X_tr,
            X_cal=X_cal,
            X_eval=np.vstack([X_tr, X_cal]) if self.cv else X_cal,
            C_train=C_tr,
            C_eval=np.vstack([C_tr, C_cal]) if self.cv else C_cal,
        )

    def space_for(self, cfg: RouterConfig) -> EmbeddingSpace:
        from tierwise.experiments.tuning.space import normalization_label

        key = (cfg.embedder.name, normalization_label(cfg.normalization))
        if key not in self.spaces:
            raise ConfigError(f"embedding space {key} is not in this study's search space")
        return self.spaces[key]

    def ensure(self, cfg: RouterConfig, *, progress: bool = False) -> EmbeddingSpace:
        """The space for ``cfg``, embedding it first if the search space did not include it."""
        from tierwise.experiments.tuning.space import normalization_label

        key = (cfg.embedder.name, normalization_label(cfg.normalization))
        if key not in self.spaces:
            self.spaces[key] = self._embed(cfg.embedder.name, cfg.normalization, progress=progress)
        return self.spaces[key]

    def neighbours(self, space: EmbeddingSpace, store_dtype: str) -> NeighbourTable:
        table = space.tables.get(store_dtype)
        if table is None:
            if self.cv:
                table = NeighbourTable.cross_validated(
                    space.X_eval, self.Y_eval, self.folds, max_k=self.max_k, store_dtype=store_dtype
                )
            else:
                table = NeighbourTable(
                    space.X_train,
                    self.Y_train,
                    space.X_cal,
                    max_k=self.max_k,
                    store_dtype=store_dtype,
                )
            space.tables[store_dtype] = table
        return table
