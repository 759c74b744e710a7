"""`tierwise embed CONFIG`: fill the embedding cache for a config's traffic log ahead of training.

With ``--engine spark`` the log is read and embedded on a Spark cluster (spark/embed.py);
``tierwise train`` / ``tune`` on the same config and cache folder then embed nothing.
"""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = """\
Embed every prompt of the config's traffic log into the embedding cache (the folder of
`router.cache_dir`, else $TIERWISE_CACHE_DIR, else .tierwise-cache/embeddings), under the
keys training looks up, so that `tierwise train`/`tune` on this config reuse them. With
--engine spark the files are read and embedded by Spark executors (torch-free: MiniLM runs
as its ONNX fp32 export, same vectors and cache keys) and also kept as a Parquet store.
"""


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``tierwise embed`` to the CLI."""
    p = sub.add_parser(
        "embed",
        help="fill the embedding cache for a config's log (locally or on Spark)",
        description=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("config", type=Path, help="experiment config (YAML)")
    p.add_argument("--engine", choices=("local", "spark"), default="local")
    p.add_argument("--master", default=None, help="Spark master: local[2], spark://..., yarn")
    p.add_argument("--cache-dir", default=None, help="cache folder (default: the config's)")
    p.add_argument("--store", type=Path, default=None, help="Spark: Parquet store to write")
    p.add_argument("--partitions", type=int, default=None, help="Spark: embedding tasks")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``tierwise embed``; returns the exit code."""
    from tierwise.experiments.config import load_experiment
    from tierwise.experiments.training import cache_dir

    cfg = load_experiment(args.config)
    folder = args.cache_dir or cache_dir(cfg.router)
    if args.engine == "spark":
        from tierwise.experiments.spark.embed import embed_on_spark
        from tierwise.experiments.spark.session import get_session

        s = embed_on_spark(
            get_session(args.master),
            cfg,
            cache_dir=folder,
            store=args.store,
            partitions=args.partitions,
        )
        print(
            f"{s.prompts} distinct prompts embedded on Spark in {s.seconds:.1f}s "
            f"({s.added} new in the cache) -> {s.cache}\n  store: {s.store}\n  "
            f"embedder: {s.identity}"
        )
        return 0
    from tierwise.experiments.config import load_dataset
    from tierwise.router.core import Router

    ds = load_dataset(cfg, progress=not args.no_progress)
    router = Router(cfg.router.model_copy(update={"cache_dir": folder}))
    router.embed(list(ds.prompts), progress=not args.no_progress)
    print(f"{ds.n_prompts} prompts embedded into {folder}")
    return 0
