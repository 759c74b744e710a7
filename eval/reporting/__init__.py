"""Reporting: score a router beside every baseline, print the table, draw the chart.

The public face of ``compare``; the ``_``-prefixed modules are private:

- ``_report`` — the evaluation config, ``compare``/``compare_dataset`` and the report rows;
- ``_scoring`` — AIQ, gap closed and cost-at-target per entry, with bootstrap intervals;
- ``_table`` — the plain-text comparison table;
- ``_plots`` — the cost–quality PNG (matplotlib, imported only when drawing).
"""

from __future__ import annotations

from tierwise.eval.reporting._plots import plot_comparison
from tierwise.eval.reporting._report import (
    ComparisonReport,
    EvaluationConfig,
    Row,
    compare,
    compare_dataset,
)
from tierwise.eval.reporting._scoring import CPT_TARGETS, Entry, Scores, score_all
from tierwise.eval.reporting._table import format_table

__all__ = [
    "CPT_TARGETS",
    "ComparisonReport",
    "Entry",
    "EvaluationConfig",
    "Row",
    "Scores",
    "compare",
    "compare_dataset",
    "format_table",
    "plot_comparison",
    "score_all",
]
