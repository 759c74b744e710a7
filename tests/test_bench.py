"""`tierwise bench`: per-seed JSON rows, baselines, cache reuse, clear errors."""

from __future__ import annotations

import json
import sqlite3

import pytest
from bench_helpers import write_routing_log

from tierwise.experiments.cli import main
from tierwise.experiments.commands.bench import parse_seeds
from tierwise.router.errors import ConfigError

KEYS = {
    "dataset", "predictor", "policy", "seed", "aiq", "gap_closed", "cost_at_95", "op_quality",
    "op_cost", "zero_aiq", "oracle_aiq", "op_meets_bar", "fallback", "fit_seconds",
}  # fmt: skip


@pytest.fixture()
def cache_env(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("TIERWISE_CACHE_DIR", str(cache))
    return cache


def _vectors(cache) -> int:
    with sqlite3.connect(cache / "embeddings.sqlite3") as db:
        return int(db.execute("select count(*) from vectors").fetchone()[0])


def test_json_rows_per_dataset_configuration_and_seed(tmp_path, cache_env, capsys):
    cfg = write_routing_log(tmp_path)
    out = tmp_path / "bench.json"
    args = ["bench", str(cfg), "--seeds", "0-1", "--json", str(out), "--no-progress"]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "| zero router |" in text and "| oracle |" in text and "| knn |" in text
    rows = json.loads(out.read_text())["results"]
    assert len(rows) == 4  # 1 dataset × (default, knn) × 2 seeds
    assert {(r["predictor"], r["seed"]) for r in rows} == {
        ("default", 0), ("default", 1), ("knn", 0), ("knn", 1)
    }  # fmt: skip
    for r in rows:
        assert set(r) >= KEYS
        assert r["dataset"] == "synth"
        gap = (r["aiq"] - r["zero_aiq"]) / (r["oracle_aiq"] - r["zero_aiq"])
        assert r["gap_closed"] == pytest.approx(gap, abs=1e-9)
        # The hard/easy words are visible to the hashing embedder: routing must pay off.
        assert r["gap_closed"] > 0.2
        assert r["cost_at_95"] is None or 0 < r["cost_at_95"] < 1
    # Embedded once into $TIERWISE_CACHE_DIR; a second run adds no vector.
    n_vectors = _vectors(cache_env)
    assert n_vectors == 240
    assert main(["bench", str(cfg), "--seeds", "2", "--predictors", "knn", "--no-progress"]) == 0
    assert _vectors(cache_env) == n_vectors


def test_merge_and_markdown(tmp_path, cache_env, capsys):
    cfg = write_routing_log(tmp_path, n=120)
    a, doc = tmp_path / "a.json", tmp_path / "doc.md"
    doc.write_text("# Title\n\nkept text\n")
    main(["bench", str(cfg), "--seeds", "0", "--predictors", "knn", "--json", str(a),
          "--no-progress"])  # fmt: skip
    assert main(["bench", "--merge", str(a), "--markdown", str(doc)]) == 0
    text = doc.read_text()
    assert text.startswith("# Title\n\nkept text") and "### synth" in text and "| knn |" in text


def test_seed_ranges():
    assert parse_seeds("0-4") == [0, 1, 2, 3, 4]
    assert parse_seeds("3,1,3") == [3, 1]
    with pytest.raises(ConfigError, match="`--seeds` must be a range like 0-4"):
        parse_seeds("a-b")


def test_bad_set_is_one_line(tmp_path, cache_env, capsys):
    cfg = write_routing_log(tmp_path, n=60)
    assert main(["bench", str(cfg), "--seeds", "0", "--set", "nonsense.key=1"]) == 2
    err = capsys.readouterr().err
    assert "`--set` produced an invalid router config" in err and "Traceback" not in err


def test_set_embedder_switches_the_encoder(tmp_path, cache_env):
    cfg = write_routing_log(tmp_path, n=60)
    args = ["bench", str(cfg), "--seeds", "0", "--predictors", "knn", "--no-progress"]
    assert main([*args, "--set", "embedder.name=hashing:32"]) == 0
    with sqlite3.connect(cache_env / "embeddings.sqlite3") as db:
        dims = {int(d) for (d,) in db.execute("select dim from spaces")}
    assert dims == {32}  # embedded by the overriding encoder, not the config's hashing:64
