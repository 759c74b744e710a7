"""The `tune:` section of an experiment config: what a study searches and how it scores a trial.

    tune:
      study_name: rb-cheap            # default: the config's name
      storage: null                   # default: journal file runs/<name>/optuna.journal;
                                      # sqlite:///x.db or postgresql://… for many workers
      mode: constrained               # or multi_objective (cost vs quality, a Pareto set)
      target: {quality_fraction: 0.95}   # of the reference model's quality; or {absolute: 0.8}
      sampler: tpe                    # tpe | nsga2 | random
      seed: 0
      n_trials: 200
      timeout_s: null
      pruning: true
      scheme: cv                      # cv: 5-fold CV over train+calibration; cross_fit:
      folds: 5                        #   calibration split only, calibrator cross-fitted
      space:
        embedders: [minilm]           # default: the router's embedder
        normalization: [head_tail, tail]
        calibration: [platt, isotonic, none]
        predictors:
          knn: {k: {low: 5, high: 300, log: true}, weights: [uniform, distance, softmax]}
          logreg: {C: [0.1, 1.0, 10.0], max_iter: 200}
        policies:
          threshold: {mode: [absolute, relative, gap]}
          utility: {}

A parameter is searched over a range ``{low, high, log?, step?}`` (integers when ``low`` and
``high`` are), over a list of choices (``[a, b]`` or ``{choices: [...]}``), or fixed (a scalar,
or ``{value: X}`` for a list-valued parameter such as ``hidden_layer_sizes``). Names are checked
against each predictor's and policy's own parameters by :func:`experiments.tuning.space.
validate_space` when a study starts.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from tierwise.router.normalize import NormalizationConfig
from tierwise.router.schema import StrictModel


class ParamRange(StrictModel):
    """A numeric range; integer when ``low``, ``high`` (and ``step``) are integers."""

    low: int | float
    high: int | float
    log: bool = False
    step: int | float | None = None

    @model_validator(mode="after")
    def _check(self) -> ParamRange:
        for name in ("low", "high"):
            v = getattr(self, name)
            if isinstance(v, bool) or not math.isfinite(float(v)):
                raise ValueError(f"`{name}` must be a finite number, got {v!r}")
        if self.low > self.high:
            raise ValueError(f"`low` must be <= `high`, got low={self.low}, high={self.high}")
        if self.log and self.low <= 0:
            raise ValueError(f"a log range needs `low` > 0, got {self.low}")
        if self.step is not None and (self.step <= 0 or self.log):
            raise ValueError("`step` must be > 0 and cannot be combined with `log: true`")
        return self

    @property
    def is_int(self) -> bool:
        return all(
            isinstance(v, int) and not isinstance(v, bool)
            for v in (self.low, self.high, 1 if self.step is None else self.step)
        )

    def corners(self) -> list[Any]:
        """The values to validate a predictor or policy with: both ends."""
        return [self.low, self.high]


class Choices(StrictModel):
    """A categorical search dimension: one of ``choices``."""

    choices: list[Any] = Field(min_length=1)

    def corners(self) -> list[Any]:
        return list(self.choices)


class Fixed(StrictModel):
    """A search dimension held at one value."""

    value: Any

    def corners(self) -> list[Any]:
        return [self.value]


ParamSpec = ParamRange | Choices | Fixed


def as_spec(raw: Any) -> Any:
    """YAML shorthand → a spec: a list is choices, a mapping with low/high a range, else fixed."""
    if isinstance(raw, ParamRange | Choices | Fixed):
        return raw
    if isinstance(raw, list | tuple):
        return Choices(choices=list(raw))
    if isinstance(raw, dict):
        if "choices" in raw:
            return Choices.model_validate(raw)
        if "value" in raw:
            return Fixed.model_validate(raw)
        if "low" in raw or "high" in raw:
            return ParamRange.model_validate(raw)
        raise ValueError(
            "a parameter must be a range {low, high, log?, step?}, a list of choices "
            f"(or {{choices: [...]}}), a scalar or {{value: X}}; got keys {sorted(raw)}"
        )
    return Fixed(value=raw)


def _default_predictors() -> dict[str, dict[str, Any]]:
    # kNN only: it refits in milliseconds on cached embeddings (see objective.py). Add logreg,
    # mlp or mf explicitly: each fit costs seconds to minutes, multiplied by the trials.
    return {
        "knn": {
            "k": ParamRange(low=5, high=300, log=True),
            "weights": Choices(choices=["uniform", "distance", "softmax"]),
            "temperature": ParamRange(low=0.01, high=0.3, log=True),
            "prior_weight": ParamRange(low=0.0, high=20.0),
        }
    }


def _default_policies() -> dict[str, dict[str, Any]]:
    return {
        "threshold": {"mode": Choices(choices=["absolute", "relative", "gap"])},
        "utility": {},
    }


class SearchSpace(StrictModel):
    """What each trial picks. ``None`` for embedders / normalization: the router's own."""

    embedders: list[str] | None = Field(default=None, min_length=1)
    normalization: list[str | NormalizationConfig] | None = Field(default=None, min_length=1)
    calibration: list[str] = Field(
        default_factory=lambda: ["platt", "isotonic", "none"], min_length=1
    )
    predictors: dict[str, dict[str, ParamSpec]] = Field(
        default_factory=_default_predictors, min_length=1
    )
    policies: dict[str, dict[str, ParamSpec]] = Field(
        default_factory=_default_policies, min_length=1
    )
    # multi_objective: each trial also picks its operating point, as the fraction of the
    # reference model's quality its knob must reach (the Pareto set then spans the trade-off).
    operating_fraction: ParamRange = Field(default_factory=lambda: ParamRange(low=0.8, high=1.0))

    @field_validator("predictors", "policies", mode="before")
    @classmethod
    def _specs(cls, v: Any) -> Any:
        if not isinstance(v, dict):
            return v
        return {
            name: {k: as_spec(s) for k, s in (params or {}).items()}
            if isinstance(params, dict) or params is None
            else params
            for name, params in v.items()
        }


class TuneTarget(StrictModel):
    """Constrained mode's quality bar on the calibration split: one of the two."""

    quality_fraction: float | None = Field(default=None, gt=0, le=1.5)
    absolute: float | None = Field(default=None, gt=0, le=1)

    @model_validator(mode="after")
    def _one(self) -> TuneTarget:
        if self.quality_fraction is not None and self.absolute is not None:
            raise ValueError("give `quality_fraction` or `absolute`, not both")
        if self.quality_fraction is None and self.absolute is None:
            self.quality_fraction = 0.95
        return self

    def describe(self, reference: str) -> str:
        if self.absolute is not None:
            return f"mean quality >= {self.absolute:g}"
        return f"{100 * (self.quality_fraction or 0):g}% of {reference}'s quality"


class TuneConfig(StrictModel):
    """The ``tune:`` section: study, storage, mode, budget and search space."""

    study_name: str | None = Field(default=None, min_length=1)
    storage: str | None = Field(default=None, min_length=1)
    mode: Literal["constrained", "multi_objective"] = "constrained"
    target: TuneTarget = Field(default_factory=TuneTarget)
    sampler: Literal["tpe", "nsga2", "random"] = "tpe"
    seed: int = 0
    n_trials: int = Field(default=100, ge=1, le=1_000_000)
    timeout_s: float | None = Field(default=None, gt=0)
    # Constrained mode: stop a trial whose predictor is clearly worse (out-of-sample Brier score
    # in the worst quarter of finished trials) before calibrating and sweeping it; slow
    # predictors are scored fold by fold (cv) or first fitted on a third of train (cross_fit),
    # so a hopeless one stops early. Multi-objective: Optuna cannot prune; ignored.
    pruning: bool = True
    # Which prompts score a trial (never test; see objective.py for the reasoning):
    # cv: K-fold cross-validation over train + calibration (predictor and calibrator fitted on
    #     the other folds): 4x the prompts of the calibration split, so less noise to overfit.
    # cross_fit: the calibration split only, predictor fitted on train as in Router.fit and the
    #     calibrator cross-fitted over K folds of the calibration split (K=1: exactly Router.fit,
    #     calibrator scored on its own rows, which is optimistic).
    scheme: Literal["cv", "cross_fit"] = "cv"
    folds: int = Field(default=5, ge=1, le=20)
    # multi_objective: how many Pareto routers are re-fitted and scored on test.
    report_top: int = Field(default=3, ge=1, le=20)
    space: SearchSpace = Field(default_factory=SearchSpace)

    @model_validator(mode="after")
    def _folds(self) -> TuneConfig:
        if self.scheme == "cv" and self.folds < 2:
            raise ValueError("`scheme: cv` needs `folds` >= 2 (use `scheme: cross_fit` for 1)")
        return self
