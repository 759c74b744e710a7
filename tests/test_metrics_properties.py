"""Invariants of the metrics and baselines, checked on random matrices with hypothesis."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from tierwise.eval.baselines import (
    OracleFrontier,
    oracle_frontier_choices,
    random_matched,
    single_model_points,
    zero_router,
)
from tierwise.eval.metrics import (
    aiq,
    aiq_of_frontier,
    apgr,
    frontier,
    frontier_value,
    gap_closed,
    pgr,
    policy_points,
    strong_fraction,
)
from tierwise.eval.reporting import EvaluationConfig, compare

FAST = settings(max_examples=40, deadline=None)


@st.composite
def matrices(draw, binary: bool | None = None, min_m: int = 2, max_m: int = 5):
    n = draw(st.integers(3, 25))
    m = draw(st.integers(min_m, max_m))
    is_binary = draw(st.booleans()) if binary is None else binary
    if is_binary:
        q = draw(arrays(np.float64, (n, m), elements=st.sampled_from([0.0, 1.0])))
    else:
        q = draw(arrays(np.float64, (n, m), elements=st.floats(0, 1, allow_subnormal=False)))
    scale = draw(arrays(np.float64, (m,), elements=st.floats(0.01, 100, allow_subnormal=False)))
    jitter = draw(arrays(np.float64, (n, m), elements=st.floats(0.5, 1.5)))
    return q, jitter * scale


points = st.lists(
    st.tuples(st.floats(0, 100, allow_subnormal=False), st.floats(0, 1, allow_subnormal=False)),
    min_size=1,
    max_size=30,
)


@FAST
@given(points)
def test_frontier_is_non_decreasing_concave_and_above_every_point(pts):
    c, q = np.array(pts).T
    hc, hq = frontier(c, q)
    assert np.all(np.diff(hc) > 0)
    assert np.all(np.diff(hq) >= -1e-12)
    slopes = np.diff(hq) / np.diff(hc)
    assert np.all(np.diff(slopes) <= 1e-9 * (1 + np.abs(slopes[1:])))
    # Every point is on or under the frontier (all points cost at least its first vertex).
    assert np.all(frontier_value(hc, hq, c) >= q - 1e-9)
    assert hc[0] == c.min() and hq[-1] == q.max()


@FAST
@given(matrices(), st.integers(0, 2**31 - 1))
def test_no_policy_beats_the_oracle_frontier(data, seed):
    q, c = data
    n, m = q.shape
    rng = np.random.default_rng(seed)
    sweep = rng.integers(0, m, size=(6, n))
    mc, _ = single_model_points(q, c)
    oc, oq = OracleFrontier(q, c).curve()
    a_oracle = aiq_of_frontier(oc, oq, float(mc.max()))
    pc, pq = policy_points(q, c, sweep)
    assert aiq(pc, pq, float(mc.max())) <= a_oracle + 1e-9
    # Pointwise too: every deterministic per-prompt policy lies under the oracle frontier.
    assert np.all(frontier_value(oc, oq, pc) >= pq - 1e-9)
    hc, hq, _ = zero_router(q, c)
    assert aiq_of_frontier(hc, hq, float(mc.max())) <= a_oracle + 1e-9


@FAST
@given(matrices(), st.floats(0, 1e4, allow_subnormal=False))
def test_lambda_sweep_points_lie_on_the_exact_oracle_frontier(data, lam):
    q, c = data
    oc, oq = OracleFrontier(q, c).curve()
    pc, pq = policy_points(q, c, oracle_frontier_choices(q, c, [lam]))
    np.testing.assert_allclose(frontier_value(oc, oq, pc), pq, atol=1e-9)
    # Ends: the cheapest model per prompt, and the best quality per prompt.
    assert np.isclose(oc[0], c.min(axis=1).mean())
    assert np.isclose(oq[-1], q.max(axis=1).mean())
    assert np.all(np.diff(oc) >= 0) and np.all(np.diff(oq) >= -1e-12)


@FAST
@given(matrices(), st.data())
def test_expected_random_mixture_never_lies_above_the_zero_router(data, draw):
    q, c = data
    m = q.shape[1]
    mix = np.array(draw.draw(st.lists(st.floats(0, 1), min_size=m, max_size=m)))
    if mix.sum() == 0:
        mix[0] = 1.0
    mix = mix / mix.sum()
    mc, mq = single_model_points(q, c)
    hc, hq, _ = zero_router(q, c)
    # Choosing model j with probability mix[j] per prompt: expected point = mix-weighted mean.
    assert frontier_value(hc, hq, mix @ mc) >= mix @ mq - 1e-9


@FAST
@given(matrices(), st.floats(0, 1), st.integers(0, 2**31 - 1))
def test_realized_random_mixture_stays_near_the_zero_router(data, frac, seed):
    q, c = data
    hc, hq, _ = zero_router(q, c)
    target = hc[0] + frac * (hc[-1] - hc[0])
    ch = random_matched(q, c, [target], seed=seed)
    pc, pq = policy_points(q, c, ch)
    # Realized noise: at most one prompt's worth of rounding plus sampling of which prompts move.
    n = q.shape[0]
    spread = q.max() - q.min() + 1e-12
    # Which prompts move is random, so the realized cost can land below the cheapest vertex
    # (the expensive model drawn on cheap prompts): compare with the hull extended flat there.
    hull = max(frontier_value(hc, hq, pc)[0], float(np.interp(pc[0], hc, hq)))
    assert pq[0] <= hull + spread * 2.5 / np.sqrt(n) + 1.0 / n


@FAST
@given(matrices(min_m=2, max_m=2))
def test_apgr_of_always_strong_is_one_and_always_weak_zero(data):
    q, c = data
    n = q.shape[0]
    mq = q.mean(axis=0)
    if abs(mq[0] - mq[1]) < 1e-9:
        return  # PGR is undefined when the two models tie
    strong, weak = (0, 1) if mq[0] > mq[1] else (1, 0)
    for model, expected in ((strong, 1.0), (weak, 0.0)):
        ch = np.full((1, n), model)
        _, pq = policy_points(q, c, ch)
        y = pgr(pq, mq[weak], mq[strong])
        # Means summed in a different order may differ by an ulp: compare to 1e-12.
        assert abs(apgr(strong_fraction(ch, strong), y) - expected) < 1e-12


@settings(max_examples=20, deadline=None)
@given(matrices(), st.integers(0, 2**31 - 1))
def test_gap_closed_is_zero_for_the_zero_router_and_one_for_the_oracle(data, seed):
    q, c = data
    m = q.shape[1]
    n = q.shape[0]
    # The single models as a swept policy are the zero router: gap closed exactly 0.
    singles = np.repeat(np.arange(m)[:, None], n, axis=1)
    lam = np.r_[0.0, np.geomspace(1e-4, 1e4, 50)]
    oracle_sweep = oracle_frontier_choices(q, c, lam)
    rep = compare(
        q,
        c,
        [f"m{j}" for j in range(m)],
        {"singles": singles, "lambda-oracle": oracle_sweep},
        EvaluationConfig(bootstrap_samples=0, seed=seed),
    )
    oracle, zero = rep.row("oracle"), rep.row("zero router")
    if not np.isfinite(oracle.gap_closed):
        # Only when the oracle frontier is no better than the zero router.
        assert oracle.aiq - zero.aiq <= 1e-12
        return
    assert zero.gap_closed == 0.0 and oracle.gap_closed == 1.0
    assert abs(rep.row("singles").gap_closed) < 1e-9
    assert rep.row("lambda-oracle").gap_closed <= 1.0 + 1e-9
    assert gap_closed(oracle.aiq, zero.aiq, oracle.aiq) == 1.0
