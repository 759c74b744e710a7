"""Cell parsing with errors that name the file, column, row, id and value."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from tierwise.router.errors import DataError

if TYPE_CHECKING:
    import pandas as pd

FloatArray = npt.NDArray[np.float64]
MISSING_TOKENS = frozenset({"", "nan", "na", "n/a", "null", "none", "<na>"})
BOOLS = {"true": 1.0, "false": 0.0}
# Larger than any real cost (USD), token count or answer length, small enough that totals over
# a billion rows stay finite.
MAX_MAGNITUDE = 1e12


@dataclass(frozen=True)
class Where:
    """Where a column came from, for messages."""

    file: str
    column: str
    ids: Sequence[str]  # id of each row of the column (long files repeat ids)

    def cell(self, i: int) -> str:
        return f"{self.file}, column {self.column!r}, row {i + 1} (id {self.ids[i]!r})"


def show(value: object) -> str:
    """A cell value as the user wrote it: numpy scalars as plain Python values."""
    item = getattr(value, "item", None)
    return repr(item() if callable(item) else value)


def _fast_floats(values: pd.Series) -> tuple[FloatArray | None, npt.NDArray[np.bool_]]:
    """Most numeric columns parse in one C loop; anything unusual takes the careful path."""
    try:
        arr = values.to_numpy(dtype=object).astype(np.float64)
    except (ValueError, TypeError):
        return None, np.zeros(len(values), dtype=bool)
    return arr, np.zeros(len(arr), dtype=bool)


def parse_numbers(
    values: pd.Series,
    where: Where,
    what: str,
    *,
    allow_bool: bool = False,
    min_value: float | None = None,
) -> FloatArray:
    """Parse a column to float64: blanks / "NaN" / "null" become NaN, anything else must parse.

    With ``allow_bool``, booleans and "True"/"False" strings (any case) are 1.0 / 0.0.
    """
    import pandas as pd

    out: FloatArray | None
    if pd.api.types.is_bool_dtype(values.dtype):
        out = np.array(values.to_numpy(dtype=np.float64, na_value=np.nan), dtype=np.float64)
        bool_like = np.ones(len(out), dtype=bool)
    elif pd.api.types.is_numeric_dtype(values.dtype):
        out = np.array(values.to_numpy(dtype=np.float64, na_value=np.nan), dtype=np.float64)
        bool_like = np.zeros(len(out), dtype=bool)
    else:
        out, bool_like = _fast_floats(values)
    if out is None:
        text = values.astype(str).str.strip()
        low = text.str.lower()
        # pandas may keep None / NaN as NA in a str column, or spell them "None" / "nan"
        missing = (low.isin(MISSING_TOKENS) | values.isna() | low.isna()).to_numpy()
        is_bool = low.isin(BOOLS.keys()).to_numpy()
        num = pd.to_numeric(text.where(~(missing | is_bool), None), errors="coerce")
        out = np.array(num.to_numpy(dtype=np.float64, na_value=np.nan), dtype=np.float64)
        out[is_bool] = low[is_bool].map(BOOLS).to_numpy(dtype=np.float64)
        bool_like = is_bool
        bad = np.isnan(out) & ~missing
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise DataError(
                f"{where.cell(i)}: {what} must be a number"
                + (" or true/false" if allow_bool else "")
                + f", got {show(values.iloc[i])}; fix the value or leave the cell blank"
            )
    if not allow_bool and bool_like.any():
        i = int(np.flatnonzero(bool_like)[0])
        raise DataError(
            f"{where.cell(i)}: {what} must be a number, got {show(values.iloc[i])}; fix the value"
        )
    inf = np.isinf(out)
    if inf.any():
        i = int(np.flatnonzero(inf)[0])
        raise DataError(
            f"{where.cell(i)}: {what} must be finite, got {float(out[i])!r}; fix the value"
        )
    _check_magnitude(out, values, where, what)
    if min_value is not None:
        low_mask = out < min_value
        if low_mask.any():
            i = int(np.flatnonzero(low_mask)[0])
            raise DataError(
                f"{where.cell(i)}: {what} must be >= {min_value:g}, got {float(out[i])!r}; "
                "fix the value or leave the cell blank"
            )
    return out


def _check_magnitude(out: FloatArray, values: pd.Series, where: Where, what: str) -> None:
    # Finite but huge (1e308) overflows to inf in the first sum or $/1k; no log holds such values.
    big = np.abs(out) > MAX_MAGNITUDE
    if big.any():
        i = int(np.flatnonzero(big)[0])
        raise DataError(
            f"{where.cell(i)}: {what} must be at most {MAX_MAGNITUDE:g} in size, got "
            f"{show(values.iloc[i])}; fix the value (a unit or export error?)"
        )


def parse_text(values: pd.Series) -> list[str | None]:
    """Strings as they are; missing (None/NaN) stays None. Empty strings are kept as ''."""
    na = values.isna().to_numpy()
    if not na.any():
        return [str(v) for v in values.tolist()]
    return [None if m else str(v) for v, m in zip(values.tolist(), na, strict=True)]


def text_lengths(values: pd.Series) -> FloatArray:
    """Characters per cell; a missing cell is NaN (unknown), an empty string 0."""
    return np.array(
        [np.nan if t is None else float(len(t)) for t in parse_text(values)], dtype=np.float64
    )
