"""Reach the MLflow store: check it quickly, fail clearly, and never hang on a dead server.

MLflow's HTTP client retries a refused or hung request for minutes by default (7 retries with
exponential backoff, 120 s timeout each). A tuning study must not stall on a tracking outage, so
every call here first checks the store with a short timeout and then runs with few retries and a
short request timeout (:func:`fast_fail`), raising :class:`TrackingUnavailable` instead.
"""

from __future__ import annotations

import os
import socket
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from tierwise.experiments.tracking.config import ResolvedTracking, sqlite_path
from tierwise.router.errors import ConfigError, TierwiseError

if TYPE_CHECKING:
    from mlflow import MlflowClient

CHECK_TIMEOUT_S = 3.0
# Environment for every MLflow call made while tracking: bounded retries and timeouts.
FAST_FAIL_ENV = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "20",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
}
# The MLflow UI opens an experiment by its kind: training runs here, not the GenAI traces view
# (the gateway's traces go to their own experiment, tagged genai_development).
KIND_TAG = "mlflow.experimentKind"
TRAINING_KIND = "custom_model_development"


class TrackingUnavailable(TierwiseError):
    """The tracking store cannot be reached; nothing was lost, `tierwise track sync` backfills."""


def _redact(uri: str) -> str:
    """The URI without a password, for messages."""
    parts = urllib.parse.urlsplit(uri)
    if parts.password is None:
        return uri
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def unavailable(uri: str, reason: str) -> TrackingUnavailable:
    """A TrackingUnavailable error naming the store (credentials redacted) and the fix."""
    return TrackingUnavailable(
        f"MLflow tracking store {_redact(uri)!r} is unreachable ({reason}); start the server "
        "(e.g. `mlflow server --host 127.0.0.1 --port 5000`), pass a reachable --tracking-uri "
        "or set `tracking.tracking_uri` / MLFLOW_TRACKING_URI (or use --no-track); runs missed "
        "meanwhile are logged later by `tierwise track sync CONFIG`"
    )


def check_reachable(uri: str, timeout: float = CHECK_TIMEOUT_S) -> None:
    """Raise TrackingUnavailable within about ``timeout`` seconds if the store cannot be used."""
    scheme = urllib.parse.urlsplit(uri).scheme.lower()
    if scheme in ("http", "https"):
        _check_http(uri, timeout)
    elif scheme == "sqlite":
        db = sqlite_path(uri)
        if db is not None and not db.parent.is_dir():
            raise unavailable(uri, f"folder {str(db.parent)!r} does not exist")
    elif scheme in ("file", "") or len(scheme) == 1:  # a path (a Windows drive looks like a scheme)
        return
    elif "+" in scheme or scheme in ("postgresql", "postgres", "mysql", "mssql"):
        _check_tcp(uri, timeout)
    elif scheme == "databricks":
        return
    else:
        raise ConfigError(
            f"`tracking.tracking_uri` must be an MLflow URI such as sqlite:///mlflow.db, "
            f"http://127.0.0.1:5000 or postgresql://user@host/db, got {_redact(uri)!r}"
        )


def _check_http(uri: str, timeout: float) -> None:
    url = uri.rstrip("/") + "/health"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            if resp.status >= 500:
                raise unavailable(uri, f"health check answered HTTP {resp.status}")
    except urllib.error.HTTPError as err:
        if err.code >= 500:
            raise unavailable(uri, f"health check answered HTTP {err.code}") from None
        # 404 etc.: an MLflow behind a proxy without /health still answers; the API call decides.
    except (urllib.error.URLError, OSError, TimeoutError) as err:
        reason = getattr(err, "reason", err)
        raise unavailable(uri, f"{type(err).__name__}: {reason}") from None


def _check_tcp(uri: str, timeout: float) -> None:
    parts = urllib.parse.urlsplit(uri)
    default = {"postgresql": 5432, "postgres": 5432, "mysql": 3306, "mssql": 1433}
    base = parts.scheme.split("+")[0].lower()
    if not parts.hostname:
        return  # a unix socket: the driver reports its own error
    port = parts.port or default.get(base, 0)
    try:
        socket.create_connection((parts.hostname, port), timeout=timeout).close()
    except OSError as err:
        raise unavailable(uri, f"cannot connect to {parts.hostname}:{port}: {err}") from None


@contextmanager
def fast_fail() -> Iterator[None]:
    """Bounded MLflow HTTP retries/timeouts for the duration (restores the caller's values)."""
    saved = {k: os.environ.get(k) for k in FAST_FAIL_ENV}
    for key, value in FAST_FAIL_ENV.items():
        if key not in os.environ:
            os.environ[key] = value
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


def is_connection_error(err: BaseException) -> bool:
    """True for the errors MLflow raises when the store went away mid-call."""
    import requests

    text = str(err)
    return isinstance(
        err, requests.exceptions.RequestException | ConnectionError | TimeoutError
    ) or (
        "Max retries exceeded" in text
        or "Connection refused" in text
        or "API request to" in text
        or "OperationalError" in type(err).__name__
    )


@contextmanager
def tracking_errors(uri: str) -> Iterator[None]:
    """Turn a store outage inside MLflow into TrackingUnavailable (other errors pass)."""
    try:
        with fast_fail():
            yield
    except TierwiseError:
        raise
    except ModuleNotFoundError as err:
        raise ConfigError(
            f"tracking URI {_redact(uri)!r} needs the Python module {err.name!r}, which is not "
            "installed; install its driver (e.g. `pip install psycopg2-binary` and use "
            "postgresql+psycopg2://...) or use another tracking URI"
        ) from None
    except Exception as err:
        if is_connection_error(err):
            raise unavailable(
                uri, f"{type(err).__name__}: {str(err).splitlines()[0][:200]}"
            ) from None
        raise


def connect(tracking: ResolvedTracking, *, check: bool = True) -> MlflowClient:
    """An MlflowClient bound to the resolved URI (registry too), checked for reachability."""
    if check:
        check_reachable(tracking.uri)
    from mlflow import MlflowClient

    with tracking_errors(tracking.uri):
        return MlflowClient(tracking_uri=tracking.uri, registry_uri=tracking.uri)


def ensure_experiment(client: MlflowClient, tracking: ResolvedTracking) -> str:
    """The experiment id, creating the experiment (with its artifact location) if needed."""
    with tracking_errors(tracking.uri):
        exp = client.get_experiment_by_name(tracking.experiment)
        if exp is not None:
            if exp.lifecycle_stage == "deleted":
                client.restore_experiment(exp.experiment_id)
            if KIND_TAG not in (exp.tags or {}):  # made before tierwise tagged its experiments
                client.set_experiment_tag(exp.experiment_id, KIND_TAG, TRAINING_KIND)
            return str(exp.experiment_id)
        return str(
            client.create_experiment(
                tracking.experiment,
                artifact_location=tracking.artifact_location,
                # The MLflow UI then opens the experiment on its training-runs view.
                tags={KIND_TAG: TRAINING_KIND},
            )
        )


def find_experiment(client: MlflowClient, name: str, uri: str) -> Any:
    """The named experiment, or a ConfigError listing the existing ones."""
    with tracking_errors(uri):
        exp = client.get_experiment_by_name(name)
        if exp is not None and exp.lifecycle_stage != "deleted":
            return exp
        names = sorted(e.name for e in client.search_experiments())
    raise ConfigError(
        f"experiment {name!r} does not exist in {_redact(uri)!r}; existing experiments: "
        f"{', '.join(names) or '(none)'}; pass one of them, or train/tune with tracking on first"
    )
