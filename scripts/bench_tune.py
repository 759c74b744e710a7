"""Benchmark `tierwise tune` on an experiment config (default: RouterBench): tuning speed on
cached embeddings, then the chosen router against the config's untuned router on test.

    .venv/bin/python scripts/bench_tune.py           # 200 trials on configs/routerbench.yaml
    .venv/bin/python scripts/bench_tune.py --trials 50 --config configs/routellm_gsm8k.yaml

Runs a fresh study in a temporary journal file (nothing is written under runs/), with the
config's `tune:` section (RouterBench has none: the default space, kNN × policies ×
calibration). Prints two tables: timings, then test-split numbers (scored once) of the tuned
and the default router at the same target. The machine's load average is printed beside the
timings: on a shared machine they vary with it.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _usd(x: float | None) -> str:
    return "never" if x is None else f"${x:.4f}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(ROOT / "configs" / "routerbench.yaml"))
    ap.add_argument("--trials", type=int, default=200)
    ap.add_argument("--mode", choices=("constrained", "multi_objective"), default=None)
    ap.add_argument("--scheme", choices=("cv", "cross_fit"), default=None)
    ap.add_argument("--no-test", action="store_true", help="skip the test-split comparison")
    ap.add_argument("--storage", help="keep the study here (default: a temporary journal)")
    ap.add_argument("--study", default="bench", help="study name")
    args = ap.parse_args()

    from tierwise.experiments.config import load_experiment
    from tierwise.experiments.tuning.session import TuneSession

    cfg = load_experiment(args.config)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-tune-") as tmp:
        t0 = time.perf_counter()
        session = TuneSession(
            cfg,
            overrides={
                "storage": args.storage or str(Path(tmp) / "optuna.journal"),
                "study_name": args.study,
                "n_trials": args.trials,
                "mode": args.mode,
                "scheme": args.scheme,
            },
            progress=False,
        )
        setup = time.perf_counter() - t0
        stamps: list[float] = []

        def stamp(study: object, trial: object) -> None:
            stamps.append(time.perf_counter())

        t1 = time.perf_counter()
        summary = session.run(on_trial_end=[stamp])
        wall = time.perf_counter() - t1
        load_after = os.getloadavg()
        trials = session.study.get_trials(deepcopy=False)
        states = [t.state.name for t in trials]
        done = [t.user_attrs["metrics"] for t in trials if t.state.name == "COMPLETE"]
        fit = sorted(m["fit_seconds"] for m in done)
        lat = sorted(m["routing_latency_ms"] for m in done)
        spaces = f"{', '.join(session.space.embedders)} / {len(session.ws.spaces)}"
        embed = f"{setup:.1f} s (embedding {session.ws.embed_seconds:.1f} s)"
        load = f"{load_before[0]:.1f} / {load_after[0]:.1f} on {os.cpu_count()} CPUs"
        counts = ", ".join(f"{s.lower()} {states.count(s)}" for s in sorted(set(states)))
        gaps = [b - a for a, b in zip([t1, *stamps], stamps, strict=False)]
        q = max(1, len(gaps) // 4)
        rows = [
            ["measure", "value"],
            [
                "config",
                f"{cfg.name} ({session.prep.train.n_prompts} train / "
                f"{session.prep.calibration.n_prompts} calibration prompts)",
            ],
            ["embedder / spaces", spaces],
            ["trials scored on", session.ws.scheme_text],
            ["setup: import + split + embed (cache)", embed],
            [f"{summary.ran}-trial study wall time", f"{wall:.1f} s"],
            ["trials / second (all)", f"{summary.ran / wall:.2f}"],
            [
                f"trials / second (first {q} / last {q})",
                f"{q / sum(gaps[:q]):.2f} / {q / sum(gaps[-q:]):.2f}",
            ],
            ["objective work per trial (median)", f"{1000 * fit[len(fit) // 2]:.0f} ms"],
            ["routing latency after embedding (median)", f"{lat[len(lat) // 2]:.3f} ms/prompt"],
            ["trial states", counts],
            ["load average (1 min) before / after", load],
        ]
        print(_table(rows))
        if args.no_test:
            return 0
        t2 = time.perf_counter()
        report = session.report(Path(tmp) / "tune")
        print(f"\nreport (re-fit + one test evaluation): {time.perf_counter() - t2:.1f} s")
        print(report.summary())
        print(report.table())
        head = ["router", "test AIQ", "gap closed", "$/1k@95%", "$/1k@100%", "quality", "$/1k"]
        out = [head]
        for c in report.rows():
            r = c.test
            out.append(
                [
                    c.label,
                    f"{r.aiq:.4f}",
                    f"{r.gap_closed:.3f}",
                    _usd(r.cost_at.get("95%")),
                    _usd(r.cost_at.get("100%")),
                    f"{r.quality:.4f}",
                    _usd(r.cost_per_1k),
                ]
            )
        print(_table(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
