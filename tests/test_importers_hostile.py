"""Hostile import files found by probing (issue 10): each gets one line naming what is wrong."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tierwise.eval.costs import ModelCostInputs, resolve_costs
from tierwise.eval.importers import DataConfig, import_dataset
from tierwise.experiments.cli import main
from tierwise.router.errors import ConfigError, DataError
from tierwise.router.pricing import PriceTable
from tierwise.router.schema import parse_model

HEAD = "id,prompt,a,b,a|cost,b|cost"
ROWS = ["x1,Hi there,1,0,0.01,0.001", "x2,Hello,0,1,0.02,0.002"]


def cfg(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "sources": [{"path": "log.csv", "quality": "{model}", "cost": "{model}|cost"}],
        "columns": {"id": "id", "prompt": "prompt"},
        "labels": {"missing": "drop_row"},
    }
    return {**base, **over}


def load(tmp_path: Path, lines: list[str], data: dict[str, Any] | None = None) -> Any:
    (tmp_path / "log.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return import_dataset(parse_model(DataConfig, data or cfg(), source="t"), base_dir=tmp_path)


def test_a_model_with_a_cost_but_no_quality_column_is_named(tmp_path: Path) -> None:
    lines = [HEAD + ",c|cost", *(r + ",0.5" for r in ROWS)]
    with pytest.raises(
        DataError,
        match=r"log\.csv: column 'c\|cost' is the cost of model 'c', which has no quality column "
        r"'c' \(models with one: \['a', 'b'\]\); add that column, or list 'c\|cost' in "
        r"`ignore_columns`",
    ):
        load(tmp_path, lines)
    # The fix the message gives works.
    assert load(tmp_path, lines, cfg(ignore_columns=["c|cost"])).models == ("a", "b")


def test_a_misspelt_configured_column_is_reported_as_missing(tmp_path: Path) -> None:
    lines = [HEAD + ",eval_name", *(r + ",mmlu" for r in ROWS)]
    with pytest.raises(
        ConfigError,
        match=r"`columns\.task` must name a column of the data, got 'evalname', which is in no "
        r"source .*columns are \['id', 'prompt', 'a', 'b', 'a\|cost', 'b\|cost', 'eval_name'\]",
    ):
        load(tmp_path, lines, cfg(columns={"id": "id", "prompt": "prompt", "task": "evalname"}))
    with pytest.raises(ConfigError, match=r"`ignore_columns` must name a column.*got 'oracle'"):
        load(tmp_path, lines, cfg(ignore_columns=["oracle"]))


@pytest.mark.parametrize(
    ("head", "dup", "cols"),
    [("id,prompt,a,b,a,a|cost,b|cost", "a", "3 and 5"), (HEAD + ",a|cost", "a|cost", "5 and 7")],
)
def test_a_duplicated_header_column_is_named_as_written(
    tmp_path: Path, head: str, dup: str, cols: str
) -> None:
    rows = [r + ",1" for r in ROWS]
    with pytest.raises(
        DataError,
        match=r"log\.csv: the header must name each column once, got "
        + re.escape(repr(dup))
        + rf" twice \(columns {cols}\); rename or remove one",
    ):
        load(tmp_path, [head, *rows])


def test_huge_values_that_overflow_arithmetic_are_refused_with_the_cell(tmp_path: Path) -> None:
    lines = [HEAD, ROWS[0], ROWS[1].replace("0.02", "1e308")]
    with pytest.raises(
        DataError,
        match=r"log\.csv, column 'a\|cost', row 2 \(id 'x2'\): a cost \(USD\) must be at most "
        r"1e\+12 in size, got '1e308'",
    ):
        load(tmp_path, lines)
    # A price × token product that overflows names the model and prompt.
    prices = tmp_path / "p.yaml"
    prices.write_text("version: v\nmodels:\n  a: {input_per_1m: 1e300, output_per_1m: 1e300}\n")
    with pytest.raises(DataError, match=r"cost of model 'a' at prompt id 'q1' must be finite"):
        resolve_costs(
            ["a"],
            {"a": ModelCostInputs(input_tokens=[1e12], output_tokens=[1e12])},  # type: ignore[arg-type]
            [10.0],
            PriceTable.load(prices),
            ids=["q1"],
        )


def test_training_on_fewer_than_two_models_is_refused(tmp_path: Path, capsys) -> None:
    (tmp_path / "log.csv").write_text(
        "id,prompt,a,a|cost\n" + "".join(f"x{i},prompt {i},{i % 2},0.01\n" for i in range(40))
    )
    (tmp_path / "exp.yaml").write_text(
        'name: one\ndata:\n  sources:\n    - path: log.csv\n      quality: "{model}"\n'
        '      cost: "{model}|cost"\n  columns: {id: id, prompt: prompt}\n'
        "  labels: {kind: binary, missing: drop_row}\ntracking: {enabled: false}\n"
        'router:\n  embedder: {name: "hashing:64"}\n'
    )
    assert main(["train", str(tmp_path / "exp.yaml"), "--out", str(tmp_path / "o")]) != 0
    err = capsys.readouterr().err
    assert "routing needs at least 2 models, got 1 (['a'])" in err
    assert "Traceback" not in err and not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        ([HEAD, ROWS[0] + ",9,9", ROWS[1]], r"log\.csv: a row has more fields than the header"),
        ([HEAD, *ROWS, "x3,Extra,1,0,0.1,0.1,7"], r"Expected 6 fields in line 4"),
        ([HEAD], r"log\.csv: the file has a header but no rows"),
    ],
)
def test_ragged_rows_and_header_only_files_are_refused(tmp_path: Path, lines, message) -> None:
    with pytest.raises(DataError, match=message):
        load(tmp_path, lines)
