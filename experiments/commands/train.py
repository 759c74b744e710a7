"""`tierwise train CONFIG`: fit, calibrate, evaluate once on test beside the baselines, save."""

from __future__ import annotations

import argparse
import textwrap
from pathlib import Path
from typing import Any

HELP = """\
Train the router an experiment config describes: import the traffic log, split it
(train / calibration / test, grouped by prompt text), fit the quality predictor on train,
calibrate it and set the policy knob on calibration — with a `target:` section, certify the
knob: the target then holds on new traffic with the stated confidence, or the router falls
back to the reference tier — then score the router ONCE on the untouched test split beside
every single model, the zero router, random routing and the oracle. Writes the router
artifact (router.tierwise) and the cost-quality chart (PNG).
"""


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``tierwise train`` to the CLI."""
    p = sub.add_parser(
        "train",
        help="train a router and compare it with the baselines",
        description=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("config", help="experiment YAML, e.g. configs/routerbench.yaml")
    p.add_argument("--out", type=Path, default=None, help="output dir (default: runs/<name>)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.add_argument(
        "--track",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="log an MLflow run (default: the config's tracking.enabled, true unless set)",
    )
    p.add_argument("--tracking-uri", default=None, help="MLflow tracking URI for this run")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``tierwise train``; returns the exit code."""
    from tierwise.experiments.config import load_experiment
    from tierwise.experiments.training import prepare, train

    cfg = load_experiment(args.config)
    out = args.out or Path("runs") / cfg.name
    prep = prepare(cfg, progress=not args.no_progress)
    result = train(cfg, out_dir=out, progress=not args.no_progress, prep=prep)
    r = result.router
    print(
        f"\n{cfg.name}: {result.report.n_prompts} test prompts, reference {result.report.reference}"
    )
    if result.certificate is not None:
        print(f"policy {r.config.policy.name}: certified for the config's target")
        print(textwrap.fill(result.certificate.explain(), width=100))
        from tierwise.eval.certification import advice

        hint = advice(result.certificate)
        if hint:
            print(textwrap.fill(hint, width=100))
    else:
        print(
            f"policy {r.config.policy.name} knob={r.knob_:.4g} (cheapest calibration knob "
            f"reaching {r.config.policy.select.quality_fraction:.0%} of {r.reference_model_}'s "
            "quality; no guarantee — add a `target:` section to certify it)"
        )
    if r.static_comparison_ is not None:
        print(fallback_note(r))
    print(result.report.table())
    print(f"\nartifact: {result.artifact}\nchart:    {result.plot}  ({result.seconds:.1f}s)")
    track = cfg.tracking.enabled if args.track is None else args.track
    if track:
        from tierwise.experiments.commands.track import track_training

        track_training(result, prep, cfg, args.tracking_uri)
    return 0


def fallback_note(router: Any) -> str:
    """One paragraph: did the learned router beat the static mixture of single models?"""
    ev = router.static_comparison_
    n = ev["n_prompts"]
    share = f"{ev['p_router_better']:.0%} of bootstrap resamples of {n} held-out prompts"
    if router.static_fallback_:
        text = (
            f"static fallback: the learned router ({router.policy_.replaced}) beat the best static "
            f"mixture of single models in only {share} (needed {ev['confidence']:.0%}), so the "
            "router ships the static mixture (the zero router's policy): routing by prompt did "
            "not pay on this traffic. Set `router.fallback.enabled: false` to ship it anyway."
        )
    else:
        text = (
            f"the learned router beat the best static mixture of single models in {share} "
            f"(AIQ {ev['router_aiq']:.4f} vs {ev['static_aiq']:.4f})."
        )
    return textwrap.fill(text, width=100)
