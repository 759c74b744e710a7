"""The threshold policy: the cheapest tier whose P(success) clears a bar.

The relative forms (``relative``, ``gap``) adapt the bar to each prompt's difficulty — a hard
prompt no tier is likely to solve does not fall through to the expensive fallback — which is
what makes a threshold rule competitive with ``utility``.
"""

from __future__ import annotations

import math
from typing import Any

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
)
from tierwise.router.policies.registry import register_policy

__all__ = ["ThresholdPolicy"]


@register_policy("threshold")
class ThresholdPolicy(Policy):
    """The cheapest tier whose P(success) clears a bar; the knob sets the bar.

    ``mode``: ``absolute`` (p ≥ τ), ``relative`` (p ≥ τ · the prompt's max p) or ``gap``
    (p ≥ max p − δ). ``tier_offsets`` adds a per-tier margin to the bar; ``fallback`` says what
    happens when no tier passes (``most_likely`` or ``top``, the priciest tier).

    >>> import numpy as np
    >>> from tierwise.router.policies import get_policy
    >>> p = np.array([[0.6, 0.9], [0.95, 0.96]])  # P(success): a cheap and a pricey tier
    >>> c = np.array([[1.0, 10.0], [1.0, 10.0]])  # expected cost (USD)
    >>> policy = get_policy("threshold", mode="gap").fit(c)
    >>> policy.choose(p, c, knob=0.05).tolist()  # cheapest tier within 0.05 of the best
    [1, 0]
    """

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
        """``mode``, ``fallback`` and ``tier_offsets``."""
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
        """Per prompt, the cheapest tier at or above the bar (else the fallback)."""
        p, c = check_inputs(p_success, expected_cost)
        k = check_knob(knob)
        off = self._offsets(p.shape[1])
        pmax = p.max(axis=1, keepdims=True)
        if self.mode == "absolute":
            bar = k + off
        elif self.mode == "relative":
            bar = k * pmax + off
        else:
            bar = pmax - k + off
        passing = p >= bar - 1e-12
        choice = cheapest(passing, c, p)
        none = ~passing.any(axis=1)
        if none.any():
            if self.fallback == "most_likely":
                fb = cheapest(p >= pmax, c, p)
            else:
                cmax = c.max(axis=1, keepdims=True)
                fb = np.argmax(np.where(c >= cmax, p, -np.inf), axis=1).astype(np.int64)
            choice[none] = fb[none]
        return choice

    def knob_grid(self, p_success: Any, expected_cost: Any, n: int = 50) -> FloatArray:
        """Bars at quantiles of the decision-changing values, loosest (cheapest) first."""
        p, _ = check_inputs(p_success, expected_cost)
        n = max(int(n), 3)
        off = self._offsets(p.shape[1])
        pmax = p.max(axis=1, keepdims=True)
        if self.mode == "absolute":
            vals = (p - off).ravel()
            return pick_grid(vals, n, min(0.0, float(vals.min())), float(vals.max()) + 1e-6)
        if self.mode == "relative":
            ok = pmax[:, 0] > 0
            vals = ((p[ok] - off) / pmax[ok]).ravel()
            hi = max(1.0, float(vals.max()) if vals.size else 1.0) + 1e-6
            return pick_grid(vals, n, min(0.0, float(vals.min()) if vals.size else 0.0), hi)
        vals = (pmax - p + off).ravel()
        # gap: a large δ lets every tier pass (cheapest); δ below the smallest value lets none.
        grid = pick_grid(vals, n, min(0.0, float(vals.min())) - 1e-6, max(1.0, float(vals.max())))
        return grid[::-1].copy()
