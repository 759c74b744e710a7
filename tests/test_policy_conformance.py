"""The contract every registered routing policy meets, run for each name in the registry.

A policy added later (its own module + `@register_policy`) runs this suite without editing it.
It is built with `Policy.example_params` when its defaults are not a usable policy.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

import tierwise.router.core  # noqa: F401 - imports every policy module the router ships
from tierwise.router.errors import ConfigError, DataError
from tierwise.router.policies import Policy, available_policies, get_policy, policy_class
from tierwise.router.policies.registry import register_policy

N, M = 120, 4
PRICES = np.array([1.0, 3.0, 9.0, 27.0])


def _traffic(seed: int, n: int = N) -> tuple[np.ndarray, np.ndarray]:
    """P(success) rising with price on average, per-prompt noise; constant per-tier prices."""
    rng = np.random.default_rng(seed)
    p = np.clip(rng.uniform(0, 1, (n, M)) * 0.6 + np.linspace(0.1, 0.4, M), 0, 1)
    return p, np.tile(PRICES, (n, 1)) * rng.uniform(0.9, 1.1, (n, 1))


def _fitted(name: str) -> Policy:
    p, c = _traffic(0)
    return get_policy(name, **policy_class(name).example_params).fit(c, p)


@pytest.fixture(params=available_policies())
def name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_the_registry_has_the_shipped_policies() -> None:
    assert {"threshold", "utility"} <= set(available_policies())


def test_registered_under_its_own_name(name: str) -> None:
    cls = policy_class(name)
    assert issubclass(cls, Policy) and cls.name == name
    policy = _fitted(name)
    assert isinstance(policy, cls)
    assert repr(policy).startswith(cls.__name__ + "(")
    assert cls.__doc__, f"policy {name!r} needs a docstring"


def test_fit_returns_the_policy(name: str) -> None:
    p, c = _traffic(0)
    policy = get_policy(name, **policy_class(name).example_params)
    assert policy.fit(c, p) is policy


def test_params_are_json_and_rebuild_the_fitted_policy(name: str) -> None:
    """What an artifact stores (`params`) brings back the same decisions, without refitting."""
    policy = _fitted(name)
    params = json.loads(json.dumps(policy.params))
    rebuilt = get_policy(name, **params)
    p, c = _traffic(1)
    for knob in policy.knob_grid(p, c, n=12):
        assert rebuilt.choose(p, c, knob).tolist() == policy.choose(p, c, knob).tolist()


def test_grid_runs_from_cheapest_to_priciest_behaviour(name: str) -> None:
    policy = _fitted(name)
    p, c = _traffic(2)
    grid = np.asarray(policy.knob_grid(p, c, n=20))
    assert grid.ndim == 1 and 2 <= len(grid) <= 20 and np.all(np.isfinite(grid))
    rows = np.arange(N)
    mean_cost = []
    for knob in grid:
        choice = policy.choose(p, c, float(knob))
        assert choice.shape == (N,) and choice.dtype == np.int64
        assert choice.min() >= 0 and choice.max() < M
        mean_cost.append(float(c[rows, choice].mean()))
    assert np.all(np.diff(mean_cost) >= -1e-9), f"mean cost fell along the grid: {mean_cost}"
    assert mean_cost[0] < mean_cost[-1], "the grid must span a cost range"


def test_a_decision_depends_only_on_its_own_prompt(name: str) -> None:
    policy = _fitted(name)
    p, c = _traffic(3, n=40)
    knob = float(policy.knob_grid(p, c, n=10)[len(policy.knob_grid(p, c, n=10)) // 2])
    batch = policy.choose(p, c, knob)
    single = [int(policy.choose(p[i : i + 1], c[i : i + 1], knob)[0]) for i in range(40)]
    assert batch.tolist() == single
    order = np.random.default_rng(0).permutation(40)
    assert policy.choose(p[order], c[order], knob).tolist() == batch[order].tolist()
    assert policy.choose(p, c, knob).tolist() == batch.tolist()  # deterministic


@pytest.mark.parametrize(
    ("p_success", "expected_cost", "match"),
    [
        ([[0.5, 1.2, 0.1, 0.1]], [[1, 2, 3, 4]], r"`p_success` must be in \[0, 1\], got 1.2"),
        ([[0.5, 0.5, 0.5, 0.5]], [[1, 2, 3]], r"`expected_cost` must have the shape"),
        ([[0.5, 0.5, 0.5, 0.5]], [[1, -2, 3, 4]], r"`expected_cost` must be finite and >= 0"),
        ([0.5, 0.5, 0.5, 0.5], [1, 2, 3, 4], r"`p_success` must be a 2-D"),
    ],
)
def test_bad_matrices_are_data_errors(
    name: str, p_success: Any, expected_cost: Any, match: str
) -> None:
    policy = _fitted(name)
    with pytest.raises(DataError, match=match):
        policy.choose(np.asarray(p_success, float), np.asarray(expected_cost, float), 0.5)
    with pytest.raises(DataError, match=match):
        policy.knob_grid(np.asarray(p_success, float), np.asarray(expected_cost, float))


@pytest.mark.parametrize("knob", [float("nan"), float("inf"), "high", True])
def test_a_bad_knob_is_a_config_error(name: str, knob: Any) -> None:
    p, c = _traffic(4, n=5)
    with pytest.raises(ConfigError, match=r"knob must be a finite number"):
        _fitted(name).choose(p, c, knob)


def test_unknown_parameter_lists_the_valid_ones(name: str) -> None:
    with pytest.raises(ConfigError, match=rf"`no_such` is not a parameter of policy '{name}'"):
        get_policy(name, no_such=1)


def test_unknown_name_lists_every_registered_one() -> None:
    names = ", ".join(repr(n) for n in available_policies())
    with pytest.raises(ConfigError, match=rf"`policy` must be one of \[{names}\], got 'greedy'"):
        get_policy("greedy")


def test_registering_needs_a_policy_class_and_a_free_name() -> None:
    with pytest.raises(TypeError, match=r"needs a Policy subclass"):
        register_policy("not-a-policy")(dict)  # type: ignore[arg-type,type-var]
    with pytest.raises(ValueError, match=r"policy name 'utility' is already registered"):

        @register_policy("utility")
        class Other(Policy):
            @property
            def params(self) -> dict[str, Any]:
                return {}

            def choose(self, p_success: Any, expected_cost: Any, knob: float) -> Any:
                return None

            def knob_grid(self, p_success: Any, expected_cost: Any, n: int = 50) -> Any:
                return None
