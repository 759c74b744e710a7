"""Certify a routing knob: finite-sample, distribution-free control of mean routed quality.

A routing policy has one knob swept over a grid ordered from most conservative (expensive, best
quality) to cheapest. On the calibration split we know each knob's per-prompt quality. We turn the
user's target into a bounded loss and test, knob by knob in the fixed grid order, the null
"the expected loss exceeds the allowed level" (Learn then Test: Angelopoulos, Bates, Candès, Jordan
& Lei 2021, arXiv:2110.01052). Testing in an order fixed before seeing the data and stopping at the
first failure controls the family-wise error at δ, so *every* rejected knob meets the target
simultaneously with probability ≥ 1 − δ, and picking the cheapest of them keeps that guarantee.

Targets: absolute (mean quality ≥ v; loss = 1 − q, level 1 − v) or relative (mean quality ≥ v ×
the reference's mean quality, with the reference measured on the same prompts). The relative
test uses the paired difference d = q − v·r ∈ [−v, 1], rescaled to the loss (1 − d)/(1 + v) ∈
[0, 1] at level 1/(1 + v); it therefore carries the reference's own sampling noise instead of
treating its calibration mean as a known constant.

The p-values, bounds and reports live in ``_bounds`` and ``_report``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from pydantic import Field, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from tierwise.eval.certification._bounds import risk_p_value, risk_upper_bound
from tierwise.eval.certification._report import Certificate, CheckResult, Interval
from tierwise.eval.certification._wsr import wsr_p_value, wsr_upper_bound
from tierwise.router.errors import ConfigError, DataError
from tierwise.router.schema import StrictModel, parse_model

FloatArray = npt.NDArray[np.float64]
# "wsr": variance-adaptive betting test (eval.certify_wsr); the others see only the sample mean.
Method = Literal["hoeffding_bentkus", "binomial", "hoeffding", "wsr"]

__all__ = [
    "Certificate",
    "CheckResult",
    "TargetConfig",
    "certify",
    "check_guarantee",
    "naive_knob",
]


class TargetConfig(StrictModel):
    """The quality bar and how sure we must be that new traffic clears it."""

    kind: Literal["absolute", "relative"] = "absolute"
    value: float
    reference: str = Field("best", min_length=1)
    confidence: float = Field(0.9, gt=0, lt=1)
    method: Method = "wsr"  # variance-adaptive: certifies relative targets where HB cannot

    @field_validator("value")
    @classmethod
    def _value_in_range(cls, v: float, info: ValidationInfo) -> float:
        kind = info.data.get("kind", "absolute")
        if kind == "absolute" and not 0 < v <= 1:
            raise PydanticCustomError(
                "target_value",
                "must be a mean quality in (0, 1] for an absolute target; for a fraction of a "
                "reference model's quality use kind: relative",
            )
        if kind == "relative" and not 0 < v <= 1.5:
            raise PydanticCustomError(
                "target_value",
                "must be a fraction of the reference's mean quality in (0, 1.5] for a relative "
                "target (0.95 means 95% of the reference)",
            )
        return v

    @field_validator("method")
    @classmethod
    def _method_fits_kind(cls, v: str, info: ValidationInfo) -> str:
        if v == "binomial" and info.data.get("kind") == "relative":
            raise PydanticCustomError(
                "target_method",
                "must be hoeffding_bentkus or hoeffding for a relative target: the exact "
                "binomial test only fits 0/1 outcomes against an absolute target",
            )
        return v

    @property
    def delta(self) -> float:
        """Allowed probability that the guarantee fails."""
        return 1.0 - self.confidence

    def describe(self) -> str:
        if self.kind == "absolute":
            return f"mean quality ≥ {self.value:g}"
        return (
            f"mean quality ≥ {self.value:.0%} of the mean quality of reference {self.reference!r}"
        )


TargetLike = TargetConfig | Mapping[str, Any]


def as_target(target: TargetLike | Certificate) -> TargetConfig:
    """Accept a TargetConfig, a mapping (e.g. a YAML section) or a Certificate."""
    if isinstance(target, TargetConfig):
        return target
    if isinstance(target, Certificate):
        return target.target
    if isinstance(target, Mapping):
        return parse_model(TargetConfig, dict(target), source="target")
    raise ConfigError(
        f"`target` must be a TargetConfig, a mapping or a Certificate, got {type(target).__name__}"
    )


# ----------------------------------------------------------------------------- input checks
def _finite_array(name: str, values: Any, ndim: int) -> FloatArray:
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise DataError(f"`{name}` must be numeric, got {type(values).__name__}") from None
    if arr.ndim != ndim:
        raise DataError(f"`{name}` must be a {ndim}-D array, got shape {arr.shape}")
    if arr.size == 0:
        raise DataError(f"`{name}` must not be empty, got shape {arr.shape}; pass labelled prompts")
    bad = np.argwhere(~np.isfinite(arr))
    if len(bad):
        where = ", ".join(str(int(i)) for i in bad[0])
        raise DataError(
            f"`{name}[{where}]` must be a finite number, got {float(arr[tuple(bad[0])])!r} "
            f"({len(bad)} such entries); drop prompts with unknown labels or costs first"
        )
    return arr


def _quality_array(name: str, values: Any, ndim: int) -> FloatArray:
    arr = _finite_array(name, values, ndim)
    bad = np.argwhere((arr < 0) | (arr > 1))
    if len(bad):
        where = ", ".join(str(int(i)) for i in bad[0])
        raise DataError(
            f"`{name}[{where}]` must be a quality in [0, 1], got {float(arr[tuple(bad[0])])!r}; "
            "rescale graded scores to [0, 1] when importing"
        )
    return arr


def _require_binary(name: str, arr: FloatArray) -> None:
    bad = np.argwhere((arr != 0) & (arr != 1))
    if len(bad):
        where = ", ".join(str(int(i)) for i in bad[0])
        raise ConfigError(
            f"`method` binomial needs 0/1 quality labels, but `{name}[{where}]` is "
            f"{float(arr[tuple(bad[0])])!r} (graded); use method: hoeffding_bentkus"
        )


def _reference(
    reference_quality: Any, n: int, target: TargetConfig, required: bool
) -> FloatArray | None:
    if reference_quality is None:
        if required:
            raise ConfigError(
                "a relative target needs `reference_quality`: the per-prompt quality of "
                f"reference {target.reference!r} on the same prompts"
            )
        return None
    ref = _quality_array("reference_quality", reference_quality, 1)
    if len(ref) != n:
        raise DataError(f"`reference_quality` must have one entry per prompt ({n}), got {len(ref)}")
    return ref


# ----------------------------------------------------------------------------- losses
def _losses(
    quality: FloatArray, ref: FloatArray | None, t: TargetConfig
) -> tuple[FloatArray, float]:
    """Bounded loss in [0, 1] and its allowed level: target holds ⇔ E[loss] ≤ level."""
    if t.kind == "absolute":
        return 1.0 - quality, 1.0 - t.value
    assert ref is not None
    d = quality - t.value * ref  # paired difference in [-v, 1]
    return np.clip((1.0 - d) / (1.0 + t.value), 0.0, 1.0), 1.0 / (1.0 + t.value)


def _to_natural(loss: float, t: TargetConfig) -> float:
    """Map a loss value back to the tested quantity: quality, or margin E[q − v·r]."""
    return 1.0 - loss if t.kind == "absolute" else 1.0 - (1.0 + t.value) * loss


def _p_values(losses: FloatArray, level: float, t: TargetConfig) -> FloatArray:
    """p-values of H0: E[loss] > level, one per row of ``losses`` (k, n)."""
    if t.method == "wsr":
        return wsr_p_value(losses, level, t.delta)
    return risk_p_value(losses.mean(axis=-1), losses.shape[-1], level, t.method)


def _bounds(losses: FloatArray, delta: float, method: str) -> tuple[float, float, float]:
    """UCB at δ, UCB at δ/2 and LCB at δ/2 of the mean of 1-D ``losses`` in [0, 1]."""
    if method == "wsr":
        up = [float(wsr_upper_bound(x, d)[0]) for x, d in ((losses, delta), (losses, delta / 2))]
        return up[0], up[1], 1.0 - float(wsr_upper_bound(1.0 - losses, delta / 2)[0])
    loss_hat, n = float(losses.mean()), losses.shape[-1]
    r = np.array([loss_hat, loss_hat, 1.0 - loss_hat])
    u = risk_upper_bound(r, n, np.array([delta, delta / 2, delta / 2]), method)
    return float(u[0]), float(u[1]), 1.0 - float(u[2])


def _mean_bounds(values: FloatArray, delta: float, method: str) -> tuple[float, Interval]:
    """(1 − δ) lower bound and two-sided (1 − δ) interval (δ/2 per side) for a [0, 1] mean."""
    ucb, ucb2, lcb2 = _bounds(1.0 - values, delta, method)
    return 1.0 - ucb, Interval(1.0 - ucb2, 1.0 - lcb2)


def _loss_bounds(losses: FloatArray, t: TargetConfig) -> tuple[float, Interval]:
    """Bounds on the tested quantity in natural units, from bounds on the loss."""
    ucb, ucb2, lcb2 = _bounds(losses, t.delta, t.method)
    return _to_natural(ucb, t), Interval(_to_natural(ucb2, t), _to_natural(lcb2, t))


# ----------------------------------------------------------------------------- certify
@dataclass(frozen=True)
class _Sweep:
    """Checked inputs of :func:`certify`: one row per knob, one column per calibration prompt."""

    quality: FloatArray  # (k, n) in [0, 1]
    cost: FloatArray  # (k, n) USD >= 0
    knobs: list[Any]
    reference: FloatArray | None  # (n,) quality of always sending to the reference tier
    reference_cost: FloatArray | None  # (n,)


def _knob_list(knobs: Sequence[Any] | npt.ArrayLike, k: int) -> list[Any]:
    values = list(np.asarray(knobs).tolist()) if not isinstance(knobs, Sequence) else list(knobs)
    if len(values) != k:
        raise DataError(
            f"`knobs` must have one value per row of `quality_by_knob` ({k}), got {len(values)}"
        )
    return values


def _cost_matrix(cost_by_knob: Any, shape: tuple[int, ...]) -> FloatArray:
    c = _finite_array("cost_by_knob", cost_by_knob, 2)
    if c.shape != shape:
        raise DataError(
            f"`cost_by_knob` must have the shape of `quality_by_knob` {shape}, got {c.shape}"
        )
    if (c < 0).any():
        i = np.argwhere(c < 0)[0]
        raise DataError(
            f"`cost_by_knob[{i[0]}, {i[1]}]` must be ≥ 0 USD, got {float(c[tuple(i)])!r}"
        )
    return c


def _reference_costs(reference_cost: Any | None, n: int) -> FloatArray | None:
    if reference_cost is None:
        return None
    ref_cost = _finite_array("reference_cost", reference_cost, 1)
    if len(ref_cost) != n or (ref_cost < 0).any():
        raise DataError(
            f"`reference_cost` must hold one USD cost ≥ 0 per prompt ({n}), got "
            f"{len(ref_cost)} entries, minimum {float(ref_cost.min())!r}"
        )
    return ref_cost


def _check_sweep(
    quality_by_knob: Any,
    cost_by_knob: Any,
    knobs: Sequence[Any] | npt.ArrayLike,
    reference_quality: Any | None,
    reference_cost: Any | None,
    t: TargetConfig,
) -> _Sweep:
    q = _quality_array("quality_by_knob", quality_by_knob, 2)
    k, n = q.shape
    sweep = _Sweep(
        quality=q,
        cost=_cost_matrix(cost_by_knob, q.shape),
        knobs=_knob_list(knobs, k),
        reference=_reference(reference_quality, n, t, required=t.kind == "relative"),
        reference_cost=_reference_costs(reference_cost, n),
    )
    if t.method == "binomial":
        _require_binary("quality_by_knob", q)
    return sweep


def _n_rejected(p_values: FloatArray, delta: float) -> int:
    """Fixed-sequence testing: the rejected set is the prefix of the grid with p ≤ δ."""
    failed = np.flatnonzero(p_values > delta)
    return int(failed[0]) if len(failed) else len(p_values)


def _sweep_summary(
    s: _Sweep, t: TargetConfig, p_values: FloatArray, n_rejected: int
) -> dict[str, Any]:
    """What every certificate reports about the whole grid, passed or not."""
    k, n = s.quality.shape
    quality_means = s.quality.mean(axis=1)
    knob_lower = (
        1.0 - wsr_upper_bound(1.0 - s.quality, t.delta)
        if t.method == "wsr"
        else 1.0 - risk_upper_bound(1.0 - quality_means, n, t.delta, t.method)
    )
    return dict(
        target=t,
        knobs=tuple(_plain(v) for v in s.knobs),
        p_values=tuple(float(p) for p in p_values),
        knob_quality=tuple(float(v) for v in quality_means),
        knob_quality_lower=tuple(float(v) for v in knob_lower),
        knob_cost=tuple(float(v) for v in s.cost.mean(axis=1)),
        n_tested=min(n_rejected + 1, k),
        n_calibration=n,
        reference_mean=None if s.reference is None else float(s.reference.mean()),
    )


def _certified(
    s: _Sweep,
    t: TargetConfig,
    losses: FloatArray,
    p_values: FloatArray,
    n_rejected: int,
    summary: dict[str, Any],
) -> Certificate:
    """The cheapest of the rejected (certified) knobs, with its bounds."""
    cost_means = s.cost.mean(axis=1)
    idx = int(np.argmin(cost_means[:n_rejected]))
    lower, interval = _mean_bounds(s.quality[idx], t.delta, t.method)
    margin_mean = margin_lower = margin_interval = None
    if t.kind == "relative":
        assert s.reference is not None
        margin_mean = float(s.quality[idx].mean() - t.value * s.reference.mean())
        margin_lower, margin_interval = _loss_bounds(losses[idx], t)
    return Certificate(
        knob=_plain(s.knobs[idx]),
        index=idx,
        passed=True,
        fallback=False,
        p_value=float(p_values[idx]),
        quality_mean=float(s.quality[idx].mean()),
        quality_lower=lower,
        quality_interval=interval,
        margin_mean=margin_mean,
        margin_lower=margin_lower,
        margin_interval=margin_interval,
        cost_mean=float(cost_means[idx]),
        **summary,
    )


def certify(
    quality_by_knob: Any,
    cost_by_knob: Any,
    knobs: Sequence[Any] | npt.ArrayLike,
    reference_quality: Any | None,
    target: TargetLike,
    reference_cost: Any | None = None,
) -> Certificate:
    """Certify the cheapest knob whose mean routed quality meets ``target`` w.p. ≥ confidence.

    ``quality_by_knob[k, i]`` / ``cost_by_knob[k, i]``: quality in [0, 1] and USD cost of the
    answer routed for calibration prompt i at knob k; ``knobs`` is ordered from most
    conservative to cheapest, and that order must be fixed before looking at calibration data
    (it is the fixed sequence that makes the guarantee valid). ``reference_quality`` (and
    optionally ``reference_cost``) describe always sending to the reference tier: required for
    relative targets, used for the fallback when no knob passes.
    """
    t = as_target(target)
    s = _check_sweep(quality_by_knob, cost_by_knob, knobs, reference_quality, reference_cost, t)
    losses, level = _losses(s.quality, s.reference, t)
    p_values = _p_values(losses, level, t)
    n_rejected = _n_rejected(p_values, t.delta)
    summary = _sweep_summary(s, t, p_values, n_rejected)
    if n_rejected == 0:
        return _fallback(summary, s.reference, s.reference_cost, t, float(p_values[0]))
    return _certified(s, t, losses, p_values, n_rejected, summary)


def _fallback(
    common: dict[str, Any],
    ref: FloatArray | None,
    ref_cost: FloatArray | None,
    t: TargetConfig,
    first_p: float,
) -> Certificate:
    """No knob passed: report the always-reference policy, with its own numbers when known."""
    quality_mean = quality_lower = quality_interval = None
    if ref is not None:
        quality_mean = float(ref.mean())
        method = (
            t.method
            if t.method != "binomial" or np.isin(ref, (0.0, 1.0)).all()
            else "hoeffding_bentkus"
        )
        quality_lower, quality_interval = _mean_bounds(ref, t.delta, method)
    return Certificate(
        knob=None,
        index=None,
        passed=False,
        fallback=True,
        p_value=first_p,
        quality_mean=quality_mean,
        quality_lower=quality_lower,
        quality_interval=quality_interval,
        margin_mean=None,
        margin_lower=None,
        margin_interval=None,
        cost_mean=None if ref_cost is None else float(ref_cost.mean()),
        **common,
    )


def _plain(value: Any) -> Any:
    """numpy scalars → Python scalars so the certificate stays JSON-safe."""
    return value.item() if isinstance(value, np.generic) else value


def naive_knob(
    quality_by_knob: Any,
    cost_by_knob: Any,
    reference_quality: Any | None,
    target: TargetLike,
) -> int | None:
    """Index of the cheapest knob whose *calibration mean* meets the target (no guarantee).

    This is the rule people use by default; it is here to measure how often it breaks the
    target on new traffic. ``None`` when no knob meets it even on calibration data.
    """
    t = as_target(target)
    q = _quality_array("quality_by_knob", quality_by_knob, 2)
    c = _finite_array("cost_by_knob", cost_by_knob, 2)
    ref = _reference(reference_quality, q.shape[1], t, required=t.kind == "relative")
    bar = t.value if t.kind == "absolute" else t.value * float(ref.mean())  # type: ignore[union-attr]
    ok = np.flatnonzero(q.mean(axis=1) >= bar)
    if not len(ok):
        return None
    return int(ok[np.argmin(c.mean(axis=1)[ok])])


# ----------------------------------------------------------------------------- check
def check_guarantee(
    realized_quality: Any,
    reference_quality: Any | None,
    target: TargetLike | Certificate,
) -> CheckResult:
    """Does the target still hold on a new labelled sample of routed traffic?

    Two one-sided tests at the target's δ, with the target's method: "holds" when we can reject
    "the target fails" (p_holds ≤ δ); "violated" when we can reject "the target holds"
    (p_violated ≤ δ) — on unshifted traffic that happens with probability ≤ δ; otherwise
    "inconclusive" (too few prompts to tell). Used by ``tierwise check`` to detect drift.
    """
    t = as_target(target)
    q = _quality_array("realized_quality", realized_quality, 1)
    n = len(q)
    ref = _reference(reference_quality, n, t, required=t.kind == "relative")
    if t.method == "binomial":
        _require_binary("realized_quality", q)
    losses, level = _losses(q[None, :], ref, t)
    r_hat = float(losses.mean())
    p_holds = float(_p_values(losses, level, t)[0])
    p_violated = float(_p_values(1.0 - losses, 1.0 - level, t)[0])
    verdict: Literal["holds", "violated", "inconclusive"] = "inconclusive"
    if p_holds <= t.delta:
        verdict = "holds"
    elif p_violated <= t.delta:
        verdict = "violated"
    _, interval = _loss_bounds(losses[0], t)
    return CheckResult(
        verdict=verdict,
        target=t,
        n=n,
        estimate=_to_natural(r_hat, t),
        interval=interval,
        threshold=t.value if t.kind == "absolute" else 0.0,
        quality_mean=float(q.mean()),
        reference_mean=None if ref is None else float(ref.mean()),
        p_holds=p_holds,
        p_violated=p_violated,
    )
