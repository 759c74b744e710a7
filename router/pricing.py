"""Model price tables: USD per 1M input / output tokens, a per-request fee, cached-input price.

A price table is a small YAML file with a ``version`` (so every cost number can be traced to
the prices it came from) and one entry per model::

    version: "2024-06 list prices"
    source: "provider pricing pages, retrieved 2024-06-01"
    models:
      gpt-4o:  {input_per_1m: 5.0, output_per_1m: 15.0}
      mixtral: {input_per_1m: 0.6, output_per_1m: 0.6, per_request: 0.0}

JSON is read too: the same schema, or a flat ``{model: {input_token_price_per_million: ..,
output_token_price_per_million: ..}}`` mapping (RouterArena's ``cost.json``), or LiteLLM's
``{model: {input_cost_per_token: .., output_cost_per_token: ..}}``.

The production router uses this module: numpy, pydantic and yaml only.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from pydantic import Field, field_validator

from tierwise.router.errors import ConfigError, DataError
from tierwise.router.schema import StrictModel, parse_model, read_yaml

FloatArray = npt.NDArray[np.float64]
PER_MILLION = 1_000_000.0


class ModelPrice(StrictModel):
    """Prices of one model in USD."""

    input_per_1m: float
    output_per_1m: float
    per_request: float = 0.0
    cached_input_per_1m: float | None = None
    note: str | None = None  # where this price came from, if it differs from the table's source

    @field_validator("input_per_1m", "output_per_1m", "per_request", "cached_input_per_1m")
    @classmethod
    def _non_negative(cls, v: float | None) -> float | None:
        if v is not None and (not math.isfinite(v) or v < 0):
            raise ValueError("must be a finite price >= 0; fix it")
        return v


class PriceTableFile(StrictModel):
    """The on-disk schema of a price table."""

    version: str = Field(min_length=1)
    currency: str = "USD"
    source: str | None = None
    retrieved: str | None = None
    notes: str | None = None
    models: dict[str, ModelPrice] = Field(min_length=1)

    @field_validator("currency")
    @classmethod
    def _usd_only(cls, v: str) -> str:
        if v.upper() != "USD":
            raise ValueError(f"only USD prices are supported, got {v!r}; convert the prices to USD")
        return v.upper()


def _from_flat_json(data: dict[str, Any], source: str, version: str) -> dict[str, Any]:
    """Convert the per-model JSON shapes used by RouterArena and LiteLLM into our schema."""
    models: dict[str, Any] = {}
    for name, entry in data.items():
        if not isinstance(entry, dict):
            raise ConfigError(
                f"{source}: entry {name!r} must be a mapping of prices, got {entry!r}; "
                "use {input_token_price_per_million: .., output_token_price_per_million: ..}"
            )
        if "input_token_price_per_million" in entry or "output_token_price_per_million" in entry:
            models[name] = {
                "input_per_1m": entry.get("input_token_price_per_million"),
                "output_per_1m": entry.get("output_token_price_per_million"),
            }
        elif "input_cost_per_token" in entry or "output_cost_per_token" in entry:
            models[name] = {
                "input_per_1m": float(entry.get("input_cost_per_token", 0.0)) * PER_MILLION,
                "output_per_1m": float(entry.get("output_cost_per_token", 0.0)) * PER_MILLION,
            }
        else:
            raise ConfigError(
                f"{source}: entry {name!r} has no known price keys, got {sorted(entry)}; "
                "use input_token_price_per_million and output_token_price_per_million"
            )
    return {"version": version, "source": source, "models": models}


class PriceTable:
    """Prices per model; ``cost`` is vectorized over token arrays."""

    def __init__(self, spec: PriceTableFile, path: str | None = None) -> None:
        self.spec = spec
        self.path = path
        self._prices = dict(spec.models)

    @classmethod
    def from_dict(cls, data: Any, source: str = "price table") -> PriceTable:
        return cls(parse_model(PriceTableFile, data, source=source), path=None)

    @classmethod
    def load(cls, path: str | Path) -> PriceTable:
        """Read a YAML (or JSON) price table."""
        p = Path(path)
        if not p.is_file():
            raise ConfigError(
                f"price table {str(p)!r} does not exist; check `cost.prices` in the config"
            )
        if p.suffix.lower() == ".json":
            raw = p.read_bytes()
            try:
                data = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as err:
                raise ConfigError(f"{p}: not valid JSON ({err}); fix the price table") from None
            if isinstance(data, dict) and "models" not in data:
                version = f"{p.name}@sha256:{hashlib.sha256(raw).hexdigest()[:12]}"
                data = _from_flat_json(data, str(p), version)
        else:
            data = read_yaml(p)
        if not isinstance(data, dict):
            raise ConfigError(f"{p}: a price table must be a mapping with `version` and `models`")
        table = cls(parse_model(PriceTableFile, data, source=str(p)), path=str(p))
        return table

    @property
    def version(self) -> str:
        return self.spec.version

    @property
    def models(self) -> tuple[str, ...]:
        return tuple(self._prices)

    def __contains__(self, model: object) -> bool:
        return model in self._prices

    def __len__(self) -> int:
        return len(self._prices)

    def price(self, model: str) -> ModelPrice:
        try:
            return self._prices[model]
        except KeyError:
            where = f" ({self.path})" if self.path else ""
            raise DataError(
                f"model {model!r} is not in price table {self.version!r}{where}; "
                f"valid models: {sorted(self._prices)}; add it to the table or rename the model"
            ) from None

    def cost(
        self,
        model: str,
        input_tokens: npt.ArrayLike,
        output_tokens: npt.ArrayLike,
        cached_input_tokens: npt.ArrayLike | None = None,
    ) -> FloatArray:
        """USD cost per request: tokens × price / 1M + the per-request fee.

        ``cached_input_tokens`` (a part of ``input_tokens``) are billed at the cached price when
        the model has one, else at the normal input price.
        """
        p = self.price(model)
        inp = _tokens(input_tokens, "input_tokens")
        out = _tokens(output_tokens, "output_tokens")
        usd = (inp * p.input_per_1m + out * p.output_per_1m) / PER_MILLION + p.per_request
        if cached_input_tokens is not None:
            cached = _tokens(cached_input_tokens, "cached_input_tokens")
            if np.any(cached > inp):
                raise DataError(
                    "`cached_input_tokens` must not exceed `input_tokens`; "
                    "cached tokens are a part of the input"
                )
            if p.cached_input_per_1m is not None:
                usd = usd + cached * (p.cached_input_per_1m - p.input_per_1m) / PER_MILLION
        return np.asarray(usd, dtype=np.float64)

    def to_dict(self) -> dict[str, Any]:
        return self.spec.model_dump(exclude_none=True)


def _tokens(values: npt.ArrayLike, name: str) -> FloatArray:
    arr = np.asarray(values, dtype=np.float64)
    bad = ~np.isfinite(arr) | (arr < 0)
    if np.any(bad):
        first = arr.reshape(-1)[np.flatnonzero(bad.reshape(-1))[0]]
        raise DataError(
            f"`{name}` must be finite counts >= 0, got {float(first)!r}; fill or drop those rows"
        )
    return arr
