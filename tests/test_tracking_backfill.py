"""Faults lose nothing (issue 10): a `tierwise train` while the MLflow server is down is spooled
and `tierwise track sync` backfills it (run + registered version) once, a chosen router is one
run and one version however often it is logged, and runs a killed process left RUNNING are
closed. Against a real `mlflow server` process, stopped and restarted."""

from __future__ import annotations

import pytest
from tracking_helpers import MlflowServer, runs_by_kind, write_experiment

from tierwise.experiments.cli import main
from tierwise.experiments.config import load_experiment

mlflow = pytest.importorskip("mlflow")
pytestmark = pytest.mark.integration


def test_train_during_an_outage_is_backfilled_once_and_orphans_are_closed(
    tmp_path, monkeypatch, capsys
):
    from tierwise.experiments.tracking.chosen import log_chosen_router
    from tierwise.experiments.training import prepare, train

    monkeypatch.chdir(tmp_path)
    server = MlflowServer(f"sqlite:///{tmp_path / 'srv' / 'backend.db'}", tmp_path / "srv")
    cfg_path = write_experiment(tmp_path, name="outage_train", uri=server.url, n=240)
    # 1. The server is down: training succeeds, the run is spooled, the warning says where.
    assert main(["train", str(cfg_path), "--out", str(tmp_path / "out"), "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "run not tracked" in err and "mlflow-pending" in err and "track sync" in err
    spooled = list((tmp_path / "runs" / "outage_train" / "mlflow-pending").glob("*/record.json"))
    assert len(spooled) == 1
    server.start()
    try:
        client = mlflow.MlflowClient(tracking_uri=server.url, registry_uri=server.url)
        # A run whose process was killed: RUNNING forever unless sync closes it.
        exp_id = client.create_experiment("outage_train")
        orphan = client.create_run(exp_id, tags={"tierwise.kind": "chosen"}).info.run_id
        # 2. Sync logs the train run with its model version; the spool is gone.
        argv = ["track", "sync", str(cfg_path), "--close-running-after", "0"]
        assert main(argv) == 0
        out = capsys.readouterr().out
        assert "1 logged, 0 already tracked" in out and "marked KILLED: 1" in out
        assert client.get_run(orphan).info.status == "KILLED"
        (run,) = runs_by_kind(client, "outage_train", "train")
        assert run.info.status == "FINISHED" and run.data.metrics["quality"] > 0
        (version,) = client.search_model_versions("name = 'tierwise-outage_train'")
        assert version.run_id == run.info.run_id
        assert not list((tmp_path / "runs" / "outage_train" / "mlflow-pending").iterdir())
        # 3. Twice is once.
        assert main(argv) == 0
        assert "0 logged" in capsys.readouterr().out
        assert len(runs_by_kind(client, "outage_train", "train")) == 1
        # 4. The same chosen router logged twice (a re-run tune with 0 new trials): one run and
        #    one new version.
        cfg = load_experiment(cfg_path)
        prep = prepare(cfg, progress=False)
        result = train(cfg, out_dir=tmp_path / "chosen", prep=prep, progress=False)
        ids = {
            log_chosen_router(result, prep, cfg, trial_number=3, label="cheapest at 95%")
            for _ in range(2)
        }
        assert len(ids) == 1 and len(runs_by_kind(client, "outage_train", "chosen")) == 2
        assert len(client.search_model_versions("name = 'tierwise-outage_train'")) == 2
    finally:
        server.stop()
