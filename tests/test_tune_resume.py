"""`tierwise tune` across processes: SIGKILL mid-study then resume; two workers on PostgreSQL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from test_tune import write_experiment

from tierwise.experiments.cli import main
from tierwise.experiments.tuning.storage import open_storage

ROOT = Path(__file__).resolve().parents[1]
PG_URL = "postgresql://postgres@127.0.0.1:5432/test"


def _tune_cmd(path: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "tierwise.experiments.cli", "tune", str(path),
        "--no-progress", "--no-report", "--no-track", *extra,
    ]  # fmt: skip


def _env() -> dict[str, str]:
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _states(study: object) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for t in study.get_trials(deepcopy=False):  # type: ignore[attr-defined]
        out.setdefault(t.state.name, []).append(t.number)
    return out


def test_killed_run_resumes_without_losing_or_repeating_trials(tmp_path) -> None:
    import optuna

    path = write_experiment(tmp_path)
    journal = tmp_path / "study.journal"
    proc = subprocess.Popen(
        _tune_cmd(path, "--trials", "5000"),
        cwd=tmp_path,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 180
    finished = 0
    try:
        while finished < 4:
            assert proc.poll() is None, proc.communicate()[1].decode()[-2000:]
            assert time.monotonic() < deadline, "the first run never finished 4 trials"
            time.sleep(0.2)
            if not journal.exists():
                continue
            try:
                study = optuna.load_study(study_name="synth", storage=open_storage(str(journal)))
            except KeyError:
                continue
            s = _states(study)
            finished = len(s.get("COMPLETE", [])) + len(s.get("PRUNED", []))
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    study = optuna.load_study(study_name="synth", storage=open_storage(str(journal)))
    before = _states(study)
    done_before = sorted(before.get("COMPLETE", []) + before.get("PRUNED", []))
    running = before.get("RUNNING", [])
    assert len(done_before) >= 4

    target = len(done_before) + 4
    assert main(["tune", str(path), "--trials", str(target), "--no-progress", "--no-report"]) == 0
    study = optuna.load_study(study_name="synth", storage=open_storage(str(journal)))
    after = _states(study)
    done_after = sorted(after.get("COMPLETE", []) + after.get("PRUNED", []))
    numbers = [t.number for t in study.get_trials(deepcopy=False)]
    assert len(done_after) == target  # finished trials counted toward --trials
    assert set(done_before) <= set(done_after)  # nothing lost
    assert len(numbers) == len(set(numbers)) == max(numbers) + 1  # no duplicated trial numbers
    assert not after.get("RUNNING")
    for n in running:  # the trial the kill interrupted failed and its parameters ran again
        assert n in after["FAIL"]
        retried = [t for t in study.trials if t.user_attrs.get("retry_of") == n]
        if study.trials[n].params:  # (killed before its first suggestion: nothing to re-run)
            assert retried and retried[0].params == study.trials[n].params


@pytest.mark.integration
def test_two_workers_share_one_postgres_study(tmp_path) -> None:
    import optuna

    psycopg2 = pytest.importorskip("psycopg2")
    try:
        psycopg2.connect(PG_URL, connect_timeout=3).close()
    except psycopg2.OperationalError as err:
        pytest.skip(f"PostgreSQL not reachable at {PG_URL}: {err}")
    name = f"tierwise-test-{uuid.uuid4().hex[:10]}"
    path = write_experiment(tmp_path)
    n_trials = 24
    # One process creates the study (and Optuna's tables) first, as `tierwise tune` run once
    # before adding workers would; then two workers share it.
    assert main(_tune_cmd(path, "--storage", PG_URL, "--study", name, "--trials", "1")[3:]) == 0
    try:
        procs = [
            subprocess.Popen(
                _tune_cmd(path, "--storage", PG_URL, "--study", name, "--trials", str(n_trials)),
                cwd=tmp_path,
                env=_env(),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            for _ in range(2)
        ]
        for p in procs:
            _, err = p.communicate(timeout=300)
            assert p.returncode == 0, err.decode()[-2000:]
        storage = open_storage(PG_URL, heartbeat=False)
        study = optuna.load_study(study_name=name, storage=storage)
        trials = study.get_trials(deepcopy=False)
        finished = [t for t in trials if t.state.name in ("COMPLETE", "PRUNED")]
        assert n_trials <= len(finished) <= n_trials + 1  # the other worker's last trial
        numbers = [t.number for t in trials]
        assert len(numbers) == len(set(numbers))
        workers = {t.user_attrs.get("worker") for t in finished}
        assert len(workers) == 3, workers  # the creating run and both workers contributed
        costs = {
            t.user_attrs["metrics"]["cost_per_1k"] for t in finished if t.state.name == "COMPLETE"
        }
        assert len(costs) > 1
    finally:
        optuna.delete_study(study_name=name, storage=open_storage(PG_URL, heartbeat=False))
    with pytest.raises(KeyError):
        optuna.load_study(study_name=name, storage=open_storage(PG_URL, heartbeat=False))
