"""Shared by the runtime, serve and batch tests: small routers, a served process, free ports."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from tierwise.router.config import RouterConfig
from tierwise.router.core import Router

ROOT = Path(__file__).resolve().parents[1]
WORDS = ["math", "code", "poem", "story", "physics", "history", "sql", "python", "love", "war"]
HARD = {"math", "code", "sql", "python", "physics"}
MODELS = ("small", "mid", "big")

# Put first on sys.meta_path in a subprocess: importing any training-stack package fails there.
BLOCK_HEAVY = """
import sys
BLOCKED = ("torch", "sentence_transformers", "transformers", "sklearn", "pandas", "scipy",
           "optuna", "mlflow")
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"blocked import: {name}")
        return None
sys.meta_path.insert(0, Block())
"""
CLI_MAIN = "from experiments.cli import main\nsys.exit(main(sys.argv[1:]))\n"


def traffic(n: int, seed: int, models: tuple[str, ...] = MODELS) -> SimpleNamespace:
    """Three tiers: the small one fails on prompts full of 'hard' words; the big one rarely."""
    rng = np.random.default_rng(seed)
    prompts, quality = [], []
    for i in range(n):
        words = list(rng.choice(WORDS, size=5))
        prompts.append(" ".join(words) + f" item{i}")
        hard = sum(x in HARD for x in words) / 5
        quality.append([rng.random() > hard + 0.1, rng.random() > hard * 0.5, rng.random() > 0.05])
    cost = np.tile([0.001, 0.01, 0.05], (n, 1)) * (1 + rng.random((n, 1)))
    return SimpleNamespace(
        prompts=tuple(prompts),
        models=models,
        quality=np.asarray(quality, dtype=float),
        cost=cost,
        input_tokens=None,
        output_tokens=None,
    )


def train_router(
    embedder: str = "hashing:64", *, predictor: str = "knn", n: int = 300, seed: int = 1
) -> Router:
    cfg = RouterConfig.model_validate(
        {"embedder": {"name": embedder}, "predictor": {"name": predictor}}
    )
    return Router(cfg).fit(traffic(n, seed), traffic(n // 2, seed + 100))


def hashing_artifact(path: Path, *, seed: int = 1, predictor: str = "knn") -> Path:
    train_router(predictor=predictor, seed=seed).save(str(path))
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http(
    method: str,
    url: str,
    body: bytes | dict[str, Any] | None = None,
    timeout: float = 30,
    token: str | None = None,
) -> tuple[int, bytes, dict[str, str]]:
    """A plain stdlib request: (status, body, headers); 4xx/5xx are returned, not raised.

    ``token``: sent as ``Authorization: Bearer <token>`` (the admin endpoints need it).
    """
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if token is not None:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read(), dict(resp.headers)
    except urllib.error.HTTPError as err:
        return err.code, err.read(), dict(err.headers)


class Served:
    """`tierwise serve` in its own process group; stopped (SIGTERM, then SIGKILL) on exit."""

    def __init__(
        self,
        artifact: Path,
        *args: str,
        log: Path,
        env: dict[str, str] | None = None,
        torch_free: bool = False,
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        # torch_free: importing the training stack raises inside the server process.
        entry = ["-c", BLOCK_HEAVY + CLI_MAIN] if torch_free else ["-m", "tierwise.experiments.cli"]
        cmd = [sys.executable, *entry, "serve", str(artifact), "--port", str(self.port), *args]
        self._fh = log.open("wb")
        self.proc = subprocess.Popen(
            cmd, cwd=ROOT, stdout=self._fh, stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, **(env or {})},
        )  # fmt: skip

    def wait_ready(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited {self.proc.returncode}: {self.output()}")
            try:
                status, _, _ = http("GET", self.url + "/health", timeout=5)
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"server not ready in {timeout}s: {self.output()}")

    def output(self) -> str:
        self._fh.flush()
        return self.log.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=15)
        self._fh.close()

    def __enter__(self) -> Served:
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()
