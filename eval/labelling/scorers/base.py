"""What every scorer is: an answer and its example in, a score in [0, 1] (or None) out.

Scorers plug in Optuna-style: a small ABC, one module per implementation, and a registry by
short name (``score.method`` in the config) in :mod:`tierwise.eval.labelling.scorers`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from tierwise.eval.labelling.sources import Example

# The runner's way of asking a tier (through the call cache and the budget): the answer's text.
AskFn = Callable[[str, list[dict[str, Any]], dict[str, Any]], Awaitable[str]]


@dataclass(frozen=True)
class Score:
    """``value`` in [0, 1], or None when the answer could not be scored (``note`` says why).
    ``raw``: the judge's whole output, kept for audit."""

    value: float | None
    note: str = ""
    raw: str | None = None

    @property
    def scorable(self) -> bool:
        return self.value is not None


class Scorer(ABC):
    """Scores one tier's answer to one example."""

    name: ClassVar[str]
    # True when scoring calls an upstream (it then needs the runner's `ask`)
    calls_upstream: ClassVar[bool] = False

    @abstractmethod
    async def score(self, answer: str, example: Example) -> Score:
        """The score of ``answer``; never raises for one bad answer (returns value None)."""
