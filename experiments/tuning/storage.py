"""Where a study lives: an Optuna journal file (default) or a database (sqlite, PostgreSQL, …).

Journal files are locked with ``flock``, which the kernel releases when a process dies, so a
killed run never leaves a stale lock behind (Optuna's own symlink lock would make the next run
wait out its 30 s grace period). A write cut short by a kill leaves a partial last line; it is
removed before the file is used again.

Appends are not fsync'ed (Optuna's backend syncs each of the ~15 writes of a trial, a third of
a fast trial's time on a busy disk). A killed process loses nothing by this: written data is in
the OS page cache; only a machine crash can drop the last trials, which are then run again.
"""

from __future__ import annotations

import json
import os
import urllib.parse
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tierwise.router.errors import ConfigError

if TYPE_CHECKING:
    from optuna.storages import BaseStorage

    from tierwise.experiments.config import ExperimentConfig

JOURNAL_NAME = "optuna.journal"
HEARTBEAT_S = 10  # database storages: a trial whose worker stops beating for GRACE_S is failed
GRACE_S = 30


def default_storage(cfg: ExperimentConfig) -> str:
    """``runs/<config name>/optuna.journal`` (relative to the working folder), or the config's."""
    tune = getattr(cfg, "tune", None)
    if tune is not None and tune.storage:
        return str(tune.storage)
    return str(Path("runs") / cfg.name / JOURNAL_NAME)


def is_database(spec: str) -> bool:
    """Whether a ``--storage`` spec is a database URL (else a journal file)."""
    return "://" in spec


def redact(spec: str) -> str:
    """The URL without its password, for messages."""
    if not is_database(spec):
        return spec
    parts = urllib.parse.urlsplit(spec)
    if parts.password is None:
        return spec
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def with_driver(spec: str) -> str:
    """``postgresql://`` with an installed driver: SQLAlchemy 2.1 picks psycopg (v3) by
    default; when only psycopg2 is installed, name it (``postgresql+psycopg2://``)."""
    import importlib.util

    if not spec.startswith(("postgresql://", "postgres://")):
        return spec
    if importlib.util.find_spec("psycopg") is None and importlib.util.find_spec("psycopg2"):
        return "postgresql+psycopg2://" + spec.split("://", 1)[1]
    return spec


def _flock_lock(path: str) -> Any:
    try:
        import fcntl
    except ImportError:  # not POSIX: Optuna's default lock
        return None
    from optuna.storages.journal._file import BaseJournalFileLock

    class FlockLock(BaseJournalFileLock):
        def __init__(self) -> None:
            self._path = path + ".flock"
            self._fd: int | None = None

        def acquire(self) -> bool:
            fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o644)
            fcntl.flock(fd, fcntl.LOCK_EX)
            self._fd = fd
            return True

        def release(self) -> None:
            if self._fd is not None:
                fd, self._fd = self._fd, None
                fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)

    return FlockLock()


def _backend(path: str, lock: Any) -> Any:
    from optuna.storages.journal import JournalFileBackend

    class Backend(JournalFileBackend):
        def append_logs(self, logs: list[dict[str, Any]]) -> None:
            if not hasattr(self, "_lock") or not hasattr(self, "_file_path"):
                super().append_logs(logs)  # an Optuna whose internals moved: stock behaviour
                return
            blob = "\n".join(json.dumps(log, separators=(",", ":")) for log in logs) + "\n"
            self._lock.acquire()
            try:
                with open(self._file_path, "ab") as f:
                    f.write(blob.encode("utf-8"))
            finally:
                self._lock.release()

    return Backend(path, lock_obj=lock)


def _repair(path: Path, lock: Any) -> None:
    """Drop a partial last line (a write interrupted by a kill)."""
    if not path.is_file() or path.stat().st_size == 0:
        return
    if lock is not None:
        lock.acquire()
    try:
        with open(path, "rb+") as f:
            data = f.read()
            if data.endswith(b"\n"):
                return
            f.truncate(data.rfind(b"\n") + 1)
    finally:
        if lock is not None:
            lock.release()


def open_storage(spec: str, *, heartbeat: bool = True) -> BaseStorage:
    """An Optuna storage for a journal file path or a database URL; ConfigError if unusable."""
    import optuna
    from optuna.storages import JournalStorage

    if is_database(spec):
        kwargs: dict[str, Any] = {}
        try:
            with warnings.catch_warnings():  # heartbeats are "experimental" since Optuna 2.8
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                if heartbeat:
                    # a dead worker's trial is failed and its parameters are queued once more
                    retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1)
                    kwargs = {
                        "heartbeat_interval": HEARTBEAT_S,
                        "grace_period": GRACE_S,
                        "heartbeat_stale_trial_callback": retry,
                    }
                return optuna.storages.RDBStorage(
                    with_driver(spec), engine_kwargs={"pool_pre_ping": True}, **kwargs
                )
        except ImportError as err:
            raise ConfigError(
                f"`tune.storage` {redact(spec)!r} needs a database driver that is not installed "
                f"({err.name or err}); install it (e.g. psycopg2 for postgresql://)"
            ) from None
        except Exception as err:  # sqlalchemy raises many kinds; the message is what matters
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ConfigError(
                f"cannot open Optuna storage {redact(spec)!r}: {first}; check that the database "
                "server is running and the URL (user, host, port, database name)"
            ) from None
    path = Path(spec)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(exist_ok=True)
    except OSError as err:
        raise ConfigError(
            f"`tune.storage` journal file {spec!r} cannot be created ({err.strerror}); "
            "choose a writable path"
        ) from None
    lock = _flock_lock(str(path))
    _repair(path, lock)
    return JournalStorage(_backend(str(path), lock))
