"""Routing policies: from per-tier P(success) and expected cost to one tier per prompt.

Every policy has one scalar knob that trades cost for quality; ``knob_grid`` returns knob values
ordered from the cheapest behaviour to the most expensive one, spanning the whole cost–quality
curve of the given matrices (the order is by behaviour, not by value: for ``utility`` the grid
is a decreasing λ). A decision for one prompt never depends on the other prompts of the batch.

- ``threshold``: the cheapest tier whose p clears a bar. ``mode`` sets the bar:
  ``absolute`` (p ≥ τ), ``relative`` (p ≥ τ · max p of the prompt) or ``gap``
  (p ≥ max p − δ: "within δ of the best tier"). The relative forms adapt the bar to each
  prompt's difficulty — a hard prompt no tier is likely to solve does not fall through to the
  expensive fallback — which is what makes a threshold rule competitive with ``utility``.
  ``tier_offsets`` adds a per-tier margin to the bar (e.g. tuned, or to demand more of a tier
  whose calibration is weak). When no tier passes: ``fallback="most_likely"`` takes the highest
  p, ``"top"`` the most expensive tier.
- ``utility``: argmax p − λ · cost / cost_scale. ``cost_scale`` is a reference cost (the router
  sets it from training data with :func:`reference_cost`: the mean cost of the priciest tier), so
  λ = 1 means "give up one unit of success probability to save one top-tier query". With
  ``cost_scale=None`` cost is in raw USD and λ in 1/USD.
Ties go to the cheaper tier, then to the lower column index.

Measured on RouterBench (MiniLM tail embeddings, 3 grouped splits, AIQ averaged over 12
predictor configurations × 4 calibrations; best configuration in brackets; see
scripts/explore_policies.py): utility 0.831 (0.841), threshold gap 0.827 (0.836), relative
0.826 (0.834), absolute 0.811 (0.824), absolute with fallback "top" 0.807 (0.820). Zero router
0.812, oracle 0.970. Utility is the Lagrangian optimum of expected quality minus cost, so with
calibrated p no per-prompt rule can beat it on average; ``gap`` is the default threshold mode
because it comes closest while keeping the "good enough, then cheapest" reading.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from tierwise.router.errors import ConfigError, DataError

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def _check(p_success: Any, expected_cost: Any) -> tuple[FloatArray, FloatArray]:
    p = np.asarray(p_success, dtype=np.float64)
    c = np.asarray(expected_cost, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] == 0:
        raise DataError(
            f"`p_success` must be a 2-D (n_prompts, n_models) matrix, got shape {p.shape}"
        )
    if c.shape != p.shape:
        raise DataError(
            f"`expected_cost` must have the shape of `p_success` {p.shape}, got {c.shape}"
        )
    bad = ~np.isfinite(p) | (p < 0) | (p > 1)
    if bad.any():
        r, j = np.argwhere(bad)[0]
        raise DataError(
            f"`p_success` must be in [0, 1], got {p[r, j]} at row {r}, model column {j}"
        )
    bad = ~np.isfinite(c) | (c < 0)
    if bad.any():
        r, j = np.argwhere(bad)[0]
        raise DataError(
            f"`expected_cost` must be finite and >= 0, got {c[r, j]} at row {r}, model column {j}"
        )
    return p, c


def _check_knob(knob: Any) -> float:
    if (
        isinstance(knob, bool)
        or not isinstance(knob, int | float | np.number)
        or not math.isfinite(float(knob))
    ):
        raise ConfigError(f"policy knob must be a finite number, got {knob!r}")
    return float(knob)


def _cheapest(mask: npt.NDArray[np.bool_], c: FloatArray, p: FloatArray) -> IntArray:
    """Per row, the cheapest tier in ``mask`` (ties: higher p, then lower index)."""
    cm = np.where(mask, c, np.inf)
    best = cm.min(axis=1, keepdims=True)
    tied = mask & (cm <= best)
    return np.argmax(np.where(tied, p, -np.inf), axis=1).astype(np.int64)


def _pick_grid(values: FloatArray, n: int, low: float, high: float) -> FloatArray:
    """``n`` points: both ends plus quantiles of the decision-changing values, ascending."""
    vals = np.unique(values[np.isfinite(values)])
    inner = np.zeros(0)
    if vals.size:
        qs = np.linspace(0, 1, max(n - 2, 1))
        inner = np.asarray(np.quantile(vals, qs, method="inverted_cdf"), dtype=np.float64)
    return np.unique(np.concatenate([[low], inner, [high]]))


def reference_cost(expected_cost: Any) -> float:
    """Mean cost of the tier that is most expensive on average: the unit for ``utility``'s λ."""
    c = np.asarray(expected_cost, dtype=np.float64)
    if c.ndim != 2 or c.size == 0 or not np.all(np.isfinite(c)):
        raise DataError(f"`expected_cost` must be a finite 2-D matrix, got shape {c.shape}")
    ref = float(c.mean(axis=0).max())
    if ref <= 0:
        raise DataError("`expected_cost` is zero for every tier; costs are needed to route by cost")
    return ref


class Policy(ABC):
    name: ClassVar[str]

    @property
    @abstractmethod
    def params(self) -> dict[str, Any]: ...

    @abstractmethod
    def choose(self, p_success: Any, expected_cost: Any, knob: float) -> IntArray:
        """``(n,)`` chosen column index per prompt."""

    @abstractmethod
    def knob_grid(self, p_success: Any, expected_cost: Any, n: int = 50) -> FloatArray:
        """Knob values from the cheapest to the most expensive behaviour."""

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"{type(self).__name__}({args})"


class ThresholdPolicy(Policy):
    name = "threshold"
    MODES = ("absolute", "relative", "gap")
    FALLBACKS = ("most_likely", "top")

    def __init__(
        self,
        mode: str = "gap",
        fallback: str = "most_likely",
        tier_offsets: list[float] | None = None,
    ) -> None:
        if mode not in self.MODES:
            raise ConfigError(f"`policy.mode` must be one of {list(self.MODES)}, got {mode!r}")
        if fallback not in self.FALLBACKS:
            raise ConfigError(
                f"`policy.fallback` must be one of {list(self.FALLBACKS)}, got {fallback!r}"
            )
        offsets = None
        if tier_offsets is not None:
            offsets = (
                [float(x) for x in tier_offsets] if isinstance(tier_offsets, list | tuple) else None
            )
            if offsets is None or not offsets or not all(math.isfinite(x) for x in offsets):
                raise ConfigError(
                    "`policy.tier_offsets` must be a list of finite numbers, one per tier, "
                    f"got {tier_offsets!r}"
                )
        self.mode, self.fallback, self.tier_offsets = mode, fallback, offsets

    @property
    def params(self) -> dict[str, Any]:
        return {"mode": self.mode, "fallback": self.fallback, "tier_offsets": self.tier_offsets}

    def _offsets(self, m: int) -> FloatArray:
        if self.tier_offsets is None:
            return np.zeros(m)
        if len(self.tier_offsets) != m:
            raise ConfigError(
                f"`policy.tier_offsets` must have one value per tier ({m}), "
                f"got {len(self.tier_offsets)}"
            )
        return np.asarray(self.tier_offsets, dtype=np.float64)

    def choose(self, p_success: Any, expected_cost: Any, knob: float) -> IntArray:
        p, c = _check(p_success, expected_cost)
        k = _check_knob(knob)
        off = self._offsets(p.shape[1])
        pmax = p.max(axis=1, keepdims=True)
        if self.mode == "absolute":
            bar = k + off
        elif self.mode == "relative":
            bar = k * pmax + off
        else:
            bar = pmax - k + off
        passing = p >= bar - 1e-12
        choice = _cheapest(passing, c, p)
        none = ~passing.any(axis=1)
        if none.any():
            if self.fallback == "most_likely":
                fb = _cheapest(p >= pmax, c, p)
            else:
                cmax = c.max(axis=1, keepdims=True)
                fb = np.argmax(np.where(c >= cmax, p, -np.inf), axis=1).astype(np.int64)
            choice[none] = fb[none]
        return choice

    def knob_grid(self, p_success: Any, expected_cost: Any, n: int = 50) -> FloatArray:
        p, _ = _check(p_success, expected_cost)
        n = max(int(n), 3)
        off = self._offsets(p.shape[1])
        pmax = p.max(axis=1, keepdims=True)
        if self.mode == "absolute":
            vals = (p - off).ravel()
            return _pick_grid(vals, n, min(0.0, float(vals.min())), float(vals.max()) + 1e-6)
        if self.mode == "relative":
            ok = pmax[:, 0] > 0
            vals = ((p[ok] - off) / pmax[ok]).ravel()
            hi = max(1.0, float(vals.max()) if vals.size else 1.0) + 1e-6
            return _pick_grid(vals, n, min(0.0, float(vals.min()) if vals.size else 0.0), hi)
        vals = (pmax - p + off).ravel()
        # gap: a large δ lets every tier pass (cheapest); δ below the smallest value lets none.
        grid = _pick_grid(vals, n, min(0.0, float(vals.min())) - 1e-6, max(1.0, float(vals.max())))
        return grid[::-1].copy()


class UtilityPolicy(Policy):
    name = "utility"

    def __init__(self, cost_scale: float | None = None) -> None:
        if cost_scale is not None and (
            isinstance(cost_scale, bool)
            or not isinstance(cost_scale, int | float)
            or not math.isfinite(cost_scale)
            or cost_scale <= 0
        ):
            raise ConfigError(
                f"`policy.cost_scale` must be a number > 0 (USD) or null, got {cost_scale!r}"
            )
        self.cost_scale = None if cost_scale is None else float(cost_scale)

    @property
    def params(self) -> dict[str, Any]:
        return {"cost_scale": self.cost_scale}

    def _cost(self, c: FloatArray) -> FloatArray:
        return c if self.cost_scale is None else c / self.cost_scale

    def choose(self, p_success: Any, expected_cost: Any, knob: float) -> IntArray:
        p, c = _check(p_success, expected_cost)
        lam = _check_knob(knob)
        if lam < 0:
            raise ConfigError(f"utility knob λ must be >= 0, got {lam}")
        u = p - lam * self._cost(c)
        best = u.max(axis=1, keepdims=True)
        return _cheapest(u >= best - 1e-12, c, p)

    def knob_grid(self, p_success: Any, expected_cost: Any, n: int = 50) -> FloatArray:
        p, c = _check(p_success, expected_cost)
        n = max(int(n), 3)
        cs = self._cost(c)
        # λ where a row can flip from tier j to a pricier-and-better tier k: Δp / Δcost.
        dp = p[:, None, :] - p[:, :, None]
        dc = cs[:, None, :] - cs[:, :, None]
        useful = (dc > 0) & (dp > 0)
        vals = dp[useful] / dc[useful]
        if vals.size == 0:
            return np.array([1.0, 0.0])
        # Breakpoints span orders of magnitude: pick quantiles in log space, then add both ends.
        grid = np.exp(
            _pick_grid(np.log(vals), n - 2, float(np.log(vals.min())), float(np.log(vals.max())))
        )
        grid = np.unique(np.concatenate([[0.0], grid, [float(vals.max()) * 1.01]]))
        return grid[::-1].copy()


_POLICIES: dict[str, type[Policy]] = {"threshold": ThresholdPolicy, "utility": UtilityPolicy}


def available_policies() -> list[str]:
    return sorted(_POLICIES)


def get_policy(name: str, **params: Any) -> Policy:
    """A policy by short name; unknown names or parameters raise ConfigError listing valid ones."""
    if name not in _POLICIES:
        raise ConfigError(f"`policy` must be one of {available_policies()}, got {name!r}")
    cls = _POLICIES[name]
    import inspect

    valid = sorted(k for k in inspect.signature(cls.__init__).parameters if k != "self")
    unknown = sorted(set(params) - set(valid))
    if unknown:
        raise ConfigError(f"`{unknown[0]}` is not a parameter of policy {name!r}; valid: {valid}")
    return cls(**params)
