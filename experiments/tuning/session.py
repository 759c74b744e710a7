"""A tuning session: import and split once, embed once, open (or resume) the study, run trials,
then report. ``tierwise tune`` and scripts/bench_tune.py drive it::

    session = TuneSession(cfg, overrides={"n_trials": 200})
    session.run(on_trial_end=[my_hook])
    report = session.report(Path("runs/x/tune"))
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tierwise.experiments.tuning.config import TuneConfig
from tierwise.experiments.tuning.objective import TrialEvaluator
from tierwise.experiments.tuning.report import (
    Chosen,
    TuneReport,
    choose_trials,
    counts,
    plot_trials,
    write_json,
)
from tierwise.experiments.tuning.space import resolve_space, space_fingerprint
from tierwise.experiments.tuning.storage import default_storage, is_database, open_storage, redact
from tierwise.experiments.tuning.study import (
    Objective,
    RunSummary,
    TrialHook,
    open_study,
    run_trials,
)
from tierwise.experiments.tuning.workspace import Workspace, describe_data
from tierwise.router.config import RouterConfig
from tierwise.router.schema import parse_model

if TYPE_CHECKING:
    from tierwise.experiments.config import ExperimentConfig
    from tierwise.experiments.training import Prepared, TrainResult


def tune_config(cfg: ExperimentConfig, overrides: dict[str, Any] | None = None) -> TuneConfig:
    """The config's `tune:` section with CLI overrides (None values are ignored) validated."""
    data = cfg.tune.model_dump(mode="python")
    data.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return parse_model(TuneConfig, data, source="tune")


class TuneSession:
    """One ``tierwise tune`` run: prepares data and study, runs trials, tests the chosen."""

    def __init__(
        self,
        cfg: ExperimentConfig,
        *,
        overrides: dict[str, Any] | None = None,
        progress: bool = True,
    ) -> None:
        from tierwise.experiments.training import prepare

        self.cfg = cfg
        self.tune = tune_config(cfg, overrides)
        self.progress = progress
        self.space = resolve_space(self.tune, cfg.router)  # before the slow steps: fail fast
        self.storage_spec = self.tune.storage or default_storage(cfg)
        self.storage_label = redact(self.storage_spec)
        self.database = is_database(self.storage_spec)
        self.storage = open_storage(self.storage_spec)
        self.study_name = self.tune.study_name or cfg.name
        t0 = time.perf_counter()
        self.prep = prepare(cfg, progress=progress)
        self.description = {
            "mode": self.tune.mode,
            "target": self.tune.target.model_dump(mode="json"),
            "scheme": self.tune.scheme,
            "folds": self.tune.folds,
            "space": self.space.describe(),
            "data": describe_data(self.prep, cfg.router),
        }
        self.fingerprint = space_fingerprint(self.description)
        # Opened before embedding, so a study of another space is refused before slow work.
        self.study = open_study(
            self.study_name,
            self.storage,
            self.storage_label,
            self.tune,
            self.fingerprint,
            self.description,
        )
        view = tuning_view(self.prep)
        self.ws = Workspace(view, self.tune, self.space, cfg.router, progress=progress)
        self.setup_seconds = time.perf_counter() - t0
        self.quality_fraction = self.ws.quality_fraction()
        self.evaluator = TrialEvaluator(self.ws)
        self.objective = Objective(
            self.evaluator, self.space, cfg.router, self.tune, self.quality_fraction
        )

    def run(
        self,
        *,
        n_trials: int | None = None,
        timeout_s: float | None = None,
        on_trial_end: Sequence[TrialHook] = (),
    ) -> RunSummary:
        return run_trials(
            self.study,
            self.objective,
            self.storage,
            n_trials=n_trials or self.tune.n_trials,
            timeout_s=timeout_s if timeout_s is not None else self.tune.timeout_s,
            seed=self.tune.seed,
            database=self.database,
            progress=self.progress,
            on_trial_end=on_trial_end,
        )

    # -- after the study ----------------------------------------------------------------------
    def target_text(self) -> str:
        return self.tune.target.describe(self.ws.reference_model)

    def _train(self, rcfg: RouterConfig) -> TrainResult:
        from tierwise.experiments.training import train

        cfg = self.cfg.model_copy(update={"router": rcfg})
        return train(cfg, prep=self.prep, progress=self.progress)

    def default_config(self) -> RouterConfig:
        """The config's own router, held to the study's quality target (comparable numbers)."""
        data = self.cfg.router.model_dump(mode="json")
        data["policy"]["select"]["quality_fraction"] = self.quality_fraction
        return RouterConfig.model_validate(data)

    def report(self, out_dir: Path | None = None, *, include_default: bool = True) -> TuneReport:
        """Re-fit the chosen trials, score each once on test, save artifact, charts and JSON."""
        from tierwise.eval.reporting import EvaluationConfig, compare_dataset

        trials, feasible = choose_trials(self.study, self.tune.mode, self.tune.report_top)
        chosen = []
        for t in trials:
            rcfg = RouterConfig.model_validate(t.user_attrs["router_config"])
            result = self._train(rcfg)
            label = f"tuned #{t.number} ({rcfg.predictor.name}/{rcfg.policy.name})"
            chosen.append(Chosen(label, t.number, rcfg, dict(t.user_attrs["metrics"]), result))
        default = None
        if include_default:
            dcfg = self.default_config()
            self.ws.ensure(dcfg, progress=self.progress)
            ev = self.evaluator.evaluate(dcfg)
            label = f"default ({dcfg.predictor.name}/{dcfg.policy.name})"
            default = Chosen(label, None, dcfg, ev.metrics, self._train(dcfg))
        report = TuneReport(
            study_name=self.study_name,
            storage=self.storage_label,
            mode=self.tune.mode,
            target=self.target_text(),
            target_quality=self.ws.target_quality(self.quality_fraction),
            scheme=self.ws.scheme_text,
            reference_model=self.ws.reference_model,
            counts=counts(self.study),
            feasible=feasible,
            chosen=chosen,
            default=default,
        )
        if out_dir is None:
            return report
        out_dir.mkdir(parents=True, exist_ok=True)
        if chosen:
            best = self._primary(chosen)
            path = out_dir / "router.tierwise"
            best.result.router.save(
                str(path),
                metrics={k: v for k, v in best.result.report.flat_metrics().items() if v == v},
                extra={"tune": {"study": self.study_name, "trial": best.trial_number}},
            )
            report.files["router"] = str(path)
            for c in chosen:
                if c is not best:
                    p = out_dir / f"router_trial{c.trial_number}.tierwise"
                    c.result.router.save(str(p), extra={"tune": {"trial": c.trial_number}})
                    report.files[f"router_trial{c.trial_number}"] = str(p)
        rows = report.rows()
        if rows:
            policies, ops = {}, {}
            for c in rows:
                router = c.result.router
                sweep = router.sweep(self.prep.test.prompts)
                choices = sweep.choices
                ops[c.label] = int(np.abs(sweep.knobs - router.knob_).argmin())
                if router.fallback_model_ is not None:  # as evaluate_on_test: no certified knob
                    fb = np.full(
                        (1, choices.shape[1]), router.models_.index(router.fallback_model_)
                    )
                    choices, ops[c.label] = np.vstack([choices, fb]), len(choices)
                policies[c.label] = choices
            combined = compare_dataset(
                self.prep.test,
                policies,
                EvaluationConfig(bootstrap_samples=0),
                operating_points=ops,
            )
            report.files["cost_quality_png"] = str(
                combined.plot(out_dir / "cost_quality.png", title=f"{self.cfg.name}: test split")
            )
        trials_png = plot_trials(
            self.study,
            out_dir / "trials.png",
            chosen=[c.trial_number for c in chosen if c.trial_number is not None],
            target_quality=report.target_quality if self.tune.mode == "constrained" else None,
            title=f"study {self.study_name}: each trial scored by\n{self.ws.scheme_text}",
        )
        if trials_png is not None:
            report.files["trials_png"] = str(trials_png)
        report.files["json"] = str(out_dir / "tune_report.json")
        write_json(report, out_dir / "tune_report.json")
        return report

    def _primary(self, chosen: list[Chosen]) -> Chosen:
        """The router saved as router.tierwise: the constrained choice, or the cheapest Pareto
        router reaching the target on calibration (else the best quality one)."""
        if self.tune.mode == "constrained":
            return chosen[0]
        target = self.ws.target_quality(self.quality_fraction)
        ok = [c for c in chosen if c.calibration.get("quality", 0.0) >= target - 1e-12]
        if ok:
            return min(ok, key=lambda c: c.calibration["cost_per_1k"])
        return max(chosen, key=lambda c: c.calibration.get("quality", 0.0))


def tuning_view(prep: Prepared) -> Prepared:
    """The data trials may see. With a `target`, the calibration prompts that certification will
    test knobs on (eval.certification.split_for_certification, same seed) are held out of tuning
    too: choosing hyperparameters on them would void the guarantee."""
    if prep.config.target is None:
        return prep
    from dataclasses import replace

    from tierwise.eval.certification import split_for_certification

    part = split_for_certification(prep.calibration.prompts, seed=prep.config.split.seed)
    return replace(prep, calibration=prep.calibration.subset(part.calibrator))
