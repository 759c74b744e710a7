"""The utility policy: per prompt, the tier maximizing P(success) − λ · cost / cost_scale.

Utility is the Lagrangian optimum of expected quality minus cost, so with calibrated p no
per-prompt rule can beat it on average. Its cost unit is learned in :meth:`UtilityPolicy.fit`
(the one place the training costs set it, for the router and the tuner alike).
"""

from __future__ import annotations

import math
from typing import Any, Self

import numpy as np

from tierwise.router.errors import ConfigError
from tierwise.router.policies.base import (
    FloatArray,
    IntArray,
    Policy,
    cheapest,
    check_inputs,
    check_knob,
    pick_grid,
    reference_cost,
)
from tierwise.router.policies.registry import register_policy

__all__ = ["UtilityPolicy"]


@register_policy("utility")
class UtilityPolicy(Policy):
    """argmax p − λ · cost / cost_scale: expected quality minus priced cost, per prompt.

    ``cost_scale``: ``"auto"`` (default) — :meth:`fit` sets it to :func:`reference_cost` of the
    training costs (the mean cost of the priciest tier), so λ = 1 means "give up one unit of
    success probability to save one top-tier query"; a number > 0 fixes it (USD); ``None``
    keeps raw USD (λ in 1/USD).

    >>> import numpy as np
    >>> from tierwise.router.policies import get_policy
    >>> p = np.array([[0.6, 0.9], [0.95, 0.96]])  # P(success): a cheap and a pricey tier
    >>> c = np.array([[1.0, 10.0], [1.0, 10.0]])  # expected cost (USD)
    >>> policy = get_policy("utility").fit(c)
    >>> policy.params  # the fitted scale: what an artifact stores
    {'cost_scale': 10.0}
    >>> policy.choose(p, c, knob=0.1).tolist()  # pays for +0.30 quality, not for +0.01
    [1, 0]
    """

    AUTO = "auto"

    def __init__(self, cost_scale: float | str | None = "auto") -> None:
        if cost_scale != self.AUTO and cost_scale is not None and (
            isinstance(cost_scale, bool)
            or not isinstance(cost_scale, int | float)
            or not math.isfinite(cost_scale)
            or cost_scale <= 0
        ):
            raise ConfigError(
                f"`policy.cost_scale` must be a number > 0 (USD), \"auto\" or null, "
                f"got {cost_scale!r}"
            )
        self.cost_scale = cost_scale if cost_scale in (None, self.AUTO) else float(cost_scale)

    def fit(self, expected_cost: Any, p_success: Any | None = None) -> Self:
        """Resolve ``cost_scale="auto"`` to the reference cost of ``expected_cost``."""
        if self.cost_scale == self.AUTO:
            self.cost_scale_: float | None = reference_cost(expected_cost)
        else:
            self.cost_scale_ = None if self.cost_scale is None else float(self.cost_scale)
        return self

    def _scale(self) -> float | None:
        if hasattr(self, "cost_scale_"):
            return self.cost_scale_
        if self.cost_scale == self.AUTO:
            raise ConfigError(
                "`policy.cost_scale` is \"auto\" until the policy is fitted: call "
                "fit(expected_cost) on training costs first, or pass a number"
            )
        return None if self.cost_scale is None else float(self.cost_scale)

    @property
    def params(self) -> dict[str, Any]:
        """``cost_scale``: the fitted number once fitted, else as given."""
        return {"cost_scale": self.cost_scale_ if hasattr(self, "cost_scale_") else self.cost_scale}

    def _cost(self, c: FloatArray) -> FloatArray:
        scale = self._scale()
        return c if scale is None else c / scale

    def choose(self, p_success: Any, expected_cost: Any, knob: float) -> IntArray:
        """Per prompt, the tier of highest p − λ · cost / cost_scale (ties: cheaper)."""
        p, c = check_inputs(p_success, expected_cost)
        lam = check_knob(knob)
        if lam < 0:
            raise ConfigError(f"utility knob λ must be >= 0, got {lam}")
        u = p - lam * self._cost(c)
        best = u.max(axis=1, keepdims=True)
        return cheapest(u >= best - 1e-12, c, p)

    def knob_grid(self, p_success: Any, expected_cost: Any, n: int = 50) -> FloatArray:
        """λ values where decisions flip (log-spaced quantiles), largest (cheapest) first."""
        p, c = check_inputs(p_success, expected_cost)
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
            pick_grid(np.log(vals), n - 2, float(np.log(vals.min())), float(np.log(vals.max())))
        )
        grid = np.unique(np.concatenate([[0.0], grid, [float(vals.max()) * 1.01]]))
        return grid[::-1].copy()
