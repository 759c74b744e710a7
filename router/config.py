"""The router's typed config: which embedder, normalization, predictor, calibration and policy."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from tierwise.router.normalize import NormalizationConfig
from tierwise.router.schema import StrictModel


class EmbedderConfig(StrictModel):
    """`name`: a registered embedder spec, e.g. "minilm", "sentence-transformers:<name or path>"."""

    name: str = "minilm"
    batch_size: int = Field(32, ge=1, le=4096)


class PredictorConfig(StrictModel):
    """A registered quality predictor by short name, with its hyperparameters.

    Default ``stack``: kNN and an L2-strong logistic regression blended per tier on
    out-of-fold predictions (router/predictors/stack.py). Measured with scripts/bench_router.py
    (5 seeds, docs/benchmarks/router.md) it is the only configuration at least as good as the
    previous default (knn, platt) on RouterBench, MMLU and GSM8K alike."""

    name: str = "stack"
    params: dict[str, Any] = Field(default_factory=dict)


class CalibrationConfig(StrictModel):
    """Per-tier probability calibration, fitted on the calibration split.

    Default ``none``: the default predictor (``stack``) is already calibrated by its
    cross-validated blend, and refitting a map per tier on the calibration split (the split the
    knob is also chosen on) only added noise in scripts/bench_router.py: gap closed with platt
    vs none, stack: RouterBench 18.3 vs 19.2 %, MMLU 29.5 vs 28.7 %, GSM8K (41 tiers, ~260
    calibration prompts) -23 vs +1 %. With knn, platt and none tie on RouterBench and MMLU;
    isotonic needs thousands of calibration labels per tier."""

    method: Literal["platt", "isotonic", "centered_isotonic", "none"] = "none"


class KnobSelection(StrictModel):
    """How the policy's knob is set when not given: the cheapest calibration-split knob whose mean
    quality reaches `quality_fraction` of the reference model's (naive rule; a `target` with a
    confidence certifies it instead)."""

    quality_fraction: float = Field(0.95, gt=0, le=1.5)
    reference: str = "best"
    # > 0.5: the knob must clear the bar by a margin so that new traffic as large as the
    # calibration split meets it with about this probability (router/selection.py); 0.5 is the
    # naive rule. Measured at 0.9 with `tierwise bench` (docs/benchmarks/router.md): seeds
    # meeting the bar on test RouterBench 2/5 -> 3/5, arena-bench 0/5 -> 2/5, GSM8K 5/5 -> 4/5,
    # at a higher operating cost. Not the default yet: `tierwise tune` still scores trials with
    # the naive rule, and a default must be what the tuner reproduces.
    confidence: float = Field(0.5, ge=0.5, lt=1)


class PolicyConfig(StrictModel):
    """The routing policy by registered short name, its parameters and an optional fixed knob."""

    name: str = "utility"
    params: dict[str, Any] = Field(default_factory=dict)
    knob: float | None = None
    select: KnobSelection = Field(default_factory=KnobSelection)
    grid_size: int = Field(101, ge=3, le=2001)


class CostConfig(StrictModel):
    """Expected cost per prompt and model: from prices and predicted tokens where the data has
    tokens, else a per-model fit of logged cost on prompt length."""

    predict_output_tokens: bool = True
    chars_per_token: float = Field(4.0, gt=0)


class CrossFitConfig(StrictModel):
    """``folds`` ≥ 2: fit the predictor on train + calibration, and fit the calibrator, knob and
    static-fallback test on out-of-fold predictions (router/crossfit.py); 0 = predictor on
    train only, choices on calibration."""

    folds: int = Field(0, ge=0, le=20)


class FallbackConfig(StrictModel):
    """Ship the static mixture of single models (the zero router's policy) unless the learned
    router beats it on held-out prompts in at least ``confidence`` of ``bootstrap`` resamples
    (router/selection.py). ``enabled: false`` always ships the learned policy. Measured:
    RouterArena -7.6 -> 0.0 % gap closed, never fires on RouterBench or MMLU."""

    enabled: bool = True
    confidence: float = Field(0.8, gt=0, lt=1)
    bootstrap: int = Field(200, ge=20, le=5000)


class RouterConfig(StrictModel):
    """Everything that defines a router: embedder, normalization, predictor, calibration, policy,
    cost model, cross-fitting and fallback (typed; unknown keys are errors)."""

    embedder: EmbedderConfig = Field(default_factory=EmbedderConfig)
    normalization: NormalizationConfig = Field(default_factory=NormalizationConfig)
    predictor: PredictorConfig = Field(default_factory=PredictorConfig)
    calibration: CalibrationConfig = Field(default_factory=CalibrationConfig)
    policy: PolicyConfig = Field(default_factory=PolicyConfig)
    cost: CostConfig = Field(default_factory=CostConfig)
    crossfit: CrossFitConfig = Field(default_factory=CrossFitConfig)
    fallback: FallbackConfig = Field(default_factory=FallbackConfig)
    max_prompt_chars: int = Field(100_000, ge=1)
    cache_dir: str | None = None
    seed: int = 0
