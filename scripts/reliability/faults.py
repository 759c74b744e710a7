"""Fault probes: processes killed, stores down, files cut short, while tierwise works.

Run through the runner: ``python scripts/bench_reliability.py --only faults --no-load``.

Each scenario runs the real `tierwise` command line in child processes on a tiny synthetic log
(hashing embedder), injects one fault, then checks that nothing was lost:

- handled: the command said what happened in one line (or carried on) and the data is whole
  after the documented recovery (`tierwise track sync`, re-running `tierwise tune`);
- crashed: a traceback, or the recovery itself failed;
- silently wrong: data lost or duplicated without a word (a run missing from MLflow, a trial
  left RUNNING, a model version registered twice, a half-written output file in place).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from reliability import ROOT, probe, use_test_helpers

CATEGORY = "faults"
Outcome = tuple[str, str]  # (outcome, detail)


def _env() -> dict[str, str]:
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", MPLBACKEND="Agg")
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("MLFLOW_TRACKING_URI", None)
    return env


def tierwise(cwd: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "tierwise.experiments.cli", *args]
    return subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True, text=True,
                          timeout=timeout)  # fmt: skip


def _dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _experiment(folder: Path, name: str, uri: str, *, trials: int = 8) -> Path:
    use_test_helpers()
    from tracking_helpers import write_experiment

    path = write_experiment(folder, name=name, uri=uri, n=240)
    path.write_text(path.read_text() + f"tune:\n  n_trials: {trials}\n", encoding="utf-8")
    return path


def _client(uri: str) -> Any:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _runs(uri: str, experiment: str, kind: str) -> list[Any]:
    client = _client(uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return []
    return client.search_runs([exp.experiment_id], f"tags.`tierwise.kind` = '{kind}'")


def _versions(uri: str, name: str) -> int:
    return len(_client(uri).search_model_versions(f"name = '{name}'"))


def _traceback(p: subprocess.CompletedProcess[str]) -> bool:
    return "Traceback" in p.stderr or "Traceback" in p.stdout


# ---------------------------------------------------------------- scenarios


def mlflow_down_during_train(folder: Path) -> Outcome:
    down = f"http://127.0.0.1:{_dead_port()}"
    cfg = _experiment(folder, "down_train", down)
    p = tierwise(folder, "train", str(cfg), "--no-progress")
    if p.returncode != 0 or _traceback(p):
        return "crashed", f"train exited {p.returncode}: {p.stderr.strip()[-150:]}"
    if "run not tracked" not in p.stderr or "track sync" not in p.stderr:
        return "silently_wrong", "no warning that the run was not tracked"
    store = f"sqlite:///{folder / 'mlflow.db'}"  # the store is "back": another URI, same spool
    s = tierwise(folder, "track", "sync", str(cfg), "--tracking-uri", store)
    if s.returncode != 0:
        return "crashed", f"track sync exited {s.returncode}: {s.stderr.strip()[-150:]}"
    runs, versions = _runs(store, "down_train", "train"), _versions(store, "tierwise-down_train")
    again = tierwise(folder, "track", "sync", str(cfg), "--tracking-uri", store)
    twice = len(_runs(store, "down_train", "train")), _versions(store, "tierwise-down_train")
    if len(runs) != 1 or versions != 1 or twice != (1, 1) or again.returncode != 0:
        return "silently_wrong", f"after sync: {len(runs)} run(s), {versions} version(s); " \
                                 f"after a second sync {twice}"  # fmt: skip
    return "handled", "warned; track sync logged 1 train run + 1 version, twice is once"


def mlflow_down_during_tune(folder: Path) -> Outcome:
    down = f"http://127.0.0.1:{_dead_port()}"
    cfg = _experiment(folder, "down_tune", down, trials=6)
    p = tierwise(folder, "tune", str(cfg), "--no-progress")
    if _traceback(p):
        return "crashed", p.stderr.strip()[-150:]
    store = f"sqlite:///{folder / 'mlflow.db'}"
    s = tierwise(folder, "track", "sync", str(cfg), "--tracking-uri", store)
    if s.returncode != 0:
        return "crashed", f"track sync exited {s.returncode}: {s.stderr.strip()[-150:]}"
    trials, chosen = _runs(store, "down_tune", "trial"), _runs(store, "down_tune", "chosen")
    versions = _versions(store, "tierwise-down_tune")
    if len(trials) != 6 or len(chosen) < 1 or versions != len(chosen):
        return "silently_wrong", f"{len(trials)}/6 trials, {len(chosen)} chosen, " \
                                 f"{versions} versions after sync"  # fmt: skip
    return "handled", f"6 trials, {len(chosen)} chosen run(s) and version(s) backfilled"


def tune_rerun_registers_nothing_twice(folder: Path) -> Outcome:
    store = f"sqlite:///{folder / 'mlflow.db'}"
    cfg = _experiment(folder, "rerun", store, trials=5)
    for _ in range(2):
        p = tierwise(folder, "tune", str(cfg), "--no-progress")
        if p.returncode not in (0, 1) or _traceback(p):
            return "crashed", p.stderr.strip()[-150:]
    chosen, versions = _runs(store, "rerun", "chosen"), _versions(store, "tierwise-rerun")
    if len(chosen) != versions or len(chosen) > 2:
        return "silently_wrong", f"{len(chosen)} chosen runs, {versions} versions after 2 tunes"
    return "handled", f"2 tunes: {len(chosen)} chosen run(s), {versions} version(s)"


def parent_run_killed_mid_tune(folder: Path) -> Outcome:
    store = f"sqlite:///{folder / 'mlflow.db'}"
    cfg = _experiment(folder, "killed_parent", store)
    client = _client(store)
    exp = client.create_experiment("killed_parent")
    run = client.create_run(exp, tags={"tierwise.kind": "study", "tierwise.study": "gone"})
    s = tierwise(folder, "track", "sync", str(cfg), "--close-running-after", "0")
    status = client.get_run(run.info.run_id).info.status
    if s.returncode != 0:
        return "crashed", s.stderr.strip()[-150:]
    if status == "RUNNING":
        return "silently_wrong", "a study parent left RUNNING stays RUNNING after track sync"
    return "handled", f"orphaned RUNNING parent marked {status} by track sync"


def _journal_states(path: Path, name: str) -> dict[str, list[int]]:
    import optuna

    from tierwise.experiments.tuning.storage import open_storage

    study = optuna.load_study(study_name=name, storage=open_storage(str(path), heartbeat=False))
    out: dict[str, list[int]] = {}
    for t in study.get_trials(deepcopy=False):
        out.setdefault(t.state.name, []).append(t.number)
    return out


def _kill_when(proc: subprocess.Popen[str], ready: Callable[[], bool], limit: float) -> bool:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if ready():
                break
        except Exception:  # the storage is not there yet
            pass
        time.sleep(0.2)
    alive = proc.poll() is None
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    return alive


def _tune_killed(folder: Path, storage: str, name: str) -> Outcome:
    cfg = _experiment(folder, name, f"sqlite:///{folder / 'mlflow.db'}")
    cmd = [sys.executable, "-m", "tierwise.experiments.cli", "tune", str(cfg), "--storage",
           storage, "--trials", "5000", "--no-progress", "--no-report", "--no-track"]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=folder, env=_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, text=True)  # fmt: skip

    def states() -> dict[str, list[int]]:
        if "://" in storage:
            import optuna

            from tierwise.experiments.tuning.storage import open_storage

            opened = open_storage(storage, heartbeat=False)
            study = optuna.load_study(study_name=name, storage=opened)
            out: dict[str, list[int]] = {}
            for t in study.get_trials(deepcopy=False):
                out.setdefault(t.state.name, []).append(t.number)
            return out
        return _journal_states(Path(storage), name)

    def finished() -> int:
        s = states()
        return len(s.get("COMPLETE", [])) + len(s.get("PRUNED", []))

    if not _kill_when(proc, lambda: finished() >= 3 and bool(states().get("RUNNING")), 240):
        return "crashed", "the first tune never got going"
    before = states()
    target = finished()  # the resumed run has nothing to do: it must still clear the stale trial
    p = tierwise(folder, "tune", str(cfg), "--storage", storage, "--trials", str(target),
                 "--no-progress", "--no-report", "--no-track")  # fmt: skip
    if p.returncode != 0:
        return "crashed", p.stderr.strip()[-150:]
    after = states()
    if after.get("RUNNING"):
        return "silently_wrong", f"trials {after['RUNNING']} stay RUNNING after the resume"
    lost = set(before.get("COMPLETE", [])) - set(after.get("COMPLETE", []))
    if lost:
        return "silently_wrong", f"finished trials lost: {sorted(lost)}"
    return "handled", f"killed trial(s) {before.get('RUNNING')} failed on resume; none lost"


def tune_killed_journal(folder: Path) -> Outcome:
    return _tune_killed(folder, str(folder / "study.journal"), "killed_journal")


def tune_killed_sqlite(folder: Path) -> Outcome:
    return _tune_killed(folder, f"sqlite:///{folder / 'optuna.db'}", "killed_sqlite")


def journal_cut_mid_line(folder: Path) -> Outcome:
    journal = folder / "study.journal"
    cfg = _experiment(folder, "cut_journal", f"sqlite:///{folder / 'mlflow.db'}", trials=3)
    args = ["--storage", str(journal), "--no-progress", "--no-report", "--no-track"]
    p = tierwise(folder, "tune", str(cfg), *args)
    if p.returncode != 0:
        return "crashed", p.stderr.strip()[-150:]
    with journal.open("ab") as f:
        f.write(b'{"op_code": 5, "worker_id": "x", "trial_id": 1, "para')  # a write cut short
    p = tierwise(folder, "tune", str(cfg), *args, "--trials", "5")
    if p.returncode != 0 or _traceback(p):
        return "crashed", p.stderr.strip()[-150:]
    done = _journal_states(journal, "cut_journal")
    n = len(done.get("COMPLETE", [])) + len(done.get("PRUNED", []))
    if n != 5:
        return "silently_wrong", f"{n} finished trials after resuming to 5"
    return "handled", "partial last journal line dropped; the study resumed to 5 trials"


def batch_bad_rows_keep_the_rest(folder: Path) -> Outcome:
    use_test_helpers()
    from runtime_helpers import hashing_artifact

    art = hashing_artifact(folder / "r.tierwise")
    src = folder / "in.jsonl"
    src.write_text('{"prompt": "math code"}\n{"prompt": ""}\nnot json\n{"prompt": "love poem"}\n',
                   encoding="utf-8")  # fmt: skip
    out = folder / "out.jsonl"
    p = tierwise(folder, "batch", str(art), str(src), str(out), "--no-progress")
    if _traceback(p):
        return "crashed", p.stderr.strip()[-150:]
    rows = [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []
    routed = [r for r in rows if r["model"] is not None]
    if len(rows) != 4 or len(routed) != 2 or p.returncode != 1:
        return "silently_wrong", f"{len(rows)} rows, {len(routed)} routed, exit {p.returncode}"
    return "handled", "2 bad rows carry an error, the 2 good ones are routed, exit 1"


def batch_killed_mid_file(folder: Path) -> Outcome:
    use_test_helpers()
    from runtime_helpers import hashing_artifact

    art = hashing_artifact(folder / "r.tierwise")
    src = folder / "in.jsonl"
    src.write_text("".join(f'{{"prompt": "prompt number {i} math"}}\n' for i in range(300_000)))
    out = folder / "out.csv"
    cmd = [sys.executable, "-m", "tierwise.experiments.cli", "batch", str(art), str(src),
           str(out), "--no-progress", "--chunk-size", "256"]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=folder, env=_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    started = _kill_when(proc, lambda: any(folder.glob(".out.csv.*.tmp")), 120)  # type: ignore[arg-type]
    if not started:
        return "crashed", "batch ended before it could be killed"
    if out.exists():
        return "silently_wrong", "a half-written output sits at the output path"
    return "handled", "killed mid-file: the output path stays empty (the partial file is a .tmp)"


SCENARIOS: list[tuple[str, Callable[[Path], Outcome]]] = [
    ("MLflow down during train", mlflow_down_during_train),
    ("MLflow down during tune", mlflow_down_during_tune),
    ("tune re-run with 0 new trials", tune_rerun_registers_nothing_twice),
    ("study parent run killed (RUNNING)", parent_run_killed_mid_tune),
    ("tune SIGKILLed, journal", tune_killed_journal),
    ("tune SIGKILLed, sqlite, quick resume", tune_killed_sqlite),
    ("journal cut mid-line", journal_cut_mid_line),
    ("batch with bad rows", batch_bad_rows_keep_the_rest),
    ("batch SIGKILLed mid-file", batch_killed_mid_file),
]


def run(workdir: Path) -> list[dict[str, Any]]:
    """Every scenario of :data:`SCENARIOS`, each in its own folder under ``workdir``."""
    out = []
    for i, (name, scenario) in enumerate(SCENARIOS):
        folder = workdir / f"{i:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        try:
            outcome, detail = scenario(folder)
        except Exception as err:  # the probe itself broke: count it, keep going
            outcome, detail = "crashed", f"{type(err).__name__}: {err}"
        out.append(probe(CATEGORY, name, outcome, detail))
    return out
