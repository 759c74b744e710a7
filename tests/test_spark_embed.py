"""`tierwise embed --engine spark`: a traffic log embedded on a real local Spark fills the cache
under the keys training uses; training from it embeds nothing and gives the same router as
training that embedded locally."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest
from spark_helpers import require_spark, spark_fixture
from tracking_helpers import write_experiment

from tierwise.experiments.cli import main

require_spark()
spark = spark_fixture()
pytestmark = pytest.mark.integration


def cache_keys(folder: Path) -> dict[tuple[str, str, bytes], bytes]:
    with sqlite3.connect(folder / "embeddings.sqlite3") as db:
        rows = db.execute(
            "SELECT s.embedder, s.normalizer, v.text_sha256, v.vec "
            "FROM vectors v JOIN spaces s ON v.space = s.id"
        ).fetchall()
    return {(e, n, bytes(k)): bytes(v) for e, n, k, v in rows}


def test_training_from_spark_embeddings_equals_local_training(
    spark, tmp_path, monkeypatch, capsys
) -> None:
    from tierwise.experiments.config import load_experiment
    from tierwise.experiments.training import prepare, train

    cfg_path = write_experiment(tmp_path, name="sparkemb", n=240)
    spark_cache, local_cache = tmp_path / "spark-cache", tmp_path / "local-cache"
    argv = ["embed", str(cfg_path), "--engine", "spark", "--cache-dir", str(spark_cache)]
    assert main([*argv, "--partitions", "3"]) == 0
    out = capsys.readouterr().out
    assert "240 distinct prompts embedded on Spark" in out and "(240 new in the cache)" in out
    filled = cache_keys(spark_cache)
    assert len(filled) == 240

    cfg = load_experiment(cfg_path)
    prep = prepare(cfg, progress=False)
    monkeypatch.setenv("TIERWISE_CACHE_DIR", str(spark_cache))
    from_spark = train(cfg, prep=prep, progress=False).router
    assert cache_keys(spark_cache) == filled  # every lookup was a hit: nothing embedded again
    monkeypatch.setenv("TIERWISE_CACHE_DIR", str(local_cache))
    from_local = train(cfg, prep=prep, progress=False).router
    assert cache_keys(local_cache) == filled  # same keys, same vectors

    prompts = list(prep.test.prompts)
    a, b = from_spark.route(prompts), from_local.route(prompts)
    assert [d.model for d in a] == [d.model for d in b]
    assert [d.p_success for d in a] == [d.p_success for d in b]
    assert from_spark.knob_ == from_local.knob_

    # A second run finds everything cached already and adds nothing.
    assert main([*argv]) == 0
    assert "(0 new in the cache)" in capsys.readouterr().out
    # The local engine of the same command fills exactly the same keys and vectors.
    assert main(["embed", str(cfg_path), "--cache-dir", str(tmp_path / "c3"), "--no-progress"]) == 0
    assert cache_keys(tmp_path / "c3") == filled


def test_minilm_runs_on_executors_as_its_onnx_export_with_the_torch_keys(tmp_path) -> None:
    from tierwise.experiments.spark.embed import portable_embedder
    from tierwise.router.embed import get_embedder
    from tierwise.router.normalize import NormalizationConfig, Normalizer

    portable = portable_embedder("minilm", tmp_path)
    assert portable.onnx_files is not None and "model.onnx" in portable.onnx_files
    onnx, torch_model = portable.build(), get_embedder("minilm")
    assert onnx.identity == torch_model.identity
    cfg = NormalizationConfig()
    assert Normalizer.for_embedder(cfg, onnx).key == Normalizer.for_embedder(cfg, torch_model).key
    texts = ["what is 2+2?", "write a haiku about autumn", "SELECT * FROM users;"]
    cos = np.sum(onnx.embed(texts) * torch_model.embed(texts), axis=1)
    assert cos.min() > 0.999, cos
