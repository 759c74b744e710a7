"""Plain-text rendering of a :class:`eval.report.ComparisonReport` (aligned columns, no deps)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from tierwise.eval.bootstrap import Interval
    from tierwise.eval.reporting._report import ComparisonReport, Row


def _num(x: float | None, fmt: str = ".3f") -> str:
    return "n/a" if x is None or not np.isfinite(x) else format(x, fmt)


def _usd(x: float | None) -> str:
    if x is None:
        return "never"
    if not np.isfinite(x):
        return "n/a"
    return f"${x:.3f}" if x >= 1 else f"${x:.4f}"


def _with_ci(value: str, ci: Interval | None, fmt: str = ".3f") -> str:
    if ci is None or ci.samples == 0:
        return value
    lo = "never" if ci.low is None else format(ci.low, fmt)
    hi = "never" if ci.high is None else format(ci.high, fmt)
    return f"{value} [{lo}, {hi}]"


def _pct(x: float | None) -> str:
    return "never" if x is None else ("n/a" if not np.isfinite(x) else f"{100 * x:.1f}%")


def _cells(r: Row, report: ComparisonReport) -> list[str]:
    name = r.name + (" (ref)" if r.kind == "model" and r.name == report.reference else "")
    cells = [
        name,
        _num(r.quality),
        _usd(r.cost_per_1k),
        _num(r.pct_ref_cost, ".1f") + "%",
        _num(r.pct_ref_quality, ".1f") + "%",
        _with_ci(_num(r.aiq), r.ci.get("aiq")),
        _with_ci(_num(r.gap_closed, ".2f"), r.ci.get("gap_closed"), ".2f"),
    ]
    cells += [_usd(v) for v in r.cost_at.values()]
    if report.two_model is not None:
        cells.append(_num(r.apgr))
        cells += [_pct(v) for v in r.cpt.values()]
    return cells


def format_table(report: ComparisonReport) -> str:
    """The comparison as an aligned text table with a short header explaining the columns."""
    cfg = report.config
    head = ["name", "quality", "cost/1k", "% ref cost", "% ref qual", "AIQ", "gap closed"]
    head += [f"cost@{lab}" for lab in report.rows[0].cost_at]
    if report.two_model is not None:
        head += ["APGR", "CPT(50%)", "CPT(80%)"]
    body = [_cells(r, report) for r in report.rows]
    widths = [max(len(line[i]) for line in [head, *body]) for i in range(len(head))]

    def fmt(line: list[str]) -> str:
        first = line[0].ljust(widths[0])
        return "  ".join([first] + [c.rjust(w) for c, w in zip(line[1:], widths[1:], strict=True)])

    sep = "-" * len(fmt(head))
    out = [fmt(head), sep]
    prev_group = None
    for r, line in zip(report.rows, body, strict=True):
        group = "policy" if r.kind in ("policy", "random") else "baseline"
        if prev_group == "policy" and group == "baseline":
            out.append(sep)
        prev_group = group
        out.append(fmt(line))
    ci = (
        f"{100 * cfg.ci_level:g}% paired bootstrap CIs over {cfg.bootstrap_samples} resamples "
        f"of prompts (seed {cfg.seed})"
        if cfg.bootstrap_samples
        else "no bootstrap (bootstrap_samples: 0)"
    )
    notes = [
        f"{report.n_prompts} prompts; reference model: {report.reference}; {ci}.",
        "AIQ: area under the non-decreasing cost–quality hull over [0, "
        f"{_usd(report.c_max_per_1k)}/1k] (costliest single model) ÷ that cost; "
        "gap closed = (AIQ − zero router) / (oracle − zero router).",
        "cost@x%: least cost per 1k queries on the hull reaching x% of the reference's quality.",
    ]
    if any(r.kind == "random" for r in report.rows):
        notes.append(
            "random: one seeded realization mixing adjacent zero-router models at matched cost; "
            "its expected curve is the zero router, so its distance from the zero router is "
            "the noise floor of these metrics."
        )
    if report.two_model is not None:
        weak, strong = report.two_model
        notes.append(
            f"APGR/CPT: weak = {weak}, strong = {strong}; CPT = share of calls to the strong "
            "model needed to recover 50% / 80% of the quality gap."
        )
    return "\n".join([*out, "", *notes])
