"""`tierwise evaluate`: end to end through the importer, splits, report, chart and JSON."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tierwise.experiments.cli import main

MODELS = ("tiny", "mid", "big")


def _write_log(tmp_path: Path, n: int = 60) -> Path:
    rng = np.random.default_rng(0)
    q = (rng.random((n, 3)) < [0.45, 0.6, 0.85]).astype(int)
    c = rng.uniform(0.8, 1.2, (n, 3)) * [0.0002, 0.001, 0.01]
    lines = ["id,prompt,task," + ",".join(MODELS) + "," + ",".join(f"{m}|cost" for m in MODELS)]
    for i in range(n):
        task = "a" if i % 2 else "b"
        row = [f"p{i}", f"question number {i}", task, *map(str, q[i]), *(f"{x:.8f}" for x in c[i])]
        lines.append(",".join(row))
    (tmp_path / "log.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    cfg = tmp_path / "exp.yaml"
    cfg.write_text(
        "name: tinyexp\n"
        "data:\n"
        "  sources:\n"
        "    - path: log.csv\n"
        '      quality: "{model}"\n'
        '      cost: "{model}|cost"\n'
        "  columns: {id: id, prompt: prompt, task: task}\n"
        "  labels: {kind: binary, missing: drop_row}\n"
        "evaluation:\n"
        "  bootstrap_samples: 40\n",
        encoding="utf-8",
    )
    return cfg


def test_baselines_on_the_test_split(tmp_path, capsys):
    cfg = _write_log(tmp_path)
    out = tmp_path / "out"
    assert main(["evaluate", str(cfg), "--baselines", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "tinyexp — test split: 12 prompts × 3 models" in text  # 20% of 60
    for name in ("zero router", "oracle", "random", "big (ref)", "40 resamples"):
        assert name in text
    assert (out / "evaluate_test.png").read_bytes()[:4] == b"\x89PNG"
    report = json.loads((out / "evaluate_test.json").read_text())
    assert report["split"] == "test" and report["n_prompts"] == 12
    assert {r["kind"] for r in report["rows"]} == {"model", "zero", "random", "oracle"}


def test_json_on_all_rows_without_bootstrap(tmp_path, capsys):
    cfg = _write_log(tmp_path)
    code = main(
        [
            "evaluate",
            str(cfg),
            "--baselines",
            "--split",
            "all",
            "--json",
            "--bootstrap",
            "0",
            "--out",
            str(tmp_path / "o"),
        ]
    )
    assert code == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["n_prompts"] == 60 and payload["config"]["bootstrap_samples"] == 0
    oracle = next(r for r in payload["rows"] if r["name"] == "oracle")
    assert oracle["gap_closed"] == 1.0 and oracle["ci"] == {}


def test_default_out_dir_is_runs_config_name(tmp_path, monkeypatch, capsys):
    cfg = _write_log(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert main(["evaluate", str(cfg), "--baselines", "--bootstrap", "0"]) == 0
    assert (tmp_path / "runs" / "tinyexp" / "evaluate_test.png").is_file()


def test_without_baselines_it_says_what_it_evaluates(tmp_path, capsys):
    cfg = _write_log(tmp_path)
    assert main(["evaluate", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "tierwise: error: nothing to evaluate" in err and "pass --baselines" in err


def test_bad_inputs_are_one_line_errors(tmp_path, capsys):
    cfg = _write_log(tmp_path)
    assert main(["evaluate", str(tmp_path / "missing.yaml"), "--baselines"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["evaluate", str(cfg), "--baselines", "--bootstrap", "-3"]) == 2
    assert "`--bootstrap` must be >= 0, got -3" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["evaluate", str(cfg), "--baselines", "--split", "validation"])
    assert "invalid choice: 'validation'" in capsys.readouterr().err


def _trained_router(tmp_path: Path) -> tuple[Path, Path]:
    """A real router artifact fitted on the config's train/calibration splits (tiny embedder)."""
    from tierwise.eval.splits import make_splits
    from tierwise.experiments.config import load_dataset, load_experiment
    from tierwise.router.core import Router

    cfg_path = _write_log(tmp_path, n=200)
    cfg_path.write_text(
        cfg_path.read_text()
        + "router:\n  embedder: {name: 'hashing:64'}\n  predictor: {name: knn}\n",
        encoding="utf-8",
    )
    cfg = load_experiment(cfg_path)
    train, cal, _ = make_splits(ds := load_dataset(cfg, progress=False), cfg.split).apply(ds)
    artifact = tmp_path / "router.tierwise"
    Router(cfg.router).fit(train, cal).save(str(artifact))
    return cfg_path, artifact


def test_artifact_is_scored_beside_the_baselines(tmp_path, capsys):
    from tierwise.router.core import Router

    cfg, artifact = _trained_router(tmp_path)
    assert (
        main(
            [
                "evaluate",
                str(cfg),
                "--artifact",
                str(artifact),
                "--json",
                "--bootstrap",
                "0",
                "--out",
                str(tmp_path / "o"),
            ]
        )
        == 0
    )
    payload = json.loads(capsys.readouterr().out)
    names = [r["name"] for r in payload["rows"]]
    assert names[:2] == ["router (knn/utility)", "random @ router (knn/utility)"]
    assert {"zero router", "oracle", "big"} <= set(names)
    router = Router.load(str(artifact))
    row = payload["rows"][0]
    assert len(row["points"]) == len(router.knob_grid_)  # one point per knob value
    assert row["gap_closed"] is not None and row["aiq"] <= payload["rows"][-1]["aiq"] + 1e-12


def test_artifact_on_a_training_split_warns_and_wrong_data_fails(tmp_path, capsys):
    cfg, artifact = _trained_router(tmp_path)
    args = ["evaluate", str(cfg), "--artifact", str(artifact), "--bootstrap", "0"]
    assert main([*args, "--split", "train", "--out", str(tmp_path / "o")]) == 0
    assert "only test is an unbiased score" in capsys.readouterr().err
    renamed = tmp_path / "renamed.yaml"
    renamed.write_text(
        cfg.read_text().replace("  labels:", "  rename_models: {big: huge}\n  labels:"),
        encoding="utf-8",
    )
    assert main(["evaluate", str(renamed), "--artifact", str(artifact), "--bootstrap", "0"]) == 2
    assert "routes to models ['big'] that dataset" in capsys.readouterr().err
