"""Create or resume a named study, run trials, hand each finished trial to the hooks.

Resuming: the study is named and stored (journal file or database), so running the command
again continues it. Finished trials (complete or pruned) count toward ``n_trials``; a trial
left RUNNING by a killed process is marked FAIL and its parameters are queued again, so no
suggested configuration is lost (a worker on this host: its process is gone; elsewhere, with a
database: its heartbeat stopped). This is checked before and after the trials run, so a
resumed study that finishes quickly does not leave the dead worker's trial RUNNING. A study
whose stored fingerprint (search space, mode, target, data) differs from the
config's is refused: its scores would not be comparable.

Every trial stores in ``user_attrs`` what a tracker needs: ``router_config`` (the resolved
RouterConfig as a JSON dict), ``metrics`` (calibration-split numbers), ``calibration_curve``
(``[quality, cost per query]`` per knob), ``feasible``, ``constraint`` and ``worker``.
"""

from __future__ import annotations

import math
import os
import socket
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from tierwise.experiments.tuning.config import TuneConfig
from tierwise.experiments.tuning.objective import TrialEvaluator
from tierwise.experiments.tuning.space import ResolvedSpace, suggest_config
from tierwise.router.config import RouterConfig
from tierwise.router.errors import ConfigError, TierwiseError

if TYPE_CHECKING:
    import optuna
    from optuna.storages import BaseStorage
    from optuna.trial import FrozenTrial

TrialHook = Callable[["optuna.Study", "FrozenTrial"], None]
FINGERPRINT_ATTR = "tierwise.fingerprint"
DESCRIPTION_ATTR = "tierwise.description"
MAX_CONSECUTIVE_FAILURES = 5
UNNAMED_GRACE_S = 5.0  # a RUNNING trial with no worker named after this long was orphaned
MAX_CATCH_UP = 3  # optimize() rounds to re-run trials of workers that died meanwhile


def worker_id() -> str:
    """This process as ``host:pid`` (recorded on the trials it runs)."""
    return f"{socket.gethostname()}:{os.getpid()}"


def directions(mode: str) -> list[Literal["minimize", "maximize"]]:
    """The study's optimization directions for ``mode``."""
    return ["minimize"] if mode == "constrained" else ["minimize", "maximize"]


def _finite(d: dict[str, float]) -> dict[str, float]:
    return {k: float(v) for k, v in d.items() if v is not None and math.isfinite(float(v))}


class Objective:
    """Optuna's objective: suggest a RouterConfig, evaluate it, store what trackers need."""

    def __init__(
        self,
        evaluator: TrialEvaluator,
        space: ResolvedSpace,
        base: RouterConfig,
        tune: TuneConfig,
        quality_fraction: float,
    ) -> None:
        self.evaluator, self.space, self.base, self.tune = evaluator, space, base, tune
        self.quality_fraction = quality_fraction
        self.multi = tune.mode == "multi_objective"

    def __call__(self, trial: optuna.Trial) -> float | tuple[float, float]:
        import optuna

        trial.set_user_attr("worker", worker_id())
        cfg = suggest_config(
            trial,
            self.space,
            self.base,
            quality_fraction=self.quality_fraction,
            multi_objective=self.multi,
        )
        trial.set_user_attr("router_config", cfg.model_dump(mode="json"))

        def on_step(step: int, brier: float) -> None:
            trial.report(brier, step)
            if trial.should_prune():
                trial.set_user_attr("metrics", _finite({"raw_brier": brier}))
                raise optuna.TrialPruned(f"predictor Brier {brier:.4f} in the worst quarter")

        prune = self.tune.pruning and not self.multi
        try:
            ev = self.evaluator.evaluate(cfg, on_step=on_step if prune else None, prune_cheap=prune)
        except TierwiseError as err:
            trial.set_user_attr("error", str(err))
            raise
        curve = [[float(f"{q:.10g}"), float(f"{c:.10g}")] for q, c in ev.curve]
        trial.set_user_attr("metrics", _finite(ev.metrics))
        trial.set_user_attr("calibration_curve", curve)
        trial.set_user_attr("feasible", ev.feasible)
        shortfall = max(0.0, ev.target_quality - ev.quality)
        trial.set_user_attr("constraint", shortfall)
        if not self.multi:
            # > 0 is infeasible (how far the quality falls short): TPE / NSGA-II model it.
            trial.set_constraint("quality_shortfall", shortfall)
        if self.multi:
            return ev.cost_per_1k, ev.quality
        return ev.cost_per_1k


def make_sampler(tune: TuneConfig, seed: int) -> optuna.samplers.BaseSampler:
    """The Optuna sampler the tune config names (TPE by default; seeded)."""
    import optuna

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    if tune.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if tune.sampler == "nsga2":
        population = int(min(50, max(8, tune.n_trials // 8)))
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=population)
    # multivariate + group: the space is conditional (each predictor has its own parameters).
    return optuna.samplers.TPESampler(
        seed=seed,
        multivariate=True,
        group=True,
        n_startup_trials=min(10, max(2, tune.n_trials // 10)),
    )


def make_pruner(tune: TuneConfig) -> optuna.pruners.BasePruner:
    """The Optuna pruner for the tune config (none unless pruning in constrained mode)."""
    import optuna

    if not tune.pruning or tune.mode != "constrained":
        return optuna.pruners.NopPruner()
    return optuna.pruners.PercentilePruner(75.0, n_startup_trials=10, n_warmup_steps=0)


def _differences(old: Any, new: Any, prefix: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[str] = []
        for k in sorted(set(old) | set(new), key=str):
            out += _differences(old.get(k), new.get(k), f"{prefix}{k}.")
        return out
    return [] if old == new else [prefix.rstrip(".")]


def open_study(
    name: str,
    storage: BaseStorage,
    storage_label: str,
    tune: TuneConfig,
    fingerprint: str,
    description: dict[str, Any],
) -> optuna.Study:
    """Load ``name`` or create it; refuse one created for another space, mode or dataset."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    pruner = make_pruner(tune)
    try:
        study = optuna.load_study(study_name=name, storage=storage, pruner=pruner)
    except KeyError:
        study = optuna.create_study(
            storage=storage,
            study_name=name,
            directions=directions(tune.mode),
            pruner=pruner,
            load_if_exists=True,  # another worker may have created it a moment ago
        )
    stored = study.user_attrs.get(FINGERPRINT_ATTR)
    if stored is None:
        if study.get_trials(deepcopy=False):
            raise ConfigError(
                f"study {name!r} in {storage_label} was not created by `tierwise tune`; "
                "pass another --study name"
            )
        study.set_user_attr(FINGERPRINT_ATTR, fingerprint)
        study.set_user_attr(DESCRIPTION_ATTR, description)
    elif stored != fingerprint:
        diff = _differences(study.user_attrs.get(DESCRIPTION_ATTR) or {}, description)
        where = ", ".join(diff[:4]) + (" …" if len(diff) > 4 else "") if diff else "unknown"
        raise ConfigError(
            f"study {name!r} in {storage_label} was created with a different search space, "
            f"mode, target or dataset (fingerprint {stored} ≠ {fingerprint}; differs in: "
            f"{where}); pass a new --study name (or tune.study_name), or delete the old study "
            f"to start over"
        )
    want = directions(tune.mode)
    have = [d.name.lower() for d in study.directions]
    if have != want:
        raise ConfigError(
            f"study {name!r} optimizes {have}, but `tune.mode: {tune.mode}` needs {want}; "
            "pass a new --study name"
        )
    return study


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (killed, not yet reaped) holds its pid but runs nothing
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def recover_stale(
    study: optuna.Study, storage: BaseStorage, *, requeue: bool = True, database: bool = False
) -> list[int]:
    """Fail RUNNING trials whose worker is gone; re-queue their params (``requeue``).

    A worker on this host is gone when its process is; for a database, a worker elsewhere when
    its heartbeat is older than the grace period (Optuna checks that only when a trial starts,
    so a resumed study that finishes quickly would otherwise leave the trial RUNNING forever).
    A trial still unnamed ``UNNAMED_GRACE_S`` after it started is stale too: a live worker
    names its trial right after creating it (:func:`_owned`), so its process died in between.
    """
    import datetime

    from optuna.trial import TrialState

    host = socket.gethostname()
    study_id = storage.get_study_id_from_name(study.study_name)
    stale = set(_heartbeat_stale(storage, study_id)) if database else set()
    recovered = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        h, _, pid = str(t.user_attrs.get("worker", "")).rpartition(":")
        tid = storage.get_trial_id_from_study_id_trial_number(study_id, t.number)
        dead_here = h == host and pid.isdigit() and not _alive(int(pid))
        started = t.datetime_start or datetime.datetime.now()
        unnamed = not h and not pid and (
            (datetime.datetime.now() - started).total_seconds() > UNNAMED_GRACE_S
        )
        if not dead_here and not unnamed and tid not in stale:
            continue
        try:
            if not storage.set_trial_state_values(tid, TrialState.FAIL):
                continue
        except RuntimeError:  # it finished after all (another process got there first)
            continue
        if requeue and t.params:  # killed before its first suggestion: nothing to re-run
            study.enqueue_trial(t.params, user_attrs={"retry_of": t.number})
        recovered.append(t.number)
    return recovered


def _heartbeat_stale(storage: BaseStorage, study_id: int) -> list[int]:
    get = getattr(storage, "_get_stale_trial_ids", None) or getattr(
        storage, "get_stale_trial_ids", None
    )
    interval = getattr(storage, "get_heartbeat_interval", lambda: None)()
    if get is None or not interval:
        return []
    try:
        return list(get(study_id))
    except Exception:  # a storage without heartbeats: nothing is known to be stale
        return []


def _owned(sampler: optuna.samplers.BaseSampler) -> optuna.samplers.BaseSampler:
    """Name the worker on each trial as soon as it exists (``before_trial``), so that a trial
    whose process dies at any point afterwards can be recognised as stale."""
    original = sampler.before_trial

    def before_trial(study: optuna.Study, trial: FrozenTrial) -> None:
        study._storage.set_trial_user_attr(trial._trial_id, "worker", worker_id())
        original(study, trial)

    sampler.before_trial = before_trial  # type: ignore[method-assign]
    return sampler


def finished_count(study: optuna.Study) -> int:
    """How many of the study's trials are complete or pruned."""
    from optuna.trial import TrialState

    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))


@dataclass
class RunSummary:
    """Trials finished before and after a run (all workers) and its duration."""

    finished_before: int
    finished_after: int  # the study's, including other workers' trials
    seconds: float
    recovered: list[int] = field(default_factory=list)
    hook_errors: list[str] = field(default_factory=list)
    ran_here: int = 0  # trials this process finished (complete or pruned)

    @property
    def ran(self) -> int:
        """Trials this worker finished; with other workers the study grew by more."""
        return self.ran_here


class _Count:
    def __init__(self, summary: RunSummary) -> None:
        self.summary = summary

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        if trial.state.name in ("COMPLETE", "PRUNED"):
            self.summary.ran_here += 1


class _Guard:
    """Stop after several trials in a row failed (a bad space would otherwise loop forever)."""

    def __init__(self) -> None:
        self.streak, self.last = 0, ""

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        if trial.state.name == "FAIL":
            self.streak += 1
            self.last = str(trial.user_attrs.get("error", "see the warnings above"))
            if self.streak >= MAX_CONSECUTIVE_FAILURES:
                study.stop()
        else:
            self.streak = 0


class _Progress:
    def __init__(self, total: int, done: int, enabled: bool) -> None:
        self.bar: Any = None
        self.enabled = enabled
        if enabled:
            try:
                from tqdm import tqdm

                self.bar = tqdm(total=total, initial=done, desc="trials", unit="trial", leave=False)
            except ImportError:
                self.bar = None

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        if not self.enabled or trial.state.name not in ("COMPLETE", "PRUNED"):
            return
        m = trial.user_attrs.get("metrics") or {}
        text = (
            f"#{trial.number} {trial.state.name.lower()}"
            if "cost_per_1k" not in m
            else f"#{trial.number} ${m['cost_per_1k']:.3g}/1k q={m['quality']:.3f}"
        )
        if self.bar is not None:
            self.bar.set_postfix_str(text, refresh=False)
            self.bar.update(1)
        else:
            print(f"trial {text}", file=sys.stderr)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _safe(hook: TrialHook, errors: list[str]) -> TrialHook:
    """A hook that fails (tracking server down…) warns once and never stops the study."""

    def call(study: optuna.Study, trial: FrozenTrial) -> None:
        try:
            hook(study, trial)
        except Exception as err:  # a hook must not kill the study
            msg = f"{getattr(hook, '__name__', type(hook).__name__)}: {err}"
            if not errors:
                print(
                    f"tierwise: warning: {msg}; trials continue and stay in the study",
                    file=sys.stderr,
                )
            errors.append(msg)

    return call


def run_trials(
    study: optuna.Study,
    objective: Objective,
    storage: BaseStorage,
    *,
    n_trials: int,
    timeout_s: float | None,
    seed: int,
    database: bool,
    progress: bool = True,
    on_trial_end: Sequence[TrialHook] = (),
) -> RunSummary:
    """Run until the study has ``n_trials`` finished trials (or ``timeout_s`` passes)."""
    import optuna
    from optuna.trial import TrialState

    before = finished_count(study)
    recovered = recover_stale(study, storage, requeue=before < n_trials, database=database)
    summary = RunSummary(before, before, 0.0, recovered)
    if before >= n_trials:
        return summary
    # A fresh single-worker study replays exactly from `seed`; a resumed one continues on a
    # stream derived from how far it got, so it does not re-draw the first run's samples.
    # Database workers may start together: each also mixes in its process id.
    n_all = len(study.get_trials(deepcopy=False))
    if n_all == 0 and not database:
        run_seed = seed
    else:
        parts = [seed, n_all] + ([os.getpid()] if database else [])
        run_seed = int(np.random.SeedSequence(parts).generate_state(1)[0])
    study.sampler = _owned(make_sampler(objective.tune, run_seed))
    guard = _Guard()
    bar = _Progress(n_trials, before, progress)
    callbacks: list[TrialHook] = [
        optuna.study.MaxTrialsCallback(n_trials, states=(TrialState.COMPLETE, TrialState.PRUNED)),
        guard,
        bar,
        _Count(summary),
        *(_safe(h, summary.hook_errors) for h in on_trial_end),
    ]
    t0 = time.perf_counter()
    try:
        for _ in range(MAX_CATCH_UP):
            study.optimize(
                objective, timeout=timeout_s, callbacks=callbacks, catch=(TierwiseError,)
            )
            # Another worker killed while this one ran leaves a RUNNING trial; fail it now (and
            # run its parameters again while the study is short of its target).
            short = finished_count(study) < n_trials
            late = recover_stale(study, storage, requeue=short, database=database)
            summary.recovered += late
            timed_out = timeout_s is not None and time.perf_counter() - t0 >= timeout_s
            if not (late and short) or timed_out or guard.streak >= MAX_CONSECUTIVE_FAILURES:
                break
    finally:
        bar.close()
        summary.seconds = time.perf_counter() - t0
        summary.finished_after = finished_count(study)
    if guard.streak >= MAX_CONSECUTIVE_FAILURES:
        raise ConfigError(
            f"{guard.streak} trials in a row failed; the last with: {guard.last}. "
            "Fix the search space (or the data) and run again: finished trials are kept"
        )
    return summary
