"""A newcomer's path (issue 10): missing extras are named before work starts, `route --file`
shows text, batch outputs get the usual file mode, error texts say what to do."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from runtime_helpers import hashing_artifact

from tierwise.experiments.cli import main
from tierwise.experiments.config import load_experiment
from tierwise.router.errors import ConfigError


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return hashing_artifact(tmp_path_factory.mktemp("newcomer") / "r.tierwise", predictor="logreg")


def _block(monkeypatch: pytest.MonkeyPatch, *names: str) -> None:
    # A module mapped to None in sys.modules is what a runtime-only install looks like to
    # `import` and `importlib.util.find_spec` alike.
    for name in names:
        monkeypatch.setitem(sys.modules, name, None)


@pytest.mark.parametrize(
    ("argv", "blocked", "line"),
    [
        (["data", "inspect", "x.yaml"], "pandas", "`tierwise data` needs pandas"),
        (["train", "x.yaml"], "pandas", "`tierwise train` needs pandas"),
        (["tune", "x.yaml"], "optuna", "`tierwise tune` needs optuna"),
        (["compare", "x"], "mlflow", "`tierwise compare` needs mlflow"),
    ],
)
def test_commands_name_the_missing_extra_before_any_work(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], argv, blocked, line
) -> None:
    _block(monkeypatch, blocked)
    assert main(argv) == 2  # x.yaml does not exist: the extra is checked first
    err = capsys.readouterr().err
    assert line in err and "pip install 'tierwise[train]'" in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_batch_to_parquet_without_pyarrow_stops_before_routing(
    artifact: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text('{"prompt": "math code"}\n', encoding="utf-8")
    _block(monkeypatch, "pyarrow", "pyarrow.parquet")
    assert main(["batch", str(artifact), str(src), str(tmp_path / "out.parquet")]) == 2
    err = capsys.readouterr().err
    assert "Parquet files needs pyarrow" in err and "pip install 'tierwise[batch]'" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl"]  # nothing half-written
    # JSONL needs no extra.
    assert main(["batch", str(artifact), str(src), str(tmp_path / "out.jsonl")]) == 0


def test_batch_output_has_the_usual_file_mode(artifact: Path, tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text('{"prompt": "math code"}\n', encoding="utf-8")
    old = os.umask(0o022)
    try:
        assert main(["batch", str(artifact), str(src), str(tmp_path / "out.csv")]) == 0
    finally:
        os.umask(old)
    assert (tmp_path / "out.csv").stat().st_mode & 0o777 == 0o644


def test_route_file_shows_prompts_as_text(artifact: Path, tmp_path: Path, capsys) -> None:
    f = tmp_path / "prompts.txt"
    f.write_bytes("héllo math code\nlove poem\n".encode())
    assert main(["route", str(artifact), "--file", str(f)]) == 0
    out = capsys.readouterr().out
    assert "héllo math code" in out and "b'" not in out


def test_a_validator_message_is_not_followed_by_a_second_got(tmp_path: Path) -> None:
    cfg = tmp_path / "s.yaml"
    cfg.write_text(
        "name: s\ndata:\n  sources: [{path: log.csv, quality: '{model}'}]\n"
        "  labels: {missing: drop_row}\nsplit: {train: 0.6, calibration: 0.3, test: 0.2}\n"
    )
    with pytest.raises(ConfigError, match=r"must sum to 1, got 1\.1000; adjust the fractions$"):
        load_experiment(cfg)
