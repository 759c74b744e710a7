"""The data section of a config: which files make up a routing log and how to read them.

Example (wide log, one file, logged costs)::

    data:
      sources:
        - path: ../data/routerbench/routerbench.csv.gz
          quality: "{model}"                 # a column per model holds its 0/1 label
          cost: "{model}|total_cost"         # and one its USD cost
      columns: {id: sample_id, prompt: prompt, task: eval_name}
      ignore_columns: [oracle_model_to_route_to]
      labels: {kind: binary, missing: drop_row}

A per-model field is a column *template* (``{model}`` stands for the model name) or an explicit
mapping ``{model name: column}``. In a ``layout: long`` source (one row per prompt × model),
fields are plain column names and ``model`` names the column holding the model.
Several sources are joined on the id column; the first source holding the prompt column
defines the rows. Paths are relative to the config file's directory.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from tierwise.router.schema import StrictModel

FieldSpec = str | dict[str, str]
PER_MODEL_FIELDS = (
    "quality",
    "cost",
    "input_tokens",
    "output_tokens",
    "output_chars",
    "output_text",
)
FORMATS = ("csv", "tsv", "parquet", "jsonl", "json")


class SourceConfig(StrictModel):
    """One file (or Hugging Face dataset) of the log."""

    path: str | None = None
    format: Literal["csv", "tsv", "parquet", "jsonl", "json"] | None = None  # default: extension
    hf: str | None = None  # `datasets.load_dataset` name: a hub id, a builder (csv, parquet) or dir
    hf_config: str | None = None
    data_files: str | list[str] | None = None  # for `hf`, relative to the config file
    split: str | None = None
    sep: str | None = None  # CSV delimiter; default "," ("\t" for .tsv)
    encoding: str = "utf-8"
    layout: Literal["wide", "long"] = "wide"
    id: str | None = None  # this file's id column, if it differs from `columns.id`
    model: str | None = None  # long layout: the column naming the model
    quality: FieldSpec | None = None
    cost: FieldSpec | None = None
    input_tokens: FieldSpec | None = None
    output_tokens: FieldSpec | None = None
    output_chars: FieldSpec | None = None
    output_text: FieldSpec | None = None

    @model_validator(mode="after")
    def _check(self) -> SourceConfig:
        if (self.path is None) == (self.hf is None):
            raise ValueError("a source needs exactly one of `path` (a file) or `hf` (a dataset)")
        if self.layout == "long":
            if not self.model:
                raise ValueError(
                    "a `layout: long` source needs `model`: the column naming the model"
                )
            for name in PER_MODEL_FIELDS:
                spec = getattr(self, name)
                if spec is not None and (not isinstance(spec, str) or "{model}" in spec):
                    raise ValueError(
                        f"in a long source `{name}` must be one column name, got {spec!r}"
                    )
        elif self.model is not None:
            raise ValueError(
                "`model` is only for `layout: long` sources; remove it or set the layout"
            )
        return self

    def fields(self) -> dict[str, FieldSpec]:
        return {f: getattr(self, f) for f in PER_MODEL_FIELDS if getattr(self, f) is not None}

    def describe(self) -> str:
        return self.path if self.path is not None else f"hf:{self.hf}"


class ColumnsConfig(StrictModel):
    """Which columns of a traffic log hold the id, the prompt and the task."""

    id: str | None = None  # absent: ids are generated from row numbers (one source only)
    prompt: str = "prompt"
    task: str | None = None
    # Regex applied to the task column's values (its first group, else the whole match) — e.g.
    # `^(.+)_\d+$` turns the id "MMLU_12" into the task "MMLU".
    task_pattern: str | None = None

    @field_validator("task_pattern")
    @classmethod
    def _regex(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                re.compile(v)
            except re.error as err:
                raise ValueError(f"`task_pattern` must be a valid regex ({err})") from None
        return v


class LabelConfig(StrictModel):
    """How raw quality labels become quality in [0, 1]."""

    kind: Literal["binary", "score"] = "binary"
    # score: the valid raw range; with `threshold`, success = score >= threshold (0/1),
    # otherwise the score is rescaled linearly from `range` to [0, 1].
    range: tuple[float, float] | None = None
    threshold: float | None = None
    out_of_range: Literal["error", "clip"] = "error"
    missing: Literal["drop_row", "as_failure"]  # no default: decide explicitly

    @model_validator(mode="after")
    def _check(self) -> LabelConfig:
        if self.kind == "binary" and (self.range is not None or self.threshold is not None):
            raise ValueError("`range` and `threshold` are for `kind: score`; binary labels are 0/1")
        if self.range is not None and not self.range[0] < self.range[1]:
            raise ValueError(f"`range` must be [low, high] with low < high, got {list(self.range)}")
        if self.threshold is not None and self.range is not None:
            lo, hi = self.range
            if not lo <= self.threshold <= hi:
                raise ValueError(f"`threshold` must lie within `range` {list(self.range)}")
        return self

    def score_range(self) -> tuple[float, float]:
        return self.range if self.range is not None else (0.0, 1.0)


class CostConfig(StrictModel):
    """How costs are found or estimated: logged costs, token counts or a price table."""

    prices: str | None = None  # price table (YAML or JSON), relative to the config file
    chars_per_token: float = Field(4.0, gt=0)  # see eval/costs.py for the estimator
    assumed_output_tokens: float | None = Field(None, ge=0)  # when no output length is logged
    # A model in the price table but not in the data is usually a naming mismatch.
    unused_prices: Literal["error", "ignore"] = "error"


class DataConfig(StrictModel):
    """A traffic log described in YAML: its sources, columns, labels and costs."""

    name: str | None = None  # default: the experiment name
    sources: list[SourceConfig] = Field(min_length=1)
    columns: ColumnsConfig = ColumnsConfig()
    models: list[str] | None = None  # names as in the data; default: detected
    exclude_models: list[str] = Field(default_factory=list)
    rename_models: dict[str, str] = Field(
        default_factory=dict
    )  # data name -> name used everywhere else (and in prices)
    ignore_columns: list[str] = Field(
        default_factory=list
    )  # wide files: columns that are not models
    labels: LabelConfig
    cost: CostConfig = CostConfig()

    @model_validator(mode="after")
    def _check(self) -> DataConfig:
        if not any(s.quality is not None for s in self.sources):
            raise ValueError("one source must give `quality` (the label column or template)")
        if self.columns.id is None and len(self.sources) > 1:
            ids = [s.id for s in self.sources]
            if None in ids:
                raise ValueError("joining several sources needs `columns.id`: the shared id column")
        targets = list(self.rename_models.values())
        if len(set(targets)) != len(targets):
            raise ValueError(f"`rename_models` maps two models to one name: {self.rename_models}")
        return self
