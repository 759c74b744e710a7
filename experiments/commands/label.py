"""`tierwise label CONFIG`: ask every tier about your own prompts, score the answers, and write
the prompts × tiers table (and the experiment config) that `tierwise train` runs on."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HELP = """\
Label your own traffic. Reads prompts (a CSV/TSV/Parquet/JSONL/JSON file, a Hugging Face
dataset, or the gateway's decision log), deduplicates and samples them, sends each to every
tier through the upstreams config the gateway uses (API keys from environment variables only),
scores each answer (reference match, an LLM judge, or your Python function), and writes:

  <output.dir>/table.parquet   quality, |total_cost, |input_tokens, |output_tokens per tier
  <output.dir>/answers.jsonl   every answer, its score and the judge's raw output
  <output.dir>/<name>.yaml     the experiment config: `tierwise train` runs it as is

Stops cleanly at `budget_usd` (hard: a call starts only if its worst case fits) and reports
what was spent. Every finished call is cached (SQLite, <output.dir>/calls.sqlite), so a rerun
after a crash or a budget stop sends nothing twice. --dry-run prints the number of calls and
the estimated cost, and sends nothing.

Exit status: 0 done, 2 bad config or data, 3 stopped early (budget or failures; rerun to resume).
Example config: configs/label_example.yaml.
"""


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``tierwise label`` to the CLI."""
    p = sub.add_parser(
        "label",
        help="label your prompts by asking every tier (for training a router)",
        description=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("config", help="labelling YAML, e.g. configs/label_example.yaml")
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="print the calls and their estimated cost; send nothing",
    )
    p.add_argument(
        "--budget",
        type=float,
        default=None,
        metavar="USD",
        help="hard budget for the whole job, cached calls included (overrides budget_usd)",
    )
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument(
        "--no-inspect",
        action="store_true",
        help="skip the `data inspect` view of the written table",
    )
    p.set_defaults(func=run)


def _show(path: Path) -> str:
    """A path as the user would type it: relative to the working directory when inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _inspect(config: str) -> str:
    from tierwise.experiments.commands.data import _format, summarize
    from tierwise.experiments.config import load_experiment

    load_experiment(config)  # the written config must validate as an experiment
    return _format(summarize(config))


def run(args: argparse.Namespace) -> int:
    """Run ``tierwise label``; returns the exit code."""
    from tierwise.eval.labelling import load_labelling
    from tierwise.eval.labelling.job import prepare
    from tierwise.eval.labelling.job import run as run_job
    from tierwise.eval.labelling.report import format_report
    from tierwise.router.errors import ConfigError

    cfg = load_labelling(args.config)
    if args.budget is not None:
        if not args.budget > 0:
            raise ConfigError(f"`--budget` must be a positive USD amount, got {args.budget}")
        cfg.budget_usd = args.budget
    prep = prepare(cfg)
    f = prep.found
    print(
        f"{cfg.name}: {f.read} rows read, {f.skipped_empty} empty prompts skipped, "
        f"{f.duplicates} duplicates dropped; labelling {len(prep.plan.examples)} prompts × "
        f"{len(cfg.tiers)} tiers ({cfg.score.method} scoring)"
    )
    print("\n".join(prep.estimate.lines(cfg.budget_usd)))
    if args.dry_run:
        prep.cache.close()
        print("dry run: nothing sent")
        return 0
    outcome = run_job(prep, progress=not args.no_progress)
    w = outcome.written
    if args.json:
        print(json.dumps(outcome.report, indent=2, default=str))
    else:
        print()
        print(format_report(outcome.report))
    print(
        f"\ntable:   {_show(w.table)} ({w.rows} prompts)\nanswers: {_show(w.answers)}"
        f"\nconfig:  {_show(w.config)}"
    )
    if w.rows and not args.no_inspect and not args.json:
        print()
        print(_inspect(_show(w.config)))
    failed = sum(1 for o in outcome.result.outcomes if o is not None and o.error is not None)
    if failed:
        print(
            f"tierwise: {failed} calls failed (see `error` in {w.answers}); their prompts are "
            "not in the table; rerun to retry them (finished calls are cached)",
            file=sys.stderr,
        )
    stop = outcome.result.stop_reason
    if stop:
        print(
            f"tierwise: stopped early: {stop}; {outcome.result.budget.describe()}. The table "
            f"holds the {w.rows} prompts every tier answered; finished calls are cached, so "
            "rerunning (with a larger --budget / budget_usd if the budget stopped it) "
            "continues where this run stopped",
            file=sys.stderr,
        )
        return 3
    if w.rows:
        print(f"\nnext: tierwise train {_show(w.config)}")
    return 0
