"""Frozen MiniLM vs MiniLM fine-tuned on the routing labels (router/embed/finetune.py).

Per dataset and split seed: fine-tune on the train split only, then fit the same predictors on
frozen and on fine-tuned embeddings (train + calibration, as `tierwise bench` does) and score
each once on test. Prints one line per (dataset, seed, encoder, predictor) and a table.

    nice -n 10 .venv/bin/python scripts/bench_finetune.py configs/routerbench.yaml --seeds 0
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from tierwise.eval.splits import make_splits
from tierwise.experiments.bench.data import Embeddings, load_bench_data
from tierwise.experiments.bench.engine import Grid, run_dataset
from tierwise.experiments.training import cache_dir
from tierwise.router.embed import get_embedder
from tierwise.router.embed.finetune import FinetuneConfig, finetune_encoder, finetune_metadata


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("configs", nargs="+")
    ap.add_argument("--seeds", default="0", help="comma list, e.g. 0,1,2")
    ap.add_argument("--predictors", default="knn", help="comma list of bench predictor labels")
    ap.add_argument("--max-prompts", type=int, default=None)
    ap.add_argument("--finetune", default="{}", help="FinetuneConfig fields as JSON")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    ft_cfg = FinetuneConfig.model_validate(json.loads(args.finetune))
    seeds = [int(s) for s in args.seeds.split(",")]
    preds = tuple(args.predictors.split(","))
    rows = []
    for path in args.configs:
        data = load_bench_data(path, args.max_prompts)
        cfg, ds = data.config, data.dataset
        print(f"{data.key}: {data.note}", flush=True)
        frozen = Embeddings.for_config(cfg)
        for seed in seeds:
            for r in run_dataset(data, frozen, Grid(seeds=[seed], predictors=preds), log=print):
                rows.append({**r.__dict__, "encoder": "frozen", "ft_seconds": 0.0})
            splits = make_splits(ds, cfg.split.model_copy(update={"seed": seed}))
            tr = ds.subset(splits.train)
            t0 = time.perf_counter()
            spec = finetune_encoder(
                list(tr.prompts), tr.quality, ft_cfg, seed=seed,
                cache_dir=cache_dir(cfg.router), normalization=cfg.router.normalization,
            )  # fmt: skip
            ft_s = time.perf_counter() - t0
            meta = finetune_metadata(spec) or {}
            print(f"fine-tuned in {ft_s:.0f}s: {spec} history={meta.get('history')}", flush=True)
            tuned = Embeddings(get_embedder(spec), cache_dir(cfg.router))
            for r in run_dataset(data, tuned, Grid(seeds=[seed], predictors=preds), log=print):
                rows.append({**r.__dict__, "encoder": "fine-tuned", "ft_seconds": ft_s})
            print(f"embedding all prompts with it took {tuned.seconds:.0f}s", flush=True)
            if args.json:
                with open(args.json, "w") as f:
                    json.dump({"finetune": ft_cfg.model_dump(), "results": rows}, f, indent=1)
    print("\n| dataset | encoder | predictor | seeds | gap closed | cost @95% | fine-tune s |")
    print("|---|---|---|---|---|---|---|")
    keys = sorted({(r["dataset"], r["encoder"], r["predictor"]) for r in rows})
    for key in keys:
        rs = [r for r in rows if (r["dataset"], r["encoder"], r["predictor"]) == key]
        gaps = np.array([r["gap_closed"] for r in rs]) * 100
        c95 = [r["cost_at_95"] for r in rs if r["cost_at_95"] is not None]
        c = f"{100 * np.mean(c95):.1f}%" if c95 else "never"
        ft = np.mean([r["ft_seconds"] for r in rs])
        print(f"| {key[0]} | {key[1]} | {key[2]} | {len(rs)} | {gaps.mean():.1f}% "
              f"(±{gaps.std():.1f}) | {c} | {ft:.0f} |")  # fmt: skip


if __name__ == "__main__":
    main()
