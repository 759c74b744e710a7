"""`tierwise label` stopped two ways — a real process killed with SIGKILL mid-run, and the
hard budget — then resumed: no finished call is sent twice (counted at the fake upstream)."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from label_behaviours import call_key, logged_calls, logging_upstream, write_inputs

from tierwise.eval.labelling import load_labelling
from tierwise.eval.labelling.job import prepare
from tierwise.experiments.cli import main

ROOT = Path(__file__).resolve().parents[1]
N = 80  # prompts (× 3 tiers): enough to stop mid-way, small enough to stay fast
CALLS = 3 * N


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory):
    log = tmp_path_factory.mktemp("label-resume") / "calls.log"
    with logging_upstream("tiers", log) as up:
        yield up, log


def _cached_keys(cache: Path) -> set[str]:
    if not cache.exists():
        return set()
    try:
        with sqlite3.connect(f"file:{cache}?mode=ro", uri=True, timeout=5) as db:
            return {r[0] for r in db.execute("SELECT key FROM calls")}
    except sqlite3.OperationalError:  # the table is not created yet
        return set()


def _upstream_key(messages: list[dict[str, str]], model: str) -> str:
    return call_key(model, messages)


def test_sigkill_mid_run_then_resume_repeats_no_finished_call(upstream, tmp_path: Path) -> None:
    up, log = upstream
    cfg_path = write_inputs(tmp_path, up.base_url, sample={"n": N, "seed": 1})
    prep = prepare(load_labelling(cfg_path))
    prep.cache.close()
    plan = prep.plan
    before = logged_calls(log)
    up.fault(latency_s=0.04)  # slow enough to be killed mid-way
    cache = tmp_path / "out" / "calls.sqlite"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    cmd = [
        sys.executable,
        "-m",
        "tierwise.experiments.cli",
        "label",
        str(cfg_path),
        "--no-progress",
        "--no-inspect",
    ]
    proc = subprocess.Popen(
        cmd,
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while len(_cached_keys(cache)) < CALLS // 4:
            assert proc.poll() is None, proc.stderr.read().decode()  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "the labelling run did not progress"
            time.sleep(0.02)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        if proc.stderr:
            proc.stderr.close()
    up.fault(latency_s=0.0)
    time.sleep(0.3)  # requests the server was sleeping on reach the behaviour and the log
    done_at_kill = _cached_keys(cache)
    assert CALLS // 4 <= len(done_at_kill) < CALLS, len(done_at_kill)

    assert main(["label", str(cfg_path), "--no-progress", "--no-inspect"]) == 0
    table = pd.read_parquet(tmp_path / "out" / "table.parquet")
    assert len(table) == N and table[["small", "mid", "big"]].notna().all().all()

    calls = logged_calls(log) - before
    key_of = {c.key: _upstream_key(c.messages, c.tier) for c in plan.calls}
    assert set(calls) == set(key_of.values())  # every call was answered once at least
    # a call whose answer reached the cache before the kill is never sent again
    assert all(calls[key_of[k]] == 1 for k in done_at_kill)
    # the only repeats are the calls in flight at the kill (their answers never arrived)
    repeated = {k for k, n in calls.items() if n > 1}
    assert all(n == 2 for n in calls.values() if n > 1)
    assert len(repeated) <= 3 * 8  # 3 tiers × max_concurrency 8
    assert sum(calls.values()) == CALLS + len(repeated)
    print(f"killed after {len(done_at_kill)} of {CALLS} calls; {len(repeated)} in flight re-sent")


def test_budget_stops_cleanly_with_a_usable_partial_table(upstream, tmp_path: Path, capsys) -> None:
    up, log = upstream
    sample = {"n": N, "seed": 2}
    cfg_path = write_inputs(tmp_path, up.base_url, budget_usd=0.02, sample=sample)
    before = logged_calls(log)
    assert main(["label", str(cfg_path), "--no-progress"]) == 3
    captured = capsys.readouterr()
    assert "tierwise: stopped early: budget of $0.0200 reached" in captured.err
    assert "spent $" in captured.err and "rerunning" in captured.err
    report = json.loads((tmp_path / "out" / "label_report.json").read_text())
    spent = report["cost"]["total_usd"]
    assert 0.015 < spent <= 0.02  # never past the budget; not stopped far below it
    sent = sum((logged_calls(log) - before).values())
    assert sent == sum(report["cost"]["sent_calls"].values())

    # the partial table holds whole rows only, and imports as is
    table = pd.read_parquet(tmp_path / "out" / "table.parquet")
    assert 0 < len(table) < N
    assert table.filter(like="|total_cost").notna().all().all()
    assert f"rows: {len(table)} read, {len(table)} kept" in captured.out  # the inspect view
    from tierwise.experiments.config import load_dataset

    ds = load_dataset(tmp_path / "out" / "arith.yaml")
    assert ds.n_prompts == len(table) and ds.models == ("small", "mid", "big")
    assert ds.cost.sum() == pytest.approx(table.filter(like="|total_cost").to_numpy().sum())

    # the same budget again: everything it allows is cached, nothing is sent
    mark = logged_calls(log)
    assert main(["label", str(cfg_path), "--no-progress", "--no-inspect"]) == 3
    assert logged_calls(log) == mark
    assert "budget of $0.0200 reached" in capsys.readouterr().err

    # a larger budget continues where the last run stopped, and finishes
    write_inputs(tmp_path, up.base_url, budget_usd=1.0, sample=sample)
    assert main(["label", str(cfg_path), "--no-progress", "--no-inspect"]) == 0
    added = logged_calls(log) - mark
    assert sum(added.values()) == CALLS - sent
    assert max(added.values()) == 1 and not set(added) & set(logged_calls(log) - added - before)
    assert len(pd.read_parquet(tmp_path / "out" / "table.parquet")) == N
