"""`tierwise gateway ARTIFACT --upstreams upstreams.yaml`: the OpenAI-compatible gateway."""

from __future__ import annotations

import argparse
import logging
import os
from typing import Any

from tierwise.experiments.commands.serve import (
    TOKEN_ENV,
    _install_sighup,
    _positive_float,
    _positive_int,
    bind,
)
from tierwise.router.errors import ConfigError

HELP = """\
Put a router in front of your models. Point any OpenAI client at
http://HOST:PORT/v1 and send `model: "tierwise"` (or "tierwise:<knob>") to route each
request to the cheapest tier predicted to succeed, or a tier's name to pin it. The request
is forwarded to that tier's OpenAI-compatible upstream (upstreams.yaml); timeouts, 429 and
5xx are retried and then fall back to the next tier up, never down. Upstream 4xx answers
are passed through. Streaming (`stream: true`) is relayed chunk by chunk.

Every response has headers x-tierwise-model (the tier that answered),
x-tierwise-routed-model, x-tierwise-predicted-success, x-tierwise-expected-cost,
x-tierwise-knob and x-tierwise-fallback-reason. GET /metrics counts requests, fallbacks,
tokens and USD per tier. The router embeds the last user message (--embed conversation:
every user/assistant turn; never the system prompt), normalized as in training.

upstreams.yaml:
  default: {base_url: "http://127.0.0.1:9000/v1", api_key_env: OPENAI_API_KEY}
  upstreams:
    big: {model: gpt-4o, timeout_s: 120, max_concurrency: 8,
          usd_per_1m_input: 2.5, usd_per_1m_output: 10}
  fallback_order: [small, mid, big]      # optional; default: by price
API keys come only from the named environment variables.

Decision log (--log DIR or --log postgresql://...): one record per request, written in
the background (a full queue drops records and counts them in /metrics). MLflow tracing
(--mlflow-experiment NAME): one trace per request, in the background too.
Hot swap works as in `tierwise serve` (SIGHUP, --watch; POST /admin/reload only
when TIERWISE_ADMIN_TOKEN is set).
"""
log = logging.getLogger("tierwise.gateway")


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``tierwise gateway`` to the CLI."""
    p = sub.add_parser(
        "gateway",
        help="OpenAI-compatible gateway: route, forward, fall back, log (needs tierwise[serve])",
        description=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("artifact", help="router artifact (router.tierwise or a directory)")
    p.add_argument("--upstreams", required=True, help="upstreams YAML: an endpoint per tier")
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8080, help="TCP port (default 8080; 0 = any)")
    p.add_argument(
        "--embed",
        choices=["last_user", "conversation"],
        default="last_user",
        help="what of a chat the router embeds (default: the last user message)",
    )
    p.add_argument("--threads", type=_positive_int, default=None, help="onnxruntime threads")
    p.add_argument(
        "--max-prompt-chars",
        type=_positive_int,
        default=None,
        help="longest routed text accepted (default: the artifact's setting)",
    )
    p.add_argument(
        "--max-body-bytes",
        type=_positive_int,
        default=8 * 1024 * 1024,
        help="largest request body (default 8 MiB)",
    )
    p.add_argument(
        "--watch",
        type=_positive_float,
        default=None,
        metavar="SECONDS",
        help="reload when the artifact's files change, checking every SECONDS",
    )
    p.add_argument(
        "--allow-embedder",
        action="append",
        default=[],
        metavar="SPEC",
        help="also load this embedder if the artifact names it (as in `tierwise serve`); by "
        "default only a bundled ONNX embedder or hashing:<dim> loads",
    )
    p.add_argument(
        "--require-onnx",
        action="store_true",
        help="refuse artifacts without a bundled ONNX embedder",
    )
    g = p.add_argument_group("decision log")
    g.add_argument(
        "--log",
        default=None,
        metavar="DIR|postgresql://...",
        help="write one record per request to files in DIR or to PostgreSQL",
    )
    g.add_argument("--log-format", choices=["jsonl", "parquet"], default="jsonl")
    g.add_argument(
        "--log-rotate-mb",
        type=_positive_float,
        default=64.0,
        help="start a new file past this size (default 64)",
    )
    g.add_argument(
        "--log-rotate-minutes",
        type=_positive_float,
        default=60.0,
        help="start a new file after this long (default 60)",
    )
    g.add_argument("--log-table", default="tierwise_decisions", help="PostgreSQL table")
    g.add_argument(
        "--log-prompts",
        action="store_true",
        help="also log (and trace) the routed text; default: only its SHA-256",
    )
    g.add_argument(
        "--log-queue",
        type=_positive_int,
        default=10_000,
        help="records waiting to be written before new ones are dropped",
    )
    t = p.add_argument_group("MLflow tracing")
    t.add_argument(
        "--mlflow-experiment",
        default=None,
        metavar="NAME",
        help="trace every request into this MLflow experiment",
    )
    t.add_argument(
        "--mlflow-tracking-uri",
        default=None,
        help="MLflow store (default: $MLFLOW_TRACKING_URI, else MLflow's default store)",
    )
    p.add_argument("--access-log", action="store_true", help="log every request")
    p.add_argument(
        "--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"]
    )
    p.set_defaults(func=run)


def _open_log(args: argparse.Namespace, metrics: Any) -> Any:
    if not args.log:
        return None
    from tierwise.router.gateway.decision_log import open_log

    return open_log(
        args.log,
        lambda result, n: metrics.log_records.inc(result, amount=n),
        fmt=args.log_format,
        rotate_mb=args.log_rotate_mb,
        rotate_minutes=args.log_rotate_minutes,
        table=args.log_table,
        maxsize=args.log_queue,
    )


def _start_tracer(args: argparse.Namespace, metrics: Any) -> Any:
    if not args.mlflow_experiment:
        return None
    from tierwise.router.gateway.tracing import Tracer

    # Started first: its process imports MLflow while the router loads.
    return Tracer(
        args.mlflow_experiment,
        lambda result, n: metrics.traces.inc(result, amount=n),
        tracking_uri=args.mlflow_tracking_uri,
    )


def _build(
    args: argparse.Namespace, upstreams: Any, metrics: Any, limits: Any, threads: int, token: Any
) -> Any:
    from tierwise.router.gateway.app import create_gateway

    return create_gateway(
        args.artifact,
        upstreams,
        limits=limits,
        num_threads=threads,
        watch_interval=args.watch,
        admin_token=token,
        require_embedded=args.require_onnx,
        allow_embedders=args.allow_embedder,
        embed=args.embed,
        metrics=metrics,
        log_prompts=args.log_prompts,
    )


def run(args: argparse.Namespace) -> int:
    """Run ``tierwise gateway`` until stopped; returns the exit code."""
    try:
        import fastapi  # noqa: F401
        import httpx  # noqa: F401
        import uvicorn

        from tierwise.router.gateway.metrics import GatewayMetrics
    except ImportError as err:
        raise ConfigError(
            f"`tierwise gateway` needs fastapi, uvicorn and httpx ({err}); install them with "
            "`pip install 'tierwise[serve]'`"
        ) from None
    from tierwise.router.embed.sentence import available_cpus
    from tierwise.router.runtime import limit_blas_threads
    from tierwise.router.serve.schemas import Limits
    from tierwise.router.upstreams import load_upstreams

    if not 0 <= args.port <= 65535:
        raise ConfigError(f"--port must be from 0 to 65535, got {args.port}")
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line per upstream call
    upstreams = load_upstreams(args.upstreams)
    limit_blas_threads(1)
    threads = args.threads or max(1, min(available_cpus() - 1, 4))
    token = os.environ.get(TOKEN_ENV) or None
    metrics = GatewayMetrics()
    limits = Limits(args.max_prompt_chars, 256, args.max_body_bytes)
    tracer = _start_tracer(args, metrics)
    try:
        app = _build(args, upstreams, metrics, limits, threads, token)
        if tracer is not None:
            tracer.wait_ready()
    except BaseException:
        if tracer is not None:
            tracer.close()
        raise
    app.state.tracer = tracer
    app.state.decision_log = _open_log(args, metrics)  # after every check: no empty log left
    sock = bind(args.host, args.port)
    _install_sighup(app.state.holder)
    host, port = sock.getsockname()[:2]
    info = app.state.holder.current.info()
    log.info(
        "gateway for %s (%s; tiers %s, fallback order %s) on http://%s:%s/v1",
        args.artifact,
        info["checksum"][:12],
        info["models"],
        app.state.forwarder.order,
        host,
        port,
    )
    config = uvicorn.Config(
        app, log_level=args.log_level, access_log=args.access_log, lifespan="on"
    )
    uvicorn.Server(config).run(sockets=[sock])
    return 0
