"""Importers: wide / long / joined logs in CSV, gzip, Parquet, JSONL and HF datasets."""

from __future__ import annotations

import gzip
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from tierwise.eval.dataset import RoutingDataset
from tierwise.eval.importers import DataConfig, import_dataset
from tierwise.experiments.config import ExperimentConfig, load_dataset, load_experiment
from tierwise.router.errors import DataError
from tierwise.router.schema import parse_model

FIXTURES = Path(__file__).parent / "fixtures" / "data"


def load(data: dict[str, Any], base: Path = FIXTURES) -> RoutingDataset:
    return import_dataset(parse_model(DataConfig, data), base_dir=base, name="t")


WIDE: dict[str, Any] = {
    "sources": [{"path": "wide_small.csv", "quality": "{model}", "cost": "{model}|total_cost"}],
    "columns": {"id": "qid", "prompt": "prompt", "task": "task"},
    "ignore_columns": ["router_pick"],
    "rename_models": {"big-model": "big", "small-model": "small"},
    "labels": {"missing": "drop_row"},
    "cost": {"prices": "prices_small.yaml", "assumed_output_tokens": 2},
}


def test_wide_log_with_logged_costs_and_blank_label() -> None:
    ds = load(WIDE)
    assert ds.models == ("big", "small")
    # q4 has a blank label for small-model: dropped by the explicit rule and reported
    assert list(ds.ids) == ["q1", "q2", "q3", "q5"]
    assert ds.report is not None
    assert ds.report.rows_read == 5 and ds.report.rows_kept == 4
    assert ds.report.dropped == {"missing label": 1}
    assert ds.report.missing_labels == {"big": 0, "small": 1}
    # a prompt that reads "None" is text, not a missing value; "True"/"False" are labels
    assert ds.prompts[3] == "None"
    np.testing.assert_array_equal(ds.quality, [[1, 1], [1, 0], [0, 0], [1, 0]])
    assert ds.tasks == ("math", "geo", "poetry", "misc")
    # logged costs kept exactly; q5's blank small-model cost is priced from estimated tokens
    np.testing.assert_array_equal(ds.cost[:3, 0], [0.01, 0.012, 0.03])
    # "None" = 4 chars = 1 input token; no output length logged: the configured 2 tokens
    assert ds.cost[3, 1] == pytest.approx((1 * 0.5 + 2 * 1.5) / 1e6 + 0.0001)
    assert ds.report.cost_source == {"big": "logged", "small": "logged+estimated"}
    assert ds.price_table_version == "test-2024"


def test_as_failure_rule_keeps_rows_and_counts_them() -> None:
    ds = load({**WIDE, "labels": {"missing": "as_failure"}})
    assert ds.n_prompts == 5
    assert ds.quality[3, 1] == 0.0
    assert ds.report is not None and ds.report.missing_labels == {"big": 0, "small": 1}
    assert ds.report.missing_label_rule == "as_failure" and ds.report.dropped == {}


def test_models_listed_explicitly_and_column_mapping() -> None:
    data = {
        **WIDE,
        "sources": [
            {
                "path": "wide_small.csv",
                "quality": {"big-model": "big-model"},
                "cost": {"big-model": "big-model|total_cost"},
            }
        ],
        "rename_models": {},
        "cost": {},
    }
    ds = load(data)
    assert ds.models == ("big-model",)
    assert ds.n_prompts == 5  # small-model's blank label is not imported, so no row is dropped
    ds2 = load({**WIDE, "models": ["small-model"], "rename_models": {"small-model": "small"}})
    assert ds2.models == ("small",)


def test_long_log_pivots_and_derives_tasks() -> None:
    data = {
        "sources": [
            {
                "path": "long_small.csv",
                "layout": "long",
                "model": "llm",
                "quality": "grade",
                "cost": "usd",
                "input_tokens": "tokens_in",
                "output_tokens": "tokens_out",
            }
        ],
        "columns": {
            "id": "request_id",
            "prompt": "text",
            "task": "request_id",
            "task_pattern": "^([^_]+)_",
        },
        "labels": {"kind": "score", "range": [0, 1], "missing": "drop_row"},
        "cost": {"prices": "prices_small.yaml"},
    }
    ds = load(data)
    assert ds.models == ("big", "small") and list(ds.ids) == ["MMLU_1", "GSM_7", "NQA_3"]
    assert ds.tasks == ("MMLU", "GSM", "NQA")
    np.testing.assert_allclose(ds.quality, np.array([[1, 0], [1, 1], [0.75, 0.25]]))
    # the one missing cost (GSM_7, small) comes from its logged tokens × prices
    assert ds.cost[1, 1] == pytest.approx((120 * 0.5 + 90 * 1.5) / 1e6 + 0.0001)
    assert ds.cost[2, 1] == 0.0002
    assert ds.report is not None and ds.report.cost_source == {
        "big": "logged",
        "small": "logged+tokens",
    }
    assert ds.input_tokens is not None and ds.input_tokens[1, 1] == 120


def test_pieces_joined_on_id_with_estimated_costs() -> None:
    data = {
        "sources": [
            {"path": "items.csv"},
            {"path": "correct_wide.csv", "quality": "{model}"},
            {"path": "chars_wide.csv", "output_chars": "{model}"},
        ],
        "columns": {"id": "id", "prompt": "question"},
        "labels": {"missing": "drop_row"},
        "cost": {"prices": "prices_ab.yaml", "chars_per_token": 4},
    }
    ds = load(data)
    assert list(ds.ids) == ["g1", "g2", "g3"]  # items' order; g4 has a blank beta label
    np.testing.assert_array_equal(ds.quality, [[1, 1], [1, 0], [0, 1]])
    items = pd.read_csv(FIXTURES / "items.csv").set_index("id")
    tin = np.ceil(len(str(items.loc["g1", "question"])) / 4)
    assert ds.cost[0, 0] == pytest.approx((tin * 2.0 + 100 * 8.0) / 1e6)  # 400 chars -> 100 tokens
    assert ds.report is not None and set(ds.report.cost_source.values()) == {"estimated"}


def test_graded_scores_threshold_and_rescale_from_jsonl() -> None:
    base: dict[str, Any] = {
        "sources": [{"path": "scores.jsonl", "quality": {"m1": "m1", "m2": "m2"}}],
        "columns": {"id": "uid", "prompt": "prompt"},
        "labels": {"kind": "score", "range": [1, 10], "threshold": 8, "missing": "as_failure"},
        "cost": {"prices": "prices_ab.yaml", "unused_prices": "ignore"},
        "rename_models": {"m1": "alpha", "m2": "beta"},
    }
    data = {
        **base,
        "sources": [{**base["sources"][0], "output_chars": {"m1": "m1_len", "m2": "m2_len"}}],
    }
    ds = load(data)
    np.testing.assert_array_equal(ds.quality, [[1, 0], [0, 1], [1, 0], [0, 0]])
    assert list(ds.ids) == ["1", "2", "3", "4"]
    scaled = load({**data, "labels": {"kind": "score", "range": [1, 10], "missing": "drop_row"}})
    np.testing.assert_allclose(scaled.quality, [[8 / 9, 3 / 9], [6 / 9, 7 / 9], [1.0, 0.0]])


@pytest.mark.parametrize("fmt", ["csv.gz", "parquet", "jsonl", "tsv"])
def test_same_log_in_every_file_format(tmp_path: Path, fmt: str) -> None:
    df = pd.read_csv(FIXTURES / "wide_small.csv", dtype=str, keep_default_na=False)
    target = tmp_path / f"log.{fmt}"
    if fmt == "csv.gz":
        with gzip.open(target, "wb") as fh:
            fh.write((FIXTURES / "wide_small.csv").read_bytes())
    elif fmt == "parquet":
        num = df.copy()
        for c in ["big-model|total_cost", "small-model|total_cost"]:
            num[c] = pd.to_numeric(num[c].replace("", None))
        num.to_parquet(target)
    elif fmt == "jsonl":
        df.to_json(target, orient="records", lines=True)
    else:
        df.to_csv(target, sep="\t", index=False)
    shutil.copy(FIXTURES / "prices_small.yaml", tmp_path)
    ref = load(WIDE)
    ds = load({**WIDE, "sources": [{**WIDE["sources"][0], "path": target.name}]}, base=tmp_path)
    assert ds.models == ref.models and list(ds.ids) == list(ref.ids)
    np.testing.assert_array_equal(ds.quality, ref.quality)
    np.testing.assert_allclose(ds.cost, ref.cost)


def test_huggingface_local_files() -> None:
    data = {
        **WIDE,
        "sources": [
            {
                "hf": "csv",
                "data_files": "wide_small.csv",
                "split": "train",
                "quality": "{model}",
                "cost": "{model}|total_cost",
            }
        ],
    }
    ds = load(data)
    ref = load(WIDE)
    assert list(ds.ids) == list(ref.ids)
    np.testing.assert_array_equal(ds.quality, ref.quality)
    np.testing.assert_allclose(ds.cost, ref.cost)


def test_huggingface_hub_name_fails_fast_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    data = {**WIDE, "sources": [{"hf": "no-such-org/no-such-routing-log", "quality": "{model}"}]}
    t0 = time.perf_counter()
    with pytest.raises(
        DataError, match=r"hf:no-such-org/no-such-routing-log: cannot load the dataset.*offline"
    ):
        load(data)
    assert time.perf_counter() - t0 < 30


def test_generated_ids_and_relative_paths_from_another_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg_dir = tmp_path / "cfgs"
    cfg_dir.mkdir()
    rel = Path("..") / "d" / "routellm_like.csv"
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "routellm_like.csv").write_text(
        "prompt,gpt,mix\nHello there,True,False\nWhat is up?,False,False\nHello there,TRUE,true\n"
    )
    (cfg_dir / "exp.yaml").write_text(
        yaml.safe_dump(
            {
                "name": "exp",
                "data": {
                    "sources": [{"path": str(rel), "quality": "{model}"}],
                    "labels": {"missing": "drop_row"},
                    "cost": {"prices": "p.yaml", "assumed_output_tokens": 1},
                },
            }
        )
    )
    (cfg_dir / "p.yaml").write_text(
        "version: p\nmodels:\n  gpt: {input_per_1m: 1, output_per_1m: 1}\n"
        "  mix: {input_per_1m: 1, output_per_1m: 1}\n"
    )
    monkeypatch.chdir(tmp_path / "d")
    cfg = load_experiment(cfg_dir / "exp.yaml")
    assert cfg.base_dir == cfg_dir.resolve()
    assert cfg.split.train == 0.6  # sections other than data default sensibly
    ds = load_dataset(cfg)
    assert ds.name == "exp"
    assert list(ds.ids) == ["row1", "row2", "row3"]
    np.testing.assert_array_equal(ds.quality, [[1, 0], [0, 0], [1, 1]])
    assert ds.report is not None and ds.report.cost_source == {
        "gpt": "estimated",
        "mix": "estimated",
    }


def test_experiment_config_is_extensible_and_strict() -> None:
    assert "data" in ExperimentConfig.model_fields and "split" in ExperimentConfig.model_fields
    data = {"sources": [{"path": "x.csv", "quality": "{model}"}], "labels": {"missing": "drop_row"}}
    cfg = parse_model(ExperimentConfig, {"name": "x", "data": data})
    assert cfg.data.cost.chars_per_token == 4.0


def test_cell_parsing_handles_mixed_object_columns() -> None:
    from tierwise.eval.importers.values import Where, parse_numbers

    where = Where("f.jsonl", "c", [str(i) for i in range(7)])
    cells = pd.Series([None, np.nan, "True", 1, " 1.5 ", "false", "NULL"], dtype=object)
    out = parse_numbers(cells, where, "a label", allow_bool=True)
    np.testing.assert_array_equal(out, [np.nan, np.nan, 1.0, 1.0, 1.5, 0.0, np.nan])
    with pytest.raises(
        DataError,
        match=r"f\.jsonl, column 'c', row 3 \(id '2'\): a cost must be a number, got 'True'",
    ):
        parse_numbers(cells, where, "a cost")
    with pytest.raises(DataError, match=r"row 2 \(id '1'\): a count must be finite, got inf"):
        parse_numbers(pd.Series(["1", "inf"]), where, "a count")


def test_configs_readme_example_is_a_valid_config() -> None:
    text = (FIXTURES.parents[2] / "configs" / "README.md").read_text()
    block = text.split("```yaml\n", 1)[1].split("```", 1)[0]
    cfg = parse_model(ExperimentConfig, yaml.safe_load(block), source="configs/README.md")
    assert cfg.data.sources[0].cost == "{model}|total_cost"
    assert cfg.data.labels.missing == "drop_row"
