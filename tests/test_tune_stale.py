"""Stale Optuna trials (issue 10): a worker SIGKILLed mid-trial on a database storage leaves no
trial RUNNING once a resumed run finishes, however quickly; a surviving worker prints the
number of trials it ran itself, not the study's growth. Real processes, sqlite and PostgreSQL."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from test_tune import write_experiment
from test_tune_resume import PG_URL, _env, _states, _tune_cmd

from tierwise.experiments.cli import main
from tierwise.experiments.tuning.storage import open_storage
from tierwise.experiments.tuning.study import UNNAMED_GRACE_S


def _finished(study: object) -> int:
    s = _states(study)
    return len(s.get("COMPLETE", [])) + len(s.get("PRUNED", []))


def _storage(kind: str, tmp_path: Path) -> str:
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'optuna.db'}"
    psycopg2 = pytest.importorskip("psycopg2")
    try:
        psycopg2.connect(PG_URL, connect_timeout=3).close()
    except psycopg2.OperationalError as err:
        pytest.skip(f"PostgreSQL not reachable at {PG_URL}: {err}")
    return PG_URL


@pytest.mark.integration
@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_killed_worker_leaves_no_running_trial_and_counts_are_true(kind, tmp_path, capsys) -> None:
    import optuna

    url = _storage(kind, tmp_path)
    name = f"stale-{uuid.uuid4().hex[:10]}"
    path = write_experiment(tmp_path)
    args = ["--storage", url, "--study", name]
    assert main(_tune_cmd(path, *args, "--trials", "1")[3:]) == 0  # creates study and tables
    capsys.readouterr()

    def load() -> optuna.Study:
        return optuna.load_study(study_name=name, storage=open_storage(url, heartbeat=False))

    def finished_by(study: optuna.Study, pid: int) -> list[int]:
        return [
            t.number
            for t in study.get_trials(deepcopy=False)
            if t.state.name in ("COMPLETE", "PRUNED")
            and str(t.user_attrs.get("worker", "")).endswith(f":{pid}")
        ]

    def running_of(study: optuna.Study, pid: int) -> list[int]:
        return [
            t.number
            for t in study.get_trials(deepcopy=False)
            if t.state.name == "RUNNING" and str(t.user_attrs.get("worker")).endswith(f":{pid}")
        ]

    def start(*extra: str) -> subprocess.Popen[str]:
        cmd = _tune_cmd(path, *args, "--trials", "5000", *extra)
        return subprocess.Popen(cmd, cwd=tmp_path, env=_env(), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)  # fmt: skip

    a = start()
    b = None
    killed: list[int] = []
    try:
        deadline = time.monotonic() + 240
        while len(finished_by(load(), a.pid)) < 2:
            assert a.poll() is None, a.communicate()[1][-2000:]
            assert time.monotonic() < deadline, "worker A never finished 2 trials"
            time.sleep(0.3)
        b = start("--timeout", "8")  # B stops starting trials 8 s after its setup
        while not finished_by(load(), b.pid):
            assert b.poll() is None, b.communicate()[1][-2000:]
            assert time.monotonic() < deadline, "worker B never finished a trial"
            time.sleep(0.2)
        # PostgreSQL: freeze A, then read its running trial (no race with its writes); sqlite
        # cannot be read while A is frozen holding its lock, so there the trial may complete
        # in the instant before the kill.
        freeze = kind == "postgresql"
        while not killed:
            if freeze:
                os.kill(a.pid, signal.SIGSTOP)
            killed = running_of(load(), a.pid)
            if not killed:
                if freeze:
                    os.kill(a.pid, signal.SIGCONT)
                time.sleep(0.05)
    finally:
        os.kill(a.pid, signal.SIGKILL)  # mid-trial, while B runs
        killed_at = time.monotonic()
        a.wait()
        a.communicate()
    try:
        out, err = b.communicate(timeout=300)
        assert b.returncode == 0, err[-2000:]
        printed = int(re.search(r"(\d+) new trials", out).group(1))  # type: ignore[union-attr]
        study = load()
        assert printed == len(finished_by(study, b.pid)), out  # not the study's growth
        # If B ended before A was killed, A's trial is failed by the next run, even one with
        # nothing left to do, well within A's heartbeat grace period.
        done = sum(len(v) for k, v in _states(study).items() if k in ("COMPLETE", "PRUNED"))
        # A may have died between creating a trial and naming itself on it: such a trial is
        # recognised once it has been unnamed for UNNAMED_GRACE_S.
        time.sleep(max(0.0, UNNAMED_GRACE_S + 0.5 - (time.monotonic() - killed_at)))
        assert main(_tune_cmd(path, *args, "--trials", str(done))[3:]) == 0
        study = load()
        after = _states(study)
        assert not after.get("RUNNING"), after
        # A's trial running at the kill failed (unless it completed in the last instant)
        assert set(killed) <= set(after.get("FAIL", [])) | set(after.get("COMPLETE", []))
        if kind == "postgresql":
            assert set(killed) <= set(after.get("FAIL", []))
    finally:
        if kind == "postgresql":
            optuna.delete_study(study_name=name, storage=open_storage(url, heartbeat=False))
