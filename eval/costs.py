"""The cost model: what one answer of one model cost, from the best evidence the log has.

Per query and model, in order of preference:

1. ``logged``    — the USD cost the log recorded for that very query;
2. ``tokens``    — logged input and output token counts × the price table;
3. ``estimated`` — token counts estimated from text length (or an assumed output length) × the
   price table.

A known per-query cost is never replaced by an average: the fallbacks apply cell by cell, only
where the log has nothing better. Which source each model used is recorded in
``ImportReport.cost_source``.

Token estimate: ``tokens = ceil(chars / chars_per_token)``. The default of 4 characters per
token is OpenAI's published rule of thumb for English text with GPT tokenizers (BPE vocabularies
of 50k-200k entries land between 3.5 and 4.5 for English prose). Code, non-Latin scripts and
numbers tokenize denser (often 2-3 chars/token): set ``cost.chars_per_token`` in the data config
when your traffic is not English prose. The estimate is for *cost*, so its error scales every
model of a prompt alike and the ranking of models by cost is preserved.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from tierwise.router.errors import DataError
from tierwise.router.pricing import PriceTable

FloatArray = npt.NDArray[np.float64]

DEFAULT_CHARS_PER_TOKEN = 4.0
SOURCES = ("logged", "tokens", "estimated")


def estimate_tokens(
    chars: npt.ArrayLike, chars_per_token: float = DEFAULT_CHARS_PER_TOKEN
) -> FloatArray:
    """Token count estimated from a character count: ``ceil(chars / chars_per_token)``.

    NaN (unknown length) stays NaN.
    """
    if not chars_per_token > 0:
        raise DataError(f"`chars_per_token` must be > 0, got {chars_per_token}; use e.g. 4.0")
    c = np.asarray(chars, dtype=np.float64)
    return np.ceil(c / chars_per_token)


def text_chars(texts: Sequence[str | None]) -> FloatArray:
    """Character counts of texts; None (no text) is NaN."""
    return np.array([np.nan if t is None else float(len(t)) for t in texts], dtype=np.float64)


@dataclass(frozen=True)
class ModelCostInputs:
    """What the log says about one model's answers; each array has one entry per prompt (NaN =
    not logged), or is None when the log has no such column at all."""

    cost: FloatArray | None = None
    input_tokens: FloatArray | None = None
    output_tokens: FloatArray | None = None
    output_chars: FloatArray | None = None


@dataclass(frozen=True)
class CostResult:
    """Per prompt and model: USD cost and, where known, the token counts behind it."""

    cost: FloatArray  # (n, m) USD
    input_tokens: FloatArray | None  # (n, m); NaN where the cost was logged and no tokens were
    output_tokens: FloatArray | None
    source: dict[str, str]  # model -> "logged" | "tokens" | "estimated" | "logged+estimated" ...
    counts: dict[str, dict[str, int]] = field(default_factory=dict)  # model -> source -> rows
    notes: tuple[str, ...] = ()


def _col(a: FloatArray | None, n: int) -> FloatArray:
    return np.full(n, np.nan) if a is None else np.asarray(a, dtype=np.float64)


def _check_non_negative(
    values: FloatArray, what: str, model: str, ids: Sequence[str] | None
) -> None:
    bad = np.flatnonzero(values < 0)
    if bad.size:
        raise DataError(
            f"{what} of model {model!r} must be >= 0, got {float(values[bad[0]])!r} at "
            f"{_where(ids, int(bad[0]))}; "
            "fix or drop that row"
        )


def _where(ids: Sequence[str] | None, r: int) -> str:
    return f"prompt id {ids[r]!r}" if ids is not None else f"row {r}"


@dataclass
class _Model:
    """One model's columns while its costs are resolved (NaN = not logged)."""

    name: str
    logged: FloatArray
    tin: FloatArray  # input tokens: logged, else estimated from the prompt
    tout: FloatArray  # output tokens: logged, else estimated or assumed (NaN: unknown)
    in_known: npt.NDArray[np.bool_]
    out_known: npt.NDArray[np.bool_]
    ochars: FloatArray


def _model_columns(
    model: str,
    x: ModelCostInputs,
    est_in: FloatArray,
    ids: Sequence[str] | None,
    chars_per_token: float,
    assumed_output_tokens: float | None,
) -> _Model:
    n = len(est_in)
    logged, lin, lout, ochars = (
        _col(a, n) for a in (x.cost, x.input_tokens, x.output_tokens, x.output_chars)
    )
    for arr, what in ((logged, "logged cost"), (lin, "input tokens"), (lout, "output tokens")):
        _check_non_negative(arr, what, model, ids)
    in_known, out_known = np.isfinite(lin), np.isfinite(lout)
    out_est = estimate_tokens(ochars, chars_per_token)
    if assumed_output_tokens is not None:
        out_est = np.where(np.isfinite(out_est), out_est, assumed_output_tokens)
    return _Model(
        name=model,
        logged=logged,
        tin=np.where(in_known, lin, est_in),
        tout=np.where(out_known, lout, out_est),
        in_known=in_known,
        out_known=out_known,
        ochars=ochars,
    )


def _priced(col: _Model, prices: PriceTable | None, ids: Sequence[str] | None) -> FloatArray:
    """The logged cost, with the rows that have none priced from tokens."""
    cost = col.logged.copy()
    need = ~np.isfinite(col.logged)
    if not need.any():
        return cost
    missing_out = need & ~np.isfinite(col.tout)
    if missing_out.any():
        raise DataError(
            f"cost of model {col.name!r} is unknown at "
            f"{_where(ids, int(np.flatnonzero(missing_out)[0]))}: the log has no cost, no "
            "output tokens and no output text length for it; add a cost or token column, "
            "or set `cost.assumed_output_tokens` in the data config"
        )
    if prices is None:
        raise DataError(
            f"model {col.name!r} has {int(need.sum())} rows without a logged cost and no "
            "price table is configured; set `cost.prices` to a price table covering it"
        )
    with np.errstate(over="ignore", invalid="ignore"):
        cost[need] = prices.cost(col.name, col.tin[need], col.tout[need])
    bad = need & ~np.isfinite(cost * 1000.0)
    if bad.any():
        r = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"cost of model {col.name!r} at {_where(ids, r)} must be finite, got "
            f"{float(cost[r])!r} ({col.tin[r]:g} input + {col.tout[r]:g} output tokens × the "
            "price table); fix the token counts or the model's price"
        )
    return cost


def _counts(col: _Model) -> dict[str, int]:
    need = ~np.isfinite(col.logged)
    return {
        "logged": int((~need).sum()),
        "tokens": int((need & col.in_known & col.out_known).sum()),
        "estimated": int((need & ~(col.in_known & col.out_known)).sum()),
    }


def _estimation_method(
    col: _Model, chars_per_token: float, assumed_output_tokens: float | None
) -> str:
    estimated = ~np.isfinite(col.logged) & ~(col.in_known & col.out_known)
    parts = []
    if (estimated & ~col.in_known).any():
        parts.append(f"input tokens from prompt length ({chars_per_token:g} chars/token)")
    if (estimated & ~col.out_known & np.isfinite(col.ochars)).any():
        parts.append(f"output tokens from answer length ({chars_per_token:g} chars/token)")
    if (estimated & ~col.out_known & ~np.isfinite(col.ochars)).any():
        parts.append(f"output tokens assumed = {assumed_output_tokens:g} per answer")
    return "; ".join(parts)


def resolve_costs(
    models: Sequence[str],
    inputs: Mapping[str, ModelCostInputs],
    prompt_chars: npt.ArrayLike,
    prices: PriceTable | None = None,
    *,
    chars_per_token: float = DEFAULT_CHARS_PER_TOKEN,
    assumed_output_tokens: float | None = None,
    ids: Sequence[str] | None = None,
) -> CostResult:
    """Per-query cost matrix (n, m) from logged costs, token counts and prices, cell by cell.

    ``ids`` (one per prompt) only make error messages name the prompt.
    """
    pchars = np.asarray(prompt_chars, dtype=np.float64)
    n, m = len(pchars), len(models)
    cost, tin, tout = (np.full((n, m), np.nan) for _ in range(3))
    source: dict[str, str] = {}
    counts: dict[str, dict[str, int]] = {}
    how: dict[str, list[str]] = {}  # estimation method -> models that used it
    est_in = estimate_tokens(pchars, chars_per_token)
    for j, model in enumerate(models):
        col = _model_columns(
            model,
            inputs.get(model, ModelCostInputs()),
            est_in,
            ids,
            chars_per_token,
            assumed_output_tokens,
        )
        cost[:, j] = _priced(col, prices, ids)
        c = _counts(col)
        counts[model] = {k: v for k, v in c.items() if v}
        source[model] = "+".join(k for k in SOURCES if c[k]) or "logged"
        if c["estimated"]:
            k = c["estimated"]
            method = _estimation_method(col, chars_per_token, assumed_output_tokens)
            how.setdefault(method, []).append(model if k == n else f"{model} ({k} rows)")
        # Tokens nobody logged or used stay unknown rather than pretend to be measured.
        has_cost = np.isfinite(col.logged)
        tin[:, j] = np.where(has_cost & ~col.in_known, np.nan, col.tin)
        tout[:, j] = np.where(has_cost & ~col.out_known, np.nan, col.tout)
    notes = tuple(
        f"costs estimated for {len(ms)} model(s) ({method}; all rows unless counted): "
        + ", ".join(ms)
        for method, ms in how.items()
    )
    return CostResult(
        cost=cost,
        input_tokens=None if np.isnan(tin).all() else tin,
        output_tokens=None if np.isnan(tout).all() else tout,
        source=source,
        counts=counts,
        notes=notes,
    )
