"""Dynamic batching with fair sharing: concurrent requests share model calls, none hogs them.

Handlers put their (already validated) prompts on a queue as a :class:`Job`; one worker thread
(off the event loop) builds each model call from the waiting jobs and routes it with one
embedder call per knob. On two cores one call over sixteen prompts is far faster than sixteen
separate calls fighting over the cores, and when requests arrive one at a time the worker takes
them one at a time, so an idle service adds no waiting.

Fairness. Work is counted in *estimated model tokens*, not prompts or characters: a prompt costs
``min(len/4, token limit) + 2``, because the embedder never reads past its token limit (MiniLM:
256) however long the text. Each model call is one round robin over the jobs waiting: every job
may spend one quantum (the cost of one longest prompt) on its next prompts, so a 256-prompt
batch of long prompts advances one prompt per call while the small requests that arrived
meanwhile ride in the same call; ``call_tokens`` caps a call when many jobs wait. A job alone
is not given bigger calls: the worker plans the next call before the small clients it just
answered have sent their next request, and a bigger call would then delay all of them. The
latency a big batch adds to a small request is thus about one long prompt's model time, not
the whole batch (measured in scripts/bench_reliability.py).

Hot swap: each job takes the holder's current router when its first slice is routed and keeps
it for all its slices, so a reload never splits one request across two artifacts.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field

from tierwise.router.decision import Decision
from tierwise.router.errors import TierwiseError
from tierwise.router.normalize import DEFAULT_MAX_TOKENS
from tierwise.router.runtime import RuntimeRouter
from tierwise.router.serve.metrics import Metrics
from tierwise.router.serve.state import Loaded, RouterHolder

log = logging.getLogger("tierwise.serve")
CHARS_PER_TOKEN = 4  # English averages ~4 characters per token; only long prompts hit the cap
SPECIAL_TOKENS = 2  # [CLS] and [SEP]
DEFAULT_CALL_TOKENS = 1024  # ~4 longest MiniLM prompts: one call of this size is ~0.1-0.5 s


def prompt_token_limit(router: RuntimeRouter) -> int:
    """Tokens of one prompt the router's embedder reads at most (after normalization)."""
    model = router.embedder.max_tokens
    limit = router.config.normalization.max_tokens or model or DEFAULT_MAX_TOKENS
    return min(limit, model) if model else limit


def estimate_tokens(text: str, limit: int) -> int:
    """Model tokens ``text`` will cost: an estimate from its length, exact once over ``limit``."""
    return min(len(text) // CHARS_PER_TOKEN + 1, limit) + SPECIAL_TOKENS


@dataclass(eq=False)
class Job:
    """One request's prompts, routed in one or more slices; ``future`` gets all decisions."""

    prompts: list[str]
    indices: list[int]  # position of each prompt in the client's request
    knob: float | None
    future: Future[tuple[list[Decision], Loaded]] = field(default_factory=Future)
    costs: list[int] = field(default_factory=list)  # estimated tokens per prompt
    loaded: Loaded | None = None  # pinned when the first slice is taken
    taken: int = 0  # prompts handed to model calls so far
    results: list[Decision] = field(default_factory=list)

    @property
    def waiting(self) -> bool:
        return self.taken < len(self.prompts) and not self.future.done()


@dataclass(frozen=True)
class Slice:
    """Prompts ``start:end`` of ``job``, part of one model call."""

    job: Job
    start: int
    end: int


class Batcher:
    """One worker thread routing queued jobs in fair, token-bounded model calls."""

    def __init__(
        self,
        holder: RouterHolder,
        metrics: Metrics,
        *,
        max_prompts: int = 256,
        call_tokens: int = DEFAULT_CALL_TOKENS,
    ) -> None:
        self.holder = holder
        self.metrics = metrics
        self.max_prompts = max(max_prompts, 1)
        self.call_tokens = max(call_tokens, 1)
        self._queue: deque[Job] = deque()
        self._cond = threading.Condition()
        self._stopped = False
        self._thread: threading.Thread | None = None

    # -- lifecycle ----------------------------------------------------------------------
    def start(self) -> None:
        with self._cond:
            if self._thread is None:
                self._stopped = False
                self._thread = threading.Thread(
                    target=self._run, name="tierwise-batcher", daemon=True
                )
                self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        while self._queue:  # never leave a caller waiting forever
            job = self._queue.popleft()
            if not job.future.done():
                job.future.set_exception(RuntimeError("the service is shutting down"))

    def submit(self, prompts: list[str], indices: list[int], knob: float | None) -> Job:
        """Queue validated prompts; the returned job's future resolves with their decisions."""
        if self._thread is None:  # an app run without its lifespan (e.g. a bare test client)
            self.start()
        return self.enqueue(Job(prompts, indices, knob))

    def enqueue(self, job: Job) -> Job:
        """Queue ``job`` (its token costs estimated here) without starting the worker."""
        if not job.costs:
            limit = prompt_token_limit(self.holder.current.router)
            job.costs = [estimate_tokens(p, limit) for p in job.prompts]
        with self._cond:
            if self._stopped:
                raise RuntimeError("the routing worker has stopped (the service is shutting down)")
            self._queue.append(job)
            self._cond.notify()
        return job

    # -- scheduling ---------------------------------------------------------------------
    def _quantum(self) -> int:
        return prompt_token_limit(self.holder.current.router) + SPECIAL_TOKENS

    def _take(self) -> list[Slice] | None:
        """Wait for work, then take one model call's slices (None once stopped)."""
        with self._cond:
            while not self._queue and not self._stopped:
                self._cond.wait()
            if self._stopped:
                return None
            return self.plan_call()

    def plan_call(self) -> list[Slice]:
        """The next model call: one round of deficit round robin over the waiting jobs.

        The worker calls it holding the lock; a test may call it on a batcher it never started.
        """
        while self._queue and not self._queue[0].waiting:
            self._queue.popleft()
        quantum = self._quantum()
        slices: list[Slice] = []
        tokens = prompts = 0
        for _ in range(len(self._queue)):  # each job waiting now is visited once
            job = self._queue[0]
            if not job.waiting:
                self._queue.popleft()
                continue
            credit = quantum  # this turn's share; what is left of it is not carried over
            start = job.taken
            while job.taken < len(job.prompts) and prompts < self.max_prompts:
                cost = job.costs[job.taken]
                first = not slices and job.taken == start  # a call always makes progress
                if not first and (cost > credit or tokens + cost > self.call_tokens):
                    break
                credit -= cost
                tokens += cost
                prompts += 1
                job.taken += 1
            if job.taken > start:
                slices.append(Slice(job, start, job.taken))
            if not job.waiting:
                self._queue.popleft()
            elif job.taken > start:
                self._queue.rotate(-1)  # served this round: to the back
            else:
                break  # the call is full before this job's turn: it goes first next time
        return slices

    # -- routing ------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            slices = self._take()
            if slices is None:
                return
            self.route_slices(slices)

    def route_jobs(self, jobs: list[Job]) -> None:
        """Route whole jobs now, in this thread (tests and tools; the worker uses slices)."""
        for job in jobs:
            if not job.costs:
                limit = prompt_token_limit(self.holder.current.router)
                job.costs = [estimate_tokens(p, limit) for p in job.prompts]
        self.route_slices([Slice(job, job.taken, len(job.prompts)) for job in jobs])
        for job in jobs:
            job.taken = len(job.prompts)

    def route_slices(self, slices: list[Slice]) -> None:
        """Route one call's slices: one model call per (router, knob)."""
        groups: dict[tuple[int, float | None], list[Slice]] = {}
        for s in slices:
            if s.job.loaded is None:
                s.job.loaded = self.holder.current
            groups.setdefault((id(s.job.loaded), s.job.knob), []).append(s)
        for group in groups.values():
            self._route(group)

    def _route(self, group: list[Slice]) -> None:
        loaded = group[0].job.loaded
        assert loaded is not None
        knob = group[0].job.knob
        prompts = [p for s in group for p in s.job.prompts[s.start : s.end]]
        try:
            self.metrics.batch_size.observe(len(prompts))
            decisions = loaded.router.route(prompts, knob=knob)
        except BaseException as err:  # delivered to each waiting handler, which maps it
            if not isinstance(err, TierwiseError):
                log.exception("routing a batch of %d prompts failed", len(prompts))
            for s in group:
                if not s.job.future.done():
                    s.job.future.set_exception(err)
            if not isinstance(err, Exception):
                raise
            return
        pos = 0
        for s in group:
            part = decisions[pos : pos + s.end - s.start]
            pos += s.end - s.start
            s.job.results.extend(
                dataclasses.replace(d, index=i)
                for d, i in zip(part, s.job.indices[s.start : s.end], strict=True)
            )
            if len(s.job.results) == len(s.job.prompts) and not s.job.future.done():
                for d in s.job.results:
                    if d.model is not None:
                        self.metrics.decisions.inc(d.model)
                s.job.future.set_result((s.job.results, loaded))
