"""`tierwise check ARTIFACT TRAFFIC_CONFIG [--recertify OUT]`: does the guarantee still hold?"""

from __future__ import annotations

import argparse
import json
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tierwise.eval.certification import TargetConfig
    from tierwise.eval.dataset import RoutingDataset

HELP = """\
Check a trained router's quality guarantee on newly labelled traffic. The traffic is
described by an experiment config YAML like the one used for training, or by a YAML holding
just the contents of a `data:` section (sources, columns, labels, ...). Every tier of the
router must be among its models. The router routes every prompt as deployed; the realized
quality of its choices (and of the reference tier) is tested against the target the
artifact was certified for (else the config's `target:` section), and the verdict is
printed: HOLDS, VIOLATED (exit code 1: traffic has likely drifted) or INCONCLUSIVE (too few
prompts to tell). --recertify OUT re-certifies the knob on this sample and writes a new
artifact (every tier's label is needed for that).
"""

VIOLATED_EXIT = 1


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``tierwise check`` to the CLI."""
    p = sub.add_parser(
        "check",
        help="check a router's quality guarantee on new labelled traffic",
        description=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("artifact", help="router artifact (router.tierwise or a directory)")
    p.add_argument(
        "config", help="experiment YAML (or a bare data section) describing the labelled traffic"
    )
    p.add_argument(
        "--recertify", type=Path, default=None, metavar="OUT", help="write a re-certified artifact"
    )
    p.add_argument("--json", type=Path, default=None, metavar="PATH", help="also write JSON")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(func=run)


def _wrap(text: str) -> str:
    return textwrap.fill(text, width=100)


def load_traffic(path: str, progress: bool) -> tuple[RoutingDataset, TargetConfig | None]:
    """The labelled traffic of an experiment config (and its target), or of a bare data section."""
    from tierwise.eval.importers.config import DataConfig
    from tierwise.experiments.config import load_dataset, load_experiment
    from tierwise.router.schema import parse_model, read_yaml

    raw = read_yaml(path)
    if isinstance(raw, dict) and "sources" in raw and "data" not in raw:
        data_cfg = parse_model(DataConfig, raw, source=path)
        if data_cfg.name is None:
            data_cfg = data_cfg.model_copy(update={"name": Path(path).stem})
        return load_dataset(data_cfg, base_dir=Path(path).resolve().parent, progress=progress), None
    cfg = load_experiment(path)
    return load_dataset(cfg, progress=progress), cfg.target


def run(args: argparse.Namespace) -> int:
    """Run ``tierwise check``; exit code 1 when the guarantee is violated."""
    from tierwise.eval.certification import advice, check_router, recertify
    from tierwise.router.core import Router
    from tierwise.router.errors import DataError

    router = Router.load(args.artifact)
    data, target = load_traffic(args.config, progress=not args.no_progress)
    if data.n_prompts == 0:
        raise DataError(f"{args.config}: the labelled traffic has no prompts; nothing to check")
    found = check_router(router, data, target)
    res = found.result
    extra = [m for m in data.models if m not in router.models_]
    print(f"\n{args.artifact} on {data.name!r}: {res.n:,} labelled prompts")
    if extra:
        print(f"ignored models not in the router: {extra}")
    if found.fallback:
        print(
            f"routing: fallback — every prompt goes to {found.reference_model} (no knob certified)"
        )
    else:
        shares = ", ".join(f"{m} {s:.0%}" for m, s in found.share.items() if s > 0)
        print(f"routing: knob={router.knob_:.4g} → {shares}")
    print(
        f"realized: mean quality {res.quality_mean:.3f} at ${1000 * found.cost_mean:,.4g} per 1k "
        f"prompts; reference {found.reference_model}: "
        + (f"{res.reference_mean:.3f} " if res.reference_mean is not None else "")
        + f"at ${1000 * found.reference_cost_mean:,.4g} per 1k"
    )
    print("\n" + _wrap(f"{res.verdict.upper()}: {res.explain()}"))
    out = {"artifact": str(args.artifact), "data": data.name, "check": res.to_dict()}
    if args.recertify is not None:
        cert = recertify(router, found, target)
        extra_manifest = dict((router.manifest_ or {}).get("payload", {}).get("extra", {}))
        extra_manifest["recertified"] = {
            "from": str(args.artifact),
            "dataset": data.name,
            "fingerprint": data.fingerprint(),
            "n_prompts": data.n_prompts,
        }
        path = router.save(str(args.recertify), metrics=cert.metrics(), extra=extra_manifest)
        print("\n" + _wrap(f"Re-certified on this sample. {cert.explain()}"))
        hint = advice(cert)
        if hint:
            print(_wrap(hint))
        print(f"artifact: {path}")
        out["recertified"] = {"artifact": path, "certificate": router.certificate_}
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    return VIOLATED_EXIT if res.verdict == "violated" else 0
