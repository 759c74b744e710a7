"""Routing policies: from per-tier P(success) and expected cost to one tier per prompt.

The contract is :class:`~tierwise.router.policies.base.Policy`; implementations register by
short name (:func:`register_policy`) in their own modules: ``threshold``, ``utility``.

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
- ``utility``: argmax p − λ · cost / cost_scale. ``cost_scale`` is a reference cost (by
  default the policy's ``fit`` sets it from training costs with :func:`reference_cost`: the
  mean cost of the priciest tier), so λ = 1 means "give up one unit of success probability to
  save one top-tier query". With ``cost_scale=None`` cost is in raw USD and λ in 1/USD.
Ties go to the cheaper tier, then to the lower column index.

Measured on RouterBench (MiniLM tail embeddings, 3 grouped splits, AIQ averaged over 12
predictor configurations × 4 calibrations; best configuration in brackets; see
scripts/explore_policies.py): utility 0.831 (0.841), threshold gap 0.827 (0.836), relative
0.826 (0.834), absolute 0.811 (0.824), absolute with fallback "top" 0.807 (0.820). Zero router
0.812, oracle 0.970. Utility is the Lagrangian optimum of expected quality minus cost, so with
calibrated p no per-prompt rule can beat it on average; ``gap`` is the default threshold mode
because it comes closest while keeping the "good enough, then cheapest" reading.
"""

from tierwise.router.policies import threshold as _threshold  # noqa: F401 - registers
from tierwise.router.policies import utility as _utility  # noqa: F401 - registers
from tierwise.router.policies.base import (
    FloatArray,
    IntArray,
    Policy,
    check_inputs,
    check_knob,
    reference_cost,
)
from tierwise.router.policies.registry import (
    available_policies,
    get_policy,
    policy_class,
    register_policy,
)
from tierwise.router.policies.threshold import ThresholdPolicy
from tierwise.router.policies.utility import UtilityPolicy

__all__ = [
    "FloatArray",
    "IntArray",
    "Policy",
    "ThresholdPolicy",
    "UtilityPolicy",
    "available_policies",
    "check_inputs",
    "check_knob",
    "get_policy",
    "policy_class",
    "reference_cost",
    "register_policy",
]
