"""Bad input → one clear DataError / ConfigError naming file, column, row, value and the fix."""

from __future__ import annotations

import gzip
import io
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from tierwise.eval.dataset import RoutingDataset
from tierwise.eval.importers import DataConfig, import_dataset
from tierwise.experiments.config import load_experiment
from tierwise.router.errors import ConfigError, DataError
from tierwise.router.schema import parse_model

GOOD = "id,prompt,a,b,a|cost,b|cost\nx1,Hello,1,0,0.01,0.001\nx2,World,0,1,0.02,0.002\n"
PRICES = (
    "version: v\nmodels:\n  a: {input_per_1m: 1, output_per_1m: 2}\n"
    "  b: {input_per_1m: 1, output_per_1m: 2}\n"
)


def cfg(path: str = "log.csv", **over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "sources": [{"path": path, "quality": "{model}", "cost": "{model}|cost"}],
        "columns": {"id": "id", "prompt": "prompt"},
        "labels": {"missing": "drop_row"},
    }
    base.update(over)
    return base


def run(
    tmp_path: Path, text: str | bytes, data: dict[str, Any], name: str = "log.csv"
) -> RoutingDataset:
    p = tmp_path / name
    if isinstance(text, bytes):
        p.write_bytes(text)
    else:
        p.write_text(text, encoding="utf-8")
    (tmp_path / "prices.yaml").write_text(PRICES)
    return import_dataset(parse_model(DataConfig, data, source="test"), base_dir=tmp_path)


def test_good_input_loads(tmp_path: Path) -> None:
    ds = run(tmp_path, GOOD, cfg())
    assert ds.models == ("a", "b") and ds.n_prompts == 2


def test_missing_column(tmp_path: Path) -> None:
    with pytest.raises(
        DataError,
        match=r"log\.csv: column 'c' \(quality of model 'c'\) is missing; columns are \['id',"
        r" 'prompt'",
    ):
        run(tmp_path, GOOD, cfg(models=["a", "c"]))
    with pytest.raises(
        DataError, match=r"log\.csv: column 'b\|cost' \(cost of model 'b'\) is missing"
    ):
        run(tmp_path, GOOD.replace(",b|cost", ",b_cost"), cfg(models=["a", "b"]))
    with pytest.raises(DataError, match=r"column 'qid' \(the id\) is missing"):
        run(tmp_path, GOOD, cfg(columns={"id": "qid", "prompt": "prompt"}))


def test_no_column_matches_quality_template(tmp_path: Path) -> None:
    data = cfg()
    data["sources"] = [{"path": "log.csv", "quality": "{model}_correct"}]
    with pytest.raises(
        ConfigError, match=r"no column matches the quality template '\{model\}_correct'"
    ):
        run(tmp_path, GOOD, data)


def test_model_in_price_table_but_not_in_data(tmp_path: Path) -> None:
    data = cfg(exclude_models=[], cost={"prices": "prices.yaml"})
    data["sources"] = [{"path": "log.csv", "quality": "{model}"}]
    text = "id,prompt,a\nx1,Hello,1\n"
    with pytest.raises(
        DataError,
        match=r"prices\.yaml has models that are not in the data: \['b'\].*cost\.unused_prices:"
        r" ignore",
    ):
        run(tmp_path, text, {**data, "cost": {"prices": "prices.yaml", "assumed_output_tokens": 1}})


def test_model_in_data_but_not_in_price_table(tmp_path: Path) -> None:
    text = "id,prompt,a,b,z\nx1,Hello,1,0,1\n"
    data = cfg(cost={"prices": "prices.yaml", "assumed_output_tokens": 1})
    data["sources"] = [{"path": "log.csv", "quality": "{model}"}]
    with pytest.raises(DataError, match=r"has no price for models \['z'\].*it has \['a', 'b'\]"):
        run(tmp_path, text, data)


def test_non_numeric_label(tmp_path: Path) -> None:
    with pytest.raises(
        DataError,
        match=r"log\.csv, column 'a', row 2 \(id 'x2'\): a quality label must be a number or"
        r" true/false, got 'yes'",
    ):
        run(tmp_path, GOOD.replace("x2,World,0", "x2,World,yes"), cfg())


def test_out_of_range_labels(tmp_path: Path) -> None:
    with pytest.raises(
        DataError,
        match=r"column 'b', row 1 \(id 'x1'\): a binary label must be 0/1 or true/false, got"
        r" 0\.5; .*labels\.kind: score",
    ):
        run(tmp_path, GOOD.replace("x1,Hello,1,0,", "x1,Hello,1,0.5,"), cfg())
    scored = cfg(labels={"kind": "score", "range": [1, 10], "threshold": 8, "missing": "drop_row"})
    with pytest.raises(
        DataError,
        match=r"column 'a', row 1 \(id 'x1'\): a score must lie in `labels\.range` \[1, 10\], got"
        r" 11\.0",
    ):
        run(
            tmp_path,
            GOOD.replace("x1,Hello,1,0,", "x1,Hello,11,2,").replace("x2,World,0,1", "x2,World,3,9"),
            scored,
        )


def test_negative_cost(tmp_path: Path) -> None:
    with pytest.raises(
        DataError,
        match=r"column 'a\|cost', row 2 \(id 'x2'\): a cost \(USD\) must be >= 0, got -0\.02",
    ):
        run(tmp_path, GOOD.replace("0.02", "-0.02"), cfg())


def test_non_numeric_cost(tmp_path: Path) -> None:
    with pytest.raises(
        DataError,
        match=r"column 'b\|cost', row 1 \(id 'x1'\): a cost \(USD\) must be a number, got"
        r" '\$0\.001'",
    ):
        run(tmp_path, GOOD.replace("0.001", "$0.001"), cfg())


def test_empty_prompt(tmp_path: Path) -> None:
    with pytest.raises(
        DataError,
        match=r"column 'prompt', row 2 \(id 'x2'\): the prompt is empty; fill it in or remove the"
        r" row",
    ):
        run(tmp_path, GOOD.replace("x2,World,", "x2,  ,"), cfg())


def test_duplicate_id(tmp_path: Path) -> None:
    with pytest.raises(
        DataError, match=r"column 'id': duplicate id 'x1' at rows 1 and 2; .*layout: long"
    ):
        run(tmp_path, GOOD.replace("x2,", "x1,"), cfg())


def test_csv_named_parquet_and_parquet_named_csv(tmp_path: Path) -> None:
    with pytest.raises(
        DataError,
        match=r"log\.parquet: the file is not PARQUET .* looks like text \(CSV\?\).*set `format:`",
    ):
        run(tmp_path, GOOD, cfg("log.parquet"), name="log.parquet")
    buf = tmp_path / "real.parquet"
    pd.read_csv(io.StringIO(GOOD)).to_parquet(buf)
    with pytest.raises(DataError, match=r"log\.csv: the file is not CSV .* looks like Parquet"):
        run(tmp_path, buf.read_bytes(), cfg())


def test_gz_that_is_not_gzip_and_corrupt_gzip(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"log\.csv\.gz: named \.gz but not gzip-compressed"):
        run(tmp_path, GOOD, cfg("log.csv.gz"), name="log.csv.gz")
    broken = gzip.compress(GOOD.encode())[:20]
    with pytest.raises(
        DataError, match=r"log\.csv\.gz: (a corrupt gzip file|cannot be read as CSV)"
    ):
        run(tmp_path, broken, cfg("log.csv.gz"), name="log.csv.gz")


def test_unknown_extension_missing_file_empty_file_bad_encoding(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"log\.xlsx: cannot tell the file format.*set `format:`"):
        run(tmp_path, GOOD, cfg("log.xlsx"), name="log.xlsx")
    with pytest.raises(DataError, match=r"data file '.*absent\.csv' does not exist"):
        run(tmp_path, GOOD, cfg("absent.csv"))
    with pytest.raises(DataError, match=r"log\.csv: the file is empty"):
        run(tmp_path, "", cfg())
    with pytest.raises(DataError, match=r"log\.csv: not utf-8 text .*set `encoding:`"):
        run(tmp_path, GOOD.replace("Hello", "H\u00e9llo").encode("latin-1"), cfg())


def test_unknown_yaml_key_and_missing_rule(tmp_path: Path) -> None:
    p = tmp_path / "exp.yaml"
    data = cfg()
    data["labels"] = {"missing": "drop_row", "threshhold": 8}
    p.write_text(yaml.safe_dump({"name": "e", "data": data}))
    with pytest.raises(
        ConfigError,
        match=r"exp\.yaml: unknown key `data\.labels\.threshhold`; remove it or check its spelling",
    ):
        load_experiment(p)
    data["labels"] = {"kind": "binary"}
    p.write_text(yaml.safe_dump({"name": "e", "data": data}))
    with pytest.raises(ConfigError, match=r"`data\.labels\.missing` field required"):
        load_experiment(p)


def test_config_level_mistakes() -> None:
    with pytest.raises(ConfigError, match=r"`range` and `threshold` are for `kind: score`"):
        parse_model(
            DataConfig, cfg(labels={"kind": "binary", "threshold": 8, "missing": "drop_row"})
        )
    with pytest.raises(ConfigError, match=r"joining several sources needs `columns.id`"):
        parse_model(
            DataConfig,
            {
                **cfg(),
                "columns": {"prompt": "p"},
                "sources": [{"path": "a.csv"}, {"path": "b.csv", "quality": "{model}"}],
            },
        )
    with pytest.raises(ConfigError, match=r"a `layout: long` source needs `model`"):
        parse_model(
            DataConfig, {**cfg(), "sources": [{"path": "a.csv", "layout": "long", "quality": "q"}]}
        )
    with pytest.raises(ConfigError, match=r"`task_pattern` must be a valid regex"):
        parse_model(DataConfig, {**cfg(), "columns": {"id": "id", "task_pattern": "(["}})


def test_exclude_or_rename_unknown_model(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError,
        match=r"`exclude_models` lists models not in the data: \['gpt-5'\]; models in the data:"
        r" \['a', 'b'\]",
    ):
        run(tmp_path, GOOD, cfg(exclude_models=["gpt-5"]))
    with pytest.raises(ConfigError, match=r"`rename_models` lists models not in the data: \['c'\]"):
        run(tmp_path, GOOD, cfg(rename_models={"c": "d"}))


LONG = "rid,q,m,s\nr1,Hi,a,1\nr1,Hi,b,0\nr2,Yo,a,0\nr2,Yo,b,1\n"


def long_cfg(**over: Any) -> dict[str, Any]:
    return {
        "sources": [{"path": "log.csv", "layout": "long", "model": "m", "quality": "s"}],
        "columns": {"id": "rid", "prompt": "q"},
        "labels": {"missing": "drop_row"},
        "cost": {"prices": "prices.yaml", "assumed_output_tokens": 1},
        **over,
    }


def test_long_duplicate_rows_and_inconsistent_prompt(tmp_path: Path) -> None:
    assert run(tmp_path, LONG, long_cfg()).n_prompts == 2
    with pytest.raises(
        DataError, match=r"prompt id 'r2' has two rows for model 'a' \(rows 3 and 5\)"
    ):
        run(tmp_path, LONG + "r2,Yo,a,1\n", long_cfg())
    with pytest.raises(
        DataError, match=r"column 'q', row 4: prompt id 'r2' has a different 'q' than its first row"
    ):
        run(tmp_path, LONG.replace("r2,Yo,b", "r2,Yo!,b"), long_cfg())
    with pytest.raises(DataError, match=r"column 'm', row 2: the model name is empty"):
        run(tmp_path, LONG.replace("r1,Hi,b", "r1,Hi,"), long_cfg())


def test_task_pattern_mismatch(tmp_path: Path) -> None:
    with pytest.raises(
        DataError,
        match=r"column 'rid', row 1 \(id 'r1'\): value 'r1' does not match `columns.task_pattern`",
    ):
        run(
            tmp_path,
            LONG,
            long_cfg(
                columns={"id": "rid", "prompt": "q", "task": "rid", "task_pattern": "^x(\\d)"}
            ),
        )


def test_joined_source_missing_ids_become_missing_labels(tmp_path: Path) -> None:
    (tmp_path / "items.csv").write_text("id,prompt\nx1,Hello\nx2,World\nx3,Again\n")
    data = {
        "sources": [
            {"path": "items.csv"},
            {"path": "log.csv", "quality": "{model}", "cost": "{model}|cost"},
        ],
        "columns": {"id": "id", "prompt": "prompt"},
        "labels": {"missing": "drop_row"},
    }
    ds = run(tmp_path, GOOD, data)
    assert list(ds.ids) == ["x1", "x2"]
    assert ds.report is not None
    assert ds.report.dropped == {"missing label": 1}
    assert any("1 of 3 prompts of" in n and "log.csv" in n for n in ds.report.notes)
