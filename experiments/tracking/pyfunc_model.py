"""The MLflow pyfunc model of a tierwise router, logged as *code* (MLflow "models from code").

MLflow runs this file when it loads the model, so nothing is pickled (tierwise artifacts are
pickle-free too). It needs only ``tierwise.router`` (shipped with the model as ``code_paths``),
pandas and mlflow. The router artifact itself is the model's ``router`` artifact.

Input: a DataFrame with a ``prompt`` column (or a single column), a list of prompts, a dict
``{"prompt": str | list}`` or a single string; the signature is one unnamed string column so
that every one of these passes MLflow's schema check. Output: one row per prompt with ``model`` (the
chosen tier, empty on error), ``p_success`` (JSON object, model → calibrated P(success)),
``expected_cost`` (USD, of the chosen model; None on error) and ``error`` (why the prompt was
refused, else ""). Served by `mlflow models serve`, it takes ``{"inputs": [...prompts]}`` or
``{"dataframe_split": {"columns": ["prompt"], "data": [[...], ...]}}``.
"""

from __future__ import annotations

import json
from typing import Any

import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel

OUTPUT_COLUMNS = ("model", "p_success", "expected_cost", "error")


def _expand(values: Any) -> list[Any]:
    """MLflow turns ``{"prompt": [a, b]}`` into one row holding a list: one prompt per item."""
    out: list[Any] = []
    for v in values:
        if isinstance(v, list | tuple) or (hasattr(v, "ndim") and getattr(v, "ndim", 0) == 1):
            out.extend(list(v))
        else:
            out.append(v)
    return out


def as_prompts(model_input: Any) -> list[Any]:
    """The prompts in a pyfunc input (DataFrame, Series, list or one string)."""
    if isinstance(model_input, pd.DataFrame):
        if "prompt" in model_input.columns:
            return _expand(model_input["prompt"])
        if model_input.shape[1] == 1:
            return _expand(model_input.iloc[:, 0])
        raise ValueError(
            f"input must have a `prompt` column, got columns {list(model_input.columns)}"
        )
    if isinstance(model_input, pd.Series):
        return _expand(model_input)
    if isinstance(model_input, dict):
        if "prompt" not in model_input:
            raise ValueError(f"input dict must have a `prompt` key, got {sorted(model_input)}")
        value = model_input["prompt"]
        return list(value) if isinstance(value, list | tuple) else [value]
    if isinstance(model_input, str):
        return [model_input]
    if isinstance(model_input, list | tuple):
        return [p.get("prompt") if isinstance(p, dict) else p for p in model_input]
    raise ValueError(
        f"input must be a DataFrame with a `prompt` column, a list of prompts or a dict, "
        f"got {type(model_input).__name__}"
    )


class TierwiseRouterModel(PythonModel):
    """Routes prompts with the router artifact logged beside it."""

    def load_context(self, context: Any) -> None:
        from tierwise.router.core import Router

        self.router = Router.load(context.artifacts["router"])

    # MLflow enforces the signature first, so `model_input` arrives as a DataFrame (as_prompts
    # still takes the other forms, for calls on the PythonModel itself).
    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        knob = (params or {}).get("knob")
        decisions = self.router.route(as_prompts(model_input), knob=knob)
        rows = [
            {
                "model": d.model or "",
                "p_success": json.dumps(d.p_success, sort_keys=True),
                "expected_cost": float(d.expected_cost[d.model]) if d.model else None,
                "error": d.error or "",
            }
            for d in decisions
        ]
        out = pd.DataFrame(rows, columns=list(OUTPUT_COLUMNS))
        # None, not NaN, for a refused prompt: NaN is not JSON (`mlflow models serve` answers).
        out["expected_cost"] = pd.Series([r["expected_cost"] for r in rows], dtype=object)
        return out


mlflow.models.set_model(TierwiseRouterModel())
