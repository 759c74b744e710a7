"""Plain-text tables and the number formats every printed table shares.

One library lays out every table the CLI prints (data inspect, train/evaluate report, tune
report, compare, route, batch): `tabulate` — a single pure-Python module with no dependencies,
small enough for the runtime-only install that runs ``route``/``batch``/``serve``. Cells are
formatted here first (``disable_numparse``), so a cost reads the same in every table.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from tabulate import SEPARATING_LINE, tabulate

__all__ = ["SEPARATOR", "num", "pct", "text_table", "usd"]

SEPARATOR: Any = SEPARATING_LINE  # a row of this value draws a rule between groups of rows

def _finite(x: Any) -> bool:
    return x is not None and math.isfinite(float(x))


def num(x: float | None, fmt: str = ".3f") -> str:
    """``x`` formatted with ``fmt``; "n/a" when missing or not finite."""
    return format(x, fmt) if _finite(x) else "n/a"


def usd(x: float | None) -> str:
    """Dollars: 3 decimals from $1 up, 4 below; "never" for None (a target never reached)."""
    if x is None:
        return "never"
    if not _finite(x):
        return "n/a"
    return f"${x:.3f}" if x >= 1 else f"${x:.4f}"


def pct(x: float | None, digits: int = 1) -> str:
    """A share in [0, 1] as a percentage; "never" for None, "n/a" when not finite."""
    if x is None:
        return "never"
    return f"{100 * x:.{digits}f}%" if _finite(x) else "n/a"


def text_table(
    rows: Sequence[Sequence[Any]],
    headers: Sequence[str],
    *,
    align: Sequence[str] | None = None,
    indent: str = "",
) -> str:
    """An aligned table: header, a rule under it, the rows (``SEPARATOR`` rows draw a rule).

    ``align``: one of ``left``/``right``/``center`` per column (default: first column left,
    the others right, as numbers read best). Cells are printed as given (``str()``), never
    re-parsed as numbers.
    """
    n = len(headers)
    colalign = list(align) if align is not None else ["left", *["right"] * (n - 1)]
    text = tabulate(
        [r if r is SEPARATOR else [str(c) for c in r] for r in rows],
        headers=list(headers),
        tablefmt="simple",
        colalign=colalign,
        disable_numparse=True,
    )
    return "\n".join(indent + line.rstrip() for line in text.splitlines())
