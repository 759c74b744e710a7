"""What a certification or a drift check found: JSON-safe records and plain-words explanations."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

if TYPE_CHECKING:
    from tierwise.eval.certification._certify import TargetConfig

SCHEMA = "tierwise.certificate/v1"
METHOD_NAMES = {
    "hoeffding_bentkus": "Hoeffding–Bentkus bound",
    "hoeffding": "Hoeffding bound",
    "binomial": "exact binomial test",
    "wsr": "Waudby-Smith–Ramdas betting test",
}
ASSUMPTION = (
    "This assumes new prompts are exchangeable with the calibration sample (drawn from the same "
    "mix of tasks, difficulty and models); when traffic changes, re-check it with "
    "`tierwise check` on freshly labelled prompts."
)


class Interval(NamedTuple):
    """A confidence interval ``[lower, upper]``."""

    lower: float
    upper: float


def _num(x: Any) -> Any:
    """JSON-safe scalar: NaN/inf → None, numpy → Python."""
    if x is None or isinstance(x, bool | str):
        return x
    if isinstance(x, tuple | list):
        return [_num(v) for v in x]
    if isinstance(x, int):
        return x
    try:
        f = float(x)
    except (TypeError, ValueError):
        return str(x)
    return f if math.isfinite(f) else None


def _knob(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else repr(v) if isinstance(v, str) else str(v)


def _usd(x: float) -> str:
    return f"${x:.3g} per prompt (${1000 * x:,.2f} per 1,000 prompts)"


def _pct(c: float) -> str:
    return f"{100 * c:g}%"


@dataclass(frozen=True)
class Certificate:
    """The certified knob (or the fallback) with the evidence behind it.

    ``quality_*`` describe mean routed quality at the certified knob (or of the reference tier
    when ``fallback``). ``margin_*`` (relative targets) describe E[q − v·r], which is ≥ 0 exactly
    when the target holds. Per-knob intervals describe that knob alone; the selection-adjusted
    statement is the guarantee itself (fixed-sequence testing over the whole grid).
    """

    target: TargetConfig
    knob: Any
    index: int | None
    passed: bool
    fallback: bool
    p_value: float
    quality_mean: float | None
    quality_lower: float | None
    quality_interval: Interval | None
    margin_mean: float | None
    margin_lower: float | None
    margin_interval: Interval | None
    cost_mean: float | None
    knobs: tuple[Any, ...]
    p_values: tuple[float, ...]
    knob_quality: tuple[float, ...]
    knob_quality_lower: tuple[float, ...]
    knob_cost: tuple[float, ...]
    n_tested: int
    n_calibration: int
    reference_mean: float | None

    @property
    def method(self) -> str:
        return self.target.method

    @property
    def confidence(self) -> float:
        return self.target.confidence

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe record for the artifact manifest and MLflow (``mlflow.log_dict``)."""
        out: dict[str, Any] = {"schema": SCHEMA, "target": self.target.model_dump()}
        for name in self.__dataclass_fields__:
            if name != "target":
                out[name] = _num(getattr(self, name))
        out["method"] = self.method
        out["confidence"] = self.confidence
        return out

    def metrics(self) -> dict[str, float]:
        """Flat numeric summary for ``mlflow.log_metrics`` (missing values left out)."""
        raw = {
            "certified": float(self.passed),
            "cert_p_value": self.p_value,
            "cert_quality_mean": self.quality_mean,
            "cert_quality_lower": self.quality_lower,
            "cert_margin_lower": self.margin_lower,
            "cert_cost_mean": self.cost_mean,
            "cert_n_calibration": float(self.n_calibration),
        }
        return {k: float(v) for k, v in raw.items() if v is not None and math.isfinite(v)}

    def explain(self) -> str:
        """One paragraph in plain words: the guarantee, its assumption, the numbers."""
        t, conf = self.target, _pct(self.confidence)
        how = (
            f"{METHOD_NAMES[t.method]}, fixed-sequence testing over {len(self.knobs)} knob "
            f"values, {self.n_calibration:,} calibration prompts"
        )
        if self.fallback:
            return self._explain_fallback(how)
        assert self.quality_interval is not None and self.cost_mean is not None
        lo, hi = self.quality_interval
        text = (
            f"Guarantee: with {conf} confidence, routing with knob = {_knob(self.knob)} keeps "
            f"{t.describe()} on new traffic ({how}; p = {self.p_value:.2g}). {ASSUMPTION} "
            f"At this knob the calibration prompts had mean quality {self.quality_mean:.3f} "
            f"({conf} interval {lo:.3f}–{hi:.3f}) and an expected cost of {_usd(self.cost_mean)}"
        )
        if self.margin_lower is not None and self.reference_mean is not None:
            text += (
                f"; the reference averaged {self.reference_mean:.3f}, so quality minus "
                f"{t.value:g} × reference is {self.margin_mean:+.3f} (at least "
                f"{self.margin_lower:+.3f} with {conf} confidence)"
            )
        return text + (
            ". The interval describes that knob alone; the guarantee is the statement that "
            "accounts for having chosen it."
        )

    def _explain_fallback(self, how: str) -> str:
        t = self.target
        first = _knob(self.knobs[0])
        text = (
            f"No knob value could be certified: even the most conservative one ({first}) had "
            f"calibration mean quality {self.knob_quality[0]:.3f} and p = {self.p_value:.2g} > "
            f"{1 - self.confidence:.2g} for {t.describe()} at {_pct(self.confidence)} confidence "
            f"({how}). Fall back to sending every prompt to the reference tier {t.reference!r}"
        )
        if self.quality_mean is None or self.quality_interval is None:
            return text + "; its quality on these prompts was not given, so nothing is guaranteed."
        lo, hi = self.quality_interval
        text += (
            f": on the calibration prompts it averaged quality {self.quality_mean:.3f} "
            f"({_pct(self.confidence)} interval {lo:.3f}–{hi:.3f})"
        )
        if self.cost_mean is not None:
            text += f" at {_usd(self.cost_mean)}"
        if t.kind == "absolute" and (self.quality_lower or 0.0) < t.value:
            text += (
                f". Even the reference is not shown to reach {t.value:g}, so the target itself "
                "may be out of reach: lower it, or label more calibration prompts"
            )
        return text + f". {ASSUMPTION}"


@dataclass(frozen=True)
class CheckResult:
    """Verdict of a drift check on newly labelled traffic."""

    verdict: Literal["holds", "violated", "inconclusive"]
    target: TargetConfig
    n: int
    estimate: float  # mean quality (absolute) or mean of q − v·r (relative)
    interval: Interval  # two-sided, at the target's confidence
    threshold: float  # the target holds iff the estimated quantity's mean ≥ threshold
    quality_mean: float
    reference_mean: float | None
    p_holds: float  # small ⇒ the target holds
    p_violated: float  # small ⇒ the target is violated

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"target": self.target.model_dump()}
        for name in self.__dataclass_fields__:
            if name != "target":
                out[name] = _num(getattr(self, name))
        return out

    def explain(self) -> str:
        t, conf = self.target, _pct(self.target.confidence)
        lo, hi = self.interval
        if t.kind == "absolute":
            what = f"mean quality {self.estimate:.3f} ({conf} interval {lo:.3f}–{hi:.3f})"
        else:
            what = (
                f"mean quality {self.quality_mean:.3f} vs reference {self.reference_mean:.3f}; "
                f"quality minus {t.value:g} × reference is {self.estimate:+.3f} ({conf} interval "
                f"{lo:+.3f} to {hi:+.3f})"
            )
        head = f"On {self.n:,} new prompts the target ({t.describe()})"
        if self.verdict == "holds":
            return f"{head} still holds at {conf} confidence: {what}; p = {self.p_holds:.2g}."
        if self.verdict == "violated":
            return (
                f"{head} is violated at {conf} confidence: {what}; p = {self.p_violated:.2g}. "
                "Traffic has likely drifted away from the calibration sample: re-certify on "
                "freshly labelled traffic, or route to the reference tier until then."
            )
        return (
            f"{head} can be neither confirmed nor refuted at {conf} confidence: {what}. "
            "Label more prompts to decide."
        )
