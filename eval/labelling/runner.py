"""Run a labelling plan: ask every tier, score every answer, within the budget, resumably.

Workers take the plan's calls in prompt-major order (every tier of a prompt before the next
prompt, so a stopped run leaves whole rows), at most ``max_in_flight`` at once; the shared
upstream client bounds each upstream's own concurrency and retries 429/5xx/timeouts with
backoff. Each answer is stored in the call cache the moment it arrives, then scored (a judge
call goes through the same cache and budget). A call that does not fit in the budget waits
for the calls in flight to settle; if it still does not fit, the run stops cleanly (calls in
flight finish and are kept). Ctrl-C stops it the same way. A call that fails for good is
recorded and the run goes on, until ``max_failures`` calls have failed.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from tierwise.eval.labelling.budget import Budget
from tierwise.eval.labelling.cache import CachedCall, CallCache, call_key
from tierwise.eval.labelling.plan import ModelCall, Plan, chars, price, tokens
from tierwise.eval.labelling.scorers import Score, Scorer, make_scorer, match
from tierwise.router.upstreams import UpstreamError, UpstreamsConfig


class BudgetReached(Exception):
    """A call did not fit in the budget; the run stops starting new calls."""


@dataclass
class Outcome:
    """What became of one (example, tier) call."""

    call: ModelCall
    answer: CachedCall | None = None
    score: Score | None = None
    reference_score: Score | None = None  # judge runs with a reference column: for agreement
    error: str | None = None
    from_cache: bool = False

    @property
    def complete(self) -> bool:
        return self.answer is not None and self.score is not None


@dataclass
class RunResult:
    """The outcome of each planned call (None if not reached) and the final budget."""

    plan: Plan
    outcomes: list[Outcome | None]  # aligned with plan.calls; None: not reached
    budget: Budget
    stop_reason: str | None = None
    sent: Counter[str] = field(default_factory=Counter)  # tier (or judge:tier) -> calls sent
    spent: Counter[str] = field(default_factory=Counter)  # tier (or judge:tier) -> USD this run
    seconds: float = 0.0


class Runner:
    """Executes one plan; create it, then ``asyncio.run(runner.run())``."""

    def __init__(
        self,
        plan: Plan,
        cache: CallCache,
        budget: Budget,
        upstreams: UpstreamsConfig,
        *,
        progress: bool = True,
    ) -> None:
        self.plan, self.cfg, self.cache, self.budget = plan, plan.cfg, cache, budget
        self.upstreams = upstreams
        self.progress = progress
        self.result = RunResult(plan, [None] * len(plan.calls), budget)
        self.failures = 0
        self._next = 0
        self._inflight: dict[str, asyncio.Future[CachedCall]] = {}
        self._settled = asyncio.Event()
        self._bar: Any = None
        self.client: Any = None
        self.scorer: Scorer = make_scorer(self.cfg.score, ask=self.ask)

    async def run(self) -> RunResult:
        from tqdm.auto import tqdm

        from tierwise.router.upstreams import UpstreamClient

        t0 = time.perf_counter()
        n_judge = len(self.plan.calls) if self.scorer.calls_upstream else 0
        total = len(self.plan.pending()) + n_judge
        self._bar = tqdm(
            total=total,
            desc="labelling",
            unit="call",
            disable=not self.progress,
            dynamic_ncols=True,
            leave=True,
        )
        try:
            async with UpstreamClient(self.upstreams, list(self.plan.specs)) as client:
                self.client = client
                n = min(self.cfg.max_in_flight, len(self.plan.calls))
                await asyncio.gather(*(self._worker() for _ in range(n)))
        finally:
            self._bar.close()
            self.result.seconds = time.perf_counter() - t0
        return self.result

    async def _worker(self) -> None:
        # After a stop, cached answers are still collected (they cost nothing): whole rows.
        while self._next < len(self.plan.calls):
            i = self._next
            self._next += 1
            call = self.plan.calls[i]
            if self.result.stop_reason is None or call.key in self.plan.cached:
                self.result.outcomes[i] = await self._label(call)

    async def _label(self, call: ModelCall) -> Outcome:
        out = Outcome(call)
        cached = self.plan.cached.get(call.key)
        try:
            if cached is not None:
                out.answer, out.from_cache = cached, True
            else:
                out.answer = await self._send(
                    call.tier,
                    call.messages,
                    self.cfg.generation.params,
                    call.key,
                    self.plan.expected_out,
                )
            out.score = await self.scorer.score(out.answer.text, call.example)
        except BudgetReached:
            self._stop(
                f"budget of ${self.budget.limit_usd:.4f} reached: the next call needed up to "
                f"${self.budget.refused_usd:.6f}"
            )
        except UpstreamError as err:
            out.error = f"{err.reason}: {str(err)[:300]}"
            self.failures += 1
            if self.failures >= self.cfg.max_failures:
                self._stop(f"{self.failures} calls failed (max_failures); the last: {out.error}")
        if out.answer is not None and self.cfg.score.method == "judge" and call.example.reference:
            out.reference_score = match(
                out.answer.text, call.example.reference, self.cfg.score.reference
            )
        return out

    def _stop(self, reason: str) -> None:
        if self.result.stop_reason is None:
            self.result.stop_reason = reason

    async def ask(self, tier: str, messages: list[dict[str, Any]], params: dict[str, Any]) -> str:
        """The judge's way in: cached, budgeted, counted like any call. Tiers often give the
        same answer (temperature 0, easy prompts): one judge call serves them all, even when
        they arrive together."""
        key = call_key(self.plan.specs[tier].model, messages, params)
        hit = self.cache.get(key)
        if hit is not None:  # its cost is in the budget's spent_before (the plan found it)
            self._tick(0.0)
            return hit.text
        running = self._inflight.get(key)
        if running is not None:
            self._tick(0.0)
            return (await asyncio.shield(running)).text
        judge = self.cfg.score.judge
        assert judge is not None
        task = asyncio.ensure_future(
            self._send(tier, messages, params, key, judge.expected_output_tokens, f"judge:{tier}")
        )
        self._inflight[key] = task
        try:
            return (await task).text
        finally:
            self._inflight.pop(key, None)

    async def _send(
        self,
        tier: str,
        messages: list[dict[str, Any]],
        params: dict[str, Any],
        key: str,
        expected_out: float,
        label: str | None = None,
    ) -> CachedCall:
        reserve = self.plan.reservation(tier, messages, params, expected_out)
        await self._reserve(reserve)
        try:
            res = await self.client.chat(tier, messages, **params)
        except BaseException:
            self.budget.release(reserve)
            self._wake()
            raise
        spec = self.plan.specs[tier]
        t_in, t_out = res.usage.prompt_tokens, res.usage.completion_tokens
        cost = res.cost_usd
        if cost is None:  # no usage in the answer: estimate, never leave spend unknown
            t_in = t_in if t_in is not None else int(tokens(chars(messages), self.cfg))
            t_out = t_out if t_out is not None else int(tokens(len(res.text), self.cfg))
            cost = price(spec, t_in, t_out)
        done = CachedCall(key, spec.model, res.text, t_in, t_out, cost, res.latency_s)
        self.cache.put(done)
        self.budget.settle(reserve, cost)
        self._wake()
        name = label or tier
        self.result.sent[name] += 1
        self.result.spent[name] += cost
        self._tick(cost)
        return done

    async def _reserve(self, amount: float) -> None:
        """Reserve a call's worst case; near the budget, wait for calls in flight to settle
        (their actual cost is usually far below their reservation) before giving up."""
        while not self.budget.fits(amount):
            if self.budget.exhausted or self.budget.in_flight == 0:
                self.budget.refuse(amount)
                raise BudgetReached
            self._settled.clear()
            await self._settled.wait()
        self.budget.reserve(amount)

    def _wake(self) -> None:
        self._settled.set()

    def _tick(self, cost: float) -> None:
        if self._bar is not None:
            self._bar.update(1)
            self._bar.set_postfix_str(f"${self.budget.total_usd:.4f} spent", refresh=False)


def run_plan(
    plan: Plan, cache: CallCache, budget: Budget, upstreams: UpstreamsConfig, progress: bool = True
) -> RunResult:
    """Run ``plan`` to the end, the budget, ``max_failures`` or Ctrl-C (then what finished is
    returned as a stopped run, so its table is still written)."""
    runner = Runner(plan, cache, budget, upstreams, progress=progress)
    try:
        return asyncio.run(runner.run())
    except KeyboardInterrupt:
        runner.result.stop_reason = "interrupted (Ctrl-C)"
        return runner.result
