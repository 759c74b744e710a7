"""Dynamic batching: concurrent requests share one model call.

Handlers put their (already validated) prompts on a queue; one worker thread takes everything
waiting — up to ``max_prompts`` — and routes it with a single embedder call per knob. On two
cores, sixteen clients each paying for a separate ONNX call (and fighting over the same cores)
is far slower than one call over sixteen prompts; when requests arrive one at a time the worker
takes them one at a time, so an idle service adds no waiting.

The worker takes the holder's current router once per batch: a hot swap never splits a batch,
and requests already taken finish on the router they started with.
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
from tierwise.router.serve.metrics import Metrics
from tierwise.router.serve.state import Loaded, RouterHolder

log = logging.getLogger("tierwise.serve")


@dataclass
class Job:
    prompts: list[str]
    indices: list[int]  # position of each prompt in the client's request
    knob: float | None
    future: Future[tuple[list[Decision], Loaded]] = field(default_factory=Future)


class Batcher:
    """One worker thread routing queued jobs in batches."""

    def __init__(self, holder: RouterHolder, metrics: Metrics, *, max_prompts: int = 256) -> None:
        self.holder = holder
        self.metrics = metrics
        self.max_prompts = max_prompts
        self._queue: deque[Job] = deque()
        self._cond = threading.Condition()
        self._stopped = False
        self._thread: threading.Thread | None = None

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
        job = Job(prompts, indices, knob)
        if self._thread is None:  # an app run without its lifespan (e.g. a bare test client)
            self.start()
        with self._cond:
            if self._stopped:
                raise RuntimeError("the routing worker has stopped (the service is shutting down)")
            self._queue.append(job)
            self._cond.notify()
        return job

    def _take(self) -> list[Job] | None:
        with self._cond:
            while not self._queue and not self._stopped:
                self._cond.wait()
            if self._stopped:
                return None
            jobs: list[Job] = []
            n = 0
            while self._queue and (not jobs or n + len(self._queue[0].prompts) <= self.max_prompts):
                job = self._queue.popleft()
                jobs.append(job)
                n += len(job.prompts)
            return jobs

    def _run(self) -> None:
        while True:
            jobs = self._take()
            if jobs is None:
                return
            self.route_jobs(jobs)

    def route_jobs(self, jobs: list[Job]) -> None:
        """Route taken jobs with one router: one model call per distinct knob."""
        loaded = self.holder.current
        by_knob: dict[float | None, list[Job]] = {}
        for job in jobs:
            by_knob.setdefault(job.knob, []).append(job)
        for knob, group in by_knob.items():
            self._route(loaded, knob, group)

    def _route(self, loaded: Loaded, knob: float | None, group: list[Job]) -> None:
        prompts = [p for job in group for p in job.prompts]
        try:
            self.metrics.batch_size.observe(len(prompts))
            decisions = loaded.router.route(prompts, knob=knob)
        except BaseException as err:  # delivered to each waiting handler, which maps it
            if not isinstance(err, TierwiseError):
                log.exception("routing a batch of %d prompts failed", len(prompts))
            for job in group:
                job.future.set_exception(err)
            if not isinstance(err, Exception):
                raise
            return
        start = 0
        for job in group:
            part = decisions[start : start + len(job.prompts)]
            start += len(job.prompts)
            fixed = [
                dataclasses.replace(d, index=i) for d, i in zip(part, job.indices, strict=True)
            ]
            for d in fixed:
                if d.model is not None:
                    self.metrics.decisions.inc(d.model)
            job.future.set_result((fixed, loaded))
