"""The routing-policy contract: per-tier P(success) and expected cost -> one tier per prompt.

A policy is a small estimator: ``__init__`` stores its parameters, :meth:`Policy.fit` learns the
data-dependent ones from the training traffic's expected costs (and returns ``self``),
:meth:`Policy.choose` picks a column per prompt at a knob value and :meth:`Policy.knob_grid`
spans the knob from the cheapest behaviour to the most expensive one. Implementations live in
their own modules and register by short name (:mod:`tierwise.router.policies.registry`).

Contract every registered policy meets (tests/test_policy_conformance.py checks it):

- a decision for one prompt never depends on the other prompts of the batch, nor their order;
- along ``knob_grid`` the mean cost never falls (the first knob is the cheapest behaviour);
- ``params`` is JSON (the artifact stores it) and ``get_policy(name, **params)`` rebuilds the
  fitted policy without refitting;
- bad matrices raise DataError, a bad knob ConfigError, each naming the value.

Ties go to the cheaper tier, then to the lower column index.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any, ClassVar, Self

import numpy as np
import numpy.typing as npt

from tierwise.router.errors import ConfigError, DataError

__all__ = [
    "FloatArray",
    "IntArray",
    "Policy",
    "cheapest",
    "check_inputs",
    "check_knob",
    "pick_grid",
    "reference_cost",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def check_inputs(p_success: Any, expected_cost: Any) -> tuple[FloatArray, FloatArray]:
    """``(p_success, expected_cost)`` as float64 ``(n, m)`` matrices; DataError names a bad cell."""
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


def check_knob(knob: Any) -> float:
    """The knob as a float; ConfigError unless it is a finite number."""
    if (
        isinstance(knob, bool)
        or not isinstance(knob, int | float | np.number)
        or not math.isfinite(float(knob))
    ):
        raise ConfigError(f"policy knob must be a finite number, got {knob!r}")
    return float(knob)


def cheapest(mask: npt.NDArray[np.bool_], c: FloatArray, p: FloatArray) -> IntArray:
    """Per row, the cheapest tier in ``mask`` (ties: higher p, then lower index)."""
    cm = np.where(mask, c, np.inf)
    best = cm.min(axis=1, keepdims=True)
    tied = mask & (cm <= best)
    return np.argmax(np.where(tied, p, -np.inf), axis=1).astype(np.int64)


def pick_grid(values: FloatArray, n: int, low: float, high: float) -> FloatArray:
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
    """One scalar knob trading cost for quality; see the module docstring for the contract.

    Subclasses set ``name`` through :func:`~tierwise.router.policies.registry.register_policy`.
    ``example_params`` are the parameters the shared conformance tests build the policy with
    when its defaults do not make a usable policy (e.g. parameters normally set by fitting).
    """

    name: ClassVar[str]
    example_params: ClassVar[dict[str, Any]] = {}

    @property
    @abstractmethod
    def params(self) -> dict[str, Any]:
        """The JSON parameters that rebuild this policy (after :meth:`fit`: the fitted ones)."""

    def fit(self, expected_cost: Any, p_success: Any | None = None) -> Self:
        """Learn data-dependent settings from training traffic; returns ``self``.

        ``expected_cost``: ``(n, m)`` USD per prompt and tier, as the router predicts it on its
        training prompts; ``p_success`` the matching success probabilities when a policy needs
        them. The default learns nothing.
        """
        return self

    @abstractmethod
    def choose(self, p_success: Any, expected_cost: Any, knob: float) -> IntArray:
        """``(n,)`` chosen column index per prompt."""

    @abstractmethod
    def knob_grid(self, p_success: Any, expected_cost: Any, n: int = 50) -> FloatArray:
        """Knob values from the cheapest to the most expensive behaviour."""

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"{type(self).__name__}({args})"
