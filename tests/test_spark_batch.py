"""`tierwise batch --engine spark` on a real local Spark (local[2]): the local engine's columns and
decisions, bad rows kept and flagged, the router loaded once per Python worker, no torch there;
and the registered MLflow model as `mlflow.pyfunc.spark_udf`."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from runtime_helpers import hashing_artifact
from spark_helpers import require_spark, spark_fixture

from tierwise.experiments.cli import main
from tierwise.experiments.commands.batch import route_file
from tierwise.router.errors import ConfigError, DataError
from tierwise.router.runtime import load_runtime

require_spark()
spark = spark_fixture()
pytestmark = pytest.mark.integration

WORDS = ["math", "code", "poem", "story", "physics", "history", "sql", "python", "love", "war"]


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return hashing_artifact(tmp_path_factory.mktemp("spark-art") / "router.tierwise")


def prompts(n: int) -> list[object]:
    out: list[object] = [
        " ".join(WORDS[(i * k) % len(WORDS)] for k in range(1, 6)) + f" item{i}" for i in range(n)
    ]
    out[3], out[10], out[500] = None, "", "x" * 200_000  # null, empty, too long
    out[777] = " \n\t "  # blank
    return out


def local_output(artifact: Path, source: Path, out: Path, keep: list[str]) -> pd.DataFrame:
    route_file(load_runtime(artifact), source, out, keep=keep)
    return pd.read_parquet(out)


def spark_output(path: Path) -> pd.DataFrame:
    return pd.read_parquet(path).sort_values("row").reset_index(drop=True)


def test_thousand_rows_route_like_the_local_engine(spark, artifact, tmp_path, capsys) -> None:
    src = tmp_path / "prompts.parquet"
    pq.write_table(
        pa.table({"prompt": prompts(1000), "id": pa.array(range(1000), pa.int64())}),
        src,
        row_group_size=300,
    )
    out = tmp_path / "decisions.parquet"
    argv = ["batch", str(artifact), str(src), str(out), "--engine", "spark"]
    code = main([*argv, "--master", "local[2]", "--keep", "id", "--partitions", "4"])
    assert code == 1  # some rows failed, the others were routed
    assert "1000 rows routed on Spark" in capsys.readouterr().out
    got, want = spark_output(out), local_output(artifact, src, tmp_path / "local.parquet", ["id"])
    assert list(got.columns) == list(want.columns) and got.dtypes.equals(want.dtypes)
    pd.testing.assert_frame_equal(got, want)
    bad = got[got["error"].notna()]
    assert list(bad["row"]) == [4, 11, 501, 778] and bad["model"].isna().all()
    assert bad["error"].str.startswith(("row 4:", "row 11:", "row 501:", "row 778:")).all()
    assert got["model"].notna().sum() == 996 and got["model"].nunique() >= 2


def test_a_folder_of_jsonl_parts_numbers_rows_as_one_file(spark, artifact, tmp_path) -> None:
    lines = [f'{{"prompt": "{WORDS[i % 10]} {WORDS[i % 7]} q{i}", "id": {i}}}' for i in range(60)]
    lines[5] = "{not json"
    lines[9] = '{"other": 1, "id": 9}'
    lines[12] = ""
    lines[20] = '{"prompt": 42, "id": 20}'
    whole = tmp_path / "all.jsonl"
    whole.write_text("\n".join(lines) + "\n", encoding="utf-8")
    parts = tmp_path / "parts"
    parts.mkdir()
    (parts / "part-0.jsonl").write_text("\n".join(lines[:30]) + "\n", encoding="utf-8")
    (parts / "part-1.jsonl").write_text("\n".join(lines[30:]) + "\n", encoding="utf-8")
    (parts / "_SUCCESS").write_text("")
    from tierwise.experiments.spark.batch import route_spark

    s = route_spark(spark, artifact, str(parts), tmp_path / "out.parquet", keep=["id"])
    assert (s.rows, s.errors) == (59, 3)
    got = spark_output(tmp_path / "out.parquet")
    pd.testing.assert_frame_equal(
        got, local_output(artifact, whole, tmp_path / "l.parquet", ["id"])
    )
    assert got.set_index("row").loc[[6, 10, 21], "error"].str.contains("JSON|no `prompt`|str").all()


def test_csv_quotes_newlines_and_empty_cells_read_as_locally(spark, artifact, tmp_path) -> None:
    from tierwise.experiments.spark.batch import route_spark

    src = tmp_path / "in.csv"
    src.write_text(
        'id,prompt\n1,math code\n2,""\n3,"multi\nline, with comma"\n4,\n5,"say ""hi"""\n',
        encoding="utf-8",
    )
    route_spark(spark, artifact, str(src), tmp_path / "out.parquet", keep=["id"])
    got = spark_output(tmp_path / "out.parquet")
    pd.testing.assert_frame_equal(got, local_output(artifact, src, tmp_path / "l.parquet", ["id"]))
    assert list(got["error"].notna()) == [False, True, False, True, False]


def test_router_loaded_once_per_worker_and_never_torch(spark, artifact, tmp_path) -> None:
    import sys

    from tierwise.experiments.spark import worker
    from tierwise.experiments.spark.batch import route_spark

    src = tmp_path / "p.parquet"
    pq.write_table(pa.table({"prompt": prompts(1000)[:400]}), src)
    route_spark(spark, artifact, str(src), tmp_path / "o.parquet", partitions=8)

    def probe(batches):  # on the same (SQL, Arrow) Python workers that routed
        import pyarrow as pa

        for _ in batches:
            yield pa.RecordBatch.from_pydict(
                {"loads": [worker.LOADS], "torch": ["torch" in sys.modules]}
            )

    frame = spark.range(0, 8, 1, 8)
    seen = [
        (r["loads"], r["torch"])
        for r in frame.mapInArrow(probe, "loads long, torch boolean").collect()
    ]
    used = [s for s in seen if s[0]]
    assert used, seen
    # 8 partitions (and the other tests' jobs) ran on at most 2 workers: one load per artifact.
    assert all(loads <= 1 for loads, _ in used), seen
    assert not any(torch for _, torch in seen), seen


def test_bad_arguments_fail_before_any_job(spark, artifact, tmp_path) -> None:
    from tierwise.experiments.spark.batch import route_spark

    src = tmp_path / "p.parquet"
    pq.write_table(pa.table({"text": ["a", "b"]}), src)
    with pytest.raises(DataError, match="column `prompt` not found; its columns are"):
        route_spark(spark, artifact, str(src), tmp_path / "o.parquet")
    with pytest.raises(DataError, match="not a file, a directory of part files, a glob"):
        route_spark(spark, artifact, str(tmp_path / "nothing*.parquet"), tmp_path / "o.parquet")
    (tmp_path / "taken.parquet").mkdir()
    with pytest.raises(ConfigError, match="exists; choose another path or pass --overwrite"):
        route_spark(spark, artifact, str(src), tmp_path / "taken.parquet")
    with pytest.raises(ConfigError, match=r"OUTPUT must end with \.parquet"):
        route_spark(spark, artifact, str(src), tmp_path / "o.csv", prompt_column="text")


def test_registered_model_as_spark_udf(spark, artifact, tmp_path) -> None:
    mlflow = pytest.importorskip("mlflow")
    from test_serve_mlflow import register

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    version = register(artifact, uri, tmp_path)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    try:
        udf = mlflow.pyfunc.spark_udf(
            spark,
            f"models:/tierwise-router/{version}",
            result_type="model string, p_success string, expected_cost double, error string",
            env_manager="local",
        )
    finally:
        mlflow.set_tracking_uri(None)
    texts = [p for p in prompts(1000)[:40] if isinstance(p, str)]
    frame = spark.createDataFrame(pd.DataFrame({"prompt": texts}))
    rows = frame.withColumn("d", udf("prompt")).select("prompt", "d.model", "d.error").collect()
    want = {
        t: d.model or "" for t, d in zip(texts, load_runtime(artifact).route(texts), strict=True)
    }
    assert {r["prompt"]: r["model"] for r in rows} == want
    assert sum(bool(r["error"]) for r in rows) == 1  # the empty prompt (row 11)
    shutil.rmtree(tmp_path / "art", ignore_errors=True)
