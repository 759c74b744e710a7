"""The learned router: embed prompts, predict each tier's success, pick by policy.

``Router.fit(train, calibration)`` learns from labelled traffic (any object with ``prompts``,
``models``, ``quality``, ``cost`` and optional ``input_tokens`` / ``output_tokens``: the eval
package's RoutingDataset fits), ``route(prompts)`` decides, ``save``/``load`` (router.artifact)
round-trip through the safe artifact format.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, Self

import numpy as np
import numpy.typing as npt

from tierwise.router.calibration import Calibrator
from tierwise.router.config import RouterConfig
from tierwise.router.crossfit import group_folds, out_of_fold, pool
from tierwise.router.decision import Decision
from tierwise.router.embed import Embedder, get_embedder
from tierwise.router.errors import ConfigError, DataError
from tierwise.router.expected_cost import ExpectedCostModel, prompt_chars
from tierwise.router.normalize import Normalizer
from tierwise.router.policies import Policy, get_policy
from tierwise.router.policy_static import StaticMixturePolicy, models_by_cost
from tierwise.router.predictors import QualityPredictor, get_predictor
from tierwise.router.predictors.base import FloatArray
from tierwise.router.pricing import PriceTable
from tierwise.router.prompts import validate_batch
from tierwise.router.selection import compare_with_static, knob_with_margin

if TYPE_CHECKING:
    from tierwise.router.artifact import LoadedArtifact

IntArray = npt.NDArray[np.int64]


class TrafficData(Protocol):
    """What ``fit`` reads from a labelled dataset (read-only attributes)."""

    @property
    def prompts(self) -> tuple[str, ...]: ...
    @property
    def models(self) -> tuple[str, ...]: ...
    @property
    def quality(self) -> FloatArray: ...
    @property
    def cost(self) -> FloatArray: ...
    @property
    def input_tokens(self) -> FloatArray | None: ...
    @property
    def output_tokens(self) -> FloatArray | None: ...


@dataclass(frozen=True)
class Sweep:
    """A policy swept over its knob grid on one dataset: one row of choices per knob."""

    knobs: FloatArray
    choices: IntArray  # (k, n)
    p_success: FloatArray  # (n, m) calibrated
    expected_cost: FloatArray  # (n, m)


def realized_curve(quality: FloatArray, cost: FloatArray, choices: IntArray) -> FloatArray:
    """Mean quality and mean cost of each row of ``choices`` ((k, n) → (k, 2))."""
    rows = np.arange(quality.shape[0])
    return np.stack([quality[rows, choices].mean(axis=1), cost[rows, choices].mean(axis=1)], axis=1)


def select_knob(knobs: FloatArray, curve: FloatArray, target_quality: float) -> int:
    """Index of the cheapest knob whose mean quality reaches the target (else the best quality)."""
    ok = np.flatnonzero(curve[:, 0] >= target_quality - 1e-12)
    if ok.size == 0:
        return int(np.argmax(curve[:, 0]))
    return int(ok[np.argmin(curve[ok, 1])])


class Router:
    """Embed → predict P(success) per tier → calibrate → expected cost → policy.

    Fitted on labelled traffic (any object with ``prompts``, ``models``, ``quality``, ``cost``,
    ``input_tokens`` and ``output_tokens``, such as a RoutingDataset): the predictor learns on
    ``train``, calibration and the policy knob on ``calibration``.

    >>> import numpy as np
    >>> from types import SimpleNamespace
    >>> from tierwise.router.config import RouterConfig
    >>> from tierwise.router.core import Router
    >>> def traffic(ids):  # math needs the big model, poems do not; the big one costs 20x
    ...     kinds = ("solve x + {} = 7", "a poem about {} cats")
    ...     prompts = [t.format(i) for i in ids for t in kinds]
    ...     math = np.array(["solve" in p for p in prompts])
    ...     return SimpleNamespace(prompts=tuple(prompts), models=("small", "big"),
    ...                            quality=np.stack([~math, np.ones(len(math))], axis=1) * 1.0,
    ...                            cost=np.tile([0.001, 0.02], (len(prompts), 1)),
    ...                            input_tokens=None, output_tokens=None)
    >>> config = RouterConfig.model_validate(
    ...     {"embedder": {"name": "hashing:64"}, "predictor": {"name": "knn", "params": {"k": 5}}})
    >>> router = Router(config).fit(traffic(range(40)), traffic(range(40, 80)))
    >>> [d.model for d in router.route(["solve x + 3 = 9", "a poem about dogs"])]
    ['big', 'small']
    """

    def __init__(self, config: RouterConfig | None = None, *, embedder: Embedder | None = None):
        self.config = config or RouterConfig()
        self._embedder = embedder
        self._cache: Any = None
        self.certificate_: dict[str, Any] | None = None
        # Set by certification when no knob passes: route() then sends every prompt here.
        self.fallback_model_: str | None = None
        self.manifest_: dict[str, Any] | None = None
        # A static fallback swaps the policy in self.config; a refit starts from the request.
        self._requested_config: RouterConfig = self.config
        self._fallback_config: RouterConfig | None = None

    # -- embedding -------------------------------------------------------------------------
    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = get_embedder(self.config.embedder.name)
        return self._embedder

    def _normalizer(self) -> Normalizer:
        # Building one hashes the tokenizer's definition (~0.1 s for MiniLM, more than embedding
        # a short prompt), so keep it while the embedder and the normalization config stay.
        emb, cfg = self.embedder, self.config.normalization
        memo = self.__dict__.get("_normalizer_memo")
        if memo is None or memo[0] is not emb or memo[1] != cfg:
            memo = (emb, cfg.model_copy(), Normalizer.for_embedder(cfg, emb))
            self._normalizer_memo = memo
        return memo[2]

    def embed(self, prompts: Sequence[str], *, progress: bool = False) -> npt.NDArray[Any]:
        from tierwise.router.cache import EmbeddingCache, embed_with_cache

        if self._cache is None and self.config.cache_dir:
            self._cache = EmbeddingCache(self.config.cache_dir)
        X = embed_with_cache(
            self.embedder,
            self._normalizer(),
            list(prompts),
            self._cache,
            progress=progress,
            batch_size=self.config.embedder.batch_size,
        )
        return np.asarray(X, dtype=np.float32)

    # -- fitting ---------------------------------------------------------------------------
    def fit(
        self,
        train: TrafficData,
        calibration: TrafficData,
        *,
        prices: PriceTable | None = None,
        progress: bool = False,
        embeddings: tuple[npt.NDArray[Any], npt.NDArray[Any]] | None = None,
    ) -> Router:
        """Fit the predictor on ``train``; calibrate and set the knob on ``calibration``.

        ``embeddings``: precomputed ``(X_train, X_calibration)`` from this router's embedder and
        normalization (tuning fits many routers on the same cached matrices).
        """
        if tuple(train.models) != tuple(calibration.models):
            raise DataError("`train` and `calibration` must have the same models in the same order")
        if len(train.prompts) < 2 or len(calibration.prompts) < 2:
            raise DataError("`fit` needs at least 2 train and 2 calibration prompts")
        if self._fallback_config is not None and self._fallback_config is self.config:
            self.config = self._requested_config
        cfg = self.config
        self.certificate_, self.fallback_model_ = None, None  # a refit voids any certificate
        self.models_ = tuple(train.models)
        self.embedder_identity_ = self.embedder.identity
        self.dim_ = self.embedder.dim
        if embeddings is not None:
            X_tr, X_cal = (np.asarray(x, dtype=np.float32) for x in embeddings)
            if X_tr.shape != (len(train.prompts), self.dim_) or X_cal.shape != (
                len(calibration.prompts),
                self.dim_,
            ):
                raise DataError(
                    f"`embeddings` must be ({len(train.prompts)}, {self.dim_}) and "
                    f"({len(calibration.prompts)}, {self.dim_}) matrices, got {X_tr.shape} "
                    f"and {X_cal.shape}"
                )
        else:
            X_tr = self.embed(train.prompts, progress=progress)
            X_cal = self.embed(calibration.prompts, progress=progress)
        data, X_fit, sel, X_sel, raw_sel = self._fit_predictor(train, calibration, X_tr, X_cal)
        self.calibrator_ = Calibrator(method=cfg.calibration.method).fit(raw_sel, sel.quality)
        self.cost_model_ = ExpectedCostModel(
            cfg.cost.predict_output_tokens, cfg.cost.chars_per_token
        ).fit(
            X_fit,
            prompt_chars(data.prompts),
            data.cost,
            self.models_,
            input_tokens=data.input_tokens,
            output_tokens=data.output_tokens,
            prices=prices,
        )
        self.policy_ = self._make_policy(
            self.cost_model_.predict(X_fit, prompt_chars(data.prompts))
        )
        P_sel = self.calibrator_.transform(raw_sel)
        C_sel = self.cost_model_.predict(X_sel, prompt_chars(sel.prompts))
        self.knob_grid_ = np.asarray(self.policy_.knob_grid(P_sel, C_sel, n=cfg.policy.grid_size))
        self._set_knob(sel, P_sel, C_sel, n_new=len(calibration.prompts))
        self._check_static(sel, P_sel, C_sel, pool(train, calibration), len(calibration.prompts))
        self.price_table_version_ = prices.version if prices is not None else None
        return self

    def _fit_predictor(
        self,
        train: TrafficData,
        calibration: TrafficData,
        X_tr: npt.NDArray[Any],
        X_cal: npt.NDArray[Any],
    ) -> tuple[TrafficData, npt.NDArray[Any], TrafficData, npt.NDArray[Any], FloatArray]:
        """Fit the shipped predictor; return (fit data, its X, selection data, its X, raw P on
        the selection data). Cross-fitting: all labels, out-of-fold P; else train / calibration.
        """
        folds = self.config.crossfit.folds
        if folds < 2:
            self.predictor_ = self._make_predictor().fit(X_tr, train.quality)
            return train, X_tr, calibration, X_cal, self.predictor_.predict_proba(X_cal)
        data = pool(train, calibration)
        X = np.vstack([X_tr, X_cal])
        fold_ids = group_folds(data.prompts, folds, self.config.seed)
        raw = out_of_fold(self._make_predictor, X, data.quality, fold_ids)
        self.oof_predictions_ = raw  # train rows, then calibration rows (not saved)
        self.predictor_ = self._make_predictor().fit(X, data.quality)
        return data, X, data, X, raw

    def _check_static(
        self, sel: TrafficData, P: FloatArray, C: FloatArray, labelled: TrafficData, n_new: int
    ) -> None:
        """Replace the learned policy by the static mixture unless it is ahead with the
        configured confidence on the held-out selection prompts (router/selection.py)."""
        fb, cfg = self.config.fallback, self.config
        self.static_fallback_, self.static_comparison_ = False, None
        if not fb.enabled or cfg.policy.knob is not None or self.policy_.name == "static":
            return
        quality = np.nan_to_num(np.asarray(sel.quality, dtype=np.float64), nan=0.0)
        choices = np.stack([self.policy_.choose(P, C, k) for k in self.knob_grid_])
        cmp = compare_with_static(
            choices, quality, np.asarray(sel.cost, dtype=np.float64), n_boot=fb.bootstrap,
            seed=cfg.seed,
        )  # fmt: skip
        self.static_comparison_ = cmp.as_dict() | {"confidence": fb.confidence}
        if cmp.p_better >= fb.confidence:
            return
        self.static_fallback_ = True
        self.policy_ = StaticMixturePolicy(
            models_by_cost(labelled.quality, labelled.cost),
            replaced=cfg.policy.name,
            evidence=self.static_comparison_,
        )
        # The manifest rebuilds the policy from the config's name: it must say "static".
        static = cfg.policy.model_copy(update={"name": "static", "params": self.policy_.params})
        self._requested_config = cfg
        self.config = self._fallback_config = cfg.model_copy(update={"policy": static})
        self.knob_grid_ = np.asarray(self.policy_.knob_grid(P, C, n=cfg.policy.grid_size))
        self._set_knob(sel, P, C, n_new=n_new)

    def _make_predictor(self) -> QualityPredictor:
        params = dict(self.config.predictor.params)
        pred = get_predictor(self.config.predictor.name, **params)
        if "random_state" in pred.get_params() and "random_state" not in params:
            pred.set_params(random_state=self.config.seed)
        return pred

    def _make_policy(self, train_expected_cost: FloatArray) -> Policy:
        # data-dependent settings (utility's cost unit) are the policy's own fit step
        policy = get_policy(self.config.policy.name, **self.config.policy.params)
        return policy.fit(train_expected_cost)

    def _set_knob(
        self, cal: TrafficData, P_cal: FloatArray, C_cal: FloatArray, n_new: int | None = None
    ) -> None:
        """Keep the calibration sweep: the knob is chosen on it (and certification reuses it).

        ``n_new``: size of the new traffic the margin of ``policy.select.confidence`` is for
        (default: as many prompts as ``cal``)."""
        choices = np.stack([self.policy_.choose(P_cal, C_cal, k) for k in self.knob_grid_])
        quality = np.nan_to_num(np.asarray(cal.quality, dtype=np.float64), nan=0.0)
        cost = np.asarray(cal.cost, dtype=np.float64)
        self.calibration_curve_ = realized_curve(quality, cost, choices)
        sel = self.config.policy.select
        ref = self.reference_index(quality, sel.reference)
        self.reference_model_ = self.models_[ref]
        self.target_quality_ = sel.quality_fraction * float(quality[:, ref].mean())
        if self.config.policy.knob is not None:
            self.knob_ = float(self.config.policy.knob)
            return
        n_new = len(cal.prompts) if n_new is None else n_new
        best = knob_with_margin(
            choices, quality, cost, ref, sel.quality_fraction, sel.confidence, n_new
        )
        self.knob_ = float(self.knob_grid_[best])

    def reference_index(self, quality: FloatArray, reference: str) -> int:
        if reference == "best":
            return int(np.argmax(quality.mean(axis=0)))
        if reference not in self.models_:
            raise ConfigError(
                f"`policy.select.reference` must be 'best' or one of {list(self.models_)}, "
                f"got {reference!r}"
            )
        return self.models_.index(reference)

    # -- predicting and routing ------------------------------------------------------------
    def _check_fitted(self) -> None:
        if not hasattr(self, "predictor_"):
            raise ConfigError("this Router is not fitted; call fit() or Router.load(path) first")

    def predict(self, X: npt.NDArray[Any], chars: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Calibrated P(success) and expected cost, each (n, m)."""
        self._check_fitted()
        P = self.calibrator_.transform(self.predictor_.predict_proba(X))
        return np.clip(P, 0.0, 1.0), self.cost_model_.predict(X, chars)

    def sweep(self, prompts: Sequence[str], *, progress: bool = False) -> Sweep:
        """Choices for every knob of the grid (for cost–quality curves)."""
        P, C = self.predict(self.embed(prompts, progress=progress), prompt_chars(tuple(prompts)))
        choices = np.stack([self.policy_.choose(P, C, k) for k in self.knob_grid_])
        return Sweep(self.knob_grid_, choices.astype(np.int64), P, C)

    def choose(self, P: FloatArray, C: FloatArray, knob: float | None = None) -> IntArray:
        """Chosen tier per row; with no explicit knob a certification fallback is honoured."""
        if knob is None and self.fallback_model_ is not None:
            return np.full(len(P), self.models_.index(self.fallback_model_), dtype=np.int64)
        return self.policy_.choose(P, C, self.knob_ if knob is None else knob)

    def route(self, prompts: Sequence[object], *, knob: float | None = None) -> list[Decision]:
        """One decision per input; an invalid prompt gets a Decision with ``error`` set."""
        self._check_fitted()
        texts, errors = validate_batch(list(prompts), max_chars=self.config.max_prompt_chars)
        good = [i for i, t in enumerate(texts) if t is not None]
        knob_used: float | None = self.knob_ if knob is None else float(knob)
        if knob is None and self.fallback_model_ is not None:
            knob_used = None  # fallback: the reference tier, no knob involved
        out: list[Decision] = [
            Decision(index=i, model=None, policy=self.config.policy.name, knob=knob_used, error=e)
            for i, e in enumerate(errors)
        ]
        if not good:
            return out
        batch = [texts[i] for i in good]
        X = self.embed([t for t in batch if t is not None])
        P, C = self.predict(X, prompt_chars(tuple(t or "" for t in batch)))
        picks = self.choose(P, C, knob_used)
        for row, i in enumerate(good):
            out[i] = Decision(
                index=i,
                model=self.models_[int(picks[row])],
                p_success={m: round(float(P[row, j]), 6) for j, m in enumerate(self.models_)},
                expected_cost={m: float(C[row, j]) for j, m in enumerate(self.models_)},
                policy=self.config.policy.name,
                knob=knob_used,
            )
        return out

    # -- persistence (router.artifact holds the format) -------------------------------------
    def save(
        self,
        path: str,
        *,
        metrics: dict[str, Any] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> str:
        from tierwise.router.artifact._persist import save_router

        return str(save_router(self, path, metrics=metrics, extra=extra))

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str] | LoadedArtifact,
        *,
        embedder: Embedder | None = None,
    ) -> Self:
        """Load a router artifact (``path`` may also be an already loaded artifact).

        An artifact from ``tierwise export`` brings its own ONNX embedder, used unless
        ``embedder`` is passed; otherwise the embedder it names is built on first use.
        """
        from tierwise.router.artifact._persist import restore_router

        return restore_router(cls, path, embedder=embedder)
