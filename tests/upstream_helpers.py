"""Start :mod:`fake_upstream` as a real process for a test, and talk to its control endpoints.

Usage::

    with start_fake_upstream() as up:                 # default echo behaviour
        up.base_url                                   # "http://127.0.0.1:PORT/v1"
        up.fault(model="big", fail_next=2, status=503)
        up.stats()["calls"]                           # {"small": 3, ...}

    # a test module's own behaviour: def judge(model, messages, params) -> str
    with start_fake_upstream(behaviour=f"{__file__}:judge") as up: ...
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from runtime_helpers import Served, free_port

FAKE = Path(__file__).resolve().with_name("fake_upstream.py")
ROOT = FAKE.parents[1]


class FakeUpstream:
    """A running fake upstream process."""

    def __init__(self, proc: subprocess.Popen[str], base_url: str) -> None:
        self.proc = proc
        self.base_url = base_url  # ends in /v1, as an OpenAI client's base_url does
        self.root = base_url[: -len("/v1")]
        self.port = int(self.root.rsplit(":", 1)[1])

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.root + path, data=data, method=method)
        req.add_header("content-type", "application/json")
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read())

    def fault(self, **spec: Any) -> None:
        """Inject a fault: fail_next/status/body, drop_next, latency_s, reset (fake_upstream)."""
        self._call("POST", "/_faults", spec)

    def reset(self) -> None:
        self.fault(reset=True)

    def stats(self) -> dict[str, Any]:
        """``{"calls": {model: n}, "statuses": {"model:status": n}}``."""
        return self._call("GET", "/_stats")

    def calls(self, model: str | None = None) -> int:
        calls = self.stats()["calls"]
        return int(sum(calls.values()) if model is None else calls.get(model, 0))

    def kill(self) -> None:
        """Stop the process at once (SIGKILL): later calls to it fail to connect."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)


@contextmanager
def start_fake_upstream(
    behaviour: str | None = None, *, require_key: str | None = None, timeout: float = 30
) -> Iterator[FakeUpstream]:
    """Run the fake upstream on a free loopback port for the ``with`` block."""
    cmd = [sys.executable, str(FAKE), "--port", "0"]
    if behaviour:
        cmd += ["--behaviour", behaviour]
    if require_key:
        cmd += ["--require-key", require_key]
    proc = subprocess.Popen(
        cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )  # fmt: skip
    line: list[str] = []
    reader = threading.Thread(target=lambda: line.append(proc.stdout.readline()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    reader.join(timeout)
    up = None
    try:
        if not line or not line[0].startswith("listening on "):
            rest = proc.stdout.read() if proc.poll() is not None else ""  # type: ignore[union-attr]
            raise AssertionError(f"fake upstream did not start: {''.join(line)}{rest}")
        up = FakeUpstream(proc, line[0].split()[-1])
        yield up
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        if proc.stdout:
            proc.stdout.close()


class GatewayProcess(Served):
    """`tierwise gateway` as a real process on a free port; ``with`` waits for /health."""

    def __init__(
        self,
        artifact: Path,
        upstreams: Path,
        *args: str,
        log: Path,
        env: dict[str, str] | None = None,
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.base_url = self.url + "/v1"
        self.log = log
        cmd = [sys.executable, "-m", "tierwise.experiments.cli", "gateway", str(artifact),
               "--upstreams", str(upstreams), "--port", str(self.port), *args]  # fmt: skip
        self._fh = log.open("wb")
        self.proc = subprocess.Popen(
            cmd, cwd=ROOT, stdout=self._fh, stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, **(env or {})},
        )  # fmt: skip

    def metrics(self) -> str:
        with urllib.request.urlopen(self.url + "/metrics", timeout=10) as resp:
            return str(resp.read().decode())

    def stop(self) -> None:
        """SIGTERM, then up to a minute for the log and the traces to flush."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=60)
        super().stop()
