"""`tierwise data inspect` on every shipped config, as text and as JSON; errors as one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tierwise.experiments.cli import main

ROOT = Path(__file__).resolve().parents[1]
# label_*.yaml configure `tierwise label` (tests/test_label*.py), not a dataset to inspect.
CONFIGS = sorted(c for c in (ROOT / "configs").glob("*.yaml") if not c.stem.startswith("label"))
SHARED = ROOT.parent / "shared" / "data"


def needs_shared(cfg: Path) -> bool:
    return "shared/data" in cfg.read_text()


@pytest.mark.parametrize("cfg", CONFIGS, ids=[c.stem for c in CONFIGS])
def test_inspect_every_config(cfg: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if needs_shared(cfg) and not SHARED.is_dir():
        pytest.skip(f"shared data not present at {SHARED}")
    assert main(["data", "inspect", str(cfg), "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["rows_kept"] > 0 and s["rows_kept"] <= s["rows_read"]
    assert s["rows_read"] - s["rows_kept"] == sum(s["dropped"].values())
    best = max(m["mean_quality"] for m in s["models"])
    cheapest = min(m["cost_per_1k"] for m in s["models"])
    # the oracle is at least as good as the best model and no dearer than it needs to be
    assert s["oracle"]["mean_quality"] >= best - 1e-12
    assert s["oracle"]["cost_per_1k"] >= cheapest - 1e-12
    assert sum(m["oracle_share"] for m in s["models"]) == pytest.approx(1.0)
    assert all(m["cost_source"] for m in s["models"])

    assert main(["data", "inspect", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert f"{s['rows_read']} read, {s['rows_kept']} kept" in out
    assert "oracle" in out
    for m in s["models"]:
        assert m["model"] in out


def test_inspect_routerbench_numbers(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "inspect", str(ROOT / "configs" / "routerbench.yaml"), "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert (s["rows_read"], s["rows_kept"], s["dropped"]) == (3164, 3150, {"missing label": 14})
    by = {m["model"]: m for m in s["models"]}
    assert by["gpt-4-1106-preview"]["missing_labels"] == 10
    assert by["gpt-3.5-turbo-1106"]["missing_labels"] == 4
    assert by["gpt-4-1106-preview"]["mean_quality"] == pytest.approx(0.8794, abs=1e-4)
    assert by["gpt-4-1106-preview"]["cost_per_1k"] == pytest.approx(5.0153, abs=1e-4)
    assert {m["cost_source"] for m in s["models"]} == {"logged"}


def test_inspect_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "inspect", str(tmp_path / "nope.yaml")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("tierwise: error: config file") and "does not exist" in err
    assert "\n" not in err
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "name: bad\ndata:\n  sources: [{path: log.csv, quality: '{model}'}]\n"
        "  labels: {missing: drop_row}\n"
    )
    (tmp_path / "log.csv").write_text("prompt,a\nhi,maybe\n")
    assert main(["data", "inspect", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err
    assert (
        "column 'a', row 1 (id 'row1'): a quality label must be a number or true/false, got 'maybe'"
        in err
    )
