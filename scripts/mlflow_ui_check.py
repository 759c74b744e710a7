"""Browser check of the MLflow UI: tierwise's runs are on the experiment page a person opens.

Starts `mlflow server` on loopback against a store with logged runs (by default a fresh demo
store: a small tuning study synced by tierwise), opens the experiment's runs page and the
compare-runs page of its runs in headless Debian Chromium, waits for the JavaScript to render,
checks that the run count and every expected run name are on the pages, and saves a
screenshot of each. Every step is bounded in time; the server is stopped (its
whole process group) whatever happens.

    python scripts/mlflow_ui_check.py --screenshot runs/mlflow_ui.png
    python scripts/mlflow_ui_check.py --backend-store-uri sqlite:///mlflow.db \\
        --experiment routerbench --expect "train knn/utility"

Exit code 0 when every expected name was found, 1 when not, 2 when a step could not run.
Needs Debian's chromium (`apt-get install -y chromium`).
"""

from __future__ import annotations

import argparse
import html
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--window-size=1600,1000",
]


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def demo_store(folder: Path) -> tuple[str, str, list[str]]:
    """A SQLite store holding a 4-trial study synced by tierwise; (uri, experiment, run names)."""
    import optuna

    from tierwise.experiments.config import ExperimentConfig
    from tierwise.experiments.tracking.sync import sync_study

    uri = f"sqlite:///{folder / 'mlflow.db'}"
    cfg = ExperimentConfig.model_validate(
        {
            "name": "ui-check",
            "data": {
                "sources": [{"path": "unused.csv", "quality": "{model}", "cost": "{model}|cost"}],
                "labels": {"kind": "binary", "missing": "drop_row"},
            },
            "tracking": {"tracking_uri": uri},
        }
    )
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name="ui-study", sampler=optuna.samplers.RandomSampler(0))

    def objective(trial: optuna.Trial) -> float:
        k = trial.suggest_int("n_neighbors", 5, 50)
        cost, quality = 20.0 + k / 2, 0.7 + k / 500
        trial.set_user_attr(
            "router_config", {"predictor": {"name": "knn"}, "policy": {"name": "utility"}}
        )
        trial.set_user_attr(
            "metrics",
            {"quality": quality, "cost_per_1k": cost, "pct_ref_quality": 100 * quality / 0.8},
        )
        trial.set_user_attr(
            "calibration_curve", [[quality * s, cost * s / 1000] for s in (0.6, 0.9, 1.0)]
        )
        return cost

    study.optimize(objective, n_trials=4)
    sync_study(study, cfg=cfg)
    return uri, "ui-check", ["study ui-study"] + [f"trial {i}" for i in range(4)]


class Server:
    def __init__(self, backend: str, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        mlflow = Path(sys.executable).parent / "mlflow"
        self.log = workdir / "mlflow-server.log"
        self.proc = subprocess.Popen(
            [
                str(mlflow),
                "server",
                "--backend-store-uri",
                backend,
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--workers",
                "1",
            ],
            stdout=self.log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=workdir,
            env={**os.environ, "MLFLOW_TRACKING_URI": ""},
        )

    def wait(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mlflow server exited:\n{self.log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.5)
        raise RuntimeError(f"mlflow server did not answer on {self.url} within {timeout:.0f}s")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)


def page_text(dom: str) -> str:
    text = re.sub(r"<script.*?</script>|<style.*?</style>", " ", dom, flags=re.S)
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", text)))


def chromium(browser: str, args: list[str], profile: Path, timeout: float) -> str:
    proc = subprocess.run(
        [browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return proc.stdout


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--backend-store-uri", default=None, help="store to show (default: a demo)")
    ap.add_argument("--experiment", default=None, help="experiment to open")
    ap.add_argument("--expect", action="append", default=None, help="run name that must show")
    ap.add_argument("--screenshot", type=Path, default=Path("runs/mlflow_ui.png"))
    ap.add_argument("--timeout", type=float, default=240.0, help="overall budget, seconds")
    args = ap.parse_args(argv)
    browser = find_chromium()
    if browser is None:
        print("chromium not found: install Debian's chromium (apt-get install -y chromium)")
        return 2
    t_start = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="tierwise-ui-check-"))
    server = None
    try:
        if args.backend_store_uri:
            if not args.experiment or not args.expect:
                ap.error("--backend-store-uri needs --experiment and at least one --expect")
            uri, experiment, expected = args.backend_store_uri, args.experiment, args.expect
        else:
            uri, experiment, expected = demo_store(work)
        t_store = time.monotonic()
        server = Server(uri, work)
        server.wait(max(10.0, args.timeout - (t_store - t_start) - 60))
        t_server = time.monotonic()
        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri=server.url)
        exp = client.get_experiment_by_name(experiment)
        if exp is None:
            print(f"experiment {experiment!r} is not in {uri}")
            return 2
        run_ids = [r.info.run_id for r in client.search_runs([exp.experiment_id], max_results=50)]
        exp_url = f"{server.url}/#/experiments/{exp.experiment_id}/runs"
        # Child runs sit folded under their study on the experiment page; the compare page a
        # person opens from there (select runs -> Compare) names every run.
        cmp_url = (
            f"{server.url}/#/compare-runs?runs={urllib.parse.quote(json.dumps(run_ids))}"
            f"&experiments={urllib.parse.quote(json.dumps([exp.experiment_id]))}"
        )
        count = f"{len(run_ids)} matching run" + ("s" if len(run_ids) != 1 else "")
        pages = {"experiment": (exp_url, [count]), "compare": (cmp_url, list(expected))}
        missing: list[str] = []
        for label, (url, needles) in pages.items():
            lost = list(needles)
            for budget in (15000, 40000):  # virtual ms for the page's JavaScript to render
                dom = chromium(
                    browser,
                    [f"--virtual-time-budget={budget}", "--dump-dom", url],
                    work / f"profile-{label}-{budget}",
                    timeout=90,
                )
                text = page_text(dom)
                lost = [n for n in needles if n not in text]
                if not lost:
                    break
            shot = (
                args.screenshot
                if label == "experiment"
                else args.screenshot.with_name(
                    f"{args.screenshot.stem}_compare{args.screenshot.suffix}"
                )
            )
            shot.parent.mkdir(parents=True, exist_ok=True)
            chromium(
                browser,
                ["--virtual-time-budget=15000", f"--screenshot={shot.resolve()}", url],
                work / f"profile-shot-{label}",
                timeout=90,
            )
            print(f"{label} page: {url}")
            print(f"  found:      {[n for n in needles if n not in lost]}")
            print(f"  missing:    {lost}")
            print(
                f"  screenshot: {shot} ({shot.stat().st_size} bytes)"
                if shot.is_file()
                else "  screenshot: not written"
            )
            missing += lost
        t_end = time.monotonic()
        print(
            f"timings: store {t_store - t_start:.1f}s, server start {t_server - t_store:.1f}s, "
            f"browser {t_end - t_server:.1f}s"
        )
        return 0 if not missing else 1
    except (RuntimeError, subprocess.TimeoutExpired) as err:
        print(f"ui check could not run: {err}")
        return 2
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
