"""eval.certification: certify a fitted Router's knob, fall back honestly, persist, check."""

from __future__ import annotations

import numpy as np
import pytest
from guarantee_helpers import MODELS, success_prob, synthetic

from tierwise.eval.certification import (
    TargetConfig,
    advice,
    certify_router,
    check_router,
    naive_knob,
    split_for_certification,
    sweep_realized,
)
from tierwise.router.config import RouterConfig
from tierwise.router.core import Router
from tierwise.router.errors import ConfigError, DataError


def config(predictor: str = "logreg", policy: str = "utility", **policy_extra) -> RouterConfig:
    return RouterConfig.model_validate(
        {
            "embedder": {"name": "hashing:64"},
            "predictor": {"name": predictor},
            "policy": {"name": policy, **policy_extra},
        }
    )


@pytest.fixture(scope="module")
def data():
    return synthetic(500, 1), synthetic(700, 2), synthetic(600, 3)


@pytest.fixture(scope="module")
def fitted(data):
    train, cal, _ = data
    return Router(config()).fit(train, cal)


ABSOLUTE = {"kind": "absolute", "value": 0.75}


# ----------------------------------------------------------------------------- the split
def test_split_keeps_duplicate_prompts_together_and_is_seeded():
    prompts = [f"q{i % 50}" for i in range(200)] + [f"Q{i % 50}  " for i in range(100)]
    s = split_for_certification(prompts, 0.5, seed=3)
    assert set(s.calibrator).isdisjoint(s.certification)
    assert len(s.calibrator) + len(s.certification) == len(prompts)
    norm = [" ".join(p.split()).casefold() for p in prompts]
    assert {norm[i] for i in s.calibrator}.isdisjoint({norm[i] for i in s.certification})
    assert 0.4 < len(s.certification) / len(prompts) < 0.6
    again = split_for_certification(prompts, 0.5, seed=3)
    assert np.array_equal(s.certification, again.certification)
    other = split_for_certification(prompts, 0.5, seed=4)
    assert not np.array_equal(s.certification, other.certification)
    bigger = split_for_certification(prompts, 0.8, seed=3)
    assert len(bigger.certification) > len(s.certification)


def test_split_refuses_bad_fractions_and_tiny_samples():
    with pytest.raises(ConfigError, match=r"`holdout` must be a fraction in \(0, 1\), got 1.0"):
        split_for_certification(["a", "b", "c", "d"], 1.0)
    with pytest.raises(DataError, match="at least 4 distinct calibration prompts, got 3"):
        split_for_certification(["a", "b", "c", "a "], 0.5)


# ----------------------------------------------------------------------------- certify
def test_certified_knob_is_deployed_and_matches_routing_the_certification_prompts(data):
    train, cal, _ = data
    router = Router(config()).fit(train, cal)
    cert = certify_router(router, cal, ABSOLUTE, seed=7)
    assert cert.passed and not cert.fallback and advice(cert) is None
    assert router.knob_ == cert.knob and router.fallback_model_ is None
    assert cert.knob in router.knob_grid_.tolist()
    # Fixed-sequence order: the grid reversed, most expensive behaviour first.
    assert list(cert.knobs) == router.knob_grid_[::-1].tolist()
    record = router.certificate_
    assert record is not None and record["knob"] == cert.knob
    assert record["reference_model"] == "big"
    part = split_for_certification(cal.prompts, 0.5, seed=7)
    assert record["scheme"]["n_certification"] == len(part.certification) == cert.n_calibration
    # Independently: route the certification prompts as deployed and read off the labels.
    cert_part = cal.subset(part.certification)
    picks = [MODELS.index(d.model) for d in router.route(list(cert_part.prompts))]
    realized = cert_part.quality[np.arange(cert_part.n_prompts), picks]
    assert realized.mean() == pytest.approx(cert.quality_mean)
    assert realized.mean() >= 0.75
    # It is cheaper than always using the reference tier.
    assert cert.cost_mean < cert_part.cost[:, 2].mean()


def test_calibrator_and_grid_come_from_the_calibrator_part_only(data):
    """Changing the certification part's labels must not change the grid or the calibrator."""
    train, cal, _ = data
    part = split_for_certification(cal.prompts, 0.5, seed=0)
    flipped_q = cal.quality.copy()
    flipped_q[part.certification] = 1.0 - flipped_q[part.certification]
    from dataclasses import replace

    cal2 = replace(cal, quality=flipped_q)
    r1, r2 = Router(config()).fit(train, cal), Router(config()).fit(train, cal2)
    certify_router(r1, cal, ABSOLUTE)
    certify_router(r2, cal2, ABSOLUTE)
    assert np.array_equal(r1.knob_grid_, r2.knob_grid_)
    X = r1.embed(["math code poem story war", "love poem story history war"])
    assert np.array_equal(
        r1.predict(X, np.array([20.0, 20.0]))[0], r2.predict(X, np.array([20.0, 20.0]))[0]
    )


def test_certificate_survives_save_and_load(fitted, data, tmp_path):
    _, cal, test = data
    cert = certify_router(fitted, cal, {"kind": "relative", "value": 0.8})
    assert cert.passed
    path = fitted.save(str(tmp_path / "r.tierwise"))
    loaded = Router.load(path)
    assert loaded.certificate_ is not None and loaded.certificate_ == fitted.certificate_
    assert loaded.certificate_["target"]["kind"] == "relative"
    assert loaded.knob_ == fitted.knob_ and loaded.fallback_model_ is None
    assert [d.model for d in loaded.route(list(test.prompts))] == [
        d.model for d in fitted.route(list(test.prompts))
    ]


def test_unreachable_target_falls_back_to_the_reference_tier(data, tmp_path):
    train, cal, test = data
    router = Router(config(policy="threshold")).fit(train, cal)
    hb = {"kind": "absolute", "value": 0.99, "method": "hoeffding_bentkus"}
    cert = certify_router(router, cal, hb)
    assert cert.fallback and not cert.passed and cert.knob is None
    assert router.fallback_model_ == "big"
    assert "No knob value could be certified" in cert.explain()
    assert "`method: wsr`" in str(advice(cert))
    wsr = certify_router(router, cal, {"kind": "absolute", "value": 0.99})  # wsr: the default
    assert wsr.fallback and "label more calibration traffic" in str(advice(wsr))
    decisions = router.route(list(test.prompts[:20]))
    assert {d.model for d in decisions} == {"big"}
    assert all(d.knob is None for d in decisions)
    loaded = Router.load(router.save(str(tmp_path / "fb")))
    assert loaded.fallback_model_ == "big"
    assert {d.model for d in loaded.route(list(test.prompts[:20]))} == {"big"}
    found = check_router(loaded, synthetic(1000, 30))
    assert found.fallback and found.share == {"small": 0.0, "mid": 0.0, "big": 1.0}
    assert found.result.verdict == "violated"  # even the big tier does not reach 0.99
    # An explicit knob still overrides the fallback (e.g. `tierwise route --knob`).
    cheap = loaded.route(list(test.prompts[:20]), knob=float(loaded.knob_grid_[0]))
    assert {d.model for d in cheap} != {"big"}
    # A later, reachable certification lifts the fallback.
    certify_router(router, cal, ABSOLUTE)
    assert router.fallback_model_ is None


def test_refit_voids_the_certificate(data):
    train, cal, _ = data
    router = Router(config()).fit(train, cal)
    certify_router(router, cal, {"kind": "absolute", "value": 0.99})
    router.fit(train, cal)
    assert router.certificate_ is None and router.fallback_model_ is None


def test_named_reference_and_bad_inputs(fitted, data):
    _, cal, _ = data
    cert = certify_router(fitted, cal, {"kind": "relative", "value": 0.9, "reference": "mid"})
    assert fitted.certificate_["reference_model"] == "mid" and cert.passed
    with pytest.raises(ConfigError, match=r"`target.reference` must be 'best' or one of"):
        certify_router(fitted, cal, {"kind": "relative", "value": 0.9, "reference": "gpt-9"})
    with pytest.raises(ConfigError, match="value"):
        certify_router(fitted, cal, {"kind": "absolute", "value": 1.5})
    with pytest.raises(DataError, match=r"`embeddings` must be \(700, 64\)"):
        certify_router(fitted, cal, ABSOLUTE, embeddings=np.zeros((3, 64)))
    fixed = Router(config(knob=0.5)).fit(data[0], cal)
    with pytest.raises(ConfigError, match=r"`router\.policy\.knob` is fixed at 0\.5"):
        certify_router(fixed, cal, ABSOLUTE)


def test_unknown_label_on_a_routed_answer_is_named(fitted, data):
    from dataclasses import replace

    _, cal, _ = data
    q = cal.quality.copy()
    q[:, 2] = np.nan  # the big tier's labels are lost
    with pytest.raises(DataError, match=r"routed to 'big', whose quality label is unknown"):
        certify_router(fitted, replace(cal, quality=q), ABSOLUTE)


# ----------------------------------------------------------------------------- validity
def test_resplit_violation_rate_of_the_router_stays_within_delta():
    """Fit once; certify on 100 fresh calibration samples; judge by the *true* success rates.

    The true mean quality of a knob is the average true P(success) of its choices over a large
    population, so a violation is a fact, not a noisy test-set estimate.
    """
    train = synthetic(600, 11)
    router = Router(config("logreg", "threshold", grid_size=41)).fit(train, synthetic(300, 12))
    pop = synthetic(8000, 13)
    X_pop = router.embed(pop.prompts)
    raw_pop = router.predictor_.predict_proba(X_pop)
    from tierwise.router.expected_cost import prompt_chars

    C_pop = router.cost_model_.predict(X_pop, prompt_chars(pop.prompts))
    truth = success_prob(list(pop.prompts))
    rng = np.random.default_rng(0)
    target = TargetConfig(kind="absolute", value=0.8, confidence=0.9)
    reps, violations, naive_violations, passed = 100, 0, 0, 0
    rows = np.arange(pop.n_prompts)
    for _ in range(reps):
        idx = rng.choice(pop.n_prompts, 500, replace=False)
        cal, seed = pop.subset(idx), int(rng.integers(1_000_000))
        cert = certify_router(router, cal, target, embeddings=X_pop[idx], seed=seed)
        P_pop = np.clip(router.calibrator_.transform(raw_pop), 0, 1)

        def true_q(knob: float, P: np.ndarray = P_pop) -> float:
            return float(truth[rows, router.policy_.choose(P, C_pop, knob)].mean())

        if cert.passed:
            passed += 1
            violations += true_q(cert.knob) < target.value
        # The naive rule on the same certification prompts and grid, for contrast.
        part = split_for_certification(cal.prompts, 0.5, seed=seed)
        b = idx[part.certification]
        sw = sweep_realized(router, P_pop[b], C_pop[b], pop.quality[b], pop.cost[b])
        k = naive_knob(sw.quality, sw.cost, None, target)
        naive_violations += k is not None and true_q(sw.knobs[k]) < target.value
    assert passed > 0.9 * reps  # not vacuous
    assert violations / reps <= 0.1 + 0.07, violations  # δ plus binomial slack at 100 reps
    assert naive_violations > 2 * max(violations, 5), (naive_violations, violations)


def test_check_router_flags_shifted_traffic(fitted, data):
    _, cal, _ = data
    certify_router(fitted, cal, ABSOLUTE)
    same = check_router(fitted, synthetic(1500, 21))
    # The certified knob sits just above the bar, so 1,500 prompts cannot always confirm it;
    # what must not happen on unshifted traffic is a false alarm.
    assert same.result.verdict != "violated", same.result.explain()
    # ...and its realized quality sits within sampling noise of the bar (3 binomial SEs).
    assert same.result.estimate > 0.75 - 3 * np.sqrt(0.75 * 0.25 / 1500)
    shifted = check_router(fitted, synthetic(1500, 21, shift=0.6))
    assert shifted.result.verdict == "violated", shifted.result.explain()
    assert shifted.result.estimate < 0.7
    assert sum(same.share.values()) == pytest.approx(1.0)
    assert same.result.quality_mean == pytest.approx(
        same.quality[np.arange(1500), same.choices].mean()
    )


def test_check_router_confirms_a_target_with_room_to_spare(data):
    train, cal, _ = data
    router = Router(config()).fit(train, cal)  # no certificate: the target is given
    with pytest.raises(ConfigError, match="carries no certificate"):
        check_router(router, synthetic(300, 22))
    found = check_router(router, synthetic(1500, 22), TargetConfig(kind="absolute", value=0.6))
    assert found.result.verdict == "holds", found.result.explain()
