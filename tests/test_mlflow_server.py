"""Tracking through a real `mlflow server` on loopback, an outage in the middle of a study, and a
PostgreSQL backend store. Slow (a server start is tens of seconds on a busy machine)."""

from __future__ import annotations

import os
import time
import uuid

import pandas as pd
import pytest
from tracking_helpers import MlflowServer, journal_study, objective, runs_by_kind, write_experiment

from tierwise.experiments.config import load_experiment
from tierwise.experiments.tracking.store import TrackingUnavailable
from tierwise.experiments.tracking.sync import StudyTracker, sync_study

mlflow = pytest.importorskip("mlflow")
pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("mlflow-server")
    srv = MlflowServer(f"sqlite:///{root / 'backend.db'}", root).start()
    yield srv
    srv.stop()


def test_train_run_and_registered_model_through_the_server(server, tmp_path):
    from tierwise.experiments.tracking.runs import log_training
    from tierwise.experiments.training import prepare, train

    cfg = load_experiment(write_experiment(tmp_path, name="served", uri=server.url, n=160))
    prep = prepare(cfg, progress=False)
    result = train(cfg, out_dir=tmp_path / "out", prep=prep, progress=False)
    run_id = log_training(result, prep, cfg)
    client = mlflow.MlflowClient(tracking_uri=server.url, registry_uri=server.url)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.metrics["quality"] > 0
    assert run.info.artifact_uri.startswith("mlflow-artifacts:")  # proxied by the server
    assert {"charts", "router", "report.json"} <= {f.path for f in client.list_artifacts(run_id)}
    (version,) = client.search_model_versions("name = 'tierwise-served'")
    assert version.run_id == run_id
    mlflow.set_tracking_uri(server.url)
    mlflow.set_registry_uri(server.url)
    model = mlflow.pyfunc.load_model("models:/tierwise-served/1")
    prompts = ["math code sql python", "love poem story"]
    expected = [d.model for d in result.router.route(prompts)]
    assert list(model.predict(pd.DataFrame({"prompt": prompts}))["model"]) == expected


def test_outage_mid_study_loses_no_trial(server, tmp_path):
    cfg = load_experiment(write_experiment(tmp_path, name="outage", uri=server.url, n=60))
    tracker = StudyTracker(cfg)
    failures: list[float] = []

    def on_trial_end(study, trial):  # what the tuner's callback does with the hook
        t0 = time.monotonic()
        try:
            tracker(study, trial)
        except TrackingUnavailable as err:
            assert server.url in str(err) and "tierwise track sync" in str(err)
            failures.append(time.monotonic() - t0)

    study = journal_study(tmp_path / "journal.log", name="outage-study")
    study.optimize(objective, n_trials=2, callbacks=[on_trial_end])
    assert failures == []
    server.stop()
    study.optimize(objective, n_trials=3, callbacks=[on_trial_end])
    assert len(study.trials) == 5 and len(failures) == 3
    assert max(failures) < 5.0, failures  # refused fast, never hung on retries
    server.start()
    result = sync_study(study, cfg=cfg)
    assert result.logged == [2, 3, 4] and result.existing == 2
    client = mlflow.MlflowClient(tracking_uri=server.url)
    numbers = sorted(
        int(r.data.tags["tierwise.trial_number"]) for r in runs_by_kind(client, "outage", "trial")
    )
    assert numbers == [0, 1, 2, 3, 4]
    assert sync_study(study, cfg=cfg).logged == []


@pytest.fixture
def postgres_db():
    psycopg2 = pytest.importorskip("psycopg2")
    try:
        conn = psycopg2.connect(
            host="127.0.0.1", port=5432, user="postgres", dbname="postgres", connect_timeout=3
        )
    except psycopg2.OperationalError as err:
        pytest.skip(f"no PostgreSQL on 127.0.0.1:5432 ({str(err).strip()})")
    conn.autocommit = True
    name = f"tierwise_mlflow_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    with conn.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    yield f"postgresql+psycopg2://postgres@127.0.0.1:5432/{name}"
    with conn.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    conn.close()


def test_postgresql_backend_store(postgres_db, tmp_path, monkeypatch, capsys):
    from tierwise.experiments.cli import main

    monkeypatch.chdir(tmp_path)  # artifacts of a database store go to ./mlartifacts
    cfg_path = write_experiment(tmp_path, name="pgexp", uri=postgres_db, n=60)
    cfg = load_experiment(cfg_path)
    study = journal_study(tmp_path / "journal.log", name="pg-study")
    study.optimize(objective, n_trials=3)
    assert sync_study(study, cfg=cfg).logged == [0, 1, 2]
    assert sync_study(study, cfg=cfg).logged == []
    assert main(["compare", "--config", str(cfg_path), "--out", str(tmp_path / "c.png")]) == 0
    out = capsys.readouterr().out
    assert "3 tracked policies" in out and "postgresql+psycopg2://" in out
    client = mlflow.MlflowClient(tracking_uri=postgres_db)
    exp = client.get_experiment_by_name("pgexp")
    assert exp.artifact_location == (tmp_path / "mlartifacts" / "pgexp").resolve().as_uri()
