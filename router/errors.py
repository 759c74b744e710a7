"""One exception family, so the CLI can print any user-facing failure as one clear line."""

from __future__ import annotations


class TierwiseError(Exception):
    """Base class: the message names what was wrong and how to fix it."""


class ConfigError(TierwiseError, ValueError):
    """A YAML config or a parameter is invalid."""


class DataError(TierwiseError, ValueError):
    """Input data (a traffic log, a price table, a prompt) is invalid."""


class ArtifactError(TierwiseError, ValueError):
    """A router artifact is missing, tampered with, or of an unknown format."""
