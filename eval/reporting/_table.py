"""Plain-text rendering of a :class:`ComparisonReport` (laid out by router.tables)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tierwise.router.tables import SEPARATOR, num, pct, text_table, usd

if TYPE_CHECKING:
    from tierwise.eval.bootstrap import Interval
    from tierwise.eval.reporting._report import ComparisonReport, Row


def _with_ci(value: str, ci: Interval | None, fmt: str = ".3f") -> str:
    if ci is None or ci.samples == 0:
        return value
    lo = "never" if ci.low is None else format(ci.low, fmt)
    hi = "never" if ci.high is None else format(ci.high, fmt)
    return f"{value} [{lo}, {hi}]"


def _cells(r: Row, report: ComparisonReport) -> list[str]:
    name = r.name + (" (ref)" if r.kind == "model" and r.name == report.reference else "")
    cells = [
        name,
        num(r.quality),
        usd(r.cost_per_1k),
        num(r.pct_ref_cost, ".1f") + "%",
        num(r.pct_ref_quality, ".1f") + "%",
        _with_ci(num(r.aiq), r.ci.get("aiq")),
        _with_ci(num(r.gap_closed, ".2f"), r.ci.get("gap_closed"), ".2f"),
    ]
    cells += [usd(v) for v in r.cost_at.values()]
    if report.two_model is not None:
        cells.append(num(r.apgr))
        cells += [pct(v) for v in r.cpt.values()]
    return cells


def format_table(report: ComparisonReport) -> str:
    """The comparison as an aligned text table with a short header explaining the columns."""
    cfg = report.config
    head = ["name", "quality", "cost/1k", "% ref cost", "% ref qual", "AIQ", "gap closed"]
    head += [f"cost@{lab}" for lab in report.rows[0].cost_at]
    if report.two_model is not None:
        head += ["APGR", "CPT(50%)", "CPT(80%)"]
    body: list[list[str]] = []
    prev_group = None
    for r in report.rows:
        group = "policy" if r.kind in ("policy", "random") else "baseline"
        if prev_group == "policy" and group == "baseline":
            body.append(SEPARATOR)  # the routers above, the baselines below
        prev_group = group
        body.append(_cells(r, report))
    ci = (
        f"{100 * cfg.ci_level:g}% paired bootstrap CIs over {cfg.bootstrap_samples} resamples "
        f"of prompts (seed {cfg.seed})"
        if cfg.bootstrap_samples
        else "no bootstrap (bootstrap_samples: 0)"
    )
    notes = [
        f"{report.n_prompts} prompts; reference model: {report.reference}; {ci}.",
        "AIQ: area under the non-decreasing cost–quality hull over [0, "
        f"{usd(report.c_max_per_1k)}/1k] (costliest single model) ÷ that cost; "
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
    return "\n".join([text_table(body, head), "", *notes])
