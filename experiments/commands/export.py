"""`tierwise export ARTIFACT OUT`: bundle the router's embedder as ONNX for torch-free serving."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

HELP = """\
Write OUT: the router in ARTIFACT plus its embedding model exported to ONNX (and the
tokenizer), checked against the torch model on probe texts. Serving OUT (`tierwise serve`,
`tierwise route`, `tierwise batch`, Router.load) then needs only numpy, onnxruntime,
tokenizers, pydantic and pyyaml — the core `pip install tierwise`, no torch.

fp32 (default) reproduces the torch embeddings to rounding, so decisions are the same;
--int8 quantizes the model's matrix products (smaller, faster on CPU), which moves
embeddings slightly and can change decisions (17% of them on arena-bench with a kNN
router): measure it on your own prompts with --check before deploying int8.
Exporting needs the training stack (`tierwise[train]`).
"""


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``tierwise export`` to the CLI."""
    p = sub.add_parser(
        "export",
        help="bundle an ONNX embedder into an artifact (torch-free runtime)",
        description=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("artifact", help="router artifact trained with a sentence-transformers model")
    p.add_argument(
        "out", help="new artifact to write (OUT.tierwise for one file, else a directory)"
    )
    p.add_argument("--int8", action="store_true", help="quantize the embedder to int8")
    p.add_argument(
        "--source",
        default=None,
        help="embedder spec or model directory to export (default: the artifact's own)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    p.add_argument(
        "--check",
        type=Path,
        default=None,
        metavar="PROMPTS",
        help="route these prompts (JSONL/CSV/Parquet) with torch and with OUT; report agreement",
    )
    p.add_argument("--prompt-column", default="prompt", help="prompt column of --check")
    p.add_argument("--check-limit", type=int, default=2000, help="prompts of --check to use")
    p.add_argument(
        "--min-agreement",
        type=float,
        default=None,
        help="exit 1 if fewer than this share of --check prompts get the same model (e.g. 0.99)",
    )
    p.set_defaults(func=run)


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(f.stat().st_size for f in path.iterdir() if f.is_file())
    return path.stat().st_size


def run(args: argparse.Namespace) -> int:
    """Run ``tierwise export``; returns the exit code."""
    from tierwise.router.artifact import artifact_info, export_artifact
    from tierwise.router.runtime import PAYLOAD_KEY

    t0 = time.perf_counter()
    out = export_artifact(
        args.artifact,
        args.out,
        quantize="int8" if args.int8 else "none",
        source=args.source,
        overwrite=args.overwrite,
    )
    info = artifact_info(out)
    emb = info["payload"][PAYLOAD_KEY]
    check = emb.get("verification") or {}
    print(f"wrote {out} ({_size(Path(out)) / 1e6:.1f} MB) in {time.perf_counter() - t0:.1f}s")
    print(f"  embedder   {emb['identity']} ({emb['quantization']}, {emb['dim']} dims)")
    if check:
        print(
            f"  vs torch   worst cosine {check['min_cosine']:.5f}, mean {check['mean_cosine']:.5f}"
            f" on {check['probes']} probe texts"
        )
    code = 0
    if args.check is not None:
        agreement = _agreement(args, out)
        print(f"  decisions  {agreement}")
        if args.min_agreement is not None and agreement.same_model < args.min_agreement:
            print(f"  below --min-agreement {args.min_agreement:.2%}")
            code = 1
    print(f"  serve it   tierwise serve {out}")
    return code


def _agreement(args: argparse.Namespace, out: Path) -> Any:
    from itertools import islice

    from tierwise.experiments.batch_io import read_rows
    from tierwise.router.artifact import decision_agreement

    rows = read_rows(args.check, args.prompt_column, [], 1024)
    prompts = [r.prompt for r, _ in islice(rows, max(args.check_limit, 1)) if r.error is None]
    return decision_agreement(args.artifact, out, prompts)
