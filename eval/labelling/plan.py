"""The plan of a labelling job: which calls it needs, which the cache already holds, and what
the rest should cost (``--dry-run``), from token estimates, before anything is sent.

Token estimates follow eval/costs.py: ``ceil(chars / chars_per_token)`` for the messages; the
answer length is ``generation.expected_output_tokens``, else the mean length of the logged
answers (``columns.response``: what the serving model wrote for these prompts), else half of
``max_tokens``. A judge call reads the rubric, the prompt, the reference and an answer of the
expected length, and writes ``judge.expected_output_tokens``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from tierwise.eval.labelling.cache import CachedCall, CallCache, call_key
from tierwise.eval.labelling.config import LabellingConfig
from tierwise.eval.labelling.scorers.judge import JudgeScorer
from tierwise.eval.labelling.sources import Example
from tierwise.router.errors import ConfigError
from tierwise.router.upstreams import UpstreamSpec

DEFAULT_MAX_TOKENS = 512  # for estimates when the params set no max_tokens


@dataclass(frozen=True)
class ModelCall:
    """One example asked of one tier."""

    index: int  # the example's position
    example: Example
    tier: str
    messages: list[dict[str, Any]]
    key: str


@dataclass
class Estimate:
    """Calls, tokens and USD a labelling job will spend (cached calls counted apart)."""

    calls: int  # model calls to send
    cached: int  # model calls the cache holds
    judge_calls: int  # judge calls to send (estimated: answers not judged yet)
    input_tokens: float
    output_tokens: float
    cost_usd: float  # of the calls to send
    cached_cost_usd: float  # already paid, in the cache
    per_tier: dict[str, dict[str, float]] = field(default_factory=dict)
    judged: bool = False  # scored by an LLM judge

    def lines(self, budget: float | None) -> list[str]:
        out = [
            f"calls: {self.calls} to tiers ({self.cached} more already in the cache)"
            + (f", {self.judge_calls} to the judge" if self.judged else ""),
            f"estimated tokens: {self.input_tokens:,.0f} in, {self.output_tokens:,.0f} out",
            f"estimated cost: ${self.cost_usd:.4f} "
            f"(already paid, cached: ${self.cached_cost_usd:.4f})",
        ]
        for tier, t in self.per_tier.items():
            out.append(
                f"  {tier:<16} {int(t['calls']):>6} calls  ~{t['output_tokens_per_call']:>6.0f} "
                f"out tok/call  ${t['cost_usd']:.4f}"
            )
        if budget is not None:
            fits = self.cost_usd + self.cached_cost_usd <= budget
            out.append(
                f"budget: ${budget:.4f} — "
                + (
                    "the estimate fits"
                    if fits
                    else "the estimate does NOT fit: the run will stop early"
                )
            )
        return out


def tokens(chars: float, cfg: LabellingConfig) -> float:
    """Estimated tokens for ``chars`` characters of text."""
    return float(math.ceil(chars / cfg.generation.chars_per_token))


def messages_for(example: Example, cfg: LabellingConfig) -> list[dict[str, Any]]:
    """The chat messages sent to each tier for one example."""
    from tierwise.eval.labelling.scorers.judge import fill

    g = cfg.generation
    values = {str(k): "" if v is None else str(v) for k, v in example.row.items()}
    text = fill(g.template, **{**values, "prompt": example.prompt})
    msgs: list[dict[str, Any]] = [{"role": "system", "content": g.system}] if g.system else []
    return [*msgs, {"role": "user", "content": text}]


def chars(messages: list[dict[str, Any]]) -> int:
    """Total characters of the messages' contents."""
    return sum(len(str(m.get("content") or "")) for m in messages)


def expected_output_tokens(examples: list[Example], cfg: LabellingConfig) -> float:
    """The output tokens to budget per call: configured, or estimated from references."""
    g = cfg.generation
    if g.expected_output_tokens is not None:
        return g.expected_output_tokens
    logged = [len(e.response) for e in examples if e.response]
    if logged:
        return tokens(sum(logged) / len(logged), cfg)
    return float(g.params.get("max_tokens") or DEFAULT_MAX_TOKENS) / 2


def max_output_tokens(params: dict[str, Any], expected: float) -> float:
    """The worst case a call may write: ``max_tokens``, else 4× the expected length."""
    limit = params.get("max_tokens") or params.get("max_completion_tokens")
    return float(limit) if limit else 4 * expected


def price(spec: UpstreamSpec, tokens_in: float, tokens_out: float) -> float:
    """USD for one call of ``spec`` with the given input and output tokens."""
    assert spec.usd_per_1m_input is not None and spec.usd_per_1m_output is not None
    return (tokens_in * spec.usd_per_1m_input + tokens_out * spec.usd_per_1m_output) / 1e6


def check_prices(specs: dict[str, UpstreamSpec]) -> None:
    """ConfigError naming the tiers without prices (a budget needs them)."""
    missing = [t for t, s in specs.items() if not s.has_prices]
    if missing:
        raise ConfigError(
            f"upstream(s) {missing} must have prices to label (the table's cost and the budget "
            "come from usage × prices), got none; set `usd_per_1m_input` and "
            "`usd_per_1m_output` for them in the upstreams config"
        )


@dataclass
class Plan:
    """Every call a labelling job will make, in order, with its estimated cost."""

    cfg: LabellingConfig
    examples: list[Example]
    tiers: list[str]
    specs: dict[str, UpstreamSpec]  # labelled tiers and the judge
    calls: list[ModelCall]  # prompt-major: every tier of an example before the next example
    cached: dict[str, CachedCall]
    expected_out: float

    def pending(self) -> list[ModelCall]:
        return [c for c in self.calls if c.key not in self.cached]

    def reservation(
        self, tier: str, messages: list[dict[str, Any]], params: dict[str, Any], expected_out: float
    ) -> float:
        """The worst-case cost of one call, reserved against the budget."""
        t_in = tokens(chars(messages), self.cfg)
        return price(self.specs[tier], t_in, max_output_tokens(params, expected_out))

    def judge_keys(self, judge: JudgeScorer) -> dict[str, str]:
        """For each cached answer, the key its judge call has (answers not yet known: none)."""
        model, params = self.specs[judge.cfg.tier].model, judge.cfg.params
        return {
            c.key: call_key(model, judge.messages(self.cached[c.key].text, c.example), params)
            for c in self.calls
            if c.key in self.cached
        }

    def estimate(self, judge: JudgeScorer | None, cache: CallCache) -> Estimate:
        """What the calls still to send should cost, before any is sent."""
        pending = self.pending()
        est = Estimate(
            calls=len(pending),
            cached=len(self.calls) - len(pending),
            judge_calls=0,
            input_tokens=0.0,
            output_tokens=0.0,
            cost_usd=0.0,
            cached_cost_usd=sum(c.cost_usd or 0.0 for c in self.cached.values()),
        )
        for tier in self.tiers:
            t_in = [tokens(chars(c.messages), self.cfg) for c in pending if c.tier == tier]
            _add(est, tier, self.specs[tier], t_in, self.expected_out)
        if judge is not None:
            self._estimate_judge(judge, cache, est)
        return est

    def _estimate_judge(self, judge: JudgeScorer, cache: CallCache, est: Estimate) -> None:
        keys = self.judge_keys(judge)
        done = cache.get_many(keys.values())
        est.cached_cost_usd += sum(c.cost_usd or 0.0 for c in done.values())
        # an answer not written yet: a stand-in of the expected length
        stand_in = "x" * int(self.expected_out * self.cfg.generation.chars_per_token)
        t_in, seen = [], set(done)
        for c in self.calls:
            if c.key in self.cached:
                if keys[c.key] in seen:  # judged already, or the same answer of another tier
                    continue
                seen.add(keys[c.key])
            answer = self.cached[c.key].text if c.key in self.cached else stand_in
            t_in.append(tokens(chars(judge.messages(answer, c.example)), self.cfg))
        spec = self.specs[judge.cfg.tier]
        _add(est, f"judge:{judge.cfg.tier}", spec, t_in, judge.cfg.expected_output_tokens)
        est.judge_calls = len(t_in)
        est.judged = True


def _add(est: Estimate, name: str, spec: UpstreamSpec, t_in: list[float], out: float) -> None:
    """Add one group of calls (input tokens each, ``out`` tokens each) to the estimate."""
    total_in, total_out = sum(t_in), out * len(t_in)
    cost = price(spec, total_in, total_out)
    est.per_tier[name] = {"calls": len(t_in), "cost_usd": cost, "output_tokens_per_call": out}
    est.input_tokens += total_in
    est.output_tokens += total_out
    est.cost_usd += cost


def build_plan(
    cfg: LabellingConfig, examples: list[Example], specs: dict[str, UpstreamSpec], cache: CallCache
) -> Plan:
    """Every (example, tier) call in prompt-major order, with what the cache already holds."""
    calls = []
    params = cfg.generation.params
    for i, ex in enumerate(examples):
        msgs = messages_for(ex, cfg)
        for tier in cfg.tiers:
            calls.append(ModelCall(i, ex, tier, msgs, call_key(specs[tier].model, msgs, params)))
    cached = cache.get_many(c.key for c in calls)
    expected = expected_output_tokens(examples, cfg)
    return Plan(cfg, examples, list(cfg.tiers), specs, calls, cached, expected)
