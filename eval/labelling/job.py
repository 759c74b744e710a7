"""One labelling job end to end: config -> prompts -> plan (+ estimate) -> run -> outputs.

prep = prepare(load_labelling("label.yaml"))
print("\\n".join(prep.estimate.lines(prep.cfg.budget_usd)))   # what --dry-run shows
outcome = run(prep)                                          # calls, scores, writes
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from tierwise.eval.labelling.budget import Budget
from tierwise.eval.labelling.cache import CallCache
from tierwise.eval.labelling.config import LabellingConfig
from tierwise.eval.labelling.plan import Estimate, Plan, build_plan, check_prices
from tierwise.eval.labelling.report import summarize
from tierwise.eval.labelling.runner import RunResult, run_plan
from tierwise.eval.labelling.scorers.judge import JudgeScorer
from tierwise.eval.labelling.sources import PromptSet, load_prompts, source_name
from tierwise.eval.labelling.writer import Written, write_outputs
from tierwise.router.upstreams import UpstreamFields, UpstreamsConfig, UpstreamSpec


@dataclass
class Prepared:
    """A labelling job ready to run: config, upstreams, prompts and the cost plan."""

    cfg: LabellingConfig
    upstreams: UpstreamsConfig
    found: PromptSet
    plan: Plan
    cache: CallCache
    estimate: Estimate


@dataclass
class LabelOutcome:
    """What a labelling run produced: the calls' results, the files written, the report."""

    result: RunResult
    written: Written
    report: dict[str, Any]


async def _never(tier: str, messages: Any, params: Any) -> str:
    raise AssertionError("estimates never call a judge")


def judge_for_estimates(cfg: LabellingConfig) -> JudgeScorer | None:
    """A judge scorer that only builds messages (for keys and token estimates)."""
    if cfg.score.method != "judge" or cfg.score.judge is None:
        return None
    return JudgeScorer(cfg.score.judge, _never)


def resolve_specs(cfg: LabellingConfig) -> dict[str, UpstreamSpec]:
    """Every tier's endpoint, and the judge's (from its own upstreams file if it has one)."""
    upstreams = cfg.upstreams_config()
    specs = {t: upstreams.for_tier(t) for t in cfg.tiers}
    judge = cfg.judge_tier()
    if judge is not None and judge not in specs:
        specs[judge] = (cfg.judge_upstreams() or upstreams).for_tier(judge)
    return specs


def client_config(specs: dict[str, UpstreamSpec]) -> UpstreamsConfig:
    """One upstreams config holding exactly these resolved endpoints (for one shared client)."""
    fields = {
        t: UpstreamFields.model_validate(s.model_dump(exclude={"tier"}, exclude_none=True))
        for t, s in specs.items()
    }
    return UpstreamsConfig(upstreams=fields)


def prepare(cfg: LabellingConfig) -> Prepared:
    """Read prompts, resolve upstreams and prices, look the plan up in the cache, estimate."""
    specs = resolve_specs(cfg)
    check_prices(specs)
    examples, found = load_prompts(cfg)
    cache = CallCache(cfg.cache_path())
    plan = build_plan(cfg, examples, specs, cache)
    estimate = plan.estimate(judge_for_estimates(cfg), cache)
    return Prepared(cfg, client_config(specs), found, plan, cache, estimate)


def run(prep: Prepared, *, progress: bool = True) -> LabelOutcome:
    """Run the plan within the budget, write table/answers/prices/config and the report."""
    cfg = prep.cfg
    budget = Budget(cfg.budget_usd, spent_before_usd=prep.estimate.cached_cost_usd)
    try:
        result = run_plan(prep.plan, prep.cache, budget, prep.upstreams, progress=progress)
    finally:
        prep.cache.close()
    written = write_outputs(result, source_name(cfg))
    report = summarize(result, written, prep.estimate.cost_usd)
    report["source"] = {
        "path": source_name(cfg),
        "rows_read": prep.found.read,
        "empty_prompts_skipped": prep.found.skipped_empty,
        "duplicates_dropped": prep.found.duplicates,
        "sampled": len(prep.plan.examples),
    }
    (written.dir / "label_report.json").write_text(json.dumps(report, indent=2, default=str))
    return LabelOutcome(result, written, report)
