"""A SparkSession for tierwise jobs: Java checked first, executors on this Python, Arrow on.

pyspark is imported here, inside functions only, so ``import tierwise.experiments.spark`` stays
light and a missing pyspark or Java is one clear line instead of a Py4J traceback.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from typing import Any

from tierwise.router.errors import ConfigError

APP_NAME = "tierwise"
INSTALL_HINT = (
    "install Java 17 (Debian/Ubuntu: `apt-get install openjdk-17-jre-headless`) or set JAVA_HOME"
)


def java_executable() -> str | None:
    """The ``java`` Spark will start: ``$JAVA_HOME/bin/java`` when set, else the one on PATH."""
    home = os.environ.get("JAVA_HOME")
    if home:
        candidate = os.path.join(home, "bin", "java")
        return candidate if os.access(candidate, os.X_OK) else None
    return shutil.which("java")


def java_version() -> str | None:
    """``java -version``'s first line, or None when no working Java is found."""
    java = java_executable()
    if java is None:
        return None
    try:
        done = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = (done.stderr or done.stdout).strip().splitlines()
    return lines[0] if done.returncode == 0 and lines else None


def require_spark() -> Any:
    """The ``pyspark`` module, or ConfigError saying how to install pyspark and Java."""
    try:
        import pyspark
    except ImportError:
        raise ConfigError(
            "--engine spark needs pyspark; install it with `pip install 'tierwise[spark]'`"
        ) from None
    if java_version() is None:
        raise ConfigError(f"--engine spark needs Java (no working `java` found); {INSTALL_HINT}")
    return pyspark


def get_session(master: str | None = None, *, conf: dict[str, str] | None = None) -> Any:
    """The active SparkSession, or a new one on ``master`` (default ``local[*]``).

    Executors run this interpreter (``PYSPARK_PYTHON``) when Spark starts them locally; on a
    cluster set ``PYSPARK_PYTHON`` to an environment where ``tierwise`` is installed.
    """
    require_spark()
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    builder = SparkSession.builder.appName(APP_NAME)
    if master:
        builder = builder.master(master)
    settings = {
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.shuffle.partitions": "8",
        **(conf or {}),
    }
    for key, value in settings.items():
        builder = builder.config(key, value)
    try:
        spark = builder.getOrCreate()
    except Exception as err:  # Py4J/JVM start-up failures: one line, not a Java stack
        first = str(err).strip().splitlines()[0][:300] if str(err).strip() else type(err).__name__
        raise ConfigError(f"cannot start Spark on master {master!r}: {first}") from None
    spark.sparkContext.setLogLevel("ERROR")
    return spark
