"""A hard USD budget for one labelling job.

Before each call the runner reserves its worst case (estimated input tokens at the input price
plus ``max_tokens`` at the output price); a call starts only if what was spent plus what is
reserved for calls in flight plus its own reservation fits in the budget; otherwise it waits
for calls in flight to settle. When an answer comes back its reservation is replaced by its
actual cost (usage × prices). So, as long as an upstream honours ``max_tokens`` and the input
estimate holds, spend never passes the budget; a call that does not fit even with nothing in
flight stops the run cleanly (calls in flight finish and are kept).

The budget covers the whole job, cached calls included: rerunning with the same budget after
a budget stop sends nothing new; raise ``budget_usd`` to continue.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Budget:
    """The labelling job's spending cap and what it has spent (cached calls counted apart)."""

    limit_usd: float | None
    spent_before_usd: float = 0.0  # cost of this job's calls found in the cache
    spent_usd: float = 0.0  # paid by this run
    reserved_usd: float = 0.0
    in_flight: int = 0  # calls holding a reservation (float sums never return to exactly 0)
    exhausted: bool = False
    refused_usd: float = 0.0  # the reservation that did not fit

    @property
    def total_usd(self) -> float:
        return self.spent_before_usd + self.spent_usd

    def fits(self, amount: float) -> bool:
        """Whether a call reserving ``amount`` may start now."""
        if self.exhausted:
            return False
        if self.limit_usd is None:
            return True
        return self.total_usd + self.reserved_usd + amount <= self.limit_usd + 1e-12

    def reserve(self, amount: float) -> None:
        self.reserved_usd += amount
        self.in_flight += 1

    def refuse(self, amount: float) -> None:
        """Even with nothing in flight the call does not fit: the budget is spent."""
        self.exhausted = True
        self.refused_usd = amount

    def settle(self, reserved: float, actual: float) -> None:
        """The call finished: swap its reservation for its actual cost."""
        self.release(reserved)
        self.spent_usd += actual

    def release(self, reserved: float) -> None:
        """The call failed without being billed (no usage came back)."""
        self.in_flight -= 1
        self.reserved_usd = max(0.0, self.reserved_usd - reserved) if self.in_flight else 0.0

    def describe(self) -> str:
        limit = "no budget" if self.limit_usd is None else f"budget ${self.limit_usd:.4f}"
        return f"spent ${self.spent_usd:.4f} in this run, ${self.total_usd:.4f} in total ({limit})"
