"""`tierwise bench CONFIG [CONFIG…]`: router quality on any dataset, over split seeds."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from tierwise.router.errors import ConfigError

HELP = """\
Benchmark the router on your own traffic. For every experiment config and split seed (the
config's train / calibration / test fractions; only the seed changes), each configuration is
fitted on train and calibration exactly as `tierwise train` would, and its swept cost-quality
curve is scored ONCE on the test split: AIQ, gap closed (zero router = 0, oracle = 1), the cost
at which it reaches 95% / 100% of the best single model's quality (% of that model's cost), and
the operating point it chose on calibration (quality / cost on test, and whether it met its
bar). Tables show mean ± 95% t-interval over seeds. Embeddings are computed once per dataset
and kept in the embedding cache (router.cache_dir, $TIERWISE_CACHE_DIR or .tierwise-cache).

By default two configurations run: `default` (the config's router section) and `knn` (plain
kNN, k = 100), the reference every learned router should beat.

examples:
  tierwise bench configs/routerbench.yaml --seeds 0-4
  tierwise bench configs/*.yaml --predictors default knn irt 'stack:C=0.1' --json out.json
  tierwise bench configs/routerbench.yaml --set crossfit.folds=5 --variant crossfit
  tierwise bench --merge a.json b.json --markdown docs/benchmarks/router.md   # tables only
"""


def parse_seeds(text: str) -> list[int]:
    """``"0-4"`` → [0, 1, 2, 3, 4]; ``"0,2,5"`` and ``"3"`` work too."""
    out: list[int] = []
    try:
        for part in filter(None, text.replace(" ", ",").split(",")):
            lo, sep, hi = part.partition("-")
            out.extend(range(int(lo), int(hi) + 1) if sep else [int(lo)])
    except ValueError:
        raise ConfigError(
            f"`--seeds` must be a range like 0-4 or a list like 0,1,2, got {text!r}"
        ) from None
    if not out:
        raise ConfigError(f"`--seeds` must name at least one seed, got {text!r}")
    return list(dict.fromkeys(out))


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``tierwise bench`` to the CLI."""
    p = sub.add_parser(
        "bench",
        help="benchmark router configurations on any dataset over several split seeds",
        description=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("configs", nargs="*", help="experiment YAML files (one dataset each)")
    p.add_argument("--seeds", default="0-4", help="split seeds: 0-4 or 0,1,2 (default 0-4)")
    p.add_argument(
        "--predictors",
        nargs="+",
        default=["default", "knn"],
        help="default | knn (k=100) | a registry name | 'name:key=value;key=value' "
        "(default: default knn)",
    )
    p.add_argument(
        "--policies", nargs="+", default=["default"], help="default | utility | threshold"
    )
    p.add_argument(
        "--normalizations", nargs="+", default=["default"], help="default | head | tail | head_tail"
    )
    p.add_argument(
        "--calibrations",
        nargs="+",
        default=["default"],
        help="default | platt | isotonic | centered_isotonic | none",
    )
    p.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="PATH=VALUE",
        help="override a router setting for every configuration (repeatable), "
        "e.g. --set crossfit.folds=5",
    )
    p.add_argument("--variant", default="", help="label for this run's --set overrides")
    p.add_argument(
        "--max-prompts", type=int, default=0, help="subsample larger datasets (0 = all prompts)"
    )
    p.add_argument("--json", type=Path, help="write per-seed results here ({'results': [...]})")
    p.add_argument("--merge", nargs="*", type=Path, default=[], help="add earlier --json runs")
    p.add_argument("--markdown", type=Path, help="rewrite the generated tables block of this file")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.add_argument("--verbose", action="store_true", help="one line per fitted configuration")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``tierwise bench``; returns the exit code."""
    from tierwise.experiments.bench.data import Embeddings, load_bench_data
    from tierwise.experiments.bench.engine import Grid, Result, run_dataset
    from tierwise.experiments.bench.spec import parse_sets, with_overrides
    from tierwise.experiments.bench.summary import (
        aggregate,
        read_json,
        tables,
        write_json,
        write_markdown,
    )

    if not args.configs and not args.merge:
        raise ConfigError("`tierwise bench` needs at least one CONFIG (or --merge FILE ...)")
    grid = Grid(
        seeds=parse_seeds(args.seeds),
        predictors=args.predictors,
        policies=args.policies,
        normalizations=args.normalizations,
        calibrations=args.calibrations,
        overrides=parse_sets(args.sets),
        variant=args.variant or " ".join(args.sets),
    )
    progress = not args.no_progress
    log = (lambda line: print(line, file=sys.stderr, flush=True)) if args.verbose else None
    t0 = time.perf_counter()
    results: list[Result] = []
    notes: dict[str, str] = {}
    embeddings: dict[str, Embeddings] = {}
    for path in args.configs:
        data = load_bench_data(path, args.max_prompts or None)
        notes[data.key] = data.note
        print(f"== {data.key}: {data.note}", file=sys.stderr, flush=True)
        router = with_overrides(data.config.router, grid.overrides)  # --set embedder.name too
        key = router.embedder.name + "|" + str(router.cache_dir)
        if key not in embeddings:
            embeddings[key] = Embeddings.for_config(router)
        results += run_dataset(data, embeddings[key], grid, progress=progress, log=log)
        if args.json:  # after every dataset: an interrupted run keeps what it measured
            write_json(args.json, results, notes, time.perf_counter() - t0)
    wall = time.perf_counter() - t0
    merged = list(results)
    for path in args.merge:
        more, more_notes, more_wall = read_json(path)
        merged += more
        wall += more_wall
        for k, v in more_notes.items():
            notes.setdefault(k, v)
    rows = aggregate(merged)
    print(tables(rows, notes))
    print(f"\nwall time {wall:.0f} s (incl. merged runs)")
    if args.markdown:
        cmd = (
            " ".join(["tierwise bench", *sys.argv[2:]])
            if sys.argv[1:2] == ["bench"]
            else "tierwise bench"
        )
        write_markdown(args.markdown, rows, notes, wall, cmd)
    return 0
