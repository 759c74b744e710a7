"""`tierwise tune CONFIG`: an Optuna study over the router, resumable, then one test evaluation."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HELP = """\
Search router configurations (predictor and its hyperparameters, routing policy, calibration,
prompt normalization, embedder) with Optuna. Trials are scored out of sample and NEVER on test:
by default 5-fold cross-validation over train + calibration (tune.scheme: cv), or the
calibration split with a cross-fitted calibrator (tune.scheme: cross_fit). Embeddings are
computed once (and cached on disk). The test split is used once, at the end, to score the
chosen routers beside the untuned config and every baseline.

modes (tune.mode, or --mode):
  constrained      cheapest router whose quality reaches the target (tune.target, default 95%
                   of the best model's quality)
  multi_objective  cost vs quality: a Pareto set of routers, each with its own operating point

The study is named (--study, default the config name) and stored (--storage, default
runs/<name>/optuna.journal; a sqlite:/// or postgresql:// URL lets several machines or
processes work on one study). Running the command again resumes it: finished trials count
toward --trials, and a trial interrupted by a kill is re-run. A study created for another
search space or dataset is refused.

Writes, under --out (default runs/<name>/tune/): router.tierwise (the chosen router),
cost_quality.png (test split), trials.png (every trial on calibration), tune_report.json.
Search space and options: the `tune:` section of the config (see experiments/tuning/config.py).
Exit status 1 when no trial meets the constrained target (the closest one is reported).

examples:
  tierwise tune configs/routerbench.yaml --trials 200
  tierwise tune configs/routerbench.yaml --mode multi_objective --study rb-pareto
  tierwise tune cfg.yaml --storage postgresql://user@db/optuna --no-report   # an extra worker
"""


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``tierwise tune`` to the CLI."""
    p = sub.add_parser(
        "tune",
        help="search router configurations with Optuna (resumable), then test the best",
        description=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("config", help="experiment YAML, e.g. configs/routerbench.yaml")
    p.add_argument("--trials", type=int, metavar="N", help="finished trials the study should reach")
    p.add_argument("--timeout", type=float, metavar="S", help="stop starting trials after S s")
    p.add_argument("--storage", metavar="URL", help="journal file path or database URL")
    p.add_argument("--study", metavar="NAME", help="study name (default: the config's name)")
    p.add_argument("--mode", choices=("constrained", "multi_objective"), help="override tune.mode")
    p.add_argument("--sampler", choices=("tpe", "nsga2", "random"), help="override tune.sampler")
    p.add_argument("--seed", type=int, help="override tune.seed")
    p.add_argument("--out", type=Path, help="report folder (default: runs/<name>/tune)")
    p.add_argument(
        "--no-report", action="store_true", help="run trials only (e.g. for extra workers)"
    )
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.add_argument(
        "--track",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="log trials to MLflow (default: the config's tracking.enabled)",
    )
    p.add_argument("--tracking-uri", default=None, help="MLflow tracking URI")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``tierwise tune``; returns the exit code."""
    from tierwise.experiments.config import load_experiment
    from tierwise.experiments.tuning.hooks import TrackingHook, tracking_available
    from tierwise.experiments.tuning.session import TuneSession

    cfg = load_experiment(args.config)
    overrides = {
        "n_trials": args.trials,
        "timeout_s": args.timeout,
        "storage": args.storage,
        "study_name": args.study,
        "mode": args.mode,
        "sampler": args.sampler,
        "seed": args.seed,
    }
    progress = not args.no_progress
    session = TuneSession(cfg, overrides=overrides, progress=progress)
    tune = session.tune
    track = cfg.tracking.enabled if args.track is None else args.track
    hook = (
        TrackingHook(cfg, session.prep, tracking_uri=args.tracking_uri)
        if track and tracking_available()
        else None
    )
    print(
        f"study {session.study_name!r} in {session.storage_label}: {tune.mode}, "
        f"target {session.target_text()} (quality "
        f"{session.ws.target_quality(session.quality_fraction):.4f}), "
        f"{tune.sampler} sampler, seed {tune.seed}"
    )
    print(
        f"{len(session.ws.spaces)} embedding space(s) ready in {session.setup_seconds:.1f}s; "
        f"trials scored on {session.ws.scheme_text}"
    )
    try:
        summary = session.run(on_trial_end=[hook] if hook is not None else [])
    except KeyboardInterrupt:
        print(
            "tierwise: interrupted; finished trials are saved in the study, run the same "
            "command again to continue",
            file=sys.stderr,
        )
        return 130
    if summary.recovered:
        print(f"re-queued trials interrupted by a killed run: {summary.recovered}")
    rate = summary.ran / summary.seconds if summary.seconds > 0 else 0.0
    print(
        f"{summary.ran} new trials in {summary.seconds:.1f}s ({rate:.2f}/s); the study has "
        f"{summary.finished_after} finished trials (target {tune.n_trials})"
    )
    if hook is not None:
        _call(lambda: hook.sync(session.study), "tracking")
    if args.no_report:
        return 0
    out = args.out or Path("runs") / cfg.name / "tune"
    report = session.report(out)
    print()
    print(report.summary())
    if report.rows():
        print("\ntuning prompts (out of sample, chosen knob) | test split (scored once):")
        print(report.table())
    for key, path in report.files.items():
        print(f"{key + ':':<18}{path}")
    if hook is not None and report.chosen:
        _call(lambda: hook.chosen(session.study, report), "tracking")
    return 0 if (report.feasible or tune.mode != "constrained") and report.chosen else 1


def _call(fn: object, what: str) -> None:
    try:
        fn()  # type: ignore[operator]
    except Exception as err:  # tracking must not fail the command
        print(f"tierwise: warning: {what} failed: {err}", file=sys.stderr)
