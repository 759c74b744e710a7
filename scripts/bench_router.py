"""Router quality benchmark: predictor × policy × normalization × calibration over seeded splits.

Usage::

    .venv/bin/python scripts/bench_router.py                       # RouterBench grid
    .venv/bin/python scripts/bench_router.py --datasets routerbench mmlu gsm8k \\
        --predictors default --policies default --calibrations default --normalizations default
    .venv/bin/python scripts/bench_router.py --predictors knn "logreg:C=0.1" \\
        --calibrations platt none --diagnostics --json /tmp/run.json
    .venv/bin/python scripts/bench_router.py --predictors --merge /tmp/run.json \\
        --markdown docs/benchmarks/router.md          # tables only, from earlier runs

``default`` stands for the value in the dataset config's router section (the RouterConfig
defaults). Predictors are registry names or ``name:key=value;key=value`` with YAML values.
``--diagnostics`` adds reference rows that are not routers (per-tier and per-task mean success
rates; see :func:`diagnostics`). Results print as Markdown tables (mean ± 95% t-interval over
seeds); ``--json`` keeps the per-seed numbers, ``--markdown`` rewrites the generated block of
the file and keeps the text around it.

For each dataset and split seed (train / calibration / test fractions from the dataset's
config, only the seed changes), every configuration is fitted on train, calibrated and its knob
set on calibration (``Router.fit``), then its swept curve is scored once on the test split with
``eval.report.compare``: AIQ, gap closed ((AIQ − zero router) / (oracle − zero router)) and the
cost at 95% / 100% of the best single model's quality, as % of that model's cost (read off the
router's frontier; mixing two knob values realizes any point between them). ``op`` columns are
the knob the router chose on calibration (95% of the reference's calibration quality), scored
on test: what a deployed router with that knob delivers.

Configurations are compared by their *calibration-split* gap closed as well (``cal gap``):
the fitted router's sweep scored on the split its calibrator and knob were fitted on. Picking
the best configuration by that column uses no test data; the test columns are the report.

Embeddings come from the project's cache (``.tierwise-cache/embeddings`` or
``$TIERWISE_CACHE_DIR``); misses are embedded with MiniLM and stored. A prompt that a
normalization leaves unchanged (shorter than the embedder's budget) reuses a vector cached
under another normalization that leaves it unchanged too: the embedder saw the same text.
Datasets larger than ``--max-prompts`` (default: MMLU 5,000 of 14,042) are subsampled with a
fixed seed before splitting, and the table says so.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tierwise.eval.dataset import RoutingDataset  # noqa: E402
from tierwise.eval.report import EvaluationConfig, compare_dataset  # noqa: E402
from tierwise.eval.splits import make_splits  # noqa: E402
from tierwise.experiments.config import ExperimentConfig, load_dataset, load_experiment  # noqa: E402
from tierwise.experiments.training import DEFAULT_CACHE_DIR, price_table  # noqa: E402
from tierwise.router.config import RouterConfig  # noqa: E402
from tierwise.router.core import Router  # noqa: E402
from tierwise.router.expected_cost import prompt_chars  # noqa: E402
from tierwise.router.normalize import NormalizationConfig  # noqa: E402
from tierwise.router.predictors import QualityPredictor  # noqa: E402

DATASETS: dict[str, tuple[str, int | None]] = {
    # key: (experiment config, default --max-prompts; None = all)
    "routerbench": ("configs/routerbench.yaml", None),
    "mmlu": ("configs/routellm_mmlu.yaml", 5000),
    "gsm8k": ("configs/zeroeval_gsm8k.yaml", None),
}
# Named predictor configurations; anything else is parsed as "name:key=value;key=value" (YAML
# values, e.g. 'stack:members=[{name: knn}, {name: mf}];C=0.1').
PREDICTORS: dict[str, tuple[str, dict[str, Any]]] = {
    "knn": ("knn", {}),
    "logreg": ("logreg", {}),
    "mlp": ("mlp", {}),
    "mf": ("mf", {}),
    "stack": ("stack", {}),
}
POLICIES: dict[str, tuple[str, dict[str, Any]]] = {
    "utility": ("utility", {}),
    "threshold": ("threshold", {"mode": "gap"}),
}
NORMALIZATIONS = ("head", "tail", "head_tail")
T_975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306}


# ---- configurations --------------------------------------------------------------------------
def predictor_spec(label: str) -> tuple[str, dict[str, Any]] | None:
    """(registry name, params) for a label; None for "default" (RouterConfig's own predictor)."""
    if label == "default":
        return None
    if label in PREDICTORS:
        return PREDICTORS[label]
    name, _, rest = label.partition(":")
    params: dict[str, Any] = {}
    for item in filter(None, rest.split(";")):
        key, _, value = item.partition("=")
        params[key.strip()] = yaml.safe_load(value)
    return name, params


def router_config(
    pred: str, policy: str, norm: str | None, seed: int, base: RouterConfig, calib: str = "default"
) -> RouterConfig:
    """``base`` (the defaults) with predictor, policy, normalization and calibration swapped in."""
    update: dict[str, Any] = {"seed": seed}
    if calib != "default":
        update["calibration"] = base.calibration.model_copy(update={"method": calib})
    spec = predictor_spec(pred)
    if spec is not None:
        update["predictor"] = base.predictor.model_copy(update={"name": spec[0], "params": spec[1]})
    if policy != "default":
        pname, pparams = POLICIES[policy]
        update["policy"] = base.policy.model_copy(update={"name": pname, "params": dict(pparams)})
    if norm is not None:
        update["normalization"] = NormalizationConfig(mode=norm)
    return base.model_copy(update=update)


# ---- data and embeddings ---------------------------------------------------------------------
@dataclass
class Loaded:
    key: str
    config: ExperimentConfig
    dataset: RoutingDataset
    subsampled_from: int | None


def load(key: str, max_prompts: int | None) -> Loaded:
    path, default_max = DATASETS[key]
    cfg = load_experiment(ROOT / path)
    ds = load_dataset(cfg, progress=False)
    ds.require_complete_labels()
    limit = default_max if max_prompts is None else (max_prompts or None)
    if limit is not None and ds.n_prompts > limit:
        keep = np.sort(np.random.default_rng(12345).choice(ds.n_prompts, limit, replace=False))
        return Loaded(key, cfg, ds.subset(keep), ds.n_prompts)
    return Loaded(key, cfg, ds, None)


class Embeddings:
    """Embedding matrices per (dataset, normalization) from the shared on-disk cache."""

    def __init__(self, embedder_name: str) -> None:
        from tierwise.router.cache import EmbeddingCache
        from tierwise.router.embed import get_embedder

        self.embedder = get_embedder(embedder_name)
        cache_dir = os.environ.get("TIERWISE_CACHE_DIR") or str(ROOT / DEFAULT_CACHE_DIR)
        self.cache = EmbeddingCache(cache_dir)
        self.seconds = 0.0

    def normalizer(self, mode: str) -> Any:
        from tierwise.router.normalize import Normalizer

        return Normalizer.for_embedder(NormalizationConfig(mode=mode), self.embedder)

    def matrix(self, prompts: Sequence[str], mode: str) -> np.ndarray:
        from tierwise.router.cache import embed_with_cache, text_digest

        t0 = time.perf_counter()
        emb, norm = self.embedder, self.normalizer(mode)
        digests = list(dict.fromkeys(text_digest(p) for p in prompts))
        have = self.cache.get_many(emb.identity, norm.key, emb.dim, digests)
        missing = [p for p in dict.fromkeys(prompts) if text_digest(p) not in have]
        if missing:
            self._reuse_unchanged(missing, mode)
        X = embed_with_cache(emb, norm, list(prompts), self.cache, progress=True)
        self.seconds += time.perf_counter() - t0
        return X

    def _reuse_unchanged(self, prompts: list[str], mode: str) -> None:
        """Store vectors of prompts this normalization leaves unchanged from another mode's."""
        from tierwise.router.cache import text_digest

        emb, norm = self.embedder, self.normalizer(mode)
        todo = {text_digest(p): p for p in prompts if norm.apply(p) == p}
        for other in NORMALIZATIONS:
            if other == mode or not todo:
                continue
            onorm = self.normalizer(other)
            found = self.cache.get_many(emb.identity, onorm.key, emb.dim, list(todo))
            usable = [d for d in found if onorm.apply(todo[d]) == todo[d]]
            if usable:
                vecs = np.stack([found[d] for d in usable])
                self.cache.put_many(emb.identity, norm.key, usable, vecs)
                for d in usable:
                    del todo[d]


# ---- fitting and scoring ---------------------------------------------------------------------
class _Prefitted:
    """Stands in for a predictor in ``Router.fit``: "fitting" returns an already fitted one."""

    def __init__(self, est: QualityPredictor) -> None:
        self.est = est

    def fit(self, X: Any, Y: Any) -> QualityPredictor:
        return self.est


class BenchRouter(Router):
    """A Router that can reuse a fitted predictor (policies differ, the predictor does not)."""

    prefit: QualityPredictor | None = None

    def _make_predictor(self) -> Any:
        if self.prefit is not None:
            return _Prefitted(self.prefit)
        return super()._make_predictor()


@dataclass
class Result:
    dataset: str
    norm: str
    predictor: str
    policy: str
    seed: int
    calibration: str
    aiq: float
    gap: float
    cost95: float | None  # % of the reference model's cost; None = never reached
    cost100: float | None
    op_quality: float  # % of the reference's quality at the calibration-chosen knob
    op_cost: float  # % of the reference's cost there
    cal_gap: float
    zero_aiq: float
    oracle_aiq: float
    fit_seconds: float
    n_train: int
    n_test: int
    reference: str
    extra: dict[str, Any] = field(default_factory=dict)


def _pct_cost(report: Any, row: Any, label: str) -> float | None:
    ref = report.row(report.reference).cost_per_1k
    v = row.cost_at[label]
    return None if v is None else 100.0 * v / ref


def score(router: Router, ds: RoutingDataset, X: np.ndarray, name: str) -> tuple[Any, Any]:
    P, C = router.predict(X, prompt_chars(ds.prompts))
    choices = np.stack([router.policy_.choose(P, C, k) for k in router.knob_grid_])
    op = int(np.flatnonzero(np.isclose(router.knob_grid_, router.knob_))[0])
    report = compare_dataset(
        ds, {name: choices}, EvaluationConfig(bootstrap_samples=0), operating_points={name: op}
    )
    return report, report.row(name)


def run_dataset(
    data: Loaded,
    embeddings: Embeddings,
    seeds: Iterable[int],
    predictors: Sequence[str],
    policies: Sequence[str],
    norms: Sequence[str],
    calibrations: Sequence[str],
    log: Any,
) -> list[Result]:
    ds, cfg = data.dataset, data.config
    base = cfg.router
    prices = price_table(cfg)
    norms = list(dict.fromkeys(base.normalization.mode if n == "default" else n for n in norms))
    mats = {n: embeddings.matrix(ds.prompts, n) for n in norms}
    out: list[Result] = []
    for seed in seeds:
        splits = make_splits(ds, cfg.split.model_copy(update={"seed": seed}))
        tr, ca, te = splits.apply(ds)
        for norm in norms:
            X = mats[norm]
            X_tr, X_ca, X_te = X[splits.train], X[splits.calibration], X[splits.test]
            for pred in predictors:
                prefit: QualityPredictor | None = None
                fit_s = 0.0
                for pol, calib in [(p, c) for c in calibrations for p in policies]:
                    rcfg = router_config(pred, pol, norm, seed, base, calib)
                    calib = rcfg.calibration.method
                    router = BenchRouter(rcfg, embedder=embeddings.embedder)
                    router.prefit = prefit
                    t0 = time.perf_counter()
                    router.fit(tr, ca, prices=prices, embeddings=(X_tr, X_ca))
                    if prefit is None:
                        fit_s = time.perf_counter() - t0
                        prefit = router.predictor_
                    name = f"{pred}/{pol}/{calib}"
                    rep, row = score(router, te, X_te, name)
                    _, crow = score(router, ca, X_ca, name)
                    ref = rep.row(rep.reference)
                    res = Result(
                        dataset=data.key,
                        norm=norm,
                        predictor=pred,
                        policy=pol,
                        seed=seed,
                        calibration=calib,
                        aiq=row.aiq,
                        gap=row.gap_closed,
                        cost95=_pct_cost(rep, row, "95%"),
                        cost100=_pct_cost(rep, row, "100%"),
                        op_quality=100.0 * row.quality / ref.quality,
                        op_cost=100.0 * row.cost_per_1k / ref.cost_per_1k,
                        cal_gap=crow.gap_closed,
                        zero_aiq=rep.row("zero router").aiq,
                        oracle_aiq=rep.row("oracle").aiq,
                        fit_seconds=fit_s,
                        n_train=tr.n_prompts,
                        n_test=te.n_prompts,
                        reference=rep.reference,
                    )
                    out.append(res)
                    print(
                        f"{data.key} seed={seed} {norm:9s} {name:40s} aiq {res.aiq:.4f} "
                        f"gap {100 * res.gap:5.1f}% cal-gap {100 * res.cal_gap:5.1f}% "
                        f"c95 {_fmt(res.cost95)} fit {fit_s:.1f}s",
                        file=log,
                        flush=True,
                    )
    return out


# ---- diagnostics: how much routing the task label alone explains -----------------------------
def _sweep_gap(router: Router, P: np.ndarray, X: np.ndarray, ds: RoutingDataset) -> Any:
    C = router.cost_model_.predict(X, prompt_chars(ds.prompts))
    grid = router.policy_.knob_grid(P, C, n=router.config.policy.grid_size)
    choices = np.stack([router.policy_.choose(P, C, k) for k in grid])
    report = compare_dataset(ds, {"diag": choices}, EvaluationConfig(bootstrap_samples=0))
    return report, report.row("diag")


def _group_means(Y: np.ndarray, groups: np.ndarray, target: np.ndarray) -> np.ndarray:
    out = np.broadcast_to(np.nanmean(Y, axis=0), (len(target), Y.shape[1])).copy()
    for g in np.unique(target):
        sel = groups == g
        if sel.any():
            out[target == g] = np.nanmean(Y[sel], axis=0)
    return out


def diagnostics(
    data: Loaded, embeddings: Embeddings, seeds: Iterable[int], log: Any
) -> list[Result]:
    """Reference rows that are not routers: constant per-tier P (the train means: routing by
    expected cost alone), per-task train means (the task label is not available when routing;
    this is what a router that recognises the task and nothing else can do) and per-task *test*
    means (uses test labels: the ceiling of task-level routing). Utility policy, same cost model.
    """
    ds, cfg = data.dataset, data.config
    norm = cfg.router.normalization.mode
    X = embeddings.matrix(ds.prompts, norm)
    tasks = np.asarray(ds.tasks) if ds.tasks is not None else None
    out: list[Result] = []
    for seed in seeds:
        splits = make_splits(ds, cfg.split.model_copy(update={"seed": seed}))
        tr, ca, te = splits.apply(ds)
        rcfg = router_config("knn", "utility", norm, seed, cfg.router, "none")
        router = Router(rcfg, embedder=embeddings.embedder)
        router.fit(
            tr, ca, prices=price_table(cfg), embeddings=(X[splits.train], X[splits.calibration])
        )
        variants = {
            "diag: tier means": np.broadcast_to(np.nanmean(tr.quality, axis=0), te.quality.shape)
        }
        if tasks is not None and len(set(ds.tasks or ())) > 1:
            t_tr, t_te = tasks[splits.train], tasks[splits.test]
            variants["diag: task means (train)"] = _group_means(tr.quality, t_tr, t_te)
            variants["diag: task means (TEST labels)"] = _group_means(te.quality, t_te, t_te)
        for label, P in variants.items():
            rep, row = _sweep_gap(router, np.asarray(P, dtype=np.float64), X[splits.test], te)
            nan = float("nan")
            out.append(
                Result(
                    dataset=data.key,
                    norm=norm,
                    predictor=label,
                    policy="utility",
                    seed=seed,
                    calibration="-",
                    aiq=row.aiq,
                    gap=row.gap_closed,
                    cost95=_pct_cost(rep, row, "95%"),
                    cost100=_pct_cost(rep, row, "100%"),
                    op_quality=nan,
                    op_cost=nan,
                    cal_gap=nan,
                    zero_aiq=rep.row("zero router").aiq,
                    oracle_aiq=rep.row("oracle").aiq,
                    fit_seconds=0.0,
                    n_train=tr.n_prompts,
                    n_test=te.n_prompts,
                    reference=rep.reference,
                )
            )
            print(f"{data.key} seed={seed} {label:40s} gap {100 * row.gap_closed:5.1f}%", file=log)
    return out


# ---- aggregation and tables ------------------------------------------------------------------
def _fmt(v: float | None, digits: int = 1, na: str = "never") -> str:
    return na if v is None or not math.isfinite(v) else f"{v:.{digits}f}"


def mean_ci(values: Sequence[float]) -> tuple[float, float]:
    """Mean and the half-width of a 95% t-interval over seeds."""
    a = np.asarray(values, dtype=np.float64)
    if a.size < 2:
        return float(a.mean()), float("nan")
    return float(a.mean()), T_975.get(a.size - 1, 1.96) * float(a.std(ddof=1)) / math.sqrt(a.size)


def _cost_cell(values: Sequence[float | None]) -> str:
    reached = [v for v in values if v is not None]
    if not reached:
        return "never"
    m, h = mean_ci(reached)
    note = "" if len(reached) == len(values) else f" ({len(values) - len(reached)} never)"
    return f"{m:.1f} ± {h:.1f}{note}" if math.isfinite(h) else f"{m:.1f}{note}"


def aggregate(results: Sequence[Result]) -> list[dict[str, Any]]:
    groups: dict[tuple[str, str, str, str, str], list[Result]] = {}
    for r in results:
        groups.setdefault((r.dataset, r.norm, r.predictor, r.policy, r.calibration), []).append(r)
    rows = []
    for (dsk, norm, pred, pol, calib), rs in groups.items():
        aiq_m, aiq_h = mean_ci([r.aiq for r in rs])
        gap_m, gap_h = mean_ci([100 * r.gap for r in rs])
        cal_m, _ = mean_ci([100 * r.cal_gap for r in rs])
        rows.append(
            {
                "dataset": dsk,
                "norm": norm,
                "predictor": pred,
                "policy": pol,
                "calibration": calib,
                "seeds": sorted(r.seed for r in rs),
                "aiq": aiq_m,
                "aiq_ci": aiq_h,
                "gap": gap_m,
                "gap_ci": gap_h,
                "cal_gap": cal_m,
                "cost95": _cost_cell([r.cost95 for r in rs]),
                "cost100": _cost_cell([r.cost100 for r in rs]),
                "cost95_mean": _mean_or_none([r.cost95 for r in rs]),
                "op": f"{_fmt(float(np.mean([r.op_quality for r in rs])), na='n/a')} / "
                f"{_fmt(float(np.mean([r.op_cost for r in rs])), na='n/a')}",
                "fit_s": float(np.mean([r.fit_seconds for r in rs])),
                "zero": float(np.mean([r.zero_aiq for r in rs])),
                "oracle": float(np.mean([r.oracle_aiq for r in rs])),
            }
        )
    return rows


def _mean_or_none(values: Sequence[float | None]) -> float | None:
    if any(v is None for v in values):
        return None
    return float(np.mean([v for v in values if v is not None]))


HEADER = (
    "| normalization | predictor | policy | calibration | AIQ | gap closed % | cost @95% "
    "| cost @100% | op quality / cost % | cal gap % | fit s |"
)


def table(rows: Sequence[dict[str, Any]], dataset: str) -> str:
    sel = sorted(
        (r for r in rows if r["dataset"] == dataset), key=lambda r: (-r["gap"], r["predictor"])
    )
    if not sel:
        return ""
    lines = [HEADER, "|---" * 11 + "|"]
    for r in sel:
        lines.append(
            f"| {r['norm']} | {r['predictor']} | {r['policy']} | {r['calibration']} "
            f"| {r['aiq']:.4f} ± {r['aiq_ci']:.4f} "
            f"| {r['gap']:.1f} ± {r['gap_ci']:.1f} | {r['cost95']} | {r['cost100']} | {r['op']} "
            f"| {_fmt(r['cal_gap'], na='n/a')} | {r['fit_s']:.1f} |"
        )
    z = np.mean([r["zero"] for r in sel])
    o = np.mean([r["oracle"] for r in sel])
    lines.append(f"| | zero router | | | {z:.4f} | 0 | | | | | |")
    lines.append(f"| | oracle | | | {o:.4f} | 100 | | | | | |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", nargs="+", default=["routerbench"], choices=list(DATASETS))
    ap.add_argument("--predictors", nargs="*", default=[*PREDICTORS, "logreg:C=0.1"])
    ap.add_argument("--policies", nargs="+", default=list(POLICIES), choices=[*POLICIES, "default"])
    ap.add_argument(
        "--normalizations",
        nargs="+",
        default=list(NORMALIZATIONS),
        choices=[*NORMALIZATIONS, "default"],
    )
    ap.add_argument(
        "--calibrations",
        nargs="+",
        default=["default"],
        choices=["default", "platt", "isotonic", "centered_isotonic", "none"],
    )
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    ap.add_argument("--max-prompts", type=int, default=None, help="subsample (0 = all)")
    ap.add_argument("--embedder", default="minilm")
    ap.add_argument(
        "--diagnostics", action="store_true", help="add tier-mean and task-mean reference rows"
    )
    ap.add_argument("--json", type=Path, help="write this run's per-seed results here")
    ap.add_argument("--merge", nargs="*", type=Path, default=[], help="earlier --json files")
    ap.add_argument("--markdown", type=Path, help="write the tables here (with --merge'd runs)")
    args = ap.parse_args(argv)

    t_start = time.perf_counter()
    embeddings = Embeddings(args.embedder)
    results: list[Result] = []
    notes: dict[str, str] = {}
    for key in args.datasets:
        data = load(key, args.max_prompts)
        ds = data.dataset
        sub = f", subsampled from {data.subsampled_from}" if data.subsampled_from else ""
        notes[key] = f"{ds.n_prompts} prompts × {ds.n_models} models{sub}"
        print(f"== {key}: {notes[key]}", flush=True)
        results += run_dataset(
            data,
            embeddings,
            args.seeds,
            args.predictors,
            args.policies,
            args.normalizations,
            args.calibrations,
            sys.stdout,
        )
        if args.diagnostics:
            results += diagnostics(data, embeddings, args.seeds, sys.stdout)
    wall = time.perf_counter() - t_start
    if args.json:
        args.json.write_text(
            json.dumps(
                {"notes": notes, "wall_seconds": wall, "results": [asdict(r) for r in results]},
                indent=1,
            )
        )
    merged = list(results)
    for path in args.merge:
        blob = json.loads(path.read_text())
        wall += float(blob.get("wall_seconds", 0.0))
        merged += [Result(**r) for r in blob["results"]]
        for k, v in blob.get("notes", {}).items():
            notes.setdefault(k, v)
    rows = aggregate(merged)
    for key in dict.fromkeys(r["dataset"] for r in rows):
        print(f"\n== {key} ({notes.get(key, '')}); mean ± 95% CI over seeds ==")
        print(table(rows, key))
    print(f"\nwall time {wall:.0f} s incl. merged runs (embedding {embeddings.seconds:.0f} s)")
    if args.markdown:
        write_markdown(args.markdown, rows, notes, wall, argv)
    return 0


BEGIN, END = "<!-- bench_router tables: begin -->", "<!-- bench_router tables: end -->"


def write_markdown(
    path: Path,
    rows: Sequence[dict[str, Any]],
    notes: dict[str, str],
    wall: float,
    argv: Sequence[str] | None,
) -> None:
    """Replace the generated block of ``path`` (hand-written text around it is kept)."""
    cmd = " ".join(["scripts/bench_router.py", *(argv if argv is not None else sys.argv[1:])])
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    parts = [
        BEGIN,
        f"Generated by `{cmd}` ({time.strftime('%Y-%m-%d')}; {os.cpu_count()} CPUs, "
        f"load average {load:.1f} at the end; wall time of the runs shown {wall:.0f} s). "
        "Mean ± 95% t-interval over the split seeds; cost columns are % of the reference "
        "(best single) model's cost on the test split; `op` is the calibration-chosen knob "
        "scored on test (% of the reference's quality / cost); `cal gap` scores the sweep on "
        "the calibration split (selection without test data).",
    ]
    for k in dict.fromkeys(r["dataset"] for r in rows):
        parts.append(f"### {k}\n\n{notes.get(k, '')}\n\n{table(rows, k)}")
    parts.append(END)
    block = "\n\n".join(parts)
    path.parent.mkdir(parents=True, exist_ok=True)
    old = path.read_text() if path.exists() else ""
    if BEGIN in old and END in old:
        head, rest = old.split(BEGIN, 1)
        text = head + block + rest.split(END, 1)[1]
    else:
        text = (old.rstrip() + "\n\n" if old.strip() else "") + block + "\n"
    path.write_text(text)


if __name__ == "__main__":
    raise SystemExit(main())
