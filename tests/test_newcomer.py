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


def test_compare_counts_every_policy_and_shows_routers_beside_trials(tmp_path: Path, capsys):
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    exp = client.create_experiment("cmp", artifact_location=(tmp_path / "art").as_uri())

    def run(kind: str, name: str, cost: float, latency: float) -> None:
        tags = {"tierwise.kind": kind, "tierwise.split": "test" if kind == "train" else "tuning"}
        r = client.create_run(exp, run_name=name, tags=tags).info.run_id
        for k, v in {"quality": 0.8, "cost_per_1k": cost, "cost_at_target": cost,
                     "routing_latency_ms": latency}.items():  # fmt: skip
            client.log_metric(r, k, v)
        client.set_terminated(r)

    run("train", "the trained router", 9.0, 412.0)  # costlier than every trial
    for i in range(6):
        run("trial", f"trial {i}", 1.0 + i, 0.4)
    out_png = tmp_path / "c.png"
    assert (
        main(["compare", "cmp", "--tracking-uri", uri, "--limit", "3", "--out", str(out_png)]) == 0
    )
    out = capsys.readouterr().out
    assert "cmp: 7 tracked policies (1 train, 6 trial)" in out
    lines = [line for line in out.splitlines() if line[:3].strip().isdigit()]
    assert len(lines) == 4 and "the trained router" in lines[0] and "412.00" in lines[0]
    assert all(line.split()[-2] == "—" for line in lines[1:])  # no per-trial latency
    assert out_png.stat().st_size > 10_000
