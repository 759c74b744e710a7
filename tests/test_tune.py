"""`tierwise tune`: search space checks, the objective against Router.fit, real studies in
journal files (resume, fingerprint, seeds, hooks), reports and the infeasible-target path.

Synthetic traffic (three tiers; the small one fails on prompts full of "hard" words) and the
tiny deterministic `hashing:64` embedder keep every study to a few seconds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tierwise.experiments.cli import main
from tierwise.experiments.config import load_experiment
from tierwise.experiments.tuning.config import TuneConfig
from tierwise.experiments.tuning.fastknn import NeighbourTable
from tierwise.experiments.tuning.objective import TrialEvaluator
from tierwise.experiments.tuning.session import TuneSession
from tierwise.experiments.tuning.space import resolve_space
from tierwise.experiments.tuning.workspace import Workspace
from tierwise.router.config import RouterConfig
from tierwise.router.core import Router
from tierwise.router.errors import ConfigError
from tierwise.router.predictors.knn import KNNPredictor
from tierwise.router.schema import parse_model

WORDS = ["math", "code", "poem", "story", "physics", "history", "sql", "python", "love", "war"]
HARD = {"math", "code", "sql", "python", "physics"}
MODELS = ("small", "mid", "big")
SMALL_SPACE = """\
  space:
    calibration: [platt, none]
    predictors:
      knn: {k: {low: 3, high: 60, log: true}, weights: [uniform, distance]}
    policies:
      threshold: {mode: [absolute, gap]}
      utility: {}
"""


def write_experiment(
    tmp: Path, *, n: int = 300, tune: str = SMALL_SPACE, name: str = "synth"
) -> Path:
    """A wide CSV traffic log and an experiment YAML using it (tracking off, no bootstrap)."""
    rng = np.random.default_rng(0)
    lines = ["id,prompt," + ",".join(MODELS) + "," + ",".join(f"{m}|cost" for m in MODELS)]
    for i in range(n):
        w = list(rng.choice(WORDS, size=5))
        hard = sum(x in HARD for x in w) / 5
        q = [rng.random() > hard + 0.1, rng.random() > hard * 0.5, rng.random() > 0.05]
        c = np.array([0.001, 0.01, 0.05]) * (1 + rng.random())
        cells = [f"p{i}", " ".join(w) + f" item{i}", *(str(int(x)) for x in q)]
        lines.append(",".join(cells + [f"{x:.8f}" for x in c]))
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "log.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    path = tmp / f"{name}.yaml"
    path.write_text(
        f"name: {name}\n"
        "data:\n"
        "  sources:\n"
        "    - path: log.csv\n"
        '      quality: "{model}"\n'
        '      cost: "{model}|cost"\n'
        "  columns: {id: id, prompt: prompt}\n"
        "  labels: {kind: binary, missing: drop_row}\n"
        "evaluation: {bootstrap_samples: 0}\n"
        "tracking: {enabled: false}\n"
        "router:\n"
        '  embedder: {name: "hashing:64"}\n'
        f"  cache_dir: {tmp / 'cache'}\n"
        f"tune:\n  storage: {tmp / 'study.journal'}\n  n_trials: 10\n{tune}",
        encoding="utf-8",
    )
    return path


def session(path: Path, **overrides: Any) -> TuneSession:
    return TuneSession(load_experiment(path), overrides=overrides, progress=False)


@pytest.fixture(scope="module")
def exp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_experiment(tmp_path_factory.mktemp("tune"))


# -- search space ----------------------------------------------------------------------------
def _space(yaml_space: dict[str, Any]) -> TuneConfig:
    return parse_model(TuneConfig, {"space": yaml_space}, source="tune")


def test_unknown_predictor_parameter_names_the_valid_ones() -> None:
    tune = _space({"predictors": {"knn": {"kk": [5, 10]}}})
    with pytest.raises(
        ConfigError,
        match=r"`tune.space.predictors.knn.kk` is not a parameter of predictor 'knn'; "
        r"valid: \['k', 'prior_weight', 'store_dtype', 'temperature', 'weights'\]",
    ):
        resolve_space(tune, RouterConfig())


def test_unknown_policy_parameter_predictor_and_bad_values_are_named() -> None:
    with pytest.raises(ConfigError, match=r"`tune.space.policies.threshold.bar` .* valid: \["):
        resolve_space(_space({"policies": {"threshold": {"bar": 1}}}), RouterConfig())
    with pytest.raises(ConfigError, match=r"names predictor 'forest'.*valid: \[.*'knn'"):
        resolve_space(_space({"predictors": {"forest": {}}}), RouterConfig())
    with pytest.raises(ConfigError, match=r"predictors.knn`: `knn.k` must be an integer >= 1"):
        resolve_space(_space({"predictors": {"knn": {"k": {"low": 0, "high": 9}}}}), RouterConfig())
    with pytest.raises(ConfigError, match=r"`policy.mode` must be one of"):
        resolve_space(_space({"policies": {"threshold": {"mode": ["median"]}}}), RouterConfig())
    with pytest.raises(ConfigError, match=r"`tune.space.calibration` must list methods from"):
        resolve_space(_space({"calibration": ["beta"]}), RouterConfig())
    with pytest.raises(ConfigError, match=r"`low` must be <= `high`"):
        _space({"predictors": {"knn": {"k": {"low": 9, "high": 3}}}})


def test_space_shorthands_resolve_to_ranges_choices_and_fixed_values() -> None:
    tune = _space(
        {
            "normalization": ["tail", {"mode": "head", "max_tokens": 64}],
            "predictors": {
                "knn": {"k": {"low": 5, "high": 50}, "weights": ["uniform"], "prior_weight": 2.0},
                "mlp": {
                    "hidden_layer_sizes": [[32], [64, 32]],
                    "alpha": {"low": 1e-5, "high": 1e-2, "log": True},
                },
            },
        }
    )
    space = resolve_space(tune, RouterConfig())
    knn = space.predictors["knn"]
    assert knn["k"].is_int and knn["k"].corners() == [5, 50]  # type: ignore[union-attr]
    assert knn["prior_weight"].value == 2.0  # type: ignore[union-attr]
    assert not space.predictors["mlp"]["alpha"].is_int  # type: ignore[union-attr]
    assert list(space.normalization) == ["tail", "head,max_tokens=64"]
    assert space.embedders == ("minilm",)  # default: the router's own embedder


# -- the objective ---------------------------------------------------------------------------
def test_fast_knn_equals_the_predictor() -> None:
    rng = np.random.default_rng(3)
    X, Q = rng.normal(size=(120, 16)), rng.normal(size=(40, 16))
    Y = (rng.random((120, 3)) < [0.3, 0.6, 0.9]).astype(float)
    Y[5, 1] = np.nan
    for dtype in ("float16", "float32"):
        table = NeighbourTable(X, Y, Q, max_k=200, store_dtype=dtype)
        for params in (
            {"k": 7, "weights": "uniform", "prior_weight": 1.0},
            {"k": 30, "weights": "distance", "prior_weight": 0.0},
            {"k": 500, "weights": "softmax", "temperature": 0.1, "prior_weight": 3.0},
        ):
            full = {"temperature": 0.05, **params, "store_dtype": dtype}
            want = KNNPredictor(**full).fit(X, Y).predict_proba(Q)
            got = table.predict(
                full["k"], full["weights"], full["temperature"], full["prior_weight"]
            )
            np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
            rebuilt = table.fitted_predictor(full).predict_proba(Q)
            np.testing.assert_allclose(rebuilt, want, rtol=1e-10, atol=1e-12)


def test_cross_validated_predictions_come_from_models_fitted_on_the_other_folds(exp) -> None:
    from tierwise.router.predictors import get_predictor

    s = session(exp)
    ws = s.ws
    space = next(iter(ws.spaces.values()))
    folds = ws.folds
    for name, params in (("knn", {"k": 12, "weights": "distance"}), ("logreg", {"C": 0.5})):
        rcfg = RouterConfig.model_validate(
            {"embedder": {"name": "hashing:64"}, "predictor": {"name": name, "params": params}}
        )
        raw = s.evaluator.fitted(rcfg, space).raw
        for f in (0, 3):
            held = folds == f
            want = get_predictor(name, **params).fit(space.X_eval[~held], ws.Y_eval[~held])
            # float32 similarities summed in another matrix shape differ in the last bits
            np.testing.assert_allclose(
                raw[held],
                want.predict_proba(space.X_eval[held]),
                rtol=1e-6,
                atol=1e-9,
                err_msg=name,
            )


@pytest.mark.parametrize(
    ("predictor", "policy", "calibration"),
    [("knn", "threshold", "isotonic"), ("knn", "utility", "platt"), ("logreg", "utility", "none")],
)
def test_one_fold_objective_reproduces_router_fit(tmp_path, predictor, policy, calibration) -> None:
    cfg = load_experiment(write_experiment(tmp_path))
    from tierwise.experiments.training import prepare

    prep = prepare(cfg, progress=False)
    tune = parse_model(TuneConfig, {"scheme": "cross_fit", "folds": 1}, source="tune")
    ws = Workspace(prep, tune, resolve_space(tune, cfg.router), cfg.router, progress=False)
    rcfg = RouterConfig.model_validate(
        {
            "embedder": {"name": "hashing:64"},
            "predictor": {"name": predictor, "params": {"k": 25} if predictor == "knn" else {}},
            "calibration": {"method": calibration},
            "policy": {"name": policy, "select": {"quality_fraction": 0.9}},
        }
    )
    ev = TrialEvaluator(ws).evaluate(rcfg)
    space = ws.space_for(rcfg)
    router = Router(rcfg).fit(prep.train, prep.calibration, embeddings=(space.X_train, space.X_cal))
    np.testing.assert_allclose(ev.knobs, router.knob_grid_, rtol=1e-9)
    np.testing.assert_allclose(ev.curve, router.calibration_curve_, rtol=1e-9, atol=1e-12)
    assert ev.metrics["knob"] == pytest.approx(router.knob_)
    assert ev.target_quality == pytest.approx(router.target_quality_)


def test_trial_metrics_agree_with_the_evaluation_report(exp) -> None:
    from tierwise.eval.reporting import EvaluationConfig, compare

    s = session(exp)
    rcfg = RouterConfig.model_validate(
        {"embedder": {"name": "hashing:64"}, "predictor": {"name": "knn", "params": {"k": 20}}}
    )
    ev = s.evaluator.evaluate(rcfg)
    ws = s.ws
    report = compare(
        ws.q_eval,
        ws.cost_eval,
        ws.models,
        {"p": ev.choices},
        EvaluationConfig(bootstrap_samples=0),
        operating_points={"p": ev.index},
    )
    row = report.row("p")
    assert ev.metrics["aiq"] == pytest.approx(row.aiq, abs=1e-12)
    assert ev.metrics["gap_closed"] == pytest.approx(row.gap_closed, abs=1e-12)
    assert ev.metrics["quality"] == pytest.approx(row.quality)
    assert ev.metrics["cost_per_1k"] == pytest.approx(row.cost_per_1k)
    assert ev.metrics["pct_ref_cost"] == pytest.approx(row.pct_ref_cost)
    # default scheme: 5-fold cross-validation over train + calibration (240 of 300 prompts)
    assert ws.folds.max() == 4 and len(ws.Y_eval) == 240 and ev.choices.shape[1] == 240
    assert 0 < ev.metrics["brier"] < 0.3


# -- studies ---------------------------------------------------------------------------------
def test_study_in_a_journal_stores_what_trackers_need_and_reports(tmp_path) -> None:
    path = write_experiment(tmp_path)
    s = session(path, n_trials=12)
    summary = s.run()
    assert summary.ran == 12 and summary.finished_after == 12
    trials = s.study.get_trials()
    assert sorted(t.number for t in trials) == list(range(12))
    done = [t for t in trials if t.state.name == "COMPLETE"]
    assert len(done) >= 8
    for t in done:
        RouterConfig.model_validate(t.user_attrs["router_config"])
        m = t.user_attrs["metrics"]
        for key in (
            "quality",
            "cost_per_1k",
            "pct_ref_cost",
            "pct_ref_quality",
            "aiq",
            "gap_closed",
            "routing_latency_ms",
            "fit_seconds",
            "brier",
            "ece",
        ):
            assert np.isfinite(m[key]), key
        curve = np.asarray(t.user_attrs["calibration_curve"])
        assert curve.ndim == 2 and curve.shape[1] == 2 and len(curve) >= 3
        assert t.values[0] == pytest.approx(m["cost_per_1k"])
        assert t.user_attrs["feasible"] == (m["quality"] >= m["target_quality"] - 1e-12)
    assert s.study.user_attrs["tierwise.fingerprint"] == s.fingerprint
    report = s.report(tmp_path / "out")
    feasible = [t for t in done if t.user_attrs["feasible"]]
    best = min(feasible, key=lambda t: (t.values[0], -t.user_attrs["metrics"]["quality"]))
    assert report.feasible and report.chosen[0].trial_number == best.number
    assert report.default is not None and report.default.label.startswith("default")
    loaded = Router.load(report.files["router"])
    assert loaded.config.predictor == report.chosen[0].config.predictor
    for key in ("cost_quality_png", "trials_png"):
        assert Path(report.files[key]).read_bytes()[:4] == b"\x89PNG"
    assert "tuned #" in report.table() and "default" in report.table()


def test_same_seed_replays_the_same_trials(tmp_path) -> None:
    runs = []
    for i in range(2):
        path = write_experiment(tmp_path / str(i))
        s = session(path, n_trials=8, seed=7)
        s.run()
        runs.append([t.params for t in s.study.get_trials()])
    assert runs[0] == runs[1]


def test_resume_continues_the_study_and_a_changed_space_is_refused(tmp_path) -> None:
    path = write_experiment(tmp_path)
    first = session(path, n_trials=4)
    first.run()
    again = session(path, n_trials=9)
    summary = again.run()
    assert summary.finished_before == 4 and summary.finished_after == 9 and summary.ran == 5
    numbers = [t.number for t in again.study.get_trials()]
    assert sorted(numbers) == list(range(9))
    assert session(path, n_trials=9).run().ran == 0  # already there: nothing to run
    text = path.read_text().replace("calibration: [platt, none]", "calibration: [isotonic]")
    path.write_text(text)
    with pytest.raises(
        ConfigError, match=r"study 'synth' .* different search space.*space\.calibration"
    ):
        session(path)
    assert session(path, study_name="synth-iso", n_trials=2).run().ran == 2  # a new name is fine


def test_a_failing_hook_warns_once_and_trials_go_on(tmp_path, capsys) -> None:
    calls = []

    def tracker(study: Any, trial: Any) -> None:
        calls.append(trial.number)
        raise ConnectionError("tracking server down")

    s = session(write_experiment(tmp_path), n_trials=5, scheme="cross_fit")
    assert len(s.ws.Y_eval) == 60  # the calibration split only
    summary = s.run(on_trial_end=[tracker])
    assert summary.finished_after == 5 and calls == [0, 1, 2, 3, 4]
    assert len(summary.hook_errors) == 5
    err = capsys.readouterr().err
    assert err.count("tracking server down") == 1 and "trials continue" in err


def test_infeasible_target_is_reported_with_the_closest_trial(tmp_path, capsys) -> None:
    path = write_experiment(tmp_path, tune=SMALL_SPACE + "  target: {quality_fraction: 1.4}\n")
    code = main(["tune", str(path), "--trials", "6", "--no-progress", "--out", str(tmp_path / "o")])
    out = capsys.readouterr().out
    assert code == 1
    assert "NO TRIAL MET THE TARGET" in out and "closest: trial #" in out
    s = session(path)
    done = [t for t in s.study.get_trials() if t.state.name == "COMPLETE"]
    assert done and not any(t.user_attrs["feasible"] for t in done)
    best_q = max(t.user_attrs["metrics"]["max_quality"] for t in done)
    closest = int(out.split("closest: trial #")[1].split()[0])
    assert s.study.trials[closest].user_attrs["metrics"]["max_quality"] == best_q
    assert all(t.system_attrs.get("constraints:quality_shortfall", 0) > 0 for t in done)


def test_multi_objective_returns_a_spread_of_the_pareto_front(tmp_path) -> None:
    path = write_experiment(tmp_path, tune=SMALL_SPACE + "  report_top: 2\n")
    s = session(path, mode="multi_objective", sampler="nsga2", n_trials=14)
    s.run()
    done = [t for t in s.study.get_trials() if t.state.name == "COMPLETE"]
    assert all(len(t.values) == 2 and "operating_fraction" in t.params for t in done)
    report = s.report(tmp_path / "o", include_default=False)
    assert 1 <= len(report.chosen) <= 2
    # the front of trials reaching their own operating point (cheap useless ones are left out)
    feasible = [t for t in done if t.user_attrs["feasible"]]
    assert feasible
    pts = np.array([t.values for t in feasible])
    for c in report.chosen:
        trial = s.study.trials[c.trial_number]
        assert trial.user_attrs["feasible"]
        cost, quality = trial.values
        dominated = (
            (pts[:, 0] <= cost)
            & (pts[:, 1] >= quality)
            & ((pts[:, 0] < cost) | (pts[:, 1] > quality))
        )
        assert not dominated.any()
    assert Path(report.files["router"]).exists()


def test_help_lists_the_options(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["tune", "--help"])
    text = capsys.readouterr().out
    for flag in ("--trials", "--timeout", "--storage", "--study", "--mode", "--no-progress"):
        assert flag in text


def test_tracking_server_down_does_not_stop_the_study(tmp_path, capsys) -> None:
    path = write_experiment(tmp_path)
    argv = ["tune", str(path), "--trials", "4", "--no-progress", "--no-report", "--track"]
    assert main([*argv, "--tracking-uri", "http://127.0.0.1:9"]) == 0
    err = capsys.readouterr().err
    assert "unreachable" in err and "tierwise track sync" in err
    assert err.count("trials continue and stay in the study") == 1
    s = session(path)
    assert sum(t.state.name in ("COMPLETE", "PRUNED") for t in s.study.get_trials()) == 4


def test_slow_predictors_report_each_fold_and_refit_only_new_parameters(tmp_path) -> None:
    space = """\
  space:
    calibration: [platt, none]
    predictors:
      knn: {k: [10, 20]}
      logreg: {C: [0.1, 1.0]}
    policies:
      threshold: {mode: [gap]}
"""
    s = session(write_experiment(tmp_path, tune=space), n_trials=10)
    s.run()
    done = [t for t in s.study.get_trials() if t.state.name == "COMPLETE"]
    slow = [t for t in done if t.params["predictor"] == "logreg"]
    fast = [t for t in done if t.params["predictor"] == "knn"]
    assert slow and fast
    assert all(sorted(t.intermediate_values) == [0, 1, 2, 3, 4] for t in slow)  # one per fold
    assert all(sorted(t.intermediate_values) == [4] for t in fast)
    # a repeated predictor configuration reuses its out-of-fold predictions (same fit time)
    fits: dict[float, set[float]] = {}
    for t in slow:
        fits.setdefault(t.params["logreg.C"], set()).add(
            t.user_attrs["metrics"]["predictor_fit_seconds"]
        )
    assert all(len(v) == 1 for v in fits.values())


def test_k_beyond_the_smallest_training_fold_falls_back_to_the_real_predictor(tmp_path) -> None:
    """100 prompts → ~48 per training fold: a k of 200 must not crash the trial."""
    space = """\
  space:
    calibration: [none]
    predictors:
      knn: {k: [200]}
    policies:
      utility: {}
"""
    s = session(write_experiment(tmp_path, n=100, tune=space), n_trials=2)
    s.run()
    states = [t.state.name for t in s.study.get_trials()]
    assert states and all(st == "COMPLETE" for st in states), states


def test_with_a_target_tuning_never_sees_the_certification_prompts(tmp_path) -> None:
    """Certification tests knobs on half of the calibration split: trials must not score on it."""
    from tierwise.eval.certification import split_for_certification
    from tierwise.experiments.tuning.session import tuning_view

    path = write_experiment(tmp_path)
    text = path.read_text(encoding="utf-8")
    path.write_text(text + "target: {kind: absolute, value: 0.5}\n", encoding="utf-8")
    s = session(path, n_trials=2)
    cal = s.prep.calibration
    held = set(split_for_certification(cal.prompts, seed=0).certification.tolist())
    seen = set(tuning_view(s.prep).calibration.prompts)
    assert held and not seen & {cal.prompts[i] for i in held}
    s.run()
    assert s.ws.prep.calibration.n_prompts == cal.n_prompts - len(held)
