"""The shared set-up of the README ("Shared tracking and tuning servers"), for real: an
`mlflow server` whose backend store is PostgreSQL and whose artifacts go to an artifact root,
and two `tierwise tune` worker processes sharing one Optuna study on PostgreSQL while both log
their trials to that server. Each run gets its own database, dropped at the end.

(tests/test_mlflow_server.py covers a server on SQLite and a direct PostgreSQL store;
tests/test_tune_resume.py two workers on the `test` database without tracking.)"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from tracking_helpers import MlflowServer, runs_by_kind, write_experiment

mlflow = pytest.importorskip("mlflow")
psycopg2 = pytest.importorskip("psycopg2")
pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[1]
PG = "postgres@127.0.0.1:5432"


@pytest.fixture(scope="module")
def databases():
    """Two fresh databases (MLflow's, Optuna's) on the local PostgreSQL; dropped afterwards."""
    try:
        conn = psycopg2.connect(f"postgresql://{PG}/test", connect_timeout=3)
    except psycopg2.OperationalError as err:
        pytest.skip(f"no PostgreSQL on 127.0.0.1:5432 ({str(err).strip()})")
    conn.autocommit = True
    stem = f"tierwise_shared_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    names = (f"{stem}_mlflow", f"{stem}_optuna")
    with conn.cursor() as cur:
        for name in names:
            cur.execute(f'CREATE DATABASE "{name}"')
    yield tuple(f"postgresql://{PG}/{n}" for n in names)
    with conn.cursor() as cur:
        for name in names:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    conn.close()


@pytest.fixture(scope="module")
def server(databases, tmp_path_factory):
    root = tmp_path_factory.mktemp("shared-mlflow")
    backend = databases[0].replace("postgresql://", "postgresql+psycopg2://")
    srv = MlflowServer(backend, root).start()
    yield srv
    srv.stop()


def tune_worker(cfg: Path, storage: str, study: str, trials: int, cwd: Path) -> subprocess.Popen:
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.Popen(
        [sys.executable, "-m", "tierwise.experiments.cli", "tune", str(cfg), "--storage", storage,
         "--study", study, "--trials", str(trials), "--no-progress", "--no-report", "--track"],
        cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip


def test_two_tune_workers_share_a_postgres_study_and_track_to_a_postgres_mlflow_server(
    databases, server, tmp_path
) -> None:
    import optuna

    from tierwise.experiments.tuning.storage import open_storage

    optuna_url = databases[1]
    cfg = write_experiment(tmp_path, name="shared", uri=server.url, n=120)
    study = "shared-study"
    first = tune_worker(cfg, optuna_url, study, 1, tmp_path)  # creates the study and tables
    assert first.wait(timeout=300) == 0, first.stderr.read().decode()[-2000:]  # type: ignore[union-attr]
    workers = [tune_worker(cfg, optuna_url, study, 8, tmp_path) for _ in range(2)]
    for w in workers:
        _, err = w.communicate(timeout=400)
        assert w.returncode == 0, err.decode()[-2000:]

    loaded = optuna.load_study(study_name=study, storage=open_storage(optuna_url, heartbeat=False))
    done = [t for t in loaded.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    assert 8 <= len(done) <= 9
    assert len({t.user_attrs.get("worker") for t in done}) == 3  # first run + both workers

    client = mlflow.MlflowClient(tracking_uri=server.url)
    tracked = runs_by_kind(client, "shared", "trial")
    numbers = sorted(int(r.data.tags["tierwise.trial_number"]) for r in tracked)
    assert numbers == sorted(t.number for t in done)  # every trial once, from either worker
    exp = client.get_experiment_by_name("shared")
    assert exp.artifact_location.startswith("mlflow-artifacts:")  # the server's artifact root
    # The server really stores in PostgreSQL: its tables hold the runs.
    with psycopg2.connect(databases[0]) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM runs WHERE experiment_id = %s", (exp.experiment_id,))
        assert cur.fetchone()[0] >= len(done)
