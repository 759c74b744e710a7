"""A user's Python scorer given by dotted path: ``score.python.function: my_pkg.scores:check``.

Called as ``check(answer, example)`` with ``example`` a dict of the prompt's source row plus
``id``, ``prompt``, ``task`` and ``reference``. It returns True/False, a float in [0, 1], or
None when it cannot score the answer. It runs in a worker thread, so slow checks (running
generated code against tests) do not stall the calls in flight. An exception or a bad return
value makes that one answer unscorable, with the reason in the report; the others go on.
"""

from __future__ import annotations

import asyncio
import importlib
import math
from collections.abc import Callable
from typing import Any

from tierwise.eval.labelling.scorers.base import Score, Scorer
from tierwise.eval.labelling.sources import Example
from tierwise.router.errors import ConfigError


def load_function(path: str) -> Callable[[str, dict[str, Any]], Any]:
    """Import ``package.module:name``; ConfigError naming the problem if it cannot."""
    module_name, _, attr = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ConfigError(
            f"`score.python.function` {path!r}: cannot import module {module_name!r} ({err}); "
            "install the package or add its directory to PYTHONPATH"
        ) from None
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise ConfigError(
            f"`score.python.function` {path!r}: module {module_name!r} has no function "
            f"{attr!r}; fix the name"
        )
    return fn


def to_score(value: Any) -> Score:
    """A user scorer's return value as a Score in [0, 1], or a Score saying why it is not one."""
    if value is None:
        return Score(None, "the scorer returned None")
    if isinstance(value, bool):
        return Score(float(value))
    if isinstance(value, int | float) and math.isfinite(value) and 0 <= value <= 1:
        return Score(float(value))
    return Score(
        None, f"the scorer returned {value!r}; it must return a bool, a float in [0, 1] or None"
    )


class PythonScorer(Scorer):
    """``score.method: python``."""

    name = "python"

    def __init__(self, function: str) -> None:
        self.function = function
        self.fn = load_function(function)

    async def score(self, answer: str, example: Example) -> Score:
        payload = {
            **example.row,
            "id": example.id,
            "prompt": example.prompt,
            "task": example.task,
            "reference": example.reference,
        }
        try:
            value = await asyncio.to_thread(self.fn, answer, payload)
        except Exception as err:  # the user's code: any failure is this answer's, not the run's
            return Score(None, f"the scorer raised {type(err).__name__}: {str(err)[:160]}")
        return to_score(value)
