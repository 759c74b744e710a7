"""The static mixture: the zero router's policy, shipped when the learned router cannot beat it.

No prompt feature is used. The policy lists the single models cheapest first (mean cost on the
labelled data); its knob walks along that list: an integer knob sends every prompt to one
model, a fractional knob ``a + f`` sends a share ``f`` of prompts to model ``a + 1`` and the
rest to model ``a``. Its swept curve is therefore every single model, whose hull on any sample
is that sample's zero router (the knob chosen on calibration is the cheapest model that meets
the bar there). Which prompts form that share is decided per prompt
from a hash of its own inputs (a prompt's decision never depends on the rest of the batch, and
identical prompts get identical decisions), so over many prompts the realized point is the
mixture of the two models: on the hull, what "the zero router" in every report stands for.
"""

from __future__ import annotations

import hashlib
from typing import Any, ClassVar

import numpy as np

from tierwise.router.errors import ConfigError
from tierwise.router.policies import (
    FloatArray,
    IntArray,
    Policy,
    check_inputs,
    check_knob,
    register_policy,
)


def models_by_cost(quality: Any, cost: Any) -> list[int]:
    """Every model's column index, cheapest first by mean cost (ties: better quality first)."""
    q = np.nan_to_num(np.asarray(quality, dtype=np.float64), nan=0.0).mean(axis=0)
    c = np.asarray(cost, dtype=np.float64).mean(axis=0)
    return [int(j) for j in np.lexsort((-q, c))]


def _uniform(p: FloatArray, c: FloatArray) -> FloatArray:
    """A per-row number in [0, 1) from the row's own bytes (stable across batches and runs)."""
    out = np.empty(len(p))
    for i in range(len(p)):
        h = hashlib.blake2b(p[i].tobytes() + c[i].tobytes(), digest_size=8).digest()
        out[i] = int.from_bytes(h, "little") / 2.0**64
    return out


@register_policy("static")
class StaticMixturePolicy(Policy):
    """Route every prompt by the knob alone; ``models``: column indices, cheapest first.

    ``replaced`` and ``evidence`` record why it was shipped (the learned policy it replaced and
    the fit-time comparison); they do not change decisions.

    >>> import numpy as np
    >>> from tierwise.router.policies import get_policy
    >>> policy = get_policy("static", models=[0, 1])  # the cheap model, then the big one
    >>> rng = np.random.default_rng(0)
    >>> p, c = rng.uniform(size=(1000, 2)), np.tile([1.0, 10.0], (1000, 1))
    >>> share = float((policy.choose(p, c, knob=0.25) == 1).mean())  # a quarter to the big one
    >>> 0.2 < share < 0.3
    True
    """

    example_params: ClassVar[dict[str, Any]] = {"models": [0, 1, 2]}  # conformance tests

    def __init__(
        self,
        models: list[int] | None = None,
        replaced: str | None = None,
        evidence: dict[str, Any] | None = None,
    ) -> None:
        ok = isinstance(models, list | tuple) and len(models) > 0
        ok = ok and all(isinstance(j, int | np.integer) and j >= 0 for j in models or [])
        if not ok:
            raise ConfigError(
                "`policy.models` of the static policy must be a non-empty list of model column "
                f"indices (cheapest first), got {models!r}; it is set by fitting"
            )
        self.models = [int(j) for j in models or []]
        self.replaced = replaced
        self.evidence = dict(evidence or {})

    @property
    def params(self) -> dict[str, Any]:
        return {"models": self.models, "replaced": self.replaced, "evidence": self.evidence}

    def choose(self, p_success: Any, expected_cost: Any, knob: float) -> IntArray:
        p, c = check_inputs(p_success, expected_cost)
        k = min(max(check_knob(knob), 0.0), float(len(self.models) - 1))
        if max(self.models) >= p.shape[1]:
            raise ConfigError(
                f"static policy routes to model column {max(self.models)}, but there are "
                f"{p.shape[1]} models; refit the router"
            )
        a = int(np.floor(k))
        frac = k - a
        out = np.full(len(p), self.models[a], dtype=np.int64)
        if frac > 0 and a + 1 < len(self.models):
            out[_uniform(p, c) < frac] = self.models[a + 1]
        return out

    def knob_grid(self, p_success: Any, expected_cost: Any, n: int = 50) -> FloatArray:
        """Integer knobs only (each single model): a swept curve of many hashed mixtures would,
        on a small sample, collect the lucky ones and look better than the mixture it is. One
        model still gives two (equal) knobs: a swept curve, which reports score as a curve."""
        check_inputs(p_success, expected_cost)
        top = len(self.models) - 1
        return np.minimum(np.arange(max(top + 1, 2)), top).astype(np.float64)
