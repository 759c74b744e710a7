"""Router quality benchmark on the shared datasets: a thin wrapper around `tierwise bench`.

The engine lives in the package (``tierwise.experiments.bench``, command ``tierwise bench``)
and works on any experiment config; this script only names the shared datasets::

    .venv/bin/python scripts/bench_router.py --datasets routerbench mmlu gsm8k arena routerarena
    .venv/bin/python scripts/bench_router.py --datasets routerbench --predictors default knn irt \\
        --json /tmp/run.json

Every option after ``--datasets`` is passed to ``tierwise bench`` unchanged (see
``tierwise bench --help``: --seeds, --predictors, --policies, --calibrations, --normalizations,
--set, --json, --merge, --markdown). The per-dataset subsampling of the old script is gone:
``--max-prompts`` subsamples every dataset alike (0 = all prompts, the default). The old
``--diagnostics`` rows (per-task means) were retired with the move; their measured numbers
stay in docs/benchmarks/router.md.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]
DATASETS = {
    "routerbench": "configs/routerbench.yaml",
    "mmlu": "configs/routellm_mmlu.yaml",
    "gsm8k": "configs/zeroeval_gsm8k.yaml",
    "arena": "configs/arena_bench.yaml",
    "routerarena": "configs/routerarena.yaml",
}


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0], add_help=True)
    ap.add_argument("--datasets", nargs="+", default=["routerbench"], choices=list(DATASETS))
    args, rest = ap.parse_known_args(argv)
    from tierwise.experiments.cli import main as cli

    configs = [str(ROOT / DATASETS[key]) for key in args.datasets]
    return cli(["bench", *configs, *rest])


if __name__ == "__main__":
    sys.exit(main())
