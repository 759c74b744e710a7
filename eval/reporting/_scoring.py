"""Scoring engine behind :func:`eval.report.compare`: every row, on the same (re)sampled prompts.

Each row is an :class:`Entry` that can produce its (cost, quality) points and frontier for any
bootstrap weights. :func:`score_all` scores all entries for one set of weights, so the zero
router, the oracle and the reference model that AIQ, gap closed and "% of reference" depend on
are always recomputed on the very prompts the policy is scored on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from tierwise.eval.baselines import (
    OracleFrontier,
    oracle_strong_curve,
    single_model_points,
    zero_router,
)
from tierwise.eval.metrics import (
    aiq_of_frontier,
    apgr,
    cost_at_quality,
    cpt,
    frontier,
    gap_closed,
    pgr,
    strong_fraction,
)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

CPT_TARGETS = (0.5, 0.8)


@dataclass
class Scores:
    """One entry's quality, cost and curve metrics (AIQ, gap closed, cost at targets)."""

    quality: float
    cost: float  # USD per query
    aiq: float
    gap_closed: float
    cost_at: list[float]  # per quality target; inf = never
    points: tuple[FloatArray, FloatArray]
    hull: tuple[FloatArray, FloatArray]
    ref_quality: float
    ref_cost: float
    apgr: float | None = None
    cpt: tuple[float | None, ...] = ()


@dataclass
class Entry:
    """One row's inputs: a (k, n) policy, the zero router, or the oracle."""

    name: str
    kind: str
    choices: IntArray | None = None
    sel_q: FloatArray | None = None  # quality of the chosen model, (k, n)
    sel_c: FloatArray | None = None
    op: int = 0
    oracle: OracleFrontier | None = None

    @classmethod
    def policy(
        cls, name: str, kind: str, q: FloatArray, c: FloatArray, choices: IntArray, op: int
    ) -> Entry:
        rows = np.arange(q.shape[0])[None, :]
        return cls(name, kind, choices, q[rows, choices], c[rows, choices], op)

    @classmethod
    def zero(cls) -> Entry:
        return cls("zero router", "zero")

    @classmethod
    def oracle_entry(
        cls, q: FloatArray, c: FloatArray, point_choices: IntArray, fr: OracleFrontier
    ) -> Entry:
        e = cls.policy("oracle", "oracle", q, c, point_choices[None, :], 0)
        e.oracle = fr
        return e

    @property
    def is_curve(self) -> bool:
        """AIQ is defined for curves only: a single point's area says nothing about routing."""
        if self.kind in ("zero", "oracle"):
            return True
        assert self.choices is not None
        return self.choices.shape[0] > 1

    def curve(
        self, q: FloatArray, c: FloatArray, w: FloatArray | None
    ) -> tuple[tuple[FloatArray, FloatArray], tuple[FloatArray, FloatArray], float, float]:
        """(points, frontier, point cost, point quality) for weights ``w``."""
        if self.kind == "zero":
            hc, hq, _ = zero_router(q, c, w)
            return (hc, hq), (hc, hq), float(hc[-1]), float(hq[-1])
        assert self.sel_q is not None and self.sel_c is not None
        if w is None:
            pc, pq = self.sel_c.mean(axis=1), self.sel_q.mean(axis=1)
        else:
            pc, pq = (self.sel_c @ w) / w.sum(), (self.sel_q @ w) / w.sum()
        point_c, point_q = float(pc[self.op]), float(pq[self.op])
        if self.oracle is not None:
            oc, oq = self.oracle.curve(w)
            return (oc, oq), (oc, oq), point_c, point_q
        return (pc, pq), frontier(pc, pq), point_c, point_q

    def strong_curve(
        self, q: FloatArray, c: FloatArray, points_q: FloatArray, weak: int, strong: int
    ) -> tuple[FloatArray, FloatArray]:
        """(share of calls to ``strong``, mean quality) per point, for PGR (full data).

        The oracle uses RouteLLM's optimal curve over 0–100% strong calls instead of its cost
        frontier, which stops where extra strong calls no longer add quality.
        """
        if self.kind == "zero":
            _, _, models = zero_router(q, c)
            return (models == strong).astype(np.float64), points_q
        if self.oracle is not None:
            return oracle_strong_curve(q, weak, strong)
        assert self.choices is not None
        return strong_fraction(self.choices, strong), points_q


def score_all(
    entries: list[Entry],
    q: FloatArray,
    c: FloatArray,
    ref: int,
    targets: list[float],
    w: FloatArray | None,
    pair: tuple[int, int] | None,
) -> dict[str, Scores]:
    """Score every entry on prompts weighted by ``w`` (None = the data as is)."""
    mc, mq = single_model_points(q, c, w)
    c_max, ref_q, ref_c = float(mc.max()), float(mq[ref]), float(mc[ref])
    out: dict[str, Scores] = {}
    for e in entries:
        points, hull, pc, pq = e.curve(q, c, w)
        at = [cost_at_quality(hull[0], hull[1], t * ref_q) for t in targets]
        out[e.name] = Scores(
            quality=pq,
            cost=pc,
            aiq=aiq_of_frontier(hull[0], hull[1], c_max) if e.is_curve else float("nan"),
            gap_closed=float("nan"),
            cost_at=[np.inf if v is None else v for v in at],
            points=points,
            hull=hull,
            ref_quality=ref_q,
            ref_cost=ref_c,
        )
        if pair is not None:
            weak, strong = pair
            x, curve_q = e.strong_curve(q, c, points[1], weak, strong)
            y = pgr(curve_q, float(mq[weak]), float(mq[strong]))
            out[e.name].apgr = apgr(x, y)
            out[e.name].cpt = tuple(cpt(x, y, t) for t in CPT_TARGETS)
    zero, oracle = out["zero router"].aiq, out["oracle"].aiq
    for s in out.values():
        s.gap_closed = gap_closed(s.aiq, zero, oracle)
    return out
