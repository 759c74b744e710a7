"""Baselines on hand-worked matrices."""

from __future__ import annotations

import numpy as np
import pytest

from tierwise.eval.baselines import (
    OracleFrontier,
    best_model,
    check_matrices,
    oracle_choices,
    oracle_frontier_choices,
    oracle_strong_curve,
    random_matched,
    single_model_points,
    zero_router,
)
from tierwise.eval.metrics import frontier_value, policy_points
from tierwise.router.errors import DataError


def test_oracle_choices_best_quality_then_cheapest():
    q = np.array([[1, 1, 0], [0, 0, 0], [0.5, 0.7, 0.7]], dtype=float)
    c = np.array([[3, 1, 0.5], [3, 1, 2], [1, 3, 2]], dtype=float)
    # row 0: models 0 and 1 succeed, 1 is cheaper -> 1
    # row 1: nobody succeeds -> the cheapest model, 1
    # row 2: models 1 and 2 tie at .7, 2 is cheaper -> 2
    np.testing.assert_array_equal(oracle_choices(q, c), [1, 1, 2])


def test_check_matrices_names_the_bad_cell():
    q = np.array([[1.0, np.nan]])
    with pytest.raises(DataError, match="NaN at row 0, model 1"):
        check_matrices(q, np.ones((1, 2)))
    with pytest.raises(DataError, match=r"`cost` must have the shape of `quality` \(1, 2\)"):
        check_matrices(np.ones((1, 2)), np.ones((2, 2)))
    with pytest.raises(DataError, match=r"`cost` must be finite and >= 0, got -1.0 at row 0"):
        check_matrices(np.ones((1, 2)), np.array([[-1.0, 1.0]]))


def _three_models(n: int = 10) -> tuple[np.ndarray, np.ndarray]:
    # Mean costs 1, 2, 4 and qualities .5, .6, .9 (every prompt alike, so means are exact).
    # The chord from (1, .5) to (4, .9) is .6333 at cost 2 > .6: model 1 is under the hull.
    q = np.tile([0.5, 0.6, 0.9], (n, 1))
    c = np.tile([1.0, 2.0, 4.0], (n, 1))
    return q, c


def test_zero_router_is_the_hull_of_single_models():
    q, c = _three_models()
    hc, hq, models = zero_router(q, c)
    np.testing.assert_allclose(hc, [1, 4])
    np.testing.assert_allclose(hq, [0.5, 0.9])
    np.testing.assert_array_equal(models, [0, 2])
    assert best_model(q, c) == 2


def test_best_model_ties_go_to_the_cheaper():
    q = np.array([[1.0, 1.0], [0.0, 0.0]])
    c = np.array([[2.0, 1.0], [2.0, 1.0]])
    assert best_model(q, c) == 1


def test_random_matched_mixes_the_bracketing_hull_models():
    q, c = _three_models(10)
    # target 2.5 on the segment 1 -> 4: p = (2.5 - 1) / 3 = .5 -> 5 of 10 prompts to model 2
    ch = random_matched(q, c, [2.5, 0.5, 9.0], seed=3)
    assert (ch[0] == 2).sum() == 5 and (ch[0] == 0).sum() == 5
    np.testing.assert_array_equal(ch[1], 0)  # below the hull: its cheapest model
    np.testing.assert_array_equal(ch[2], 2)  # above: its costliest
    pc, pq = policy_points(q, c, ch[:1])
    assert pc[0] == pytest.approx(2.5) and pq[0] == pytest.approx(0.7)  # on the hull
    np.testing.assert_array_equal(random_matched(q, c, [2.5], seed=3), ch[:1])  # seeded
    assert not np.array_equal(random_matched(q, c, [2.5], seed=4), ch[:1])


# Two prompts, three models with costs 1, 2, 4:
#   prompt 0 qualities 0, 1, 1 -> own hull (1, 0) -> (2, 1): one segment, slope 1
#   prompt 1 qualities 0, 0, 1 -> (2, 0) is under the chord (1, 0) -> (4, 1): slope 1/3
# Oracle frontier (means over 2 prompts): start (1, 0); upgrade prompt 0 first (steeper):
#   (1 + 1/2, 0 + 1/2) = (1.5, .5); then prompt 1: (1.5 + 3/2, .5 + 1/2) = (3, 1).
Q2 = np.array([[0.0, 1.0, 1.0], [0.0, 0.0, 1.0]])
C2 = np.array([[1.0, 2.0, 4.0], [1.0, 2.0, 4.0]])


def test_oracle_frontier_by_hand():
    fr = OracleFrontier(Q2, C2)
    hc, hq = fr.curve()
    np.testing.assert_allclose(hc, [1.0, 1.5, 3.0])
    np.testing.assert_allclose(hq, [0.0, 0.5, 1.0])
    np.testing.assert_allclose(fr.model_share(1), [0.0, 0.5, 0.5])
    np.testing.assert_allclose(fr.model_share(2), [0.0, 0.0, 0.5])
    # Weights (0, 2): only prompt 1 counts -> (1, 0), (1, 0) [prompt 0's step has weight 0], (4, 1)
    hc, hq = fr.curve(np.array([0.0, 2.0]))
    np.testing.assert_allclose(hc, [1.0, 1.0, 4.0])
    np.testing.assert_allclose(hq, [0.0, 0.0, 1.0])


def test_oracle_lambda_sweep_lands_on_the_exact_frontier():
    # lambda = .5: prompt 0 scores 0-.5, 1-1, 1-2 -> model 1; prompt 1: -.5, -1, -1 -> model 0
    ch = oracle_frontier_choices(Q2, C2, [0.0, 0.5, 2.0])
    np.testing.assert_array_equal(ch, [[1, 2], [1, 0], [0, 0]])
    np.testing.assert_array_equal(ch[0], oracle_choices(Q2, C2))
    hc, hq = OracleFrontier(Q2, C2).curve()
    pc, pq = policy_points(Q2, C2, ch)
    np.testing.assert_allclose(frontier_value(hc, hq, pc), pq)
    with pytest.raises(DataError, match=r"`lambdas` must be finite and >= 0, got -1.0"):
        oracle_frontier_choices(Q2, C2, [-1.0])


def test_single_model_points_weighted():
    w = np.array([0.0, 2.0])
    mc, mq = single_model_points(Q2, C2, w)
    np.testing.assert_allclose(mc, [1, 2, 4])
    np.testing.assert_allclose(mq, [0, 0, 1])


def test_oracle_strong_curve_is_routellm_optimal():
    # weak/strong per prompt: (1, 1) (0, 1) (1, 0) (0, 0); gains 0, +1, -1, 0
    # sorted gains 1, 0, 0, -1 -> qualities with k strong calls: .5, .75, .75, .75, .5
    q = np.array([[1, 1], [0, 1], [1, 0], [0, 0]], dtype=float)
    x, y = oracle_strong_curve(q, weak=0, strong=1)
    np.testing.assert_allclose(x, [0, 0.25, 0.5, 0.75, 1])
    np.testing.assert_allclose(y, [0.5, 0.75, 0.75, 0.75, 0.5])
