"""MLflow serving for real: register the router's pyfunc model in a sqlite store, run
`mlflow models serve` on a loopback port and check /invocations decides like Router.load."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from runtime_helpers import free_port, hashing_artifact, http

from tierwise.router.core import Router

pytestmark = pytest.mark.integration

MLFLOW = str(Path(sys.executable).parent / "mlflow")
PROMPTS = ["math code sql python", "love poem story", "history war", "a b c d", "physics sql"]


def register(artifact: Path, uri: str, root: Path) -> str:
    """Log the pyfunc model in a run and register it; returns the model version."""
    import mlflow

    from tierwise.experiments.tracking.pyfunc import log_router_model

    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    try:
        exp = mlflow.create_experiment("serving", artifact_location=(root / "art").as_uri())
        with mlflow.start_run(experiment_id=exp):
            info = log_router_model(
                artifact, embedder_spec="hashing:64", example_prompts=PROMPTS[:2],
                registered_model_name="tierwise-router",
            )  # fmt: skip
        return str(info.registered_model_version)
    finally:
        mlflow.set_tracking_uri(previous)
        mlflow.set_registry_uri(previous)


def test_mlflow_models_serve_routes_like_router_load(tmp_path: Path) -> None:
    artifact = hashing_artifact(tmp_path / "router.tierwise")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    version = register(artifact, uri, tmp_path)
    port = free_port()
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen(
        [MLFLOW, "models", "serve", "-m", f"models:/tierwise-router/{version}",
         "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)],
        cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        # mlflow execs `uvicorn` by name: the environment's bin directory must be on PATH.
        env={**os.environ, "MLFLOW_TRACKING_URI": uri, "MLFLOW_REGISTRY_URI": uri,
             "PATH": f"{Path(MLFLOW).parent}{os.pathsep}{os.environ.get('PATH', '')}"},
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
            assert time.monotonic() < deadline, (tmp_path / "serve.log").read_text()[-3000:]
            try:
                if http("GET", url + "/ping", timeout=5)[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.5)
        body = {"dataframe_split": {"columns": ["prompt"], "data": [[p] for p in [*PROMPTS, ""]]}}
        status, raw, _ = http("POST", url + "/invocations", body, timeout=60)
        assert status == 200, raw[:2000]
        rows = json.loads(raw)["predictions"]
        want = Router.load(str(artifact)).route(PROMPTS)
        assert [r["model"] for r in rows[:-1]] == [d.model for d in want]
        for row, d in zip(rows, want, strict=False):
            assert json.loads(row["p_success"]) == pytest.approx(d.p_success)
            assert row["expected_cost"] == pytest.approx(d.expected_cost[d.model])
            assert row["error"] == ""
        assert rows[-1]["model"] == "" and "non-whitespace" in rows[-1]["error"]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)
        log.close()
