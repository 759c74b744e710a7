"""Probes for scripts/bench_reliability.py: hostile inputs and faults, one module per category.

Every category module exposes ``run(workdir: pathlib.Path) -> list[dict]``; each dict is one
probe: ``{"category", "name", "outcome", "detail"}`` with ``outcome`` one of ``"handled"`` (a
clear answer: the right 4xx, a one-line error, the data kept), ``"crashed"`` (a traceback, a
5xx, a hang, a dead process) or ``"silently_wrong"`` (accepted, or answered with a wrong
result). The runner imports whichever category modules exist and prints one table.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
OUTCOMES = ("handled", "crashed", "silently_wrong")


def probe(category: str, name: str, outcome: str, detail: str = "") -> dict[str, Any]:
    """One probe's result (``detail`` is cut to one line of at most 200 characters)."""
    if outcome not in OUTCOMES:
        raise ValueError(f"outcome must be one of {OUTCOMES}, got {outcome!r}")
    line = " ".join(str(detail).split())
    return {
        "category": category,
        "name": name,
        "outcome": outcome,
        "detail": line if len(line) <= 200 else line[:197] + "...",
    }


def use_test_helpers() -> None:
    """Make tests/*_helpers.py importable (small routers, a served process, free ports)."""
    tests = str(ROOT / "tests")
    if tests not in sys.path:
        sys.path.insert(0, tests)
