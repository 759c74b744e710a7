"""Shared pieces of the MLflow tracking tests: a tiny experiment on synthetic traffic (hashing
embedder, so no model loads) and a small Optuna study whose trials carry what the tuner logs."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np

WORDS = ["math", "code", "poem", "story", "physics", "history", "sql", "python", "love", "war"]
HARD = {"math", "code", "sql", "python", "physics"}
MODELS = ("small", "mid", "big")
MLFLOW = str(Path(sys.executable).parent / "mlflow")


def write_experiment(
    tmp: Path,
    *,
    name: str = "tinytrack",
    n: int = 240,
    uri: str | None = None,
    predictor: str = "knn",
) -> Path:
    """A CSV traffic log (three tiers, the small one fails on 'hard' prompts) and its config."""
    rng = np.random.default_rng(7)
    lines = ["id,prompt," + ",".join(MODELS) + "," + ",".join(f"{m}|cost" for m in MODELS)]
    for i in range(n):
        w = list(rng.choice(WORDS, size=5))
        hard = sum(x in HARD for x in w) / 5
        q = [rng.random() > hard + 0.1, rng.random() > hard * 0.5, rng.random() > 0.05]
        c = np.array([0.001, 0.01, 0.05]) * (1 + rng.random())
        lines.append(
            f"p{i},{' '.join(w)} item{i},"
            + ",".join(str(int(x)) for x in q)
            + ","
            + ",".join(f"{x:.6f}" for x in c)
        )
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "log.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    cfg = tmp / f"{name}.yaml"
    tracking = f"  tracking_uri: {uri}\n" if uri else ""
    cfg.write_text(
        f"name: {name}\n"
        "data:\n"
        "  sources:\n"
        "    - path: log.csv\n"
        '      quality: "{model}"\n'
        '      cost: "{model}|cost"\n'
        "  columns: {id: id, prompt: prompt}\n"
        "  labels: {kind: binary, missing: drop_row}\n"
        "evaluation: {bootstrap_samples: 0}\n"
        "router:\n"
        "  embedder: {name: 'hashing:64'}\n"
        f"  predictor: {{name: {predictor}}}\n"
        "  policy: {name: threshold, grid_size: 21}\n"
        "tracking:\n" + (tracking or "  enabled: true\n"),
        encoding="utf-8",
    )
    return cfg


def objective(trial: Any) -> float:
    """What the tuner records per trial, without fitting anything (deterministic in the params)."""
    k = trial.suggest_int("n_neighbors", 3, 30)
    frac = trial.suggest_float("quality_fraction", 0.85, 1.0)
    cost = 10.0 + 40.0 * frac - 0.2 * k
    quality = 0.6 + 0.3 * frac - 0.001 * k
    trial.set_user_attr(
        "router_config",
        {
            "embedder": {"name": "hashing:64"},
            "predictor": {"name": "knn", "params": {"n_neighbors": k}},
            "policy": {"name": "threshold", "select": {"quality_fraction": frac}},
        },
    )
    trial.set_user_attr(
        "metrics",
        {
            "quality": quality,
            "cost_per_1k": cost,
            "pct_ref_cost": 100 * cost / 50.0,
            "pct_ref_quality": 100 * quality / 0.9,
            "aiq": quality - 0.05,
            "gap_closed": frac - 0.5,
            "routing_latency_ms": 0.5,
            "fit_seconds": 0.1,
        },
    )
    curve = [[quality * s, cost * s / 1000.0] for s in (0.5, 0.8, 1.0, 1.1)]
    trial.set_user_attr("calibration_curve", curve)
    return cost


def journal_study(path: Path, name: str = "tiny-study") -> Any:
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = JournalStorage(JournalFileBackend(str(path)))
    return optuna.create_study(
        study_name=name,
        storage=storage,
        direction="minimize",
        sampler=optuna.samplers.RandomSampler(seed=0),
        load_if_exists=True,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class MlflowServer:
    """A real `mlflow server` on loopback, in its own process group (stopped as a group)."""

    def __init__(self, backend: str, root: Path, port: int | None = None) -> None:
        self.backend, self.root = backend, root
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 150.0) -> MlflowServer:
        self.root.mkdir(parents=True, exist_ok=True)
        log = open(self.root / f"server-{self.port}.log", "ab")  # noqa: SIM115 (outlives the call)
        env = {**os.environ, "MLFLOW_TRACKING_URI": "", "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            [
                MLFLOW,
                "server",
                "--backend-store-uri",
                self.backend,
                "--artifacts-destination",
                (self.root / "artifacts").as_uri(),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--workers",
                "1",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
            cwd=self.root,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                text = (self.root / f"server-{self.port}.log").read_text()
                raise RuntimeError(f"mlflow server exited: {text[-2000:]}")
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=2) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"mlflow server did not answer on {self.url} within {timeout}s")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        import signal

        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        except ProcessLookupError:
            pass

    def __enter__(self) -> MlflowServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def runs_by_kind(client: Any, experiment: str, kind: str) -> list[Any]:
    exp = client.get_experiment_by_name(experiment)
    return client.search_runs(
        [exp.experiment_id], f"tags.`tierwise.kind` = '{kind}'", max_results=1000
    )


def dump(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, default=str)
