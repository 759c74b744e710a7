"""Static fallback, knob margin and cross-fitting in Router.fit (issue 12, items 2 and 3)."""

from __future__ import annotations

import numpy as np
import pytest
from bench_helpers import synthetic_traffic, write_routing_log

from tierwise.router.config import RouterConfig
from tierwise.router.core import Router, realized_curve, select_knob
from tierwise.router.crossfit import group_folds
from tierwise.router.errors import ConfigError, DataError
from tierwise.router.policy_static import StaticMixturePolicy, models_by_cost
from tierwise.router.selection import compare_with_static, hull_aiq, knob_with_margin


def _router(**cfg: object) -> Router:
    base = {"embedder": {"name": "hashing:64"}, "predictor": {"name": "knn", "params": {"k": 20}}}
    return Router(RouterConfig.model_validate(base | cfg))


def test_the_static_sweep_scores_as_the_zero_router():
    from tierwise.eval.reporting import compare

    rng = np.random.default_rng(3)
    for _ in range(10):
        q = (rng.random((60, 5)) < rng.random(5)).astype(float)
        c = rng.uniform(0.5, 1.5, (60, 5)) * rng.uniform(0.001, 1, 5)
        pol = StaticMixturePolicy(models_by_cost(q[:30], c[:30]))  # fitted on other prompts
        P = np.full((30, 5), 0.5)
        ch = np.stack([pol.choose(P, c[30:], k) for k in pol.knob_grid(P, c[30:])])
        report = compare(q[30:], c[30:], [f"m{j}" for j in range(5)], {"static": ch})
        assert report.row("static").aiq == pytest.approx(report.row("zero router").aiq)


def test_static_policy_mixes_per_prompt_and_batch_independently():
    pol = StaticMixturePolicy([0, 2])
    rng = np.random.default_rng(0)
    P, C = rng.random((4000, 3)), rng.random((4000, 3))
    picks = pol.choose(P, C, 0.25)
    assert set(np.unique(picks)) == {0, 2}
    assert np.mean(picks == 2) == pytest.approx(0.25, abs=0.03)
    assert np.array_equal(pol.choose(P[:7], C[:7], 0.25), picks[:7])
    assert list(pol.knob_grid(P, C, 5)) == [0.0, 1.0]
    with pytest.raises(ConfigError, match="must be a non-empty list of model column"):
        StaticMixturePolicy([])


def test_hull_aiq_matches_the_reports_aiq():
    from tierwise.eval.metrics import aiq

    rng = np.random.default_rng(1)
    for _ in range(50):
        c, q, cm = rng.random(6), rng.random(6), float(rng.uniform(0.2, 1.2))
        assert hull_aiq(c, q, cm) == pytest.approx(aiq(c, q, cm), abs=1e-12)


def test_a_misleading_router_ships_the_static_mixture_and_says_so(tmp_path):
    # What the predictor learns on train is reversed on calibration (shifted traffic).
    train, cal = synthetic_traffic(300), synthetic_traffic(200, seed=1, flip=True)
    router = _router().fit(train, cal)
    assert router.static_fallback_ is True
    assert router.static_comparison_["p_router_better"] < 0.8
    assert router.policy_.name == "static" and router.config.policy.name == "static"
    assert router.policy_.params["replaced"] == "utility"
    # One model for every prompt at the chosen knob; the artifact says static and routes alike.
    prompts = list(cal.prompts[:50])
    assert len({d.model for d in router.route(prompts)}) == 1
    loaded = Router.load(router.save(str(tmp_path / "r.tierwise")))
    assert loaded.config.policy.name == "static"
    assert [d.model for d in loaded.route(prompts)] == [d.model for d in router.route(prompts)]
    # A refit with the fallback disabled ships the learned policy again.
    router._requested_config = router._requested_config.model_copy(
        update={"fallback": router.config.fallback.model_copy(update={"enabled": False})}
    )
    assert router.fit(train, cal).policy_.name == "utility"


def test_learnable_traffic_keeps_the_learned_policy():
    router = _router().fit(synthetic_traffic(300), synthetic_traffic(200, seed=1))
    assert router.static_fallback_ is False
    assert router.static_comparison_["p_router_better"] >= 0.8
    assert router.static_comparison_["router_aiq"] > router.static_comparison_["static_aiq"]


def test_compare_with_static_sees_a_router_that_copies_the_best_model_as_no_better():
    rng = np.random.default_rng(0)
    q = (rng.random((400, 3)) < [0.5, 0.6, 0.9]).astype(float)
    c = np.tile([1.0, 2.0, 10.0], (400, 1))
    cmp = compare_with_static(np.array([np.full(400, j) for j in range(3)]), q, c, n_boot=50)
    assert cmp.router_aiq == pytest.approx(cmp.static_aiq) and cmp.p_better == 0.0


def test_knob_margin():
    rng = np.random.default_rng(2)
    n = 400
    q = (rng.random((n, 3)) < [0.5, 0.7, 0.9]).astype(float)
    c = np.tile([1.0, 3.0, 10.0], (n, 1))
    # knob rows: share s of prompts to the top model, the rest to the middle one
    shares = np.linspace(0, 1, 21)
    choices = np.stack([np.where(rng.random(n) < s, 2, 1) for s in shares])
    naive = knob_with_margin(choices, q, c, 2, 0.95, 0.5, n)
    curve = realized_curve(q, c, choices)
    assert naive == select_knob(shares, curve, 0.95 * q[:, 2].mean())
    strict = knob_with_margin(choices, q, c, 2, 0.95, 0.9, n)
    assert curve[strict, 0] > curve[naive, 0] and curve[strict, 1] > curve[naive, 1]


def test_group_folds_keep_identical_prompts_together():
    prompts = [f"p{i % 30}" for i in range(90)] + [" P3 "]
    folds = group_folds(prompts, 3, seed=0)
    for text in {p.strip().lower() for p in prompts}:
        assert (
            len({f for p, f in zip(prompts, folds, strict=True) if p.strip().lower() == text}) == 1
        )
    assert all(abs(size - 91 / 3) <= 4 for size in np.bincount(folds))  # a group is 3-4 rows
    with pytest.raises(DataError, match=r"`crossfit\.folds` is 5 but there are only 2"):
        group_folds(["a", "b"], 5, seed=0)


def test_crossfit_fits_on_all_labels_and_selects_out_of_fold():
    train, cal = synthetic_traffic(200), synthetic_traffic(100, seed=1)
    plain = _router(fallback={"enabled": False}).fit(train, cal)
    cross = _router(fallback={"enabled": False}, crossfit={"folds": 4}).fit(train, cal)
    assert plain.predictor_.get_state()[1]["labels"].shape[0] == 200
    assert cross.predictor_.get_state()[1]["labels"].shape[0] == 300
    # The knob's bar is measured on all 300 labelled prompts (out of fold), not on the 100.
    assert cross.target_quality_ == pytest.approx(
        0.95 * np.vstack([train.quality, cal.quality])[:, 2].mean()
    )


def test_crossfit_keeps_certifications_held_out_prompts_out_of_the_fit(tmp_path, monkeypatch):
    from tierwise.eval.certification import split_for_certification
    from tierwise.experiments.config import load_experiment
    from tierwise.experiments.training import prepare, train

    cfg_path = write_routing_log(tmp_path, n=300)
    with cfg_path.open("a") as f:
        f.write("  crossfit: {folds: 3}\n  predictor: {name: knn, params: {k: 20}}\n")
        f.write("  cache_dir: cache\ntracking: {enabled: false}\n")
        f.write("target: {kind: relative, value: 0.9, reference: best, confidence: 0.8}\n")
    cfg = load_experiment(cfg_path)
    prep = prepare(cfg, progress=False)
    held = set(
        np.asarray(prep.calibration.prompts)[
            split_for_certification(prep.calibration.prompts, seed=cfg.split.seed).certification
        ]
    )
    seen: list[str] = []
    real_fit = Router.fit

    def spy(self, train_data, cal_data, **kw):
        seen.extend(train_data.prompts)
        seen.extend(cal_data.prompts)
        return real_fit(self, train_data, cal_data, **kw)

    monkeypatch.setattr(Router, "fit", spy)
    result = train(cfg, prep=prep, progress=False)
    assert held and not held & set(seen)  # certification's prompts never reached the fit
    assert len(seen) == prep.train.n_prompts + prep.calibration.n_prompts - len(held)
    labels = result.router.predictor_.get_state()[1]["labels"]
    assert labels.shape[0] == len(seen)  # the shipped predictor learned from all the others
    assert result.certificate is not None
    assert result.certificate.n_calibration == len(held)


def test_train_says_when_the_static_mixture_ships(tmp_path, capsys):
    from tierwise.experiments.cli import main
    from tierwise.router.artifact import load_artifact

    # The cheapest tier is also the best: no routing can beat always using it.
    cfg = write_routing_log(tmp_path, n=200, signal=False, rates=(0.9, 0.6, 0.5))
    with cfg.open("a") as f:
        f.write("  predictor: {name: knn, params: {k: 20}}\n  cache_dir: cache\n")
    out = tmp_path / "run"
    assert main(["train", str(cfg), "--out", str(out), "--no-progress", "--no-track"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "static fallback: the learned router (utility) beat the best static mixture" in text
    manifest = load_artifact(out / "router.tierwise").payload
    assert manifest["config"]["policy"]["name"] == "static"
    assert manifest["policy"]["params"]["evidence"]["p_router_better"] < 0.8
