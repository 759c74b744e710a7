"""What the router answers for one prompt: the chosen tier and everything that led to it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Decision:
    """One routing decision. ``error`` is set (and ``model`` is None) for an invalid prompt."""

    index: int
    model: str | None
    p_success: dict[str, float] = field(default_factory=dict)
    expected_cost: dict[str, float] = field(default_factory=dict)
    policy: str = ""
    knob: float | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
