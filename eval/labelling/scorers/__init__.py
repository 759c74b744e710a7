"""Scorers by short name (``score.method``): ``reference``, ``judge``, ``python``."""

from __future__ import annotations

from tierwise.eval.labelling.config import ScoreConfig
from tierwise.eval.labelling.scorers.base import AskFn, Score, Scorer
from tierwise.eval.labelling.scorers.custom import PythonScorer
from tierwise.eval.labelling.scorers.judge import JudgeScorer
from tierwise.eval.labelling.scorers.reference import ReferenceScorer, match
from tierwise.router.errors import ConfigError

SCORERS: dict[str, type[Scorer]] = {
    "reference": ReferenceScorer,
    "judge": JudgeScorer,
    "python": PythonScorer,
}


def make_scorer(cfg: ScoreConfig, ask: AskFn | None = None) -> Scorer:
    """The scorer ``cfg.method`` names; a judge needs ``ask`` (the runner's upstream call)."""
    if cfg.method not in SCORERS:
        raise ConfigError(f"`score.method` must be one of {sorted(SCORERS)}, got {cfg.method!r}")
    if cfg.method == "reference":
        return ReferenceScorer(cfg.reference)
    if cfg.method == "python":
        assert cfg.python is not None
        return PythonScorer(cfg.python.function)
    assert cfg.judge is not None
    if ask is None:
        raise ConfigError("the judge scorer needs an upstream client; run it through the runner")
    return JudgeScorer(cfg.judge, ask)


__all__ = ["SCORERS", "AskFn", "Score", "Scorer", "make_scorer", "match"]
