"""The `tracking:` section of an experiment config: where MLflow runs go and what gets registered.

    tracking:
      enabled: true                      # `tierwise train` logs a run (override: --no-track)
      tracking_uri: sqlite:///mlflow.db  # any MLflow URI; MLFLOW_TRACKING_URI overrides the default
      experiment: routerbench            # default: the config's name
      registered_model: tierwise-routerbench
      register: true                     # register each logged router as a new model version

The default store is a SQLite file in the working folder, with artifacts beside it in
``./mlartifacts``, so tracking works without a server; ``mlflow ui --backend-store-uri
sqlite:///mlflow.db`` opens it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from pydantic import ConfigDict, Field

from tierwise.router.schema import StrictModel

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
DEFAULT_ARTIFACTS_DIR = "mlartifacts"


class TrackingConfig(StrictModel):
    """The ``tracking:`` section: MLflow URI, experiment and registered model name."""

    # `register` is the YAML key; the attribute is `register_model` (pydantic models inherit a
    # `register` classmethod from ABCMeta, which a field must not shadow).
    model_config = ConfigDict(extra="forbid", validate_assignment=True, populate_by_name=True)

    enabled: bool = True
    tracking_uri: str | None = None
    experiment: str | None = Field(default=None, min_length=1)
    registered_model: str | None = Field(default=None, min_length=1)
    register_model: bool = Field(default=True, alias="register")
    # None: `./mlartifacts/<experiment>` beside a local (sqlite/file) store; a server decides
    # for itself (`mlflow server` proxies artifacts under its own --artifacts-destination).
    artifact_location: str | None = None

    def resolve(self, config_name: str, *, tracking_uri: str | None = None) -> ResolvedTracking:
        """Fill every default: an explicit ``tracking_uri`` argument (e.g. a CLI flag) wins,
        then the config's value, then ``MLFLOW_TRACKING_URI``, then the local SQLite file."""
        uri = (
            tracking_uri
            or self.tracking_uri
            or os.environ.get("MLFLOW_TRACKING_URI")
            or DEFAULT_TRACKING_URI
        )
        experiment = self.experiment or config_name
        return ResolvedTracking(
            uri=uri,
            experiment=experiment,
            registered_model=self.registered_model or f"tierwise-{config_name}",
            register=self.register_model,
            artifact_location=self.artifact_location or default_artifact_location(uri, experiment),
        )


@dataclass(frozen=True)
class ResolvedTracking:
    """Tracking settings with every default filled in."""

    uri: str
    experiment: str
    registered_model: str
    register: bool
    artifact_location: str | None


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI (relative to the working folder), else None."""
    if not uri.startswith("sqlite:///"):
        return None
    path = uri[len("sqlite:///") :].split("?", 1)[0]
    return None if not path or path == ":memory:" else Path(path).resolve()


def default_artifact_location(uri: str, experiment: str) -> str | None:
    """``mlartifacts/<experiment>`` beside a SQLite file, or in the working folder for another
    database; None for a tracking server, which stores (or proxies) artifacts itself."""
    scheme = uri.split(":", 1)[0].lower() if "://" in uri else ""
    if scheme in ("http", "https", "databricks", "file", ""):
        return None
    db = sqlite_path(uri)
    folder = db.parent if db is not None else Path.cwd()
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in experiment)
    return (folder / DEFAULT_ARTIFACTS_DIR / safe).resolve().as_uri()
