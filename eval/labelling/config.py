"""The typed schema of a labelling config (``tierwise label CONFIG``).

Example::

    name: support-traffic
    upstreams: upstreams.yaml        # the gateway's upstreams file (or the same mapping inline)
    tiers: [small, mid, big]         # tiers to label, as named in the upstreams file
    source:
      path: logs/prompts.jsonl       # anything the importers read: csv/tsv/parquet/jsonl/json/hf
    columns: {id: request_id, prompt: prompt, task: category, reference: answer}
    sample: {n: 2000, stratify: category, seed: 0}
    generation: {params: {temperature: 0, max_tokens: 512}}
    score:
      method: reference              # reference | judge | python
      reference: {match: numeric}
    budget_usd: 25
    output: {dir: labelled, experiment: {router: {embedder: {name: minilm}}}}

Relative paths are resolved against the config file's directory.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, PrivateAttr, field_validator, model_validator

from tierwise.router.schema import StrictModel, load_yaml_model
from tierwise.router.upstreams import UpstreamsConfig, load_upstreams


class PromptSourceConfig(StrictModel):
    """Where the prompts come from: a file or Hugging Face dataset, as in the importers."""

    kind: Literal["table", "gateway_log"] = "table"
    path: str | None = None
    format: Literal["csv", "tsv", "parquet", "jsonl", "json"] | None = None
    hf: str | None = None
    hf_config: str | None = None
    data_files: str | list[str] | None = None
    split: str | None = None
    sep: str | None = None
    encoding: str = "utf-8"
    table: str = "tierwise_decisions"  # a postgresql:// gateway log: the gateway's --log-table

    @model_validator(mode="after")
    def _one(self) -> PromptSourceConfig:
        if (self.path is None) == (self.hf is None):
            raise ValueError("`source` needs exactly one of `path` (a file) or `hf` (a dataset)")
        if self.kind == "gateway_log" and self.path is None:
            raise ValueError("a `kind: gateway_log` source needs `path`: the decision log file")
        return self


class PromptColumns(StrictModel):
    """Column names in the source. ``response`` (the logged answer of the model that served the
    prompt) is used only to estimate answer lengths for ``--dry-run`` and the budget."""

    id: str | None = None  # absent: row numbers
    prompt: str = "prompt"
    task: str | None = None
    reference: str | None = None
    response: str | None = None


class SampleConfig(StrictModel):
    """Which prompts to label: how many, seed and an optional stratifying column."""

    n: int | None = Field(None, ge=1)  # None: every prompt
    seed: int = 0
    stratify: str | None = None  # a source column; proportional allocation per value
    dedup: bool = True  # drop prompts whose normalized text (case, spacing, NFKC) repeats


class GenerationConfig(StrictModel):
    """How each tier is asked. ``template`` wraps the prompt ({prompt} and any source column)."""

    system: str | None = None
    template: str = "{prompt}"
    params: dict[str, Any] = Field(default_factory=lambda: {"temperature": 0, "max_tokens": 512})
    # Token estimates for --dry-run and budget reservations (see eval/costs.py for the rule).
    chars_per_token: float = Field(4.0, gt=0)
    # Expected answer length; None: from `columns.response` when given, else max_tokens / 2.
    expected_output_tokens: float | None = Field(None, gt=0)

    @field_validator("params")
    @classmethod
    def _no_stream(cls, v: dict[str, Any]) -> dict[str, Any]:
        bad = sorted(set(v) & {"stream", "model", "messages", "n"})
        if bad:
            raise ValueError(f"must not set {bad}: labelling asks for one non-streamed answer")
        return v


MatchKind = Literal["exact", "normalized", "numeric", "choice", "regex"]


class ReferenceMatchConfig(StrictModel):
    """Answer vs the reference column. ``regex``: ``pattern``'s first group (else the whole match)
    is extracted from the answer and compared normalized; ``choice``: the answer's
    multiple-choice letter; ``numeric``: its last number, within ``tolerance`` (relative)."""

    match: MatchKind = "normalized"
    pattern: str | None = None
    tolerance: float = Field(1e-6, ge=0)
    letters: str = Field("ABCDEFGHIJ", min_length=2)

    @model_validator(mode="after")
    def _pattern(self) -> ReferenceMatchConfig:
        if (self.match == "regex") != (self.pattern is not None):
            raise ValueError("`pattern` is required with `match: regex` and only there")
        if self.pattern is not None:
            try:
                re.compile(self.pattern)
            except re.error as err:
                raise ValueError(f"`pattern` must be a valid regex ({err})") from None
        return self


class JudgeConfig(StrictModel):
    """An LLM judge: a tier of the upstreams file, asked with ``rubric`` (placeholders
    {prompt}, {answer}, {reference}). ``rating``: a 1-10 score written ``[[7]]`` -> (s-1)/9;
    ``pairwise``: the answer vs the reference, ``[[A]]`` answer better, ``[[B]]`` reference
    better, ``[[C]]`` tie -> 1, 0, ``tie``."""

    tier: str
    # Where the judge is served when it is not in the main `upstreams` (which the gateway
    # also reads, and which must then list only the router's tiers): a second upstreams file.
    upstreams: str | UpstreamsConfig | None = None
    mode: Literal["rating", "pairwise"] = "rating"
    rubric: str | None = None  # default: a built-in template for the mode
    params: dict[str, Any] = Field(default_factory=lambda: {"temperature": 0, "max_tokens": 256})
    tie: float = Field(1.0, ge=0, le=1)  # a tie with the reference is as good as the reference
    expected_output_tokens: float = Field(40, gt=0)  # for --dry-run and the budget


class PythonScorerConfig(StrictModel):
    """``function``: ``package.module:name`` called as ``name(answer, example)`` where example
    is a dict of the prompt's source row (plus ``prompt``, ``reference``); it returns a bool or
    a float in [0, 1], or None when it cannot score the answer."""

    function: str = Field(pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


class ScoreConfig(StrictModel):
    """How answers are scored: reference match, an LLM judge or a Python function."""

    method: Literal["reference", "judge", "python"]
    reference: ReferenceMatchConfig = Field(default_factory=ReferenceMatchConfig)
    judge: JudgeConfig | None = None
    python: PythonScorerConfig | None = None
    # What the written data config does with an answer the scorer could not score; default:
    # as_failure for reference/python (no answer found is a wrong answer), drop_row for judge.
    missing: Literal["drop_row", "as_failure"] | None = None
    threshold: float | None = Field(None, ge=0, le=1)  # scores -> success = score >= threshold

    @model_validator(mode="after")
    def _method_section(self) -> ScoreConfig:
        if self.method == "judge" and self.judge is None:
            raise ValueError("`method: judge` needs a `judge:` section with the judge's `tier`")
        if self.method == "python" and self.python is None:
            raise ValueError("`method: python` needs `python: {function: pkg.module:name}`")
        return self

    def missing_rule(self) -> str:
        if self.missing is not None:
            return self.missing
        return "drop_row" if self.method == "judge" else "as_failure"


class OutputConfig(StrictModel):
    """Where the labelled table, the answers and the call cache are written."""

    dir: str = "labelled"
    format: Literal["parquet", "csv", "jsonl"] = "parquet"
    cache: str | None = None  # default: <dir>/calls.sqlite
    # Extra sections of the written experiment config (router, split, tracking, tune, target).
    experiment: dict[str, Any] = Field(default_factory=dict)

    @field_validator("experiment")
    @classmethod
    def _not_data(cls, v: dict[str, Any]) -> dict[str, Any]:
        if "data" in v or "name" in v:
            raise ValueError("must not set `data` or `name`: labelling writes those")
        return v


class LabellingConfig(StrictModel):
    """A labelling job: source prompts, upstream tiers, sampling, generation, scoring, budget."""

    name: str = Field(min_length=1, pattern=r"^[\w.-]+$")
    upstreams: str | UpstreamsConfig
    tiers: list[str] = Field(min_length=1)
    source: PromptSourceConfig
    columns: PromptColumns = Field(default_factory=PromptColumns)
    sample: SampleConfig = Field(default_factory=SampleConfig)
    generation: GenerationConfig = Field(default_factory=GenerationConfig)
    score: ScoreConfig
    budget_usd: float | None = Field(None, gt=0)
    max_in_flight: int = Field(32, ge=1, le=4096)  # calls in flight over all upstreams
    max_failures: int = Field(50, ge=1)  # stop after this many calls failed for good
    output: OutputConfig = Field(default_factory=OutputConfig)

    _base_dir: Path = PrivateAttr(default_factory=Path.cwd)

    @field_validator("tiers")
    @classmethod
    def _unique(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError(f"must list each tier once, got {v}")
        return v

    @model_validator(mode="after")
    def _reference_column(self) -> LabellingConfig:
        if self.score.method == "reference" and self.columns.reference is None:
            raise ValueError(
                "`score.method: reference` needs `columns.reference`: the reference answer column"
            )
        judge = self.score.judge
        if judge is not None and judge.mode == "pairwise" and self.columns.reference is None:
            raise ValueError("a pairwise judge needs `columns.reference` to compare against")
        return self

    @property
    def base_dir(self) -> Path:
        return self._base_dir

    def resolve(self, path: str) -> Path:
        p = Path(path)
        return Path(os.path.normpath(p if p.is_absolute() else self._base_dir / p))

    def out_dir(self) -> Path:
        return self.resolve(self.output.dir)

    def cache_path(self) -> Path:
        return (
            self.resolve(self.output.cache)
            if self.output.cache
            else self.out_dir() / "calls.sqlite"
        )

    def upstreams_config(self) -> UpstreamsConfig:
        if isinstance(self.upstreams, UpstreamsConfig):
            return self.upstreams
        return load_upstreams(self.resolve(self.upstreams))

    def judge_upstreams(self) -> UpstreamsConfig | None:
        """The judge's own upstreams file, if the config names one."""
        judge = self.score.judge
        if self.score.method != "judge" or judge is None or judge.upstreams is None:
            return None
        if isinstance(judge.upstreams, UpstreamsConfig):
            return judge.upstreams
        return load_upstreams(self.resolve(judge.upstreams))

    def judge_tier(self) -> str | None:
        return self.score.judge.tier if self.score.method == "judge" and self.score.judge else None


def load_labelling(path: str | Path) -> LabellingConfig:
    """Read and validate a labelling YAML; ConfigError with one clear line if it is wrong."""
    p = Path(path)
    cfg = load_yaml_model(LabellingConfig, p)
    cfg._base_dir = p.resolve().parent
    return cfg
