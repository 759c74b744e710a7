"""Does the certified knob keep its promise on real data, and what does the promise cost?

For each dataset the predictor is fitted ONCE on the config's train split (real MiniLM
embeddings through the on-disk cache); then the calibration + test pool is resplit ``--reps``
times (grouped by prompt text, half calibration, half test). On every resplit and for every
target (a fraction of the best single model's quality, ``--confidence``):

- certified: ``eval.certification.certify_predictions`` — the product's path: calibration half
  cut into a calibrator part and a certification part, Learn-then-Test over the knob grid,
  fallback to the reference tier when no knob passes;
- naive: what `tierwise train` does without a target — calibrator and knob grid on the whole
  calibration half, the cheapest knob whose calibration mean meets the target (else the
  best-quality knob);
- no split (invalid): certify on the very labels that fitted the calibrator and the knob grid,
  to show what the sound split costs and whether skipping it breaks the guarantee;
- optimum: the cheapest policy (either method's grid, or always the reference) that meets the
  target on the test half — the uncertified optimum, knowable only in hindsight.

A violation ("viol.test") is a test-half mean quality below the target on that same test half.
The halves split a finite pool, so a calibration half that happens to be easy leaves a test half
that is hard by the same amount, and a knob exactly at the target would "violate" half the time:
this rate overstates the violation rate on new traffic. "viol.pool" judges the same choice on the
whole pool (the finite population both halves are drawn from): the quantity the guarantee is
about, up to the pool's own sampling error.

    .venv/bin/python scripts/bench_certify.py                     # both datasets, 200 resplits
    .venv/bin/python scripts/bench_certify.py --datasets routerbench --reps 50 --methods wsr

Columns: viol.test / viol.pool = share of resplits missing the target; fallback =
share routed entirely to the reference tier; cost/opt and cost/naive = mean cost over the
resplits relative to the optimum's and the naive rule's mean cost.
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from tierwise.eval.certification import (  # noqa: E402
    TargetConfig,
    certify,
    certify_predictions,
    split_for_certification,
)
from tierwise.experiments.config import load_experiment  # noqa: E402
from tierwise.experiments.training import cache_dir, prepare  # noqa: E402
from tierwise.router.calibration import Calibrator  # noqa: E402
from tierwise.router.core import Router  # noqa: E402
from tierwise.router.expected_cost import prompt_chars  # noqa: E402

DATASETS = {
    "routerbench": "configs/routerbench.yaml",
    "routellm_mmlu": "configs/routellm_mmlu.yaml",
}


@dataclass
class Tally:
    violations: int = 0  # on the test half
    pool_violations: int = 0  # on the whole pool: the finite population the halves come from
    fallbacks: int = 0
    cost: list[float] = field(default_factory=list)
    quality: list[float] = field(default_factory=list)

    def add(self, q: float, c: float, bar: float, pool_gap: float, fallback: bool = False) -> None:
        """``pool_gap``: pool mean quality minus the pool's bar (< 0: the target is missed)."""
        self.violations += q < bar - 1e-12
        self.pool_violations += pool_gap < -1e-12
        self.fallbacks += fallback
        self.quality.append(q)
        self.cost.append(c)


def _cheapest_meeting(q: np.ndarray, c: np.ndarray, bar: float) -> float:
    ok = q >= bar - 1e-12
    return float(c[ok].min()) if ok.any() else float("inf")


def _sweep(
    router: Router, P: np.ndarray, C: np.ndarray, quality: np.ndarray, cost: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rows = np.arange(len(P))
    choices = np.stack([router.policy_.choose(P, C, k) for k in router.knob_grid_])
    return quality[rows, choices].mean(axis=1), cost[rows, choices].mean(axis=1), choices


def run_dataset(name: str, args: argparse.Namespace) -> list[str]:
    t0 = time.perf_counter()
    cfg = load_experiment(ROOT / DATASETS[name])
    if args.predictor or args.policy:
        upd: dict[str, Any] = {}
        if args.predictor:
            upd["predictor"] = cfg.router.predictor.model_copy(update={"name": args.predictor})
        if args.policy:
            upd["policy"] = cfg.router.policy.model_copy(update={"name": args.policy})
        cfg = cfg.model_copy(update={"router": cfg.router.model_copy(update=upd)})
    prep = prepare(cfg, progress=False)
    pool = prep.dataset.subset(np.concatenate([prep.splits.calibration, prep.splits.test]))
    if args.max_pool and pool.n_prompts > args.max_pool:
        keep = np.sort(np.random.default_rng(0).choice(pool.n_prompts, args.max_pool, False))
        pool = pool.subset(keep)
    rcfg = cfg.router.model_copy(update={"cache_dir": cache_dir(cfg.router)})
    router = Router(rcfg)
    print(
        f"[{name}] embedding {prep.train.n_prompts} train + {pool.n_prompts} pool prompts",
        flush=True,
    )
    X_tr = router.embed(prep.train.prompts, progress=True)
    X_pool = router.embed(pool.prompts, progress=True)
    half = split_for_certification(pool.prompts, 0.5, seed=12345)
    router.fit(
        prep.train,
        pool.subset(half.calibrator),
        prices=prep.prices,
        embeddings=(X_tr, X_pool[half.calibrator]),
    )
    raw = router.predictor_.predict_proba(X_pool)
    C = router.cost_model_.predict(X_pool, prompt_chars(pool.prompts))
    q_all, c_all = np.asarray(pool.quality, float), np.asarray(pool.cost, float)
    print(
        f"[{name}] predictor fitted ({time.perf_counter() - t0:.0f}s); {args.reps} resplits",
        flush=True,
    )

    values, methods = args.targets, args.methods
    cert = {(m, v): Tally() for m in methods for v in values}
    naive = {v: Tally() for v in values}
    shortcut = {v: Tally() for v in values}
    optimum: dict[float, list[float]] = {v: [] for v in values}
    n_cert: list[int] = []
    for rep in range(args.reps):
        s = split_for_certification(pool.prompts, 0.5, seed=rep)
        cal_idx, test_idx = s.calibrator, s.certification
        cal = pool.subset(cal_idx)
        qt, ct = q_all[test_idx], c_all[test_idx]
        rows = np.arange(len(test_idx))
        # Naive: calibrator + grid + knob on the whole calibration half (no target, no guarantee).
        nav = copy.copy(router)
        nav.calibrator_ = Calibrator(method=rcfg.calibration.method).fit(raw[cal_idx], cal.quality)
        Pn = np.clip(nav.calibrator_.transform(raw), 0, 1)
        nav.knob_grid_ = np.asarray(
            nav.policy_.knob_grid(Pn[cal_idx], C[cal_idx], n=rcfg.policy.grid_size)
        )
        nq_cal, nc_cal, nch = _sweep(nav, Pn[cal_idx], C[cal_idx], q_all[cal_idx], c_all[cal_idx])
        rows_cal = np.arange(len(cal_idx))
        nq_test, nc_test, _ = _sweep(nav, Pn[test_idx], C[test_idx], qt, ct)
        nq_pool, _, _ = _sweep(nav, Pn, C, q_all, c_all)
        every = np.arange(pool.n_prompts)
        for v in values:
            for m in methods:
                t = TargetConfig(kind="relative", value=v, confidence=args.confidence, method=m)
                c = certify_predictions(
                    router, cal, raw[cal_idx], C[cal_idx], t, holdout=args.holdout, seed=rep
                )
                P = np.clip(router.calibrator_.transform(raw[test_idx]), 0, 1)
                picks = router.choose(P, C[test_idx])  # honours the fallback
                assert router.certificate_ is not None
                ref = router.models_.index(router.certificate_["reference_model"])
                bar = v * float(qt[:, ref].mean())
                pool_bar = v * float(q_all[:, ref].mean())
                all_picks = router.choose(np.clip(router.calibrator_.transform(raw), 0, 1), C)
                cert[m, v].add(
                    float(qt[rows, picks].mean()),
                    float(ct[rows, picks].mean()),
                    bar,
                    float(q_all[every, all_picks].mean()) - pool_bar,
                    c.fallback,
                )
            n_cert.append(c.n_calibration)
            # The reference (best single model) is chosen on the calibrator part, before any
            # certification label is seen; the same model serves the naive rule and the optimum.
            ref_q, ref_c = float(qt[:, ref].mean()), float(ct[:, ref].mean())
            # Naive, same target: cheapest calibration knob with mean ≥ v × reference (as
            # Router._set_knob does), else the best-quality knob.
            ok = np.flatnonzero(nq_cal >= v * float(q_all[cal_idx, ref].mean()) - 1e-12)
            k = int(ok[np.argmin(nc_cal[ok])]) if ok.size else int(np.argmax(nq_cal))
            naive[v].add(
                float(nq_test[k]), float(nc_test[k]), bar, nq_pool[k] - pool_bar, not ok.size
            )
            # Shortcut (invalid): certify on the same labels that fitted calibrator and grid.
            t = TargetConfig(
                kind="relative", value=v, confidence=args.confidence, method=methods[-1]
            )
            sc = certify(
                q_all[cal_idx][rows_cal, nch][::-1],
                c_all[cal_idx][rows_cal, nch][::-1],
                list(range(len(nch)))[::-1],
                q_all[cal_idx, ref],
                t,
            )
            if sc.fallback:
                gap = float(q_all[:, ref].mean()) - pool_bar
                shortcut[v].add(ref_q, ref_c, bar, gap, True)
            else:
                i = sc.knob
                shortcut[v].add(float(nq_test[i]), float(nc_test[i]), bar, nq_pool[i] - pool_bar)
            cq_test, cc_test, _ = _sweep(router, P, C[test_idx], qt, ct)
            optimum[v].append(
                min(
                    _cheapest_meeting(cq_test, cc_test, bar),
                    _cheapest_meeting(nq_test, nc_test, bar),
                    ref_c if ref_q >= bar - 1e-12 else float("inf"),
                )
            )
        if (rep + 1) % max(1, args.reps // 10) == 0:
            print(
                f"[{name}] {rep + 1}/{args.reps} resplits ({time.perf_counter() - t0:.0f}s)",
                flush=True,
            )
    head = (
        f"\n{name} ({cfg.router.predictor.name}/{cfg.router.policy.name}): pool "
        f"{pool.n_prompts} prompts, resplit {args.reps}× into calibration ~{len(cal_idx)} "
        f"(certification part ~{int(np.mean(n_cert))}) / test ~{len(test_idx)}; confidence "
        f"{args.confidence:g}; target = v × the best single model's quality"
    )
    return _table(head, cert, naive, shortcut, optimum, args)


def _table(
    head: str,
    cert: dict[tuple[str, float], Tally],
    naive: dict[float, Tally],
    shortcut: dict[float, Tally],
    optimum: dict[float, list[float]],
    args: argparse.Namespace,
) -> list[str]:
    lines = [
        head,
        f"{'v':>5} {'rule':<28} {'viol.test':>9} {'viol.pool':>9} {'fallback':>8} "
        f"{'quality':>8} {'cost/opt':>8} {'cost/naive':>10} {'$ per 1k':>9}",
    ]
    for v in args.targets:
        opt = np.asarray(optimum[v])
        n_cost = float(np.mean(naive[v].cost))
        rules = [(f"certified ({m})", cert[m, v]) for m in args.methods]
        extra = [
            (f"no split ({args.methods[-1]}), invalid", shortcut[v]),
            ("naive (calibration mean)", naive[v]),
        ]
        for label, tally in [*rules, *extra]:
            cost = np.asarray(tally.cost)
            lines.append(
                f"{v:>5.0%} {label:<28} {tally.violations / args.reps:>9.1%} "
                f"{tally.pool_violations / args.reps:>9.1%} "
                f"{tally.fallbacks / args.reps:>8.0%} {np.mean(tally.quality):>8.3f} "
                f"{cost.mean() / opt.mean():>8.2f} {cost.mean() / n_cost:>10.2f} "
                f"{1000 * cost.mean():>9.3f}"
            )
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    ap.add_argument("--reps", type=int, default=200)
    ap.add_argument("--confidence", type=float, default=0.9)
    ap.add_argument("--targets", type=float, nargs="+", default=[0.9, 0.95, 1.0])
    ap.add_argument("--methods", nargs="+", default=["hoeffding_bentkus", "wsr"])
    ap.add_argument("--holdout", type=float, default=0.5, help="certification share of calibration")
    ap.add_argument("--predictor", default=None, help="override the config's predictor")
    ap.add_argument("--policy", default=None, help="override the config's policy")
    ap.add_argument("--max-pool", type=int, default=0, help="subsample the calibration+test pool")
    args = ap.parse_args()
    out: list[str] = []
    for name in args.datasets:
        out += run_dataset(name, args)
        print("\n".join(out[-(2 + (len(args.methods) + 2) * len(args.targets)) :]), flush=True)
    print("\n".join(out))


if __name__ == "__main__":
    main()
