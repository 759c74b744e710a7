"""`tierwise serve` as a real process on a loopback port: requests, hot swap under load, signals,
startup errors. Routers use the hashing embedder, so a server starts in a couple of seconds."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from runtime_helpers import ROOT, Served, hashing_artifact, http

from tierwise.router.core import Router


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("served")
    return hashing_artifact(root / "a.tierwise"), hashing_artifact(root / "b.tierwise", seed=7)


def checksum(path: Path) -> str:
    return str(Router.load(str(path)).manifest_["checksum"])  # type: ignore[index]


def replace_atomically(src: Path, dst: Path) -> None:
    tmp = dst.with_name(dst.name + ".new")
    tmp.write_bytes(src.read_bytes())
    os.replace(tmp, dst)


class Hammer(threading.Thread):
    """Sends /route requests back to back until stopped; records every status and artifact."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.stop_flag = threading.Event()
        self.results: list[tuple[int, str]] = []

    def run(self) -> None:
        i = 0
        while not self.stop_flag.is_set():
            body = {"prompts": [f"math code {i}", "love poem"]} if i % 2 else {"prompt": f"q {i}"}
            try:
                status, _, headers = http("POST", self.url + "/route", body, timeout=30)
                self.results.append((status, headers.get("x-tierwise-artifact", "")))
            except OSError as err:  # a refused or dropped connection is a failed request too
                self.results.append((-1, repr(err)))
            i += 1

    def finish(self) -> list[tuple[int, str]]:
        self.stop_flag.set()
        self.join(timeout=60)
        return self.results


def test_serve_routes_reports_and_hot_swaps_without_failing_a_request(
    artifacts: tuple[Path, Path], tmp_path: Path
) -> None:
    a, b = artifacts
    path = tmp_path / "router.tierwise"
    replace_atomically(a, path)
    sum_a, sum_b = checksum(a), checksum(b)
    token = {"TIERWISE_ADMIN_TOKEN": "t0ken"}
    with Served(path, log=tmp_path / "serve.log", env=token) as srv:
        status, body, headers = http("POST", srv.url + "/route", {"prompt": "math code sql"})
        assert status == 200 and headers["x-tierwise-artifact"] == sum_a
        assert json.loads(body)["model"] == Router.load(str(a)).route(["math code sql"])[0].model
        status, body, _ = http("POST", srv.url + "/route", {"prompts": ["love", "", "war"]})
        assert status == 200 and json.loads(body)["errors"] == 1
        status, body, _ = http("POST", srv.url + "/route", b"{not json")
        assert status == 400 and "not valid JSON" in json.loads(body)["error"]
        assert json.loads(http("GET", srv.url + "/health")[1])["artifact"]["checksum"] == sum_a
        assert json.loads(http("GET", srv.url + "/metadata")[1])["checksum"] == sum_a
        assert "/route" in json.loads(http("GET", srv.url + "/openapi.json")[1])["paths"]

        hammer = Hammer(srv.url)
        hammer.start()
        time.sleep(0.5)
        replace_atomically(b, path)  # a new artifact lands; the server keeps the old until told
        status, body, _ = http("POST", srv.url + "/admin/reload", timeout=60, token="t0ken")
        assert status == 200, body
        time.sleep(0.5)
        path.write_bytes(b"corrupt: half-copied file")  # a broken swap must not take it down
        status, body, _ = http("POST", srv.url + "/admin/reload", timeout=60, token="t0ken")
        assert status == 409 and f"still serving {sum_b[:12]}" in json.loads(body)["error"]
        time.sleep(0.5)
        results = hammer.finish()

        assert len(results) > 10
        assert [r for r in results if r[0] != 200] == []  # no failed request, ever
        seen = [s for _, s in results]
        assert seen[0] == sum_a and seen[-1] == sum_b
        assert seen == sorted(seen, key=lambda s: s == sum_b)  # a, ..., a, b, ..., b: one swap
        metrics = http("GET", srv.url + "/metrics")[1].decode()
        assert 'tierwise_artifact_reloads_total{result="error"} 1' in metrics
        assert "tierwise_internal_errors_total 0" in metrics
        assert 'status="500"' not in metrics


def test_sighup_and_watch_reload_the_artifact(artifacts: tuple[Path, Path], tmp_path: Path) -> None:
    a, b = artifacts
    path = tmp_path / "router.tierwise"
    replace_atomically(a, path)
    sum_a, sum_b = checksum(a), checksum(b)

    def served_checksum(url: str) -> str:
        return str(json.loads(http("GET", url + "/health")[1])["artifact"]["checksum"])

    def wait_for(url: str, want: str) -> None:
        deadline = time.monotonic() + 60
        while served_checksum(url) != want:
            assert time.monotonic() < deadline, f"artifact {want[:12]} never served"
            time.sleep(0.2)

    with Served(path, log=tmp_path / "hup.log") as srv:
        replace_atomically(b, path)
        assert served_checksum(srv.url) == sum_a  # no watching: nothing happens by itself
        os.kill(srv.proc.pid, signal.SIGHUP)
        wait_for(srv.url, sum_b)
    with Served(path, "--watch", "0.2", log=tmp_path / "watch.log") as srv:
        assert served_checksum(srv.url) == sum_b
        replace_atomically(a, path)
        wait_for(srv.url, sum_a)
        path.write_bytes(b"garbage")  # watched, but unloadable: the old one stays
        time.sleep(1.0)
        assert served_checksum(srv.url) == sum_a
        assert "reload failed" in srv.output()
        replace_atomically(b, path)  # and a good file after a bad one is picked up again
        wait_for(srv.url, sum_b)


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tierwise.experiments.cli", "serve", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_startup_errors_are_one_line_and_exit_2(
    artifacts: tuple[Path, Path], tmp_path: Path
) -> None:
    missing = run_cli(str(tmp_path / "nope.tierwise"))
    assert missing.returncode == 2
    assert missing.stderr.strip().splitlines() == [
        f"tierwise: error: artifact {str(tmp_path / 'nope.tierwise')!r} does not exist; pass "
        "the path of a router artifact (router.tierwise or its directory)"
    ]
    (tmp_path / "bad.tierwise").write_bytes(b"\x00" * 100)
    corrupt = run_cli(str(tmp_path / "bad.tierwise"))
    assert corrupt.returncode == 2
    assert len(corrupt.stderr.strip().splitlines()) == 1
    assert corrupt.stderr.startswith(f"tierwise: error: {tmp_path / 'bad.tierwise'}")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        busy = run_cli(str(artifacts[0]), "--port", str(port))
    assert busy.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in busy.stderr
    assert len(busy.stderr.strip().splitlines()) == 1
