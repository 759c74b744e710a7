"""MLflow tracking on a real SQLite store: `tierwise train` runs, the registered pyfunc model,
study sync (idempotent, repairs half-written runs), chosen routers and `tierwise compare`."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pandas as pd
import pytest
from tracking_helpers import free_port, journal_study, objective, runs_by_kind, write_experiment

from tierwise.experiments.cli import main
from tierwise.experiments.config import load_experiment
from tierwise.experiments.tracking.config import TrackingConfig
from tierwise.experiments.tracking.store import TrackingUnavailable, check_reachable
from tierwise.router.core import Router
from tierwise.router.errors import ConfigError

mlflow = pytest.importorskip("mlflow")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One `tierwise train` with tracking on (the default) into a fresh SQLite store."""
    root = tmp_path_factory.mktemp("tracked")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    cfg = write_experiment(root, uri=uri)
    assert main(["train", str(cfg), "--out", str(root / "out"), "--no-progress"]) == 0
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    return root, cfg, uri, client


def test_train_run_has_config_params_test_metrics_and_artifacts(trained):
    root, _, _uri, client = trained
    (run,) = runs_by_kind(client, "tinytrack", "train")
    p, m = run.data.params, run.data.metrics
    assert p["router.embedder.name"] == "hashing:64"
    assert p["router.policy.name"] == "threshold"
    assert len(p["dataset.fingerprint"]) == 16 and p["dataset.n_test"] == "48"
    assert "price_table_version" in p and p["tracking.register"] == "True"
    for key in (
        "quality",
        "cost_per_1k",
        "pct_ref_cost",
        "aiq",
        "gap_closed",
        "cost_at_target",
        "routing_latency_ms",
        "fit_seconds",
    ):
        assert key in m, key
    assert 0 < m["quality"] <= 1 and m["cost_per_1k"] > 0 and m["routing_latency_ms"] > 0
    report = json.loads(
        (root / "out" / "router.tierwise").exists()
        and Path(client.download_artifacts(run.info.run_id, "report.json")).read_text()
    )
    row = next(r for r in report["rows"] if r["kind"] == "policy")
    assert m["quality"] == pytest.approx(row["quality"])
    assert m["report.oracle.quality"] == pytest.approx(1.0, abs=0.2)
    files = {f.path for f in client.list_artifacts(run.info.run_id)}
    assert {"report.json", "config.resolved.yaml", "charts", "router"} <= files
    png = Path(client.download_artifacts(run.info.run_id, "charts/cost_quality.png"))
    assert png.read_bytes()[:4] == b"\x89PNG"
    resolved = Path(client.download_artifacts(run.info.run_id, "config.resolved.yaml"))
    assert "register: true" in resolved.read_text()  # the YAML key, so it loads back
    curve = json.loads(run.data.tags["tierwise.curve"])
    assert len(curve) >= 2 and all(len(pt) == 2 for pt in curve)
    assert str(root / "mlartifacts" / "tinytrack") in run.info.artifact_uri


def test_registered_pyfunc_routes_like_router_load(trained):
    root, _, uri, client = trained
    versions = client.search_model_versions("name = 'tierwise-tinytrack'")
    assert [str(v.version) for v in versions] == ["1"]
    (run,) = runs_by_kind(client, "tinytrack", "train")
    assert versions[0].run_id == run.info.run_id
    v1 = client.get_model_version("tierwise-tinytrack", "1")
    assert v1.tags["tierwise.policy"] == "router (knn/threshold)"
    assert float(v1.tags["test.quality"]) == pytest.approx(run.data.metrics["quality"])
    assert "test quality" in v1.description
    mlflow.set_registry_uri(uri)
    mlflow.set_tracking_uri(uri)
    model = mlflow.pyfunc.load_model("models:/tierwise-tinytrack/1")
    prompts = ["math code sql python physics", "love poem story", "history war", "  "]
    out = model.predict(pd.DataFrame({"prompt": prompts}))
    expected = Router.load(str(root / "out" / "router.tierwise")).route(prompts)
    assert list(out.columns) == ["model", "p_success", "expected_cost", "error"]
    assert list(out["model"]) == [d.model or "" for d in expected]
    assert [json.loads(s) if s else {} for s in out["p_success"][:3]] == [
        d.p_success for d in expected[:3]
    ]
    assert out["expected_cost"][0] == pytest.approx(expected[0].expected_cost[expected[0].model])
    assert "non-whitespace" in out["error"][3] and out["model"][3] == ""
    assert out["expected_cost"][3] is None  # JSON null when served, not NaN
    # the other input forms
    assert list(model.predict(prompts[:2])["model"]) == list(out["model"][:2])
    assert list(model.predict({"prompt": prompts[:2]})["model"]) == list(out["model"][:2])
    reqs = Path(mlflow.pyfunc.get_model_dependencies("models:/tierwise-tinytrack/1")).read_text()
    assert "numpy==" in reqs and "pydantic==" in reqs and "torch" not in reqs  # hashing embedder
    code = Path(mlflow.artifacts.download_artifacts("models:/tierwise-tinytrack/1")) / "code"
    assert (code / "tierwise" / "router" / "core.py").is_file()  # servable without tierwise
    assert sorted(p.name for p in (code / "tierwise").iterdir()) == ["__init__.py", "router"]
    assert not list(code.rglob("__pycache__"))
    sig = model.metadata.signature
    assert [c.type.name for c in sig.inputs.inputs] == ["string"]
    assert [c.name for c in sig.outputs.inputs] == ["model", "p_success", "expected_cost", "error"]


def test_compare_lists_tracked_policies_sorted_with_a_chart(trained, tmp_path, capsys):
    _, cfg, uri, _ = trained
    study = journal_study(tmp_path / "journal.log")
    study.optimize(objective, n_trials=4)
    from tierwise.experiments.tracking.sync import sync_study

    sync_study(study, cfg=load_experiment(cfg))
    out = tmp_path / "cmp.png"
    assert main(["compare", "--config", str(cfg), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    lines = [ln for ln in text.splitlines() if ln[:1].isdigit()]
    assert len(lines) == 5 and "train knn/threshold" in text and "trial 3" in text
    from tierwise.experiments.tracking.sync import trial_metrics

    by_cost = sorted(study.trials, key=lambda t: trial_metrics(t)["cost_at_target"])
    order = [ln.split()[2] for ln in lines if ln.split()[1] == "trial"]  # "#  trial N  ..."
    assert order == [str(t.number) for t in by_cost]
    (train_line,) = [ln for ln in lines if "train knn/threshold" in ln]
    assert " test " in train_line and all(" tuning " in ln for ln in lines if ln != train_line)
    assert out.read_bytes()[:4] == b"\x89PNG"
    assert (
        main(["compare", "tinytrack", "--tracking-uri", uri, "--kind", "train", "--out", str(out)])
        == 0
    )
    assert "1 tracked policies" in capsys.readouterr().out


def test_compare_names_existing_experiments_for_an_unknown_one(trained, capsys):
    _, _, uri, _ = trained
    assert main(["compare", "nosuch", "--tracking-uri", uri, "--out", "/dev/null"]) == 2
    err = capsys.readouterr().err
    assert "experiment 'nosuch' does not exist" in err and "tinytrack" in err
    assert main(["compare", "tinytrack", "--tracking-uri", uri, "--sort", "speed"]) == 2
    assert "`--sort` must be one of ['aiq', 'cost_at_target'" in capsys.readouterr().err


def test_unreachable_tracking_uri_fails_fast_naming_uri_and_fix(capsys):
    uri = f"http://127.0.0.1:{free_port()}"
    t0 = time.monotonic()
    assert main(["compare", "x", "--tracking-uri", uri]) == 2
    assert time.monotonic() - t0 < 5
    err = capsys.readouterr().err
    assert uri in err and "unreachable" in err and "mlflow server" in err
    with pytest.raises(TrackingUnavailable, match="unreachable"):
        check_reachable("postgresql://u@127.0.0.1:1/db", timeout=1)
    hung = socket.socket()  # accepts connections, never answers: a hung server
    hung.bind(("127.0.0.1", 0))
    hung.listen(4)
    t0 = time.monotonic()
    with pytest.raises(TrackingUnavailable, match="timed out"):
        check_reachable(f"http://127.0.0.1:{hung.getsockname()[1]}", timeout=1.0)
    assert time.monotonic() - t0 < 3
    hung.close()


def test_missing_sqlite_store_is_a_clear_error(tmp_path, capsys):
    uri = f"sqlite:///{tmp_path / 'none.db'}"
    assert main(["compare", "x", "--tracking-uri", uri]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "none.db").exists()


def test_sync_study_is_idempotent_and_rewrites_half_written_runs(trained, tmp_path):
    _, cfg_path, _uri, client = trained
    from tierwise.experiments.tracking.sync import SYNCED_TAG, sync_study

    cfg = load_experiment(cfg_path).model_copy(deep=True)
    cfg.tracking.experiment = "tinytrack-sync"
    study = journal_study(tmp_path / "j.log", name="idem")
    study.optimize(objective, n_trials=3)
    first = sync_study(study, cfg=cfg)
    assert first.logged == [0, 1, 2] and first.existing == 0
    study.optimize(objective, n_trials=2)
    second = sync_study(study, cfg=cfg)
    assert second.logged == [3, 4] and second.existing == 3
    assert second.parent_run_id == first.parent_run_id
    # an outage cut trial 4's run short: its completion tag never arrived
    run4 = next(
        r
        for r in runs_by_kind(client, "tinytrack-sync", "trial")
        if r.data.tags["tierwise.trial_number"] == "4"
    )
    client.delete_tag(run4.info.run_id, SYNCED_TAG)
    third = sync_study(study, cfg=cfg)
    assert third.logged == [4] and third.rewritten == [4] and third.existing == 4
    assert sync_study(study, cfg=cfg).logged == []
    trials = runs_by_kind(client, "tinytrack-sync", "trial")
    assert sorted(int(r.data.tags["tierwise.trial_number"]) for r in trials) == [0, 1, 2, 3, 4]
    t0 = next(r for r in trials if r.data.tags["tierwise.trial_number"] == "0")
    frozen = study.trials[0]
    assert t0.data.tags["mlflow.parentRunId"] == first.parent_run_id
    assert t0.data.tags["tierwise.trial_state"] == "COMPLETE"
    assert t0.data.params["router.predictor.params.n_neighbors"] == str(
        frozen.params["n_neighbors"]
    )
    assert t0.data.params["optuna.n_neighbors"] == str(frozen.params["n_neighbors"])
    assert t0.data.metrics["cost_per_1k"] == pytest.approx(
        frozen.user_attrs["metrics"]["cost_per_1k"]
    )
    assert t0.data.metrics["objective"] == pytest.approx(frozen.value)
    assert "cost_at_target" in t0.data.metrics
    (parent,) = runs_by_kind(client, "tinytrack-sync", "study")
    assert parent.data.metrics["n_trials_tracked"] == 5
    assert parent.data.metrics["best_value"] == pytest.approx(study.best_value)


def test_track_sync_command_backfills_from_the_journal(trained, tmp_path, capsys):
    _, cfg_path, _uri, _client = trained
    study = journal_study(tmp_path / "journal.log", name="cli-study")
    study.optimize(objective, n_trials=2)
    args = ["track", "sync", str(cfg_path), "--storage", str(tmp_path / "journal.log")]
    assert main(args) == 0
    assert "study cli-study: logged 2 trial run(s), 0 already tracked" in capsys.readouterr().out
    assert main(args) == 0
    assert "logged 0 trial run(s), 2 already tracked" in capsys.readouterr().out
    assert main([*args[:-1], str(tmp_path / "missing.log")]) == 2
    assert "`--storage` must be an existing journal file" in capsys.readouterr().err


def test_chosen_router_is_a_child_of_its_study_with_pareto_chart(trained, tmp_path):
    _, cfg_path, _uri, client = trained
    from tierwise.experiments.tracking.chosen import log_chosen_router
    from tierwise.experiments.training import prepare, train

    cfg = load_experiment(cfg_path)
    study = journal_study(tmp_path / "j.log", name="chosen-study")
    study.optimize(objective, n_trials=5)
    prep = prepare(cfg, progress=False)
    result = train(cfg, prep=prep, progress=False)
    run_id = log_chosen_router(
        result,
        prep,
        cfg,
        study=study,
        trial_number=study.best_trial.number,
        label="cheapest at 95%",
    )
    run = client.get_run(run_id)
    (parent,) = [
        r
        for r in runs_by_kind(client, "tinytrack", "study")
        if r.data.tags["tierwise.study"] == "chosen-study"
    ]
    assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert run.data.tags["tierwise.kind"] == "chosen" and run.data.tags["tierwise.split"] == "test"
    charts = {f.path for f in client.list_artifacts(run_id, "charts")}
    assert charts == {"charts/cost_quality.png", "charts/pareto.png"}
    versions = client.search_model_versions("name = 'tierwise-tinytrack'")
    assert any(v.run_id == run_id for v in versions)


def test_no_track_writes_no_store(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cfg = write_experiment(tmp_path, name="untracked", uri=uri, n=80)
    assert (
        main(["train", str(cfg), "--out", str(tmp_path / "o"), "--no-progress", "--no-track"]) == 0
    )
    assert not (tmp_path / "mlflow.db").exists() and (tmp_path / "o" / "router.tierwise").exists()


def test_tracking_config_defaults_and_overrides(monkeypatch, tmp_path):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    r = TrackingConfig().resolve("bench")
    assert (r.uri, r.experiment, r.registered_model, r.register) == (
        "sqlite:///mlflow.db",
        "bench",
        "tierwise-bench",
        True,
    )
    assert r.artifact_location == (Path.cwd() / "mlartifacts" / "bench").as_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    r = TrackingConfig.model_validate({"register": False, "experiment": "e"}).resolve("bench")
    assert (r.uri, r.experiment, r.register, r.artifact_location) == (
        "http://127.0.0.1:5000",
        "e",
        False,
        None,
    )
    assert (
        TrackingConfig(tracking_uri="sqlite:///x.db").resolve("b", tracking_uri="http://h").uri
        == "http://h"
    )
    with pytest.raises(ConfigError, match="must be an MLflow URI"):
        check_reachable("ftp://example/x")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ndata: {sources: [{path: a.csv}]}\ntracking: {enable: true}\n")
    with pytest.raises(ConfigError, match="enable"):
        load_experiment(bad)


def test_train_with_tracking_down_warns_fast_and_keeps_the_artifact(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the unlogged run is kept in ./runs/down/mlflow-pending
    uri = f"http://127.0.0.1:{free_port()}"
    cfg = write_experiment(tmp_path, name="down", uri=uri, n=80)
    t0 = time.monotonic()
    assert main(["train", str(cfg), "--out", str(tmp_path / "o"), "--no-progress"]) == 0
    assert time.monotonic() - t0 < 60
    err = capsys.readouterr().err
    assert "warning: run not tracked" in err and uri in err
    assert (tmp_path / "o" / "router.tierwise").exists()
    assert len(list((tmp_path / "runs" / "down" / "mlflow-pending").glob("*/record.json"))) == 1
    assert main(["track", "check", str(cfg)]) == 2
    assert "unreachable" in capsys.readouterr().err


def test_track_check_reports_the_store(trained, capsys):
    _, cfg, uri, _ = trained
    assert main(["track", "check", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert f"{uri} (reachable)" in out and "tierwise-tinytrack" in out
    assert "experiment:       tinytrack (" in out


def test_a_certified_training_run_carries_its_guarantee(tmp_path):
    """With a `target`, the certificate's numbers are run metrics and its words a run tag."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cfg = write_experiment(tmp_path, name="certtrack", uri=uri)
    cfg.write_text(
        cfg.read_text(encoding="utf-8") + "target: {kind: absolute, value: 0.6}\n",
        encoding="utf-8",
    )
    assert main(["train", str(cfg), "--out", str(tmp_path / "out"), "--no-progress"]) == 0
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    (run,) = runs_by_kind(client, "certtrack", "train")
    cert = {k: v for k, v in run.data.metrics.items() if k.startswith("certificate.")}
    assert cert, sorted(run.data.metrics)
    assert "with 90% confidence" in run.data.tags["tierwise.guarantee"] or (
        "No knob value could be certified" in run.data.tags["tierwise.guarantee"]
    )
