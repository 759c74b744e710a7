"""eval.costs: logged cost first, then tokens × prices, then estimated tokens — cell by cell."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tierwise.eval.costs import ModelCostInputs, estimate_tokens, resolve_costs, text_chars
from tierwise.router.errors import DataError
from tierwise.router.pricing import PriceTable

PRICES = PriceTable.load(Path(__file__).parent / "fixtures" / "data" / "prices_small.yaml")
NAN = np.nan


def test_estimate_tokens_is_ceil_of_chars_over_ratio() -> None:
    np.testing.assert_array_equal(estimate_tokens([0, 1, 4, 5, 400]), [0, 1, 1, 2, 100])
    np.testing.assert_array_equal(estimate_tokens([9], chars_per_token=3.0), [3])
    assert np.isnan(estimate_tokens([NAN])[0])
    with pytest.raises(DataError, match=r"`chars_per_token` must be > 0, got 0"):
        estimate_tokens([1], chars_per_token=0)
    np.testing.assert_array_equal(text_chars(["abc", "", None])[:2], [3, 0])
    assert np.isnan(text_chars([None])[0])


def test_logged_costs_are_kept_exactly_and_gaps_filled_per_cell() -> None:
    """A known per-query cost is never replaced by an average or a price-based number."""
    logged = np.array([0.0123, NAN, 0.0456])
    inputs = {
        "big": ModelCostInputs(
            cost=logged,
            input_tokens=np.array([10, 1000, 10.0]),
            output_tokens=np.array([5, 2000, 5.0]),
        ),
        "small": ModelCostInputs(output_chars=np.array([40, 80, 0.0])),
    }
    res = resolve_costs(["big", "small"], inputs, prompt_chars=[400, 800, 4], prices=PRICES)
    assert res.cost[0, 0] == 0.0123 and res.cost[2, 0] == 0.0456
    assert res.cost[1, 0] == pytest.approx((1000 * 10 + 2000 * 30) / 1e6)
    # small: input tokens from the prompt (400/4=100 ...), output from answer chars, + request fee
    exp_small = (np.array([100, 200, 1]) * 0.5 + np.array([10, 20, 0]) * 1.5) / 1e6 + 0.0001
    np.testing.assert_allclose(res.cost[:, 1], exp_small)
    assert res.source == {"big": "logged+tokens", "small": "estimated"}
    assert res.counts["big"] == {"logged": 2, "tokens": 1}
    assert res.counts["small"] == {"estimated": 3}
    assert any("small" in n and "prompt length (4 chars/token)" in n for n in res.notes)
    # tokens: logged ones kept, estimated ones filled in, none invented for logged-cost rows
    assert res.input_tokens is not None and res.output_tokens is not None
    np.testing.assert_array_equal(res.input_tokens[:, 0], [10, 1000, 10])
    np.testing.assert_array_equal(res.input_tokens[:, 1], [100, 200, 1])


def test_all_logged_needs_no_prices_and_no_tokens() -> None:
    res = resolve_costs(["a"], {"a": ModelCostInputs(cost=np.array([0.1, 0.2]))}, [10, 20])
    np.testing.assert_array_equal(res.cost[:, 0], [0.1, 0.2])
    assert res.source == {"a": "logged"}
    assert res.input_tokens is None and res.output_tokens is None


def test_missing_input_tokens_are_estimated_from_the_prompt() -> None:
    inputs = {"big": ModelCostInputs(output_tokens=np.array([100.0]))}
    res = resolve_costs(["big"], inputs, [4000], prices=PRICES, chars_per_token=2.0)
    assert res.cost[0, 0] == pytest.approx((2000 * 10 + 100 * 30) / 1e6)
    assert res.source == {"big": "estimated"}


def test_assumed_output_tokens_when_no_output_length() -> None:
    res = resolve_costs(["big"], {}, [400], prices=PRICES, assumed_output_tokens=1)
    assert res.cost[0, 0] == pytest.approx((100 * 10 + 1 * 30) / 1e6)
    assert "output tokens assumed = 1 per answer" in res.notes[0]


def test_unknown_output_length_is_an_error_not_a_guess() -> None:
    with pytest.raises(
        DataError, match=r"cost of model 'big' is unknown at row 0.*assumed_output_tokens"
    ):
        resolve_costs(["big"], {}, [400], prices=PRICES)


def test_no_price_table_for_unlogged_costs() -> None:
    inputs = {"big": ModelCostInputs(cost=np.array([0.1, NAN]), output_tokens=np.array([1.0, 1.0]))}
    with pytest.raises(
        DataError, match=r"model 'big' has 1 rows without a logged cost and no price table"
    ):
        resolve_costs(["big"], inputs, [4, 4])


def test_model_missing_from_price_table() -> None:
    inputs = {"huge": ModelCostInputs(output_tokens=np.array([1.0]))}
    with pytest.raises(
        DataError, match=r"model 'huge' is not in price table 'test-2024'.*\['big', 'small'\]"
    ):
        resolve_costs(["huge"], inputs, [4], prices=PRICES)


def test_negative_logged_cost_is_an_error() -> None:
    with pytest.raises(
        DataError, match=r"logged cost of model 'a' must be >= 0, got -0.5 at row 1"
    ):
        resolve_costs(["a"], {"a": ModelCostInputs(cost=np.array([0.1, -0.5]))}, [4, 4])
