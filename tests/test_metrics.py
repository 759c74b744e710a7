"""Metrics on tiny cases worked out by hand (the arithmetic is in the comments)."""

from __future__ import annotations

import numpy as np
import pytest

from tierwise.eval.metrics import (
    aiq,
    aiq_of_frontier,
    apgr,
    as_choices,
    cost_at_quality,
    cpt,
    frontier,
    frontier_value,
    gap_closed,
    pgr,
    policy_points,
    strong_fraction,
)
from tierwise.router.errors import DataError

# Points (cost, quality): (1, .5) (2, .4) (2.5, .6) (3, .9) (4, .9) (3, .2)
# - (3, .2) shares its cost with (3, .9): only the better one counts.
# - (4, .9) is no better than (3, .9) and costs more: not on a non-decreasing hull.
# - the chord (1, .5) -> (3, .9) has slope .2: at 2 it is .7 > .4, at 2.5 it is .8 > .6,
#   so both middle points fall under it.
COSTS = [1.0, 2.0, 2.5, 3.0, 4.0, 3.0]
QUALS = [0.5, 0.4, 0.6, 0.9, 0.9, 0.2]


def test_frontier_keeps_only_the_non_decreasing_upper_hull():
    hc, hq = frontier(COSTS, QUALS)
    np.testing.assert_allclose(hc, [1.0, 3.0])
    np.testing.assert_allclose(hq, [0.5, 0.9])


def test_frontier_keeps_a_point_above_the_chord():
    # (2, .8) is above the chord (1, .5) -> (3, .9) (which is .7 at 2): it is a vertex.
    hc, hq = frontier([1, 2, 3], [0.5, 0.8, 0.9])
    np.testing.assert_allclose(hc, [1, 2, 3])
    np.testing.assert_allclose(hq, [0.5, 0.8, 0.9])


def test_frontier_value_is_zero_below_linear_between_flat_after():
    hc, hq = np.array([1.0, 3.0]), np.array([0.5, 0.9])
    np.testing.assert_allclose(
        frontier_value(hc, hq, [0.5, 1.0, 2.0, 3.0, 10.0]), [0, 0.5, 0.7, 0.9, 0.9]
    )


def test_aiq_by_hand():
    # Hull (1, .5) -> (3, .9), c_max = 4:
    #   [0, 1]: 0;  [1, 3]: trapezoid 2 * (.5 + .9) / 2 = 1.4;  [3, 4]: flat .9 -> .9
    #   AIQ = (1.4 + .9) / 4 = .575
    assert aiq(COSTS, QUALS, 4.0) == pytest.approx(0.575)
    # c_max = 2 cuts the hull at 2 (quality .7): area 1 * (.5 + .7) / 2 = .6; AIQ = .6 / 2 = .3
    assert aiq(COSTS, QUALS, 2.0) == pytest.approx(0.3)
    # A curve that starts above c_max has no area in range.
    assert aiq([5.0], [1.0], 4.0) == 0.0


def test_aiq_is_invariant_to_the_cost_unit():
    assert aiq(np.array(COSTS) * 1000, QUALS, 4000.0) == pytest.approx(aiq(COSTS, QUALS, 4.0))


def test_aiq_rejects_a_bad_cost_range():
    with pytest.raises(DataError, match="`c_max` must be a finite cost"):
        aiq_of_frontier(np.array([1.0]), np.array([0.5]), float("nan"))


def test_cost_at_quality_interpolates_on_the_hull():
    hc, hq = np.array([1.0, 3.0]), np.array([0.5, 0.9])
    assert cost_at_quality(hc, hq, 0.7) == pytest.approx(2.0)  # halfway up the segment
    assert cost_at_quality(hc, hq, 0.4) == pytest.approx(1.0)  # the cheapest point suffices
    assert cost_at_quality(hc, hq, 0.9) == pytest.approx(3.0)
    assert cost_at_quality(hc, hq, 0.95) is None  # never


def test_pgr_apgr_cpt_by_hand():
    # weak .5, strong .9; knobs at 0%, 50%, 100% strong calls with quality .5, .8, .9
    #   PGR = (q - .5) / .4 = 0, .75, 1
    #   APGR = [.5 * (0 + .75) / 2 + .5 * (.75 + 1) / 2] / 1 = .1875 + .4375 = .625
    #   CPT(50%): between (0, 0) and (.5, .75): x = .5 * .5 / .75 = 1/3
    #   CPT(80%): between (.5, .75) and (1, 1): x = .5 + .5 * .05 / .25 = .6
    y = pgr([0.5, 0.8, 0.9], 0.5, 0.9)
    np.testing.assert_allclose(y, [0, 0.75, 1])
    x = [0.0, 0.5, 1.0]
    assert apgr(x, y) == pytest.approx(0.625)
    assert cpt(x, y, 0.5) == pytest.approx(1 / 3)
    assert cpt(x, y, 0.8) == pytest.approx(0.6)
    assert cpt(x, y, 1.01) is None


def test_apgr_of_a_partial_sweep_is_the_mean_over_its_range():
    # RouteLLM divides by the AUC of weak/strong over the same x points: only [.5, 1] here.
    # PGR .75 -> 1 over [.5, 1]: area .4375, width .5 -> .875
    assert apgr([0.5, 1.0], [0.75, 1.0]) == pytest.approx(0.875)
    assert apgr([1.0], [1.0]) == 1.0  # always-strong
    assert apgr([0.0], [0.0]) == 0.0  # always-weak


def test_pgr_is_undefined_when_models_tie():
    assert np.isnan(pgr([0.7], 0.7, 0.7)).all()
    assert np.isnan(apgr([0.0, 1.0], pgr([0.7, 0.7], 0.7, 0.7)))


def test_gap_closed_by_hand():
    assert gap_closed(0.7, 0.6, 0.9) == pytest.approx(1 / 3)
    assert gap_closed(0.5, 0.6, 0.9) == pytest.approx(-1 / 3)  # worse than the zero router
    assert np.isnan(gap_closed(0.7, 0.8, 0.8))


def test_policy_points_and_weights():
    q = np.array([[0.0, 1.0], [1.0, 1.0], [0.0, 0.0]])
    c = np.array([[1.0, 10.0], [1.0, 10.0], [2.0, 20.0]])
    ch = np.array([[0, 0, 0], [1, 0, 1]])
    pc, pq = policy_points(q, c, ch)
    # row 0: costs 1, 1, 2 -> 4/3; qualities 0, 1, 0 -> 1/3
    # row 1: costs 10, 1, 20 -> 31/3; qualities 1, 1, 0 -> 2/3
    np.testing.assert_allclose(pc, [4 / 3, 31 / 3])
    np.testing.assert_allclose(pq, [1 / 3, 2 / 3])
    # weights (2, 0, 1): row 1 -> costs (2*10 + 20) / 3, qualities (2*1 + 0) / 3
    pc, pq = policy_points(q, c, ch, np.array([2.0, 0.0, 1.0]))
    np.testing.assert_allclose(pc, [4 / 3, 40 / 3])
    np.testing.assert_allclose(pq, [0.0, 2 / 3])
    np.testing.assert_allclose(strong_fraction(ch, 1), [0.0, 2 / 3])


def test_as_choices_validates_shape_range_and_type():
    assert as_choices([0, 1, 1], 3, 2).shape == (1, 3)
    assert as_choices(np.array([[0.0, 1.0, 1.0]]), 3, 2).dtype == np.int64
    with pytest.raises(DataError, match=r"must have shape \(3,\) or \(knob values, 3\)"):
        as_choices([0, 1], 3, 2)
    with pytest.raises(DataError, match=r"model indices in \[0, 1\], got 2"):
        as_choices([0, 1, 2], 3, 2, name="policies['x']")
    with pytest.raises(DataError, match="integer model indices, got dtype float64"):
        as_choices([0, 0.5, 1], 3, 2)
