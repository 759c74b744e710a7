"""`tierwise serve ARTIFACT`: the HTTP routing service (FastAPI + uvicorn)."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
from typing import Any

from tierwise.router.errors import ConfigError

HELP = """\
Serve a router artifact over HTTP. POST /route takes {"prompt": "..."} or
{"prompts": [...]} (optionally "knob") and answers, per prompt, the chosen model, every
model's predicted success and expected cost, the policy and the knob; a bad item in a
batch gets its own error. GET /health, GET /metadata (the manifest), GET /metrics
(Prometheus), GET /openapi.json and /docs.

Hot swap: replace the artifact file (tierwise writes artifacts atomically), then send
SIGHUP or run with --watch SECONDS. The new artifact is loaded completely before it
replaces the old one; if it cannot be loaded the old one keeps serving and the reload
reports why. POST /admin/reload is DISABLED (403) unless the environment variable
TIERWISE_ADMIN_TOKEN is set; then it needs `Authorization: Bearer <token>`.

Embedders: the server uses the ONNX embedder bundled by `tierwise export` (torch-free),
or hashing:<dim>. An artifact naming any other embedder (minilm, sentence-transformers:
<dir>, onnx:<dir>) is refused unless you allow that exact name with --allow-embedder, so
an artifact cannot make the server import torch or read an arbitrary directory.

Fairness: a big batch is routed in slices shared with other requests, so small requests
keep their latency while it runs; --max-request-tokens bounds one request's work.
"""
TOKEN_ENV = "TIERWISE_ADMIN_TOKEN"
log = logging.getLogger("tierwise.serve")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}")
    return value


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``tierwise serve`` to the CLI."""
    p = sub.add_parser(
        "serve",
        help="serve a router over HTTP (needs tierwise[serve])",
        description=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("artifact", help="router artifact (router.tierwise or a directory)")
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="TCP port (default 8000; 0 = any)")
    p.add_argument(
        "--threads",
        type=_positive_int,
        default=None,
        help="onnxruntime threads (default: usable CPUs minus one for the HTTP loop, 1 to 4)",
    )
    p.add_argument(
        "--max-prompt-chars",
        type=_positive_int,
        default=None,
        help="longest prompt accepted (default: the artifact's setting)",
    )
    p.add_argument(
        "--max-batch",
        type=_positive_int,
        default=256,
        help="most prompts per request (default 256)",
    )
    p.add_argument(
        "--max-body-bytes",
        type=_positive_int,
        default=8 * 1024 * 1024,
        help="largest request body (default 8 MiB)",
    )
    p.add_argument(
        "--max-request-tokens",
        type=_positive_int,
        default=100_000,
        help="most model tokens one request may cost, estimated from prompt lengths and capped "
        "per prompt at the embedder's limit (default 100,000: a full batch of 256-token prompts)",
    )
    p.add_argument(
        "--allow-embedder",
        action="append",
        default=[],
        metavar="SPEC",
        help="also load this embedder if an artifact names it (exact spec, e.g. minilm; "
        "repeatable); by default only bundled ONNX embedders and hashing:<dim> load",
    )
    p.add_argument(
        "--watch",
        type=_positive_float,
        default=None,
        metavar="SECONDS",
        help="reload when the artifact's files change, checking every SECONDS",
    )
    p.add_argument(
        "--require-onnx",
        action="store_true",
        help="refuse artifacts without a bundled ONNX embedder (torch-free serving)",
    )
    p.add_argument("--access-log", action="store_true", help="log every request")
    p.add_argument(
        "--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"]
    )
    p.set_defaults(func=run)


def bind(host: str, port: int) -> socket.socket:
    """Bind before loading uvicorn, so a taken port is one clear error, not a log line."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as err:
        raise ConfigError(f"--host {host!r} cannot be resolved ({err.strerror})") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as err:
        sock.close()
        raise ConfigError(
            f"cannot listen on {host}:{port} ({err.strerror}); choose another --port or stop "
            "the process using it"
        ) from None
    sock.set_inheritable(True)
    return sock


def _install_sighup(holder: Any) -> None:
    if not hasattr(signal, "SIGHUP"):
        return

    def on_sighup(signum: int, frame: Any) -> None:
        log.info("SIGHUP: reloading %s", holder.path)
        # A failure is logged by the holder and the old artifact serves on; retrieving the
        # exception keeps the future from logging it again.
        holder.reload_in_background().add_done_callback(lambda f: f.exception())

    signal.signal(signal.SIGHUP, on_sighup)


def run(args: argparse.Namespace) -> int:
    """Run ``tierwise serve`` until stopped; returns the exit code."""
    try:
        import uvicorn

        from tierwise.router.serve.app import create_app
    except ImportError as err:
        raise ConfigError(
            f"`tierwise serve` needs fastapi and uvicorn ({err}); install them with "
            "`pip install 'tierwise[serve]'`"
        ) from None
    from tierwise.router.serve.schemas import Limits

    if not 0 <= args.port <= 65535:
        raise ConfigError(f"--port must be from 0 to 65535, got {args.port}")
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    from tierwise.router.embed.sentence import available_cpus
    from tierwise.router.runtime import limit_blas_threads

    limit_blas_threads(1)
    # One batching worker runs the model while the event loop parses and answers HTTP: give
    # the model every core but one (measured on 2 cores: 1 thread beat 2 by ~2x under load).
    threads = args.threads or max(1, min(available_cpus() - 1, 4))
    token = os.environ.get(TOKEN_ENV) or None
    limits = Limits(
        args.max_prompt_chars, args.max_batch, args.max_body_bytes, args.max_request_tokens
    )
    app = create_app(
        args.artifact,
        limits=limits,
        num_threads=threads,
        watch_interval=args.watch,
        admin_token=token,
        require_embedded=args.require_onnx,
        allow_embedders=args.allow_embedder,
    )
    sock = bind(args.host, args.port)
    holder = app.state.holder
    _install_sighup(holder)
    info = holder.current.info()
    host, port = sock.getsockname()[:2]
    log.info(
        "serving %s (%s, embedder %s via %s, %d model thread(s)) on http://%s:%s",
        args.artifact,
        info["checksum"][:12],
        info["embedder"],
        info["embedder_runtime"],
        threads,
        host,
        port,
    )
    if token is None:
        log.info("POST /admin/reload is disabled (set %s to enable it); SIGHUP reloads", TOKEN_ENV)
    config = uvicorn.Config(
        app, log_level=args.log_level, access_log=args.access_log, lifespan="on"
    )
    uvicorn.Server(config).run(sockets=[sock])
    return 0
