"""Risk-controlled knob certification: validity in simulation, p-value sanity, reports, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.stats import beta as beta_dist
from scipy.stats import binom

from tierwise.eval.certification import (
    METHODS,
    TargetConfig,
    certify,
    check_guarantee,
    naive_knob,
    risk_p_value,
    risk_upper_bound,
)
from tierwise.router.errors import ConfigError, DataError
from tierwise.router.schema import parse_model

REPS = 300


def _tolerance(delta: float, reps: int = REPS) -> float:
    """Largest violation rate still consistent with a true rate of δ (99.9% binomial quantile)."""
    return float(binom.ppf(0.999, reps, delta)) / reps


def _success_prob(k: int = 12, n_pop: int = 4000, shift: float = 0.0, seed: int = 0) -> np.ndarray:
    """P[k, i]: chance that knob k's routed answer to population prompt i is correct.

    Each knob's true mean quality is exactly P[k].mean() for prompts drawn uniformly from the
    population; ``shift`` makes every prompt harder.
    """
    rng = np.random.default_rng(seed)
    difficulty = rng.normal(0.0, 1.5, n_pop) + shift
    skill = np.linspace(3.5, 0.5, k)  # most conservative (expensive) knob first
    return 1.0 / (1.0 + np.exp(-(skill[:, None] - difficulty[None, :])))


def _draw(p: np.ndarray, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    idx = rng.integers(0, p.shape[1], n)
    quality = (rng.random(n)[None, :] < p[:, idx]).astype(float)
    base = np.linspace(1e-3, 1e-4, p.shape[0])[:, None]
    return quality, base * (1.0 + 0.2 * rng.random((1, n)))


# ----------------------------------------------------------------------------- validity
def test_certified_violation_rate_stays_within_delta_while_naive_rule_breaks() -> None:
    p = _success_prob()
    true_quality = p.mean(axis=1)
    target = float(true_quality[5]) + 0.001  # knob 5 misses the bar by a hair
    delta = 0.1
    rng = np.random.default_rng(1)
    violations = {m: 0 for m in ("hoeffding_bentkus", "binomial")}
    certified = {m: 0 for m in violations}
    naive_violations = 0
    for _ in range(REPS):
        q, c = _draw(p, 600, rng)
        for method in violations:
            cert = certify(q, c, np.arange(len(p)), None, {"value": target, "method": method})
            certified[method] += cert.passed
            violations[method] += cert.passed and true_quality[cert.index] < target
        nk = naive_knob(q, c, None, {"value": target})
        naive_violations += nk is not None and true_quality[nk] < target
    tol = _tolerance(delta)
    for method, v in violations.items():
        assert v / REPS <= tol, (method, v / REPS, tol)
        assert certified[method] / REPS > 0.95, (method, certified[method])  # not vacuous
    assert naive_violations / REPS > 0.3, naive_violations / REPS
    assert naive_violations / REPS > 2 * tol


@pytest.mark.parametrize("method", METHODS)
def test_p_values_are_valid_under_the_null(method: str) -> None:
    """At E[loss] = α exactly, P(p ≤ t) ≤ t for 0/1 losses and, except binomial, graded ones."""
    rng = np.random.default_rng(2)
    n, alpha, sims = 100, 0.2, 20_000
    samples = {"binary": (rng.random((sims, n)) < alpha).astype(float)}
    if method != "binomial":
        samples["graded"] = rng.beta(2.0, 8.0, (sims, n))  # mean 0.2
    for kind, losses in samples.items():
        p = risk_p_value(losses.mean(axis=1), n, alpha, method)
        for t in (0.01, 0.05, 0.1, 0.2):
            rate = float(np.mean(p <= t))
            assert rate <= float(binom.ppf(0.999, sims, t)) / sims, (kind, t, rate)
    if method == "binomial":  # the exact test uses most of its level: the check has power
        p = risk_p_value(samples["binary"].mean(axis=1), n, alpha, method)
        assert np.mean(p <= 0.1) > 0.06


@pytest.mark.parametrize("method", METHODS)
def test_p_values_are_monotone_in_the_sample_mean_and_level(method: str) -> None:
    n = 200
    r_hat = np.arange(n + 1) / n
    for alpha in (0.05, 0.2, 0.5):
        p = risk_p_value(r_hat, n, alpha, method)
        assert np.all(np.diff(p) >= -1e-12)
        assert np.all((p >= 0) & (p <= 1))
        assert p[0] < 0.01 and p[-1] == pytest.approx(1.0)
    levels = np.linspace(0.01, 0.99, 50)
    assert np.all(np.diff(risk_p_value(0.3, n, levels, method)) <= 1e-12)


def test_hoeffding_bentkus_is_the_smaller_of_its_parts() -> None:
    r_hat, n = np.linspace(0, 0.3, 31), 500
    hb = risk_p_value(r_hat, n, 0.2, "hoeffding_bentkus")
    h = risk_p_value(r_hat, n, 0.2, "hoeffding")
    assert np.all(hb <= h + 1e-15)
    assert np.any(hb < h)  # Bentkus wins somewhere


def test_binomial_upper_bound_is_clopper_pearson() -> None:
    n, delta = 150, 0.1
    for k in (0, 7, 60, 149):
        cp = beta_dist.ppf(1 - delta, k + 1, n - k)
        ucb = float(risk_upper_bound(k / n, n, delta, "binomial"))
        assert ucb == pytest.approx(cp, abs=1e-9)
    assert float(risk_upper_bound(1.0, n, delta, "binomial")) == 1.0


def test_relative_target_carries_the_reference_uncertainty() -> None:
    """Plugging the reference's calibration mean in as a known bar breaks the guarantee."""
    v, ref_rate, delta = 1.5, 0.5, 0.05  # bar: 1.5 × 0.5 = 0.75
    rates = np.array([0.95, 0.85, 0.749])  # the cheapest knob misses the bar by 0.001
    rng = np.random.default_rng(3)
    n, paired_bad, plugin_bad, paired_pass = 1000, 0, 0, 0
    for _ in range(REPS):
        q = (rng.random((3, n)) < rates[:, None]).astype(float)
        ref = (rng.random(n) < ref_rate).astype(float)
        cost = np.array([3.0, 2.0, 1.0])[:, None] * np.ones((1, n))
        rel = {"kind": "relative", "value": v, "confidence": 1 - delta}
        cert = certify(q, cost, [0, 1, 2], ref, rel)
        paired_pass += cert.passed
        paired_bad += bool(cert.passed and rates[cert.index] < v * ref_rate)
        plugin = {"value": v * ref.mean(), "method": "binomial", "confidence": 1 - delta}
        cert = certify(q, cost, [0, 1, 2], None, plugin)
        plugin_bad += bool(cert.passed and rates[cert.index] < v * ref_rate)
    tol = _tolerance(delta)
    assert paired_bad / REPS <= tol
    assert paired_pass / REPS > 0.9
    assert plugin_bad / REPS > tol, plugin_bad / REPS


# ----------------------------------------------------------------------------- selection
def test_fixed_sequence_stops_at_the_first_failure_and_falls_back() -> None:
    n = 400
    q = np.vstack([np.zeros(n), np.ones(n)])  # knob 0 fails, knob 1 would pass on its own
    cost = np.vstack([np.full(n, 2e-3), np.full(n, 1e-3)])
    ref = np.r_[np.ones(350), np.zeros(50)]
    target = {"value": 0.8, "reference": "gpt-4"}
    cert = certify(q, cost, [0.1, 0.9], ref, target, reference_cost=np.full(n, 5e-3))
    assert cert.fallback and not cert.passed and cert.knob is None and cert.index is None
    assert cert.n_tested == 1 and cert.p_values[1] < 0.01
    assert cert.quality_mean == pytest.approx(0.875) and cert.cost_mean == pytest.approx(5e-3)
    text = cert.explain()
    assert "No knob value could be certified" in text and "'gpt-4'" in text
    assert "exchangeable" in text
    assert naive_knob(q, cost, None, target) == 1


def test_reference_that_misses_the_target_is_reported_plainly() -> None:
    q = np.full((1, 300), 0.5)
    cert = certify(q, q, ["only"], np.full(300, 0.6), {"value": 0.9})
    assert cert.fallback and "Even the reference is not shown to reach 0.9" in cert.explain()
    assert naive_knob(q, q, None, {"value": 0.9}) is None


def test_cheapest_rejected_knob_is_chosen_by_calibration_cost() -> None:
    n = 500
    q = np.ones((4, n))
    q[3, :] = 0.0  # the sequence stops here
    cost = np.array([3.0, 1.0, 2.0, 0.5])[:, None] * np.ones((1, n)) * 1e-3
    cert = certify(q, cost, ["a", "b", "c", "d"], None, {"value": 0.9})
    assert (cert.index, cert.knob, cert.n_tested) == (1, "b", 4)
    assert cert.cost_mean == pytest.approx(1e-3)


def test_certificate_bounds_agree_with_the_test_and_serialise() -> None:
    rng = np.random.default_rng(4)
    q, c = _draw(_success_prob(), 800, rng)
    knobs = np.linspace(0.0, 1.0, len(q))
    cert = certify(q, c, knobs, None, {"value": 0.8})
    assert cert.passed and cert.p_value <= 0.1
    assert cert.quality_lower is not None and cert.quality_interval is not None
    assert cert.quality_mean is not None
    assert cert.quality_lower >= 0.8 - 1e-9  # inverting the same test that passed
    lo, hi = cert.quality_interval
    assert lo <= cert.quality_lower <= cert.quality_mean <= hi
    data = json.loads(json.dumps(cert.to_dict(), allow_nan=False))
    assert (
        data["knob"] == pytest.approx(knobs[cert.index]) and data["method"] == "wsr"
    )
    assert data["target"]["value"] == 0.8 and len(data["p_values"]) == len(knobs)
    assert set(cert.metrics()) >= {"certified", "cert_quality_lower", "cert_cost_mean"}
    text = cert.explain()
    assert "90% confidence" in text and f"knob = {knobs[cert.index]:g}" in text
    assert "per 1,000 prompts" in text and "exchangeable" in text


def test_relative_certificate_reports_the_margin() -> None:
    rng = np.random.default_rng(5)
    n = 2000
    ref = (rng.random(n) < 0.8).astype(float)
    q = np.vstack([ref, ref * (rng.random(n) < 0.97), ref * (rng.random(n) < 0.5)])
    cost = np.array([3.0, 2.0, 1.0])[:, None] * np.ones((1, n))
    cert = certify(q, cost, [0, 1, 2], ref, {"kind": "relative", "value": 0.9})
    assert cert.index == 1 and cert.margin_lower is not None and cert.margin_lower >= -1e-9
    assert cert.margin_mean == pytest.approx(q[1].mean() - 0.9 * ref.mean())
    assert "90% of the mean quality of reference 'best'" in cert.explain()


# ----------------------------------------------------------------------------- drift check
def test_check_flags_harder_traffic_and_rarely_flags_unshifted_traffic() -> None:
    p, delta = _success_prob(), 0.1
    rng = np.random.default_rng(6)
    q, c = _draw(p, 1000, rng)
    cert = certify(q, c, np.arange(len(p)), None, {"value": 0.8})
    harder = _success_prob(shift=0.75)[cert.index]
    assert harder.mean() < 0.78 <= 0.8 <= p[cert.index].mean()
    flagged = {"unshifted": 0, "harder": 0, "at_target": 0}
    for _ in range(200):
        flagged["unshifted"] += (
            check_guarantee(_draw(p, 500, rng)[0][cert.index], None, cert).verdict == "violated"
        )
        flagged["harder"] += (
            check_guarantee(_draw(harder[None], 500, rng)[0][0], None, cert).verdict == "violated"
        )
        # Stated rate: when true quality sits exactly at the target, "violated" ≤ δ.
        boundary = (rng.random(500) < 0.8).astype(float)
        flagged["at_target"] += check_guarantee(boundary, None, cert).verdict == "violated"
    tol = _tolerance(delta, 200)
    assert flagged["harder"] / 200 >= 0.9, flagged
    assert flagged["unshifted"] / 200 <= tol and flagged["at_target"] / 200 <= tol, flagged


def test_check_verdicts_and_explanations() -> None:
    target = {"value": 0.8, "method": "binomial"}
    good = check_guarantee(np.r_[np.ones(900), np.zeros(100)], None, target)
    bad = check_guarantee(np.r_[np.ones(700), np.zeros(300)], None, target)
    small = check_guarantee(np.r_[np.ones(8), np.zeros(2)], None, target)
    assert (good.verdict, bad.verdict, small.verdict) == ("holds", "violated", "inconclusive")
    assert bad.estimate == pytest.approx(0.7) and bad.interval.upper < 0.8
    assert "is violated" in bad.explain() and "re-certify" in bad.explain()
    assert "Label more prompts" in small.explain()
    json.dumps(bad.to_dict(), allow_nan=False)
    ref = np.ones(1000)
    rel = check_guarantee(
        np.r_[np.ones(700), np.zeros(300)], ref, {"kind": "relative", "value": 0.9}
    )
    assert rel.verdict == "violated" and rel.estimate == pytest.approx(-0.2)
    assert "vs reference 1.000" in rel.explain()


# ----------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    ("data", "match"),
    [
        ({"value": 1.2}, r"`value` must be a mean quality in \(0, 1\] .*got 1\.2"),
        ({"value": 0.0}, r"`value` must be a mean quality in \(0, 1\]"),
        ({"kind": "relative", "value": 2.0}, r"`value` must be a fraction .* \(0, 1\.5\]"),
        ({"kind": "relative", "value": 0.9, "method": "binomial"}, r"`method` must be hoeffding"),
        ({"value": 0.8, "confidence": 1.0}, r"`confidence` input should be less than 1"),
        ({"value": 0.8, "method": "wilson"}, r"`method` input should be"),
        ({"value": 0.8, "alpha": 0.1}, r"unknown key `alpha`"),
    ],
)
def test_bad_target_configs_raise_one_clear_config_error(data: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        parse_model(TargetConfig, data, source="target")
    with pytest.raises(ConfigError, match=match):
        certify(np.ones((1, 5)), np.ones((1, 5)), [0], None, data)


def test_binomial_with_graded_labels_is_refused() -> None:
    q = np.array([[1.0, 0.0, 0.5, 1.0]])
    with pytest.raises(ConfigError, match=r"binomial needs 0/1 quality labels.*\[0, 2\]` is 0\.5"):
        certify(q, np.ones_like(q), [0], None, {"value": 0.5, "method": "binomial"})
    with pytest.raises(ConfigError, match=r"binomial needs 0/1 quality labels"):
        check_guarantee(q[0], None, {"value": 0.5, "method": "binomial"})


def test_bad_data_is_named_precisely() -> None:
    q = np.ones((2, 4))
    with pytest.raises(ConfigError, match=r"relative target needs `reference_quality`"):
        certify(q, q, [0, 1], None, {"kind": "relative", "value": 0.9})
    bad = q.copy()
    bad[1, 3] = np.nan
    with pytest.raises(DataError, match=r"`quality_by_knob\[1, 3\]` must be a finite number"):
        certify(bad, q, [0, 1], None, {"value": 0.5})
    bad[1, 3] = 1.5
    with pytest.raises(DataError, match=r"`quality_by_knob\[1, 3\]` must be a quality in \[0, 1\]"):
        certify(bad, q, [0, 1], None, {"value": 0.5})
    with pytest.raises(DataError, match=r"`cost_by_knob` must have the shape"):
        certify(q, np.ones((2, 3)), [0, 1], None, {"value": 0.5})
    with pytest.raises(DataError, match=r"`cost_by_knob\[0, 0\]` must be ≥ 0 USD, got -1\.0"):
        certify(q, -q, [0, 1], None, {"value": 0.5})
    with pytest.raises(DataError, match=r"`knobs` must have one value per row"):
        certify(q, q, [0], None, {"value": 0.5})
    with pytest.raises(
        DataError, match=r"`reference_quality` must have one entry per prompt \(4\)"
    ):
        certify(q, q, [0, 1], np.ones(3), {"kind": "relative", "value": 0.9})
    with pytest.raises(ConfigError, match=r"`method` must be one of"):
        risk_p_value(0.1, 10, 0.2, "bonferroni")
