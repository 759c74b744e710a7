"""How good the labels are: per tier the share of answers the scorer could not score (and
why), the judge's agreement with reference match where both exist, and what it all cost."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from tierwise.eval.labelling.runner import Outcome, RunResult
from tierwise.eval.labelling.writer import Written


def _agreement(pairs: list[tuple[float, float]], threshold: float) -> dict[str, Any] | None:
    """Judge success vs reference-match success: raw agreement and Cohen's kappa."""
    if not pairs:
        return None
    j = np.array([a >= threshold for a, _ in pairs])
    r = np.array([b >= 0.5 for _, b in pairs])
    agree = float((j == r).mean())
    chance = float(j.mean() * r.mean() + (1 - j.mean()) * (1 - r.mean()))
    kappa = (agree - chance) / (1 - chance) if chance < 1 else float("nan")
    return {"n": len(pairs), "agreement": agree, "kappa": kappa}


def _tier_rows(result: RunResult) -> list[dict[str, Any]]:
    threshold = result.plan.cfg.score.threshold or 0.5
    rows = []
    for tier in result.plan.tiers:
        outs: list[Outcome] = [o for o in result.outcomes if o is not None and o.call.tier == tier]
        scored = [o for o in outs if o.score is not None]
        values = [o.score.value for o in scored if o.score and o.score.value is not None]
        notes = Counter(o.score.note for o in scored if o.score and o.score.value is None)
        pairs = [
            (o.score.value, o.reference_score.value)
            for o in scored
            if o.score
            and o.score.value is not None
            and o.reference_score is not None
            and o.reference_score.value is not None
        ]
        answered = [o.answer for o in outs if o.answer is not None]
        rows.append(
            {
                "tier": tier,
                "model": result.plan.specs[tier].model,
                "answered": len(answered),
                "failed": sum(o.error is not None for o in outs),
                "scored": len(scored),
                "unscorable_share": (len(scored) - len(values)) / len(scored) if scored else 0.0,
                "unscorable_reasons": dict(notes.most_common(3)),
                "mean_quality": float(np.mean(values)) if values else float("nan"),
                "cost_usd": float(sum(a.cost_usd or 0.0 for a in answered)),
                "mean_output_tokens": float(np.mean([a.output_tokens or 0 for a in answered]))
                if answered
                else float("nan"),
                "judge_vs_reference": _agreement(pairs, threshold),
            }
        )
    return rows


def summarize(
    result: RunResult, written: Written | None, estimate_usd: float | None
) -> dict[str, Any]:
    """Everything the label report shows, as a JSON-ready dict."""
    b = result.budget
    tiers = _tier_rows(result)
    names = result.plan.tiers

    def order(name: str) -> tuple[int, str]:  # tiers as configured, then the judge
        return (names.index(name), "") if name in names else (len(names), name)

    all_pairs_n = sum((t["judge_vs_reference"] or {}).get("n", 0) for t in tiers)
    return {
        "name": result.plan.cfg.name,
        "prompts": len(result.plan.examples),
        "rows_written": None if written is None else written.rows,
        "rows_incomplete": None if written is None else written.incomplete,
        "stop_reason": result.stop_reason,
        "seconds": round(result.seconds, 2),
        "tiers": tiers,
        "judge_pairs": all_pairs_n,
        "cost": {
            "sent_calls": {k: result.sent[k] for k in sorted(result.sent, key=order)},
            "spent_this_run_usd": b.spent_usd,
            "spent_by_call": {k: result.spent[k] for k in sorted(result.spent, key=order)},
            "reused_from_cache_usd": b.spent_before_usd,
            "total_usd": b.total_usd,
            "budget_usd": b.limit_usd,
            "dry_run_estimate_usd": estimate_usd,
        },
    }


def format_report(s: dict[str, Any]) -> str:
    """The labelling run's summary as text lines."""
    lines = [f"labelled {s['name']}: {s['prompts']} prompts in {s['seconds']:.1f}s"]
    if s["rows_written"] is not None:
        lines.append(
            f"table rows: {s['rows_written']} complete prompts; {s['rows_incomplete']} not "
            "complete (not reached, a call failed, or an answer not scored)"
        )
    lines.append("")
    lines.append(
        f"{'tier':<14} {'answered':>8} {'failed':>6} {'unscorable':>10} {'quality':>7} "
        f"{'out tok':>7} {'cost $':>9}  judge vs reference"
    )
    for t in s["tiers"]:
        jr = t["judge_vs_reference"]
        agree = (
            "" if jr is None else f"{jr['agreement']:.1%} of {jr['n']} (kappa {jr['kappa']:.2f})"
        )
        lines.append(
            f"{t['tier']:<14} {t['answered']:>8d} {t['failed']:>6d} "
            f"{t['unscorable_share']:>10.1%} {t['mean_quality']:>7.3f} "
            f"{t['mean_output_tokens']:>7.1f} {t['cost_usd']:>9.5f}  {agree}"
        )
    for t in s["tiers"]:
        for note, n in t["unscorable_reasons"].items():
            lines.append(f"  unscorable {t['tier']}: {n} × {note}")
    c = s["cost"]
    sent = ", ".join(f"{k} {v}" for k, v in c["sent_calls"].items()) or "none"
    lines.append("")
    lines.append(f"calls sent this run: {sent}")
    lines.append(
        f"cost: ${c['spent_this_run_usd']:.5f} this run, ${c['reused_from_cache_usd']:.5f} reused "
        f"from the cache, ${c['total_usd']:.5f} in total"
        + ("" if c["budget_usd"] is None else f" (budget ${c['budget_usd']:.4f})")
    )
    if c["dry_run_estimate_usd"] is not None:
        lines.append(f"dry-run estimate before this run: ${c['dry_run_estimate_usd']:.5f}")
    if s["stop_reason"]:
        lines.append(f"STOPPED: {s['stop_reason']}")
    return "\n".join(lines)
