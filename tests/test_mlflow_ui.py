"""A real headless browser sees tierwise's runs in the MLflow UI (scripts/mlflow_ui_check.py)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.integration


@pytest.mark.skipif(
    not any(shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome")),
    reason="Debian's chromium is not installed (apt-get install -y chromium)",
)
def test_runs_are_on_the_experiment_and_compare_pages(tmp_path):
    shot = tmp_path / "ui.png"
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "mlflow_ui_check.py"),
            "--screenshot",
            str(shot),
            "--timeout",
            "300",
        ],
        capture_output=True,
        text=True,
        timeout=420,
        cwd=tmp_path,
    )
    out = proc.stdout
    assert proc.returncode == 0, out[-3000:] + proc.stderr[-3000:]
    assert "found:      ['5 matching runs']" in out
    assert "found:      ['study ui-study', 'trial 0', 'trial 1', 'trial 2', 'trial 3']" in out
    for png in (shot, tmp_path / "ui_compare.png"):
        data = png.read_bytes()
        assert data[:4] == b"\x89PNG" and len(data) > 20_000  # a rendered page, not a blank one
