"""`tierwise evaluate CONFIG`: score routing on a split beside every baseline.

    tierwise evaluate configs/routerbench.yaml --baselines              # test split
    tierwise evaluate configs/routerbench.yaml --baselines --split all --json
    tierwise evaluate configs/routerbench.yaml --artifact runs/routerbench/router.tierwise

Prints the comparison table (a saved router's swept curve if given, and always every single
model, the zero router, random routing, the oracle, with AIQ and paired bootstrap CIs) and
writes the cost–quality chart and the JSON report to ``--out`` (default ``runs/<config name>/``).
Scoring settings come from the config's ``evaluation:`` section (eval.reporting.EvaluationConfig).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

SPLITS = ("test", "calibration", "train", "all")


def register(subparsers: Any) -> None:
    """Add ``tierwise evaluate`` to the CLI."""
    parser = subparsers.add_parser(
        "evaluate",
        help="score routing against every baseline on a data split",
        description=(
            "Score routing policies on a split of an experiment's dataset beside every single "
            "model, the zero router (random mixtures of single models), random routing at "
            "matched cost and the oracle, with AIQ, gap closed, cost to reach the reference "
            "model's quality and paired bootstrap confidence intervals. Writes a cost–quality "
            "chart (PNG) and the report (JSON)."
        ),
    )
    parser.add_argument("config", help="experiment YAML, e.g. configs/routerbench.yaml")
    parser.add_argument(
        "--baselines",
        action="store_true",
        help="score the baselines (single models, zero router, random, oracle)",
    )
    parser.add_argument(
        "--artifact",
        metavar="PATH",
        help="a trained router (router.tierwise from `tierwise train`) to score, swept over its "
        "knob grid, beside the baselines",
    )
    parser.add_argument(
        "--split",
        choices=SPLITS,
        default="test",
        help="which split of the config's `split:` section to score (default: test)",
    )
    parser.add_argument(
        "--out", metavar="DIR", help="where to write the chart and report (default runs/<name>/)"
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument(
        "--bootstrap",
        type=int,
        metavar="N",
        help="bootstrap resamples (overrides evaluation.bootstrap_samples; 0 = no intervals)",
    )
    parser.set_defaults(func=run_evaluate)


def run_evaluate(args: argparse.Namespace) -> int:
    """Run ``tierwise evaluate``; returns the exit code."""
    from tierwise.eval.reporting import compare_dataset
    from tierwise.eval.splits import make_splits
    from tierwise.experiments.config import load_dataset, load_experiment
    from tierwise.router.errors import ConfigError

    if not args.baselines and not args.artifact:
        raise ConfigError(
            "nothing to evaluate: pass --baselines to score the single models, zero router, "
            "random routing and oracle, or --artifact PATH to score a trained router beside them"
        )
    cfg = load_experiment(args.config)
    evaluation = cfg.evaluation
    if args.bootstrap is not None:
        if args.bootstrap < 0:
            raise ConfigError(f"`--bootstrap` must be >= 0, got {args.bootstrap}")
        evaluation = evaluation.model_copy(update={"bootstrap_samples": args.bootstrap})
    ds = load_dataset(cfg, progress=False)
    if args.split != "all":
        splits = make_splits(ds, cfg.split)
        ds = ds.subset(getattr(splits, args.split))
    policies: dict[str, Any] = {}
    operating: dict[str, int] = {}
    if args.artifact:
        if args.split != "test":
            print(
                f"tierwise: warning: scoring a router on the {args.split} split; it was fitted "
                "on train and its knob set on calibration, so only test is an unbiased score",
                file=sys.stderr,
            )
        name, choices, index = _router_sweep(args.artifact, ds)
        policies[name], operating[name] = choices, index
    report = compare_dataset(ds, policies, evaluation, operating_points=operating)

    out_dir = Path(args.out) if args.out else Path("runs") / cfg.name
    title = f"{cfg.name}: {args.split} split, {ds.n_prompts} prompts"
    png = report.plot(out_dir / f"evaluate_{args.split}.png", title=title)
    payload = {
        "config": str(args.config),
        "name": cfg.name,
        "split": args.split,
        "dataset_fingerprint": ds.fingerprint(),
        "plot": str(png),
        **report.to_dict(),
    }
    report_path = out_dir / f"evaluate_{args.split}.json"
    try:
        report_path.write_text(json.dumps(payload, indent=2, allow_nan=False), encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"cannot write the report to {report_path}: {err}") from None
    if args.json:
        print(json.dumps(payload, indent=2, allow_nan=False))
    else:
        print(f"{cfg.name} — {args.split} split: {ds.n_prompts} prompts × {ds.n_models} models")
        print()
        print(report.table())
        print()
        print(f"chart: {png}\nreport: {report_path}", file=sys.stdout)
    return 0


def _router_sweep(path: str, ds: Any) -> tuple[str, Any, int]:
    """A saved router's choices over its knob grid on ``ds`` (dataset model indices), its knob."""
    import numpy as np

    from tierwise.router.core import Router
    from tierwise.router.errors import ConfigError

    router = Router.load(path)
    missing = [m for m in router.models_ if m not in ds.models]
    if missing:
        raise ConfigError(
            f"router {path} routes to models {missing} that dataset {ds.name!r} does not have "
            f"(it has {list(ds.models)}); evaluate it on the data it was trained for"
        )
    to_ds = np.array([ds.models.index(m) for m in router.models_], dtype=np.int64)
    sweep = router.sweep(list(ds.prompts))
    index = int(np.argmin(np.abs(sweep.knobs - router.knob_)))
    cfg = router.config
    return f"router ({cfg.predictor.name}/{cfg.policy.name})", to_ds[sweep.choices], index
