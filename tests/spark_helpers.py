"""Shared by the Spark tests: skip with the reason when pyspark or Java is missing, and one
local[2] SparkSession per test module."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tierwise.experiments.spark.session import java_version


def require_spark() -> None:
    """Skip the calling test module when Spark cannot run here, saying what to install."""
    pytest.importorskip("pyspark", reason="pyspark not installed: pip install 'tierwise[spark]'")
    if java_version() is None:
        pytest.skip(
            "no Java: the Spark tests need Java 17 (apt-get install openjdk-17-jre-headless)",
            allow_module_level=True,
        )


def spark_fixture() -> Any:
    """A module-scoped fixture: ``spark = spark_fixture()`` in a test module."""

    @pytest.fixture(scope="module")
    def spark() -> Iterator[Any]:
        from tierwise.experiments.spark.session import get_session

        session = get_session("local[2]", conf={"spark.default.parallelism": "2"})
        yield session
        session.stop()

    return spark
