"""HTTP probes: hostile requests against a real `tierwise serve`, and the load figures.

``run(workdir)`` starts servers on a small hashing-embedder router (seconds to start) and sends
every kind of bad request over raw sockets: each must get its documented 4xx with a JSON
``error`` (handled), never a 5xx, a dropped connection or a hang (crashed), and never a 2xx
or another status (silently wrong). Valid requests are checked against the in-process router
(a wrong decision is silently wrong). Afterwards ``tierwise_internal_errors_total`` must be 0.

``load(workdir, ...)`` serves an exported MiniLM router (ONNX, built once per workdir) to 16
keep-alive clients sending one short prompt each, first alone, then with one 2 MB batch (256
prompts x 7.8k characters) and two hot reloads in the middle (a retrained router with the same
bundled embedder, then one whose embedder needs a new ONNX session): requests, non-2xx,
p50/p99 of the small requests with and without the big batch running, the server's RSS.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from reliability import ROOT, probe, use_test_helpers

CATEGORY = "http"
TOKEN = "reliability-token"
SHORT = "How do I reset my password for the billing dashboard if I lost my email?"
LONG = ("Summarize this support thread and list the open questions. " * 140)[:7800]


# ---------------------------------------------------------------- raw HTTP


def raw(port: int, data: bytes, timeout: float = 60.0) -> tuple[int | None, bytes]:
    """Send raw bytes, read until the server closes: (status or None, body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        # A server may answer (413) and close before a huge body is sent: read the answer anyway.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            s.sendall(data)
        chunks = []
        while True:
            try:
                chunk = s.recv(65536)
            except TimeoutError:
                return None, b"timeout"
            except ConnectionResetError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    reply = b"".join(chunks)
    if not reply.startswith(b"HTTP/1."):
        return None, reply[:200]
    head, _, body = reply.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def request(
    method: str,
    path: str,
    body: bytes = b"",
    *,
    ctype: str = "application/json",
    headers: dict[str, str] | None = None,
    length: int | None = None,
) -> bytes:
    """A raw HTTP/1.1 request with ``Connection: close`` (``length`` overrides Content-Length)."""
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
    if method in ("POST", "PUT"):
        lines.append(f"Content-Type: {ctype}")
        lines.append(f"Content-Length: {len(body) if length is None else length}")
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def route(body: bytes, **kw: Any) -> bytes:
    return request("POST", "/route", body, **kw)


# ---------------------------------------------------------------- the hostile requests

J = json.dumps
BAD: list[tuple[str, bytes, int]] = [
    ("empty body", route(b""), 400),
    ("whitespace body", route(b"   "), 400),
    ("truncated JSON", route(b"{"), 400),
    ("trailing comma", route(b'{"prompt": "a",}'), 400),
    ("UTF-16 BOM", route(b"\xff\xfe{}"), 400),
    ("latin-1 byte in JSON", route(b'{"prompt": "caf\xe9"}'), 400),
    ("JSON nested 100k deep", route(b"[" * 100_000), 400),
    ("5000-digit integer", route(b'{"prompt": 1' + b"0" * 5000 + b"}"), 400),
    ("JSON list", route(b"[1, 2]"), 422),
    ("JSON string", route(b'"hello"'), 422),
    ("JSON null", route(b"null"), 422),
    ("no prompt field", route(b"{}"), 422),
    ("prompt and prompts", route(b'{"prompt": "a", "prompts": ["b"]}'), 422),
    ("unknown field", route(b'{"prompt": "a", "temperature": 1}'), 422),
    ("empty prompt", route(b'{"prompt": ""}'), 422),
    ("whitespace prompt", route(b'{"prompt": " \\n\\t "}'), 422),
    ("number prompt", route(b'{"prompt": 5}'), 422),
    ("null prompt", route(b'{"prompt": null}'), 422),
    ("list prompt", route(b'{"prompt": ["a"]}'), 422),
    ("object prompt", route(b'{"prompt": {"text": "a"}}'), 422),
    ("lone surrogate", route(b'{"prompt": "\\udc80"}'), 422),
    ("empty batch", route(b'{"prompts": []}'), 422),
    ("string batch", route(b'{"prompts": "abc"}'), 422),
    ("object batch", route(b'{"prompts": {"a": 1}}'), 422),
    ("string knob", route(b'{"prompt": "a", "knob": "high"}'), 422),
    ("bool knob", route(b'{"prompt": "a", "knob": true}'), 422),
    ("NaN knob", route(b'{"prompt": "a", "knob": NaN}'), 422),
    ("infinite knob", route(b'{"prompt": "a", "knob": 1e999}'), 422),
    ("negative knob", route(b'{"prompt": "a", "knob": -1}'), 422),
    ("prompt over max chars", route(J({"prompt": "x" * 100_001}).encode()), 422),
    ("257 prompts", route(J({"prompts": ["a"] * 257}).encode()), 413),
    ("declared 9 MB body", route(b"{}", length=9 * 1024 * 1024), 413),
    ("sent 9 MB body", route(J({"prompt": "x" * (9 * 1024 * 1024)}).encode()), 413),
    ("text/plain body", route(b"{", ctype="text/plain"), 400),
    ("form body", route(b"prompt=a", ctype="application/x-www-form-urlencoded"), 400),
    ("GET /route", request("GET", "/route"), 405),
    ("PUT /route", request("PUT", "/route", b"{}"), 405),
    ("POST /health", request("POST", "/health", b""), 405),
    ("unknown path", request("GET", "/nope"), 404),
    ("path traversal", request("GET", "/../../etc/passwd"), 404),
    ("reload, HTTP disabled", request("POST", "/admin/reload"), 403),
    ("reload with a token, HTTP disabled", request(
        "POST", "/admin/reload", headers={"Authorization": f"Bearer {TOKEN}"}), 403),
]  # fmt: skip
# Refused by uvicorn's HTTP parser before the app sees them: a 4xx, its own plain-text body.
PROTOCOL: list[tuple[str, bytes, int]] = [
    ("Content-Length not a number", b"POST /route HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
     b"Content-Type: application/json\r\nContent-Length: x\r\n\r\n{}", 400),
    ("request line garbage", b"\x00\x01\x02 / HTTP/1.1\r\n\r\n", 400),
    ("header without colon", b"GET /health HTTP/1.1\r\nHost x\r\n\r\n", 400),
]  # fmt: skip
CHUNKED_HUGE = (
    b"POST /route HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n"
    + b"".join(b"100000\r\n" + b" " * 0x100000 + b"\r\n" for _ in range(9))
    + b"0\r\n\r\n"
)
TOKEN_SERVER_BAD: list[tuple[str, bytes, int]] = [
    ("reload without token", request("POST", "/admin/reload"), 401),
    ("reload with wrong token", request(
        "POST", "/admin/reload", headers={"Authorization": "Bearer nope"}), 401),
    ("reload with token in query", request("POST", f"/admin/reload?token={TOKEN}"), 401),
    ("over the token budget", route(J({"prompts": [LONG] * 16}).encode()), 413),
]  # fmt: skip


def classify(
    name: str, status: int | None, body: bytes, want: int, *, json_error: bool = True
) -> dict[str, Any]:
    """handled: the wanted status (with a JSON ``error`` for ours); crashed: 5xx or no answer."""
    if status is None:
        return probe(CATEGORY, name, "crashed", f"no HTTP answer ({body[:80]!r})")
    if status >= 500:
        return probe(CATEGORY, name, "crashed", f"HTTP {status}: {body[:120]!r}")
    try:
        error = json.loads(body).get("error") if want >= 400 else None
    except (ValueError, AttributeError):
        error = None
    if status != want:
        return probe(CATEGORY, name, "silently_wrong", f"expected {want}, got {status}")
    if want >= 400 and json_error and not error:
        return probe(CATEGORY, name, "silently_wrong", f"{status} without a JSON error: {body!r}")
    return probe(CATEGORY, name, "handled", f"{status} {error or ''}")


def metrics(port: int) -> dict[str, float]:
    _, body = raw(port, request("GET", "/metrics"))
    values = {}
    for line in body.decode().splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            values[key] = float(value.replace("+Inf", "inf"))
    return values


# ---------------------------------------------------------------- good requests, checked


def _good_probes(port: int, router: Any) -> list[dict[str, Any]]:
    out = []

    def check(name: str, fn: Callable[[], str | None]) -> None:
        try:
            wrong = fn()
        except (OSError, ValueError, KeyError) as err:
            out.append(probe(CATEGORY, name, "crashed", f"{type(err).__name__}: {err}"))
            return
        out.append(probe(CATEGORY, name, "silently_wrong" if wrong else "handled", wrong or "ok"))

    def single() -> str | None:
        status, body = raw(port, route(J({"prompt": "math code sql"}).encode()))
        want = router.route(["math code sql"])[0].model
        got = json.loads(body)["model"] if status == 200 else status
        return None if got == want else f"routed to {got}, in-process router says {want}"

    def mixed() -> str | None:
        prompts = ["math code", "", 5, None, "love poem", "x" * 100_001]
        status, body = raw(port, route(J({"prompts": prompts}).encode()))
        d = json.loads(body)
        want = [w.model for w in router.route(["math code", "love poem"])]
        got = [d["decisions"][0]["model"], d["decisions"][4]["model"]]
        if status != 200 or d["errors"] != 4 or got != want:
            return f"status {status}, errors {d.get('errors')}, good items {got} vs {want}"
        return None

    def big() -> str | None:
        prompts = [f"{LONG} {i}" for i in range(256)]  # the 2 MB batch
        status, body = raw(port, route(J({"prompts": prompts}).encode()), timeout=300)
        d = json.loads(body)
        got = [x["model"] for x in d["decisions"]]
        want = [w.model for w in router.route(prompts)]
        return None if status == 200 and got == want else f"status {status}, decisions differ"

    def mid_body_disconnect() -> str | None:
        before = metrics(port)
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(route(b'{"prompts": ["abc', length=100_000))
            time.sleep(0.2)
        time.sleep(0.5)
        after = metrics(port)
        key = 'tierwise_http_requests_total{path="/route",status="499"}'
        if after.get("tierwise_internal_errors_total", 0) != before.get(
            "tierwise_internal_errors_total", 0
        ):
            return "counted as an internal error"
        return None if after.get(key, 0) == before.get(key, 0) + 1 else "no 499 recorded"

    check("single prompt routed like the in-process router", single)
    check("batch with 4 bad items keeps the 2 good ones", mixed)
    check("2 MB batch (256 x 7.8k chars) routed like the in-process router", big)
    check("client disconnects mid-body: a 499, not an internal error", mid_body_disconnect)
    return out


def _reload_probes(port: int, served: Path, good: bytes) -> list[dict[str, Any]]:
    out = []
    auth = {"Authorization": f"Bearer {TOKEN}"}
    served.write_bytes(b"half-copied artifact")
    status, body = raw(port, request("POST", "/admin/reload", headers=auth))
    out.append(classify("reload of a corrupt artifact keeps the old one", status, body, 409))
    status, _ = raw(port, route(J({"prompt": "math"}).encode()))
    outcome = "handled" if status == 200 else "crashed"
    out.append(probe(CATEGORY, "still routing after a failed reload", outcome, f"HTTP {status}"))
    served.write_bytes(good)
    status, body = raw(port, request("POST", "/admin/reload", headers=auth))
    out.append(classify("reload of a good artifact with the token", status, body, 200))
    return out


def run(workdir: Path) -> list[dict[str, Any]]:
    """Every hostile request against real servers; see the module docstring."""
    use_test_helpers()
    from runtime_helpers import Served, hashing_artifact

    from tierwise.router.core import Router

    workdir.mkdir(parents=True, exist_ok=True)
    art = hashing_artifact(workdir / "http-probe.tierwise")
    router = Router.load(str(art))
    results: list[dict[str, Any]] = []
    with Served(art, log=workdir / "http-probe.log") as srv:
        for name, data, want in BAD:
            status, body = raw(srv.port, data)
            results.append(classify(name, status, body, want))
        for name, data, want in PROTOCOL:
            status, body = raw(srv.port, data)
            results.append(classify(name, status, body, want, json_error=False))
        status, body = raw(srv.port, CHUNKED_HUGE)
        results.append(classify("chunked 9 MB body", status, body, 413))
        results += _good_probes(srv.port, router)
        internal = metrics(srv.port).get("tierwise_internal_errors_total", -1)
    served = workdir / "http-reload.tierwise"
    served.write_bytes(art.read_bytes())
    env = {"TIERWISE_ADMIN_TOKEN": TOKEN}
    args = ("--max-request-tokens", "2000")
    with Served(served, *args, log=workdir / "http-token.log", env=env) as srv:
        for name, data, want in TOKEN_SERVER_BAD:
            status, body = raw(srv.port, data)
            results.append(classify(name, status, body, want))
        results += _reload_probes(srv.port, served, art.read_bytes())
        internal += metrics(srv.port).get("tierwise_internal_errors_total", -1)
    results.append(
        probe(
            CATEGORY,
            "tierwise_internal_errors_total after all probes",
            "handled" if internal == 0 else "crashed",
            f"{internal:.0f}",
        )
    )
    return results


# ---------------------------------------------------------------- load


def build_minilm(workdir: Path) -> Path:
    """An exported MiniLM router (ONNX bundled), trained once per workdir in a child process."""
    workdir.mkdir(parents=True, exist_ok=True)
    out = workdir / "minilm-runtime.tierwise"
    if out.exists():
        return out
    code = (
        "import sys; sys.path.insert(0, sys.argv[1])\n"
        "from pathlib import Path\n"
        "from runtime_helpers import train_router\n"
        "from tierwise.router.artifact import export_artifact\n"
        "w = Path(sys.argv[2]); src = w / 'minilm.tierwise'\n"
        "train_router('minilm', n=400).save(str(src))\n"
        "export_artifact(src, w / 'minilm-runtime.tierwise', quantize='none')\n"
    )
    print("building a MiniLM router and its ONNX export (once per workdir) ...", flush=True)
    subprocess.run(
        [sys.executable, "-c", code, str(ROOT / "tests"), str(workdir)], check=True, cwd=ROOT
    )
    return out


def swap_targets(art: Path) -> list[Path]:
    """Two artifacts to hot-swap to: a retrained router (another knob) with the same bundled
    embedder, whose ONNX session the server keeps; then one whose bundled embedder differs
    in its description, for which the server builds a new session (the full cost)."""
    from tierwise.router.artifact import load_artifact, save_artifact
    from tierwise.router.runtime import PAYLOAD_KEY

    out = [art.with_name("swap-same-embedder.tierwise"), art.with_name("swap-new-session.tierwise")]
    if all(p.exists() for p in out):
        return out
    loaded = load_artifact(art)
    for path, source in zip(out, ("same", "a different export"), strict=True):
        payload = json.loads(json.dumps(loaded.payload))
        payload["policy"]["knob"] = float(payload["policy"]["knob"]) * 1.5 + 0.01
        if source != "same":
            payload[PAYLOAD_KEY]["source_artifact_checksum"] = source
        save_artifact(path, payload, loaded.arrays)
    return out


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def _client(port: int, body: bytes, stop: float, log: list[tuple[float, float, int]]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = (
        "POST /route HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    try:
        while time.perf_counter() < stop:
            t0 = time.perf_counter()
            writer.write(head + body)
            status = await _read_response(reader)
            log.append((t0, time.perf_counter(), status))
    except (OSError, asyncio.IncompleteReadError):
        log.append((time.perf_counter(), time.perf_counter(), -1))
    finally:
        writer.close()


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            await reader.readexactly(int(line.split(b":")[1]))
    return status


async def _phase(
    port: int, clients: int, seconds: float, events: list[tuple[float, Callable[[], Any]]]
) -> list[tuple[float, float, int]]:
    log: list[tuple[float, float, int]] = []
    start = time.perf_counter()
    body = json.dumps({"prompt": SHORT}).encode()
    tasks = [_client(port, body, start + seconds, log) for _ in range(clients)]

    async def fire() -> None:
        for at, fn in events:
            await asyncio.sleep(max(0.0, start + at - time.perf_counter()))
            await asyncio.to_thread(fn)

    await asyncio.gather(*tasks, fire())
    return log


def _pcts(ms: list[float]) -> tuple[float, float]:
    if not ms:
        return float("nan"), float("nan")
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99))


def load(workdir: Path, *, seconds: float = 20.0, clients: int = 16) -> dict[str, Any]:
    """The HTTP load figures (see the module docstring); returns them as a dict."""
    use_test_helpers()
    from runtime_helpers import Served

    art = build_minilm(workdir)
    targets = swap_targets(art)
    served = workdir / "load.tierwise"
    served.write_bytes(art.read_bytes())
    env = {"TIERWISE_ADMIN_TOKEN": TOKEN}
    big_body = json.dumps({"prompts": [f"{LONG} {i}" for i in range(256)]}).encode()
    out: dict[str, Any] = {"clients": clients, "seconds": seconds, "body_mb": len(big_body) / 1e6}
    with Served(served, log=workdir / "load.log", env=env) as srv:
        asyncio.run(_phase(srv.port, clients, 2.0, []))  # warm-up
        out["rss_before_mb"] = rss_mb(srv.proc.pid)
        base = asyncio.run(_phase(srv.port, clients, seconds, []))
        big: dict[str, Any] = {}

        def send_big() -> None:
            def go() -> None:
                big["start"] = time.perf_counter()
                big["status"], _ = raw(srv.port, route(big_body), timeout=900)
                big["end"] = time.perf_counter()

            big["thread"] = threading.Thread(target=go, daemon=True)
            big["thread"].start()

        reloads: list[tuple[float, float, int | None]] = []

        def reload() -> None:
            auth = {"Authorization": f"Bearer {TOKEN}"}
            tmp = served.with_name("load.tierwise.new")
            tmp.write_bytes(targets[len(reloads)].read_bytes())
            os.replace(tmp, served)  # what `tierwise train`/`export` do: an atomic replace
            t0 = time.perf_counter()
            status = raw(srv.port, request("POST", "/admin/reload", headers=auth))[0]
            reloads.append((t0, time.perf_counter(), status))

        events = [(2.0, send_big), (seconds * 0.35, reload), (seconds * 0.7, reload)]
        mixed = asyncio.run(_phase(srv.port, clients, seconds, events))
        big["thread"].join(timeout=900)
        out["rss_after_mb"] = rss_mb(srv.proc.pid)
        # Memory over repeated full reloads (each builds a new ONNX session): does RSS grow?
        out["rss_reloads_mb"] = []
        for source in (art, targets[1], art, targets[1]):
            tmp = served.with_name("load.tierwise.new")
            tmp.write_bytes(source.read_bytes())
            os.replace(tmp, served)
            auth = {"Authorization": f"Bearer {TOKEN}"}
            raw(srv.port, request("POST", "/admin/reload", headers=auth))
            out["rss_reloads_mb"].append(round(rss_mb(srv.proc.pid)))
        internal = metrics(srv.port).get("tierwise_internal_errors_total", -1)
    end = big.get("end", float("inf"))
    during = [(a, b) for a, b, s in mixed if s == 200 and big["start"] <= a < end]
    quiet = [(a, b) for a, b in during if not any(a < r1 and b > r0 for r0, r1, _ in reloads)]
    out["base_requests"] = len(base)
    out["base_non2xx"] = sum(1 for *_, s in base if s != 200)
    out["base_p50"], out["base_p99"] = _pcts([(b - a) * 1e3 for a, b, s in base if s == 200])
    out["mixed_requests"] = len(mixed)
    out["mixed_non2xx"] = sum(1 for *_, s in mixed if s != 200)
    out["mixed_5xx"] = sum(1 for *_, s in mixed if s >= 500 or s < 0)
    out["during_requests"] = len(during)
    out["during_p50"], out["during_p99"] = _pcts([(b - a) * 1e3 for a, b in during])
    out["quiet_requests"] = len(quiet)
    out["quiet_p50"], out["quiet_p99"] = _pcts([(b - a) * 1e3 for a, b in quiet])
    out["big_status"] = big.get("status")
    out["big_seconds"] = end - big["start"]
    out["reloads"] = [status for *_, status in reloads]
    out["reload_seconds"] = [round(r1 - r0, 1) for r0, r1, _ in reloads]
    out["internal_errors"] = internal
    out["p99_ratio"] = out["during_p99"] / out["base_p99"]
    return out
