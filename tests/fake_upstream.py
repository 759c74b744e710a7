"""A real OpenAI-compatible HTTP server standing in for paid LLM APIs in tests (stdlib only).

Run: ``python tests/fake_upstream.py [--port 0] [--behaviour module:function]``; it prints
``listening on http://127.0.0.1:PORT/v1`` once it accepts connections.

- ``POST /v1/chat/completions`` (also ``stream: true`` as SSE, with a final usage chunk when
  ``stream_options.include_usage``), ``POST /v1/completions``, ``GET /v1/models``.
- The answer comes from a behaviour ``(model, messages, params) -> str``: by default
  :func:`echo`. ``--behaviour pkg.module:fn`` or ``path/to/file.py:fn`` plugs in another (tests add
  their own in their own module). A behaviour that raises makes a 500 with the message.
- Usage counts whitespace-separated words (prompt: every message's text; completion: the answer).
- Faults (``POST /_faults``, JSON): ``{"model": "m" or "*", "fail_next": N, "status": S, "body":
  {...}}`` answers the next N calls for that model with status S; ``{"drop_next": N}`` closes the
  connection without answering; ``{"latency_s": x}`` delays every answer, ``{"chunk_delay_s":
  x}`` each streamed chunk; ``{"reset": true}`` clears every fault. ``GET /_stats``: calls per
  model and status.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

Behaviour = Callable[[str, list[dict[str, Any]], dict[str, Any]], str]
MODELS = ("small", "mid", "big")


def message_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def echo(model: str, messages: list[dict[str, Any]], params: dict[str, Any]) -> str:
    """Default behaviour: names the model and repeats the last user message."""
    last: dict[str, Any] = next((m for m in reversed(messages) if m.get("role") == "user"), {})
    return f"[{model}] you said: {message_text(last.get('content'))}"


def load_behaviour(spec: str) -> Behaviour:
    """``module:function`` or ``path/to/file.py:function``."""
    module_name, _, fn = spec.rpartition(":")
    if not module_name or not fn:
        raise SystemExit(f"--behaviour must be module:function, got {spec!r}")
    if module_name.endswith(".py"):
        loader = importlib.util.spec_from_file_location(Path(module_name).stem, module_name)
        assert loader is not None and loader.loader is not None
        module = importlib.util.module_from_spec(loader)
        loader.loader.exec_module(module)
    else:
        module = importlib.import_module(module_name)
    return getattr(module, fn)


class State:
    def __init__(self, behaviour: Behaviour) -> None:
        self.behaviour = behaviour
        self.lock = threading.Lock()
        self.faults: dict[str, dict[str, Any]] = {}
        self.latency_s = 0.0
        self.chunk_delay_s = 0.0
        self.calls: dict[str, int] = {}
        self.statuses: dict[str, int] = {}

    def take_fault(self, model: str) -> dict[str, Any] | None:
        """The fault to apply to this call (decrementing its count), if any."""
        with self.lock:
            for key in (model, "*"):
                f = self.faults.get(key)
                if f and f["left"] > 0:
                    f["left"] -= 1
                    return dict(f)
        return None

    def count(self, model: str, status: int) -> None:
        with self.lock:
            self.calls[model] = self.calls.get(model, 0) + 1
            self.statuses[f"{model}:{status}"] = self.statuses.get(f"{model}:{status}", 0) + 1


def words(text: str) -> int:
    return len(text.split())


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Server

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in two writes: without NODELAY, Nagle's algorithm and the
        # client's delayed ACK add ~40 ms to every keep-alive answer.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    # -- plumbing --------------------------------------------------------------------------
    def _json(self, status: int, obj: Any) -> None:
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> Any:
        n = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(n) if n else b""
        return json.loads(raw) if raw else {}

    def _drop(self) -> None:
        self.close_connection = True
        self.connection.shutdown(2)

    # -- endpoints -------------------------------------------------------------------------
    def do_GET(self) -> None:
        state = self.server.state
        if self.path == "/v1/models":
            data = [{"id": m, "object": "model", "owned_by": "fake"} for m in MODELS]
            self._json(200, {"object": "list", "data": data})
        elif self.path == "/_stats":
            with state.lock:
                self._json(200, {"calls": dict(state.calls), "statuses": dict(state.statuses)})
        elif self.path == "/health":
            self._json(200, {"status": "ok"})
        else:
            self._json(404, {"error": {"message": f"no route {self.path}"}})

    def do_POST(self) -> None:
        state = self.server.state
        try:
            body = self._body()
        except ValueError:
            self._json(400, {"error": {"message": "body is not JSON", "type": "invalid_request"}})
            return
        if self.path == "/_faults":
            self._set_faults(body)
            return
        if self.path not in ("/v1/chat/completions", "/v1/completions"):
            self._json(404, {"error": {"message": f"no route {self.path}"}})
            return
        model = str(body.get("model", ""))
        auth = self.server.require_key
        if auth and self.headers.get("authorization") != f"Bearer {auth}":
            state.count(model, 401)
            self._json(401, {"error": {"message": "bad API key", "type": "auth"}})
            return
        fault = state.take_fault(model)
        if fault and fault.get("drop"):
            state.count(model, 0)
            self._drop()
            return
        if state.latency_s:
            time.sleep(state.latency_s)
        if fault:
            state.count(model, fault["status"])
            self._json(fault["status"], fault.get("body") or {"error": {"message": "injected"}})
            return
        chat = self.path == "/v1/chat/completions"
        messages = (
            body.get("messages") if chat else [{"role": "user", "content": body.get("prompt")}]
        )
        if not isinstance(messages, list) or not model:
            state.count(model, 400)
            self._json(400, {"error": {"message": "`model` and `messages` are required",
                                       "type": "invalid_request_error"}})  # fmt: skip
            return
        params = {k: v for k, v in body.items() if k not in ("model", "messages", "prompt")}
        try:
            answer = state.behaviour(model, messages, params)
        except Exception as err:
            state.count(model, 500)
            self._json(500, {"error": {"message": f"behaviour failed: {err}"}})
            return
        state.count(model, 200)
        usage = {
            "prompt_tokens": sum(words(message_text(m.get("content"))) for m in messages),
            "completion_tokens": words(answer),
        }
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        if body.get("stream"):
            include = bool((body.get("stream_options") or {}).get("include_usage"))
            self._stream(model, answer, usage if include else None, chat)
        else:
            self._json(200, self._completion(model, answer, usage, chat))

    def _completion(self, model: str, answer: str, usage: dict[str, int], chat: bool) -> Any:
        choice: dict[str, Any] = {"index": 0, "finish_reason": "stop"}
        if chat:
            choice["message"] = {"role": "assistant", "content": answer}
        else:
            choice["text"] = answer
        return {
            "id": "chatcmpl-" + uuid.uuid4().hex[:12],
            "object": "chat.completion" if chat else "text_completion",
            "created": int(time.time()),
            "model": model,
            "choices": [choice],
            "usage": usage,
        }

    def _stream(self, model: str, answer: str, usage: dict[str, int] | None, chat: bool) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("cache-control", "no-cache")
        self.send_header("connection", "close")
        self.end_headers()
        self.close_connection = True
        cid = "chatcmpl-" + uuid.uuid4().hex[:12]
        pieces = [w + " " for w in answer.split(" ")]
        pieces[-1] = pieces[-1][:-1]
        base = {"id": cid, "object": "chat.completion.chunk", "created": int(time.time()),
                "model": model}  # fmt: skip
        for i, piece in enumerate(pieces):
            if chat:
                delta = {"content": piece} if i else {"role": "assistant", "content": piece}
                choice: dict[str, Any] = {"index": 0, "delta": delta, "finish_reason": None}
            else:
                choice = {"index": 0, "text": piece, "finish_reason": None}
            self._event({**base, "choices": [choice]})
        last = {"index": 0, "delta": {}, "finish_reason": "stop"} if chat else {
            "index": 0, "text": "", "finish_reason": "stop"}  # fmt: skip
        self._event({**base, "choices": [last]})
        if usage is not None:
            self._event({**base, "choices": [], "usage": usage})
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()

    def _event(self, obj: Any) -> None:
        self.wfile.write(b"data: " + json.dumps(obj).encode() + b"\n\n")
        self.wfile.flush()
        if self.server.state.chunk_delay_s:
            time.sleep(self.server.state.chunk_delay_s)

    def _set_faults(self, body: dict[str, Any]) -> None:
        state = self.server.state
        with state.lock:
            if body.get("reset"):
                state.faults.clear()
                state.latency_s = state.chunk_delay_s = 0.0
            if "latency_s" in body:
                state.latency_s = float(body["latency_s"])
            if "chunk_delay_s" in body:
                state.chunk_delay_s = float(body["chunk_delay_s"])
            key = str(body.get("model", "*"))
            if body.get("fail_next"):
                state.faults[key] = {"left": int(body["fail_next"]),
                                     "status": int(body.get("status", 500)),
                                     "body": body.get("body")}  # fmt: skip
            if body.get("drop_next"):
                state.faults[key] = {"left": int(body["drop_next"]), "drop": True}
        self._json(200, {"ok": True})


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256

    def __init__(self, port: int, state: State, require_key: str | None) -> None:
        super().__init__(("127.0.0.1", port), Handler)
        self.state = state
        self.require_key = require_key


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--behaviour", default=None, help="module:function or file.py:function")
    p.add_argument("--require-key", default=None, help="answer 401 unless this bearer key is sent")
    args = p.parse_args(argv)
    behaviour = load_behaviour(args.behaviour) if args.behaviour else echo
    server = Server(args.port, State(behaviour), args.require_key)
    print(f"listening on http://127.0.0.1:{server.server_address[1]}/v1", flush=True)
    server.serve_forever(poll_interval=0.2)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `tests.x:fn` behaviours
    main()
