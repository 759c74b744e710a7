"""A bounded queue drained by one daemon thread: how the gateway logs and traces off the
request path. ``put`` never blocks and never raises: when the queue is full the item is dropped
and counted (a slow disk or database must not slow or fail requests). The thread writes items in
batches; a failing write is logged and counted, never propagated.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger("tierwise.gateway")
_STOP = object()


class BackgroundWriter:
    """Runs ``write(batch)`` on a worker thread; ``count(result, n)`` tallies the results.

    ``write`` returns None (all written) or how many of the batch failed; raising fails all.
    """

    def __init__(
        self,
        name: str,
        write: Callable[[list[Any]], int | None],
        count: Callable[[str, int], None],
        *,
        maxsize: int = 10_000,
        max_batch: int = 512,
        close: Callable[[], None] | None = None,
    ) -> None:
        self.name = name
        self._write, self._count, self._close = write, count, close
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max(1, maxsize))
        self._max_batch = max_batch
        self._thread = threading.Thread(target=self._run, name=f"tierwise-{name}", daemon=True)
        self._thread.start()

    def put(self, item: Any) -> bool:
        try:
            self._queue.put_nowait(item)
            return True
        except queue.Full:
            self._count("dropped", 1)
            return False

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            batch = [item]
            while len(batch) < self._max_batch:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            stop = any(x is _STOP for x in batch)
            batch = [x for x in batch if x is not _STOP]
            if batch:
                try:
                    failed = self._write(batch) or 0  # a writer may report partial failure
                    self._count("written", len(batch) - failed)
                    if failed:
                        self._count("failed", failed)
                except Exception:
                    log.exception("%s: could not write %d record(s)", self.name, len(batch))
                    self._count("failed", len(batch))
            if stop:
                break
        if self._close is not None:
            try:
                self._close()
            except Exception:
                log.exception("%s: closing failed", self.name)

    def close(self, timeout: float = 30.0) -> None:
        """Write what is queued, then stop the thread (waits up to ``timeout`` s)."""
        if self._thread.is_alive():
            self._queue.put(_STOP)  # blocking: shutdown may wait for room
            self._thread.join(timeout)
