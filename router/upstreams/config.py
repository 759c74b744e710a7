"""Where each model tier is served: the ``upstreams.yaml`` schema, shared by the gateway
(``tierwise gateway``) and labelling (``tierwise label``).

Shape::

    default:                       # applies to every tier
      base_url: http://127.0.0.1:9000/v1
      api_key_env: OPENAI_API_KEY  # the *name* of an environment variable, never the key
    upstreams:                     # per tier (a model name of the artifact), overriding default
      gpt-4o: {model: gpt-4o-2024-08-06, timeout_s: 120, max_concurrency: 8}
      llama-8b: {base_url: http://vllm:8000/v1, api_key_env: null}
    fallback_order: [llama-8b, gpt-4o]   # optional; the gateway's default is by price

API keys are read from the environment only (a key in the file is an unknown-key error), when a
client is built; a missing variable is a :class:`ConfigError` naming it. Keys are never stored on
the config objects, so no repr, log line or error message can show them.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, field_validator

from tierwise.router.errors import ConfigError
from tierwise.router.schema import StrictModel, load_yaml_model, parse_model

_ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"


class UpstreamFields(StrictModel):
    """Every setting optional: one layer (``default`` or one tier's override) of the config."""

    base_url: str | None = None
    model: str | None = None
    api_key_env: str | None = Field(default=None, pattern=_ENV_NAME)
    timeout_s: float | None = Field(default=None, gt=0, le=3600)
    max_concurrency: int | None = Field(default=None, ge=1, le=10_000)
    max_retries: int | None = Field(default=None, ge=0, le=20)
    backoff_s: float | None = Field(default=None, ge=0, le=60)
    retry_budget_s: float | None = Field(default=None, gt=0, le=3600)
    usd_per_1m_input: float | None = Field(default=None, ge=0)
    usd_per_1m_output: float | None = Field(default=None, ge=0)

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https:// (e.g. http://127.0.0.1:9000/v1)")
        return value.rstrip("/") if value else value


class UpstreamSpec(StrictModel):
    """One tier's endpoint, fully resolved (``UpstreamsConfig.for_tier``)."""

    tier: str
    base_url: str
    model: str
    api_key_env: str | None = None
    timeout_s: float = 60.0
    max_concurrency: int = 16
    max_retries: int = 2
    backoff_s: float = 0.25
    retry_budget_s: float = 30.0
    usd_per_1m_input: float | None = None
    usd_per_1m_output: float | None = None

    def api_key(self) -> SecretStr | None:
        """The key from ``api_key_env`` (None when no variable is configured)."""
        if self.api_key_env is None:
            return None
        value = os.environ.get(self.api_key_env)
        if not value:
            raise ConfigError(
                f"environment variable `{self.api_key_env}` (api_key_env of upstream "
                f"`{self.tier}`) must be set to the API key, got it unset or empty; export it "
                "before starting, or set `api_key_env: null` for an endpoint without a key"
            )
        return SecretStr(value)

    @property
    def has_prices(self) -> bool:
        return self.usd_per_1m_input is not None and self.usd_per_1m_output is not None

    def cost(self, prompt_tokens: int | None, completion_tokens: int | None) -> float | None:
        """USD of one call from its token usage; None without prices or usage."""
        if not self.has_prices or prompt_tokens is None or completion_tokens is None:
            return None
        assert self.usd_per_1m_input is not None and self.usd_per_1m_output is not None
        return (
            prompt_tokens * self.usd_per_1m_input + completion_tokens * self.usd_per_1m_output
        ) / 1e6


class UpstreamsConfig(StrictModel):
    """The whole ``upstreams.yaml``: a ``default`` layer, per-tier overrides, a fallback order."""

    default: UpstreamFields = Field(default_factory=UpstreamFields)
    upstreams: dict[str, UpstreamFields] = Field(default_factory=dict)
    # Tiers in the order the gateway falls back through (cheapest first); None: by price.
    fallback_order: list[str] | None = None

    def for_tier(self, tier: str) -> UpstreamSpec:
        """``default`` merged with the tier's override; ConfigError if no base_url results."""
        merged: dict[str, Any] = {
            k: v for k, v in self.default.model_dump().items() if v is not None
        }
        override = self.upstreams.get(tier)
        if override is not None:
            merged.update(override.model_dump(exclude_unset=True))
        if merged.get("base_url") is None:
            raise ConfigError(
                f"upstream `{tier}` must have a `base_url`, got none; set `default.base_url` "
                f"or `upstreams.{tier}.base_url` in the upstreams config"
            )
        if merged.get("model") is None:
            merged["model"] = tier
        merged = {k: v for k, v in merged.items() if v is not None or k == "api_key_env"}
        return parse_model(UpstreamSpec, {"tier": tier, **merged}, source=f"upstream `{tier}`")

    def check_covers(self, tiers: Iterable[str]) -> list[UpstreamSpec]:
        """Resolve every tier, raising one ConfigError naming every unmapped or unknown one."""
        tiers = list(tiers)
        unknown = sorted(set(self.upstreams) - set(tiers))
        if unknown:
            raise ConfigError(
                f"`upstreams` names tier(s) {unknown} that the router does not have; "
                f"its tiers are {tiers}. Remove them or check their spelling"
            )
        if self.default.base_url is None:
            missing = [t for t in tiers if (self.upstreams.get(t) or UpstreamFields()).base_url
                       is None]  # fmt: skip
            if missing:
                raise ConfigError(
                    f"tier(s) {missing} have no upstream: `base_url` must be set for every tier; "
                    "add `default: {base_url: ...}` or an entry under `upstreams:` for each"
                )
        if self.fallback_order is not None:
            bad = sorted(set(self.fallback_order) - set(tiers))
            left_out = [t for t in tiers if t not in self.fallback_order]
            if bad or left_out:
                raise ConfigError(
                    f"`fallback_order` must list every tier of the router once, got unknown "
                    f"{bad} and missing {left_out}; the tiers are {tiers}"
                )
        return [self.for_tier(t) for t in tiers]

    def check_keys(self, tiers: Iterable[str]) -> None:
        """Raise a ConfigError naming the first unset API-key variable among ``tiers``."""
        for tier in tiers:
            self.for_tier(tier).api_key()


def load_upstreams(path: str | Path) -> UpstreamsConfig:
    """Read and validate an upstreams YAML file (ConfigError with one clear line if wrong)."""
    return load_yaml_model(UpstreamsConfig, path)


def upstreams_from_dict(data: Any, source: str = "upstreams") -> UpstreamsConfig:
    """Validate an already-parsed mapping (tests, programmatic use)."""
    return parse_model(UpstreamsConfig, data or {}, source=source)
