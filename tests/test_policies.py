"""Routing policies on hand-made matrices, plus properties of the knob grid."""

from __future__ import annotations

import numpy as np
import pytest

from tierwise.router.errors import ConfigError, DataError
from tierwise.router.policies import (
    ThresholdPolicy,
    UtilityPolicy,
    available_policies,
    get_policy,
    reference_cost,
)

# Three tiers priced 1, 5, 20. Row 2 is a hard prompt where the middle tier is the most likely.
P = np.array(
    [
        [0.90, 0.95, 0.99],
        [0.30, 0.60, 0.90],
        [0.10, 0.30, 0.20],
    ]
)
C = np.tile([1.0, 5.0, 20.0], (3, 1))


def test_registry() -> None:
    assert {"threshold", "utility"} <= set(available_policies())
    assert isinstance(get_policy("threshold", mode="gap"), ThresholdPolicy)
    assert get_policy("utility", cost_scale=2.0).params == {"cost_scale": 2.0}
    with pytest.raises(ConfigError, match=r"`policy` must be one of \[.*'threshold', 'utility'"):
        get_policy("greedy")
    with pytest.raises(ConfigError, match=r"`tau` is not a parameter of policy 'threshold'"):
        get_policy("threshold", tau=0.5)
    with pytest.raises(ConfigError, match=r"`policy.mode` must be one of"):
        get_policy("threshold", mode="soft")
    with pytest.raises(ConfigError, match=r"`policy.cost_scale` must be a number > 0"):
        get_policy("utility", cost_scale=0)


@pytest.mark.parametrize(
    ("fallback", "expected"),
    [("most_likely", [0, 2, 1]), ("top", [0, 2, 2])],
)
def test_absolute_threshold_takes_cheapest_passing_tier(fallback: str, expected: list[int]) -> None:
    pol = get_policy("threshold", mode="absolute", fallback=fallback)
    assert pol.choose(P, C, 0.8).tolist() == expected
    assert pol.choose(P, C, 0.0).tolist() == [0, 0, 0]


def test_relative_and_gap_thresholds_adapt_to_each_prompt() -> None:
    rel = get_policy("threshold", mode="relative")
    # bars: 0.9 × max p = 0.891, 0.81, 0.27 -> the hard row keeps its most likely tier
    assert rel.choose(P, C, 0.9).tolist() == [0, 2, 1]
    assert rel.choose(P, C, 0.5).tolist() == [0, 1, 1]  # bars 0.495, 0.45, 0.15
    gap = get_policy("threshold", mode="gap")
    # within 0.1 of the best: bars 0.89, 0.80, 0.20
    assert gap.choose(P, C, 0.1).tolist() == [0, 2, 1]
    assert gap.choose(P, C, 1.0).tolist() == [0, 0, 0]


def test_threshold_orders_by_each_rows_cost_not_by_column() -> None:
    costs = np.array([[20.0, 5.0, 1.0]])
    p = np.array([[0.9, 0.9, 0.9]])
    assert get_policy("threshold", mode="absolute").choose(p, costs, 0.5).tolist() == [2]


def test_tier_offsets_raise_a_tiers_bar() -> None:
    pol = get_policy("threshold", mode="absolute", tier_offsets=[0.05, 0.0, 0.0])
    assert pol.choose(P, C, 0.88).tolist() == [1, 2, 1]
    with pytest.raises(ConfigError, match=r"one value per tier \(3\), got 2"):
        get_policy("threshold", tier_offsets=[0.0, 0.1]).choose(P, C, 0.5)


def test_utility_trades_probability_against_cost() -> None:
    pol = get_policy("utility", cost_scale=20.0)  # cost in units of the top tier's price
    assert pol.choose(P, C, 0.0).tolist() == [2, 2, 1]
    # λ = 0.5: row 0 utilities 0.875, 0.825, 0.49 -> tier 0;
    # row 1: 0.275, 0.475, 0.40 -> tier 1; row 2: 0.075, 0.175, -0.3 -> tier 1
    assert pol.choose(P, C, 0.5).tolist() == [0, 1, 1]
    assert pol.choose(P, C, 100.0).tolist() == [0, 0, 0]
    with pytest.raises(ConfigError, match=r"λ must be >= 0"):
        pol.choose(P, C, -1.0)


def test_ties_go_to_the_cheaper_tier() -> None:
    p = np.array([[0.7, 0.7, 0.7]])
    c = np.array([[3.0, 1.0, 2.0]])
    assert get_policy("utility").fit(c).choose(p, c, 0.0).tolist() == [1]
    assert get_policy("threshold", mode="gap").choose(p, c, 0.0).tolist() == [1]


POLICY_PARAMS = [
    ("threshold", {"mode": "relative"}),
    ("threshold", {"mode": "gap"}),
    ("threshold", {"mode": "absolute", "fallback": "top"}),
    ("utility", {"cost_scale": 1.0}),
]


@pytest.mark.parametrize(("name", "params"), POLICY_PARAMS)
def test_grid_spans_cheapest_to_priciest_and_cost_never_falls(name: str, params: dict) -> None:
    rng = np.random.default_rng(0)
    p = rng.uniform(0, 1, size=(200, 5))
    c = rng.uniform(0.5, 1.5, size=(200, 5)) * np.array([1, 2, 4, 8, 16])
    pol = get_policy(name, **params)
    grid = pol.knob_grid(p, c, n=40)
    assert 3 <= len(grid) <= 40
    rows = np.arange(len(p))
    choices = np.array([pol.choose(p, c, k) for k in grid])
    assert np.all(choices[0] == c.argmin(axis=1)), "first knob must route everything cheapest"
    last = p.argmax(axis=1) if name != "threshold" or params["mode"] != "absolute" else c.argmax(1)
    assert np.all(choices[-1] == last), "last knob must give the most expensive behaviour"
    per_row_cost = c[rows[None, :], choices]
    assert np.all(np.diff(per_row_cost, axis=0) >= -1e-12), "a stricter knob never saves cost"


@pytest.mark.parametrize(("name", "params"), POLICY_PARAMS)
def test_decisions_do_not_depend_on_the_batch(name: str, params: dict) -> None:
    rng = np.random.default_rng(1)
    p, c = rng.uniform(size=(30, 4)), rng.uniform(size=(30, 4))
    pol = get_policy(name, **params)
    knob = float(pol.knob_grid(p, c, n=10)[5])
    batch = pol.choose(p, c, knob)
    single = [int(pol.choose(p[i : i + 1], c[i : i + 1], knob)[0]) for i in range(30)]
    assert batch.tolist() == single


def test_reference_cost_is_the_priciest_tiers_mean() -> None:
    assert reference_cost(C) == 20.0
    with pytest.raises(DataError, match=r"zero for every tier"):
        reference_cost(np.zeros((2, 2)))


def test_utility_learns_its_cost_unit_in_fit() -> None:
    """The router and the tuner share this one step (it used to be written in both)."""
    pol = get_policy("utility")
    assert pol.params == {"cost_scale": "auto"}
    with pytest.raises(ConfigError, match=r"`policy.cost_scale` is \"auto\" until the policy is"):
        pol.choose(P, C, 0.5)
    assert pol.fit(C) is pol
    assert pol.params == {"cost_scale": reference_cost(C)} == {"cost_scale": 20.0}
    fixed = get_policy("utility", cost_scale=20.0)
    assert pol.choose(P, C, 0.5).tolist() == fixed.choose(P, C, 0.5).tolist() == [0, 1, 1]
    # a given scale, or raw USD, is kept by fit
    assert get_policy("utility", cost_scale=2.0).fit(C).params == {"cost_scale": 2.0}
    assert get_policy("utility", cost_scale=None).fit(C).params == {"cost_scale": None}
    # rebuilt from its params (as an artifact does), it needs no refit
    assert get_policy("utility", **pol.params).choose(P, C, 0.5).tolist() == [0, 1, 1]


def test_bad_matrices_raise_clear_errors() -> None:
    pol = get_policy("utility", cost_scale=1.0)
    with pytest.raises(
        DataError, match=r"`p_success` must be in \[0, 1\], got 1.2 at row 0, model column 1"
    ):
        pol.choose(np.array([[0.5, 1.2]]), np.ones((1, 2)), 0.1)
    with pytest.raises(DataError, match=r"`expected_cost` must have the shape of `p_success`"):
        pol.choose(P, C[:, :2], 0.1)
    with pytest.raises(DataError, match=r"`expected_cost` must be finite and >= 0, got -1.0"):
        pol.choose(P, -C, 0.1)
    with pytest.raises(ConfigError, match=r"knob must be a finite number, got nan"):
        get_policy("threshold").choose(P, C, float("nan"))
    assert isinstance(get_policy("utility"), UtilityPolicy)
