"""Expected cost of sending a prompt to each tier, known *before* the answer exists.

Two sources, chosen at fit time from what the training data holds:

- ``prices``: the data has per-model token counts and a price table: input tokens are estimated
  from the prompt's length (chars per token learned from the data), output tokens predicted per
  tier from the prompt embedding (``OutputLengthModel``) or the tier's training mean.
- ``fitted``: the data only logs each answer's total cost: per tier, a non-negative linear fit of
  cost on prompt length (input is billed per token, so cost grows with length; the intercept
  absorbs the typical output cost).

Either way the evaluation uses the logged per-query cost of the chosen answer; this model only
drives the decision.
"""

from __future__ import annotations

from typing import Any, Self

import numpy as np
import numpy.typing as npt

from tierwise.router.errors import ArtifactError, DataError
from tierwise.router.length import OutputLengthModel
from tierwise.router.predictors.base import FloatArray
from tierwise.router.pricing import PriceTable
from tierwise.router.state import State, StateExport


def prompt_chars(prompts: list[str] | tuple[str, ...]) -> FloatArray:
    """The character count of each prompt, as float64 (the cost model's length feature)."""
    return np.fromiter((len(p) for p in prompts), dtype=np.float64, count=len(prompts))


def _nonneg_line(x: FloatArray, y: FloatArray) -> tuple[float, float]:
    """Least squares y ≈ a + b·x with a, b ≥ 0 (a cost never falls as a prompt grows)."""
    ok = np.isfinite(y)
    x, y = x[ok], y[ok]
    if len(y) == 0:
        return 0.0, 0.0
    if len(y) < 2 or np.ptp(x) == 0:
        return float(max(y.mean(), 0.0)), 0.0
    b, a = np.polyfit(x, y, 1)
    if b < 0:
        return float(max(y.mean(), 0.0)), 0.0
    if a < 0:
        return 0.0, max(float((x @ y) / (x @ x)), 0.0)
    return float(a), float(b)


class ExpectedCostModel(StateExport):
    """Per prompt and tier, the expected USD cost of the answer."""

    def __init__(self, predict_output_tokens: bool = True, chars_per_token: float = 4.0) -> None:
        self.predict_output_tokens = predict_output_tokens
        self.chars_per_token = chars_per_token

    def fit(
        self,
        X: npt.NDArray[Any],
        chars: FloatArray,
        cost: FloatArray,
        models: tuple[str, ...],
        *,
        input_tokens: FloatArray | None = None,
        output_tokens: FloatArray | None = None,
        prices: PriceTable | None = None,
    ) -> ExpectedCostModel:
        self.models_ = tuple(models)
        m = len(models)
        usable_prices = (
            prices is not None and output_tokens is not None and all(md in prices for md in models)
        )
        self.length_: OutputLengthModel | None = None
        self.prices_: dict[str, Any] | None = None
        if usable_prices:
            assert prices is not None and output_tokens is not None
            self.source_ = "prices"
            self.prices_ = prices.to_dict()
            self.chars_per_token_ = self._chars_per_token(chars, input_tokens)
            known = np.isfinite(output_tokens)
            self.mean_output_tokens_ = np.array(
                [
                    output_tokens[known[:, j], j].mean() if known[:, j].any() else 0.0
                    for j in range(m)
                ]
            )
            if self.predict_output_tokens and known.all(axis=0).sum() > 0 and len(X) >= 20:
                cols_ok = known.any(axis=0).all()
                if cols_ok:
                    self.length_ = OutputLengthModel().fit(X, output_tokens)
            self.line_ = np.zeros((m, 2))
        else:
            self.source_ = "fitted"
            self.chars_per_token_ = float(self.chars_per_token)
            self.mean_output_tokens_ = np.zeros(m)
            if np.any(cost[np.isfinite(cost)] < 0):
                raise DataError("`cost` must be >= 0 USD; fix the negative costs in the data")
            self.line_ = np.array([_nonneg_line(chars, cost[:, j]) for j in range(m)])
        return self

    def _chars_per_token(self, chars: FloatArray, input_tokens: FloatArray | None) -> float:
        """Learn chars/token from logged input tokens (languages and tokenizers differ)."""
        if input_tokens is None:
            return float(self.chars_per_token)
        tok = np.nanmean(input_tokens, axis=1)
        ok = np.isfinite(tok) & (tok > 0)
        if ok.sum() < 10:
            return float(self.chars_per_token)
        return float(chars[ok].sum() / tok[ok].sum())

    def predict(self, X: npt.NDArray[Any], chars: FloatArray) -> FloatArray:
        if not hasattr(self, "source_"):
            raise ArtifactError("ExpectedCostModel is not fitted; call fit() or load a router")
        n, m = len(chars), len(self.models_)
        if self.source_ == "fitted":
            return self.line_[:, 0][None, :] + chars[:, None] * self.line_[:, 1][None, :]
        table = PriceTable.from_dict(self.prices_)
        in_tok = chars / self.chars_per_token_
        out_tok = (
            self.length_.predict(X)
            if self.length_ is not None
            else np.broadcast_to(self.mean_output_tokens_, (n, m))
        )
        return np.stack(
            [table.cost(md, in_tok, out_tok[:, j]) for j, md in enumerate(self.models_)], axis=1
        )

    state_kind = "expected-cost model"
    unversioned_ok = True  # artifacts saved before router.state stored no format here

    def _state(self) -> State:
        params: dict[str, Any] = {
            "source": self.source_,
            "models": list(self.models_),
            "chars_per_token": self.chars_per_token_,
            "prices": self.prices_,
            "has_length_model": self.length_ is not None,
        }
        arrays = {"line": self.line_, "mean_output_tokens": self.mean_output_tokens_}
        if self.length_ is not None:
            lp, la = self.length_.get_state()
            params["length"] = lp
            arrays.update({f"length.{k}": v for k, v in la.items()})
        return params, arrays

    @classmethod
    def _from_state(cls, params: dict[str, Any], arrays: dict[str, np.ndarray]) -> Self:
        self = cls(chars_per_token=float(params["chars_per_token"]))
        self.source_ = str(params["source"])
        self.models_ = tuple(params["models"])
        self.chars_per_token_ = float(params["chars_per_token"])
        self.prices_ = params["prices"]
        self.line_ = np.asarray(arrays["line"], dtype=np.float64)
        self.mean_output_tokens_ = np.asarray(arrays["mean_output_tokens"], dtype=np.float64)
        self.length_ = None
        if params.get("has_length_model"):
            la = {k.split(".", 1)[1]: v for k, v in arrays.items() if k.startswith("length.")}
            self.length_ = OutputLengthModel.from_state(params["length"], la)
        return self
