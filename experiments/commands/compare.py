"""`tierwise compare [EXPERIMENT]`: the routing policies tracked in MLflow, as a table and chart."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from tierwise.router.errors import ConfigError

HELP = """\
Compare the routing policies tracked in MLflow: trained routers, tuning trials and the
routers chosen from studies. Prints a table sorted by cost at the target quality (cheapest
first) and writes one PNG chart with every policy's cost-quality points (log cost axis).
The experiment defaults to the --config's tracking experiment (its name).
"""


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``tierwise compare`` to the CLI."""
    p = sub.add_parser(
        "compare",
        help="compare tracked routing policies (MLflow)",
        description=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("experiment", nargs="?", default=None, help="MLflow experiment name")
    p.add_argument("--config", default=None, help="experiment YAML (experiment name and URI)")
    p.add_argument("--tracking-uri", default=None, help="MLflow tracking URI")
    p.add_argument(
        "--sort",
        default="cost_at_target",
        help="cost_at_target (default), cost_per_1k, quality, aiq, gap_closed, pct_ref_cost, "
        "routing_latency_ms or start_time",
    )
    p.add_argument(
        "--kind", action="append", help="only runs of this kind: train, chosen, trial (repeatable)"
    )
    p.add_argument(
        "--limit",
        type=int,
        default=None,
        help="show the first N tuning trials (every trained and chosen router is shown)",
    )
    p.add_argument(
        "--out", type=Path, default=None, help="chart PNG (default: runs/compare_<exp>.png)"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``tierwise compare``; returns the exit code."""
    from tierwise.experiments.tracking.compare import (
        KINDS,
        SORT_KEYS,
        format_table,
        load_runs,
        plot_runs,
        select,
        sort_runs,
    )
    from tierwise.experiments.tracking.config import TrackingConfig, sqlite_path
    from tierwise.experiments.tracking.store import check_reachable, connect

    t0 = time.perf_counter()
    if args.sort not in SORT_KEYS:
        raise ConfigError(f"`--sort` must be one of {sorted(SORT_KEYS)}, got {args.sort!r}")
    bad = [k for k in args.kind or () if k not in KINDS]
    if bad:
        raise ConfigError(f"`--kind` must be one of {list(KINDS)}, got {bad[0]!r}")
    if args.config:
        from tierwise.experiments.config import load_experiment

        cfg = load_experiment(args.config)
        tracking = cfg.tracking.resolve(cfg.name, tracking_uri=args.tracking_uri)
    elif args.experiment:
        tracking = TrackingConfig().resolve(args.experiment, tracking_uri=args.tracking_uri)
    else:
        raise ConfigError("give an EXPERIMENT name or --config CONFIG to compare")
    experiment = args.experiment or tracking.experiment
    db = sqlite_path(tracking.uri)
    if db is not None and not db.is_file():
        raise ConfigError(
            f"no MLflow store at {tracking.uri} ({db} does not exist); run `tierwise train` "
            "with tracking on first, or pass --tracking-uri"
        )
    check_reachable(tracking.uri)
    client = connect(tracking, check=False)
    runs = load_runs(
        client, tracking.uri, experiment, kinds=tuple(args.kind) if args.kind else KINDS
    )
    if not runs:
        raise ConfigError(
            f"experiment {experiment!r} at {tracking.uri} has no finished tierwise runs; "
            "train or tune with tracking on first"
        )
    total = len(runs)
    shown = select(sort_runs(runs, args.sort), args.limit)
    kinds = {k: sum(r.kind == k for r in runs) for k in KINDS}
    parts = ", ".join(f"{n} {k}" for k, n in kinds.items() if n)
    print(f"{experiment}: {total} tracked policies ({parts}) at {tracking.uri}")
    if len(shown) < total:
        print(f"showing every trained and chosen router and the first {args.limit} trials")
    print()
    print(format_table(shown, sort=args.sort))
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in experiment)
    out = args.out or Path("runs") / f"compare_{safe}.png"
    plot_runs(shown, out, title=f"{experiment}: {len(shown)} of {total} policies (cost–quality)")
    print(f"\nchart: {out}  ({time.perf_counter() - t0:.1f}s)")
    return 0
