"""ruff and mypy run inside the suite so that `make test` ends with pytest's summary."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


@pytest.mark.parametrize(
    "cmd",
    [
        [str(BIN / "ruff"), "check", "."],
        [str(BIN / "mypy"), "-p", "tierwise"],
    ],
    ids=["ruff", "mypy"],
)
def test_static_checks_are_clean(cmd: list[str]) -> None:
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]


# Modules whose whole job is training with torch; only imported lazily, from inside a function,
# when a user asks for that training (test_training_only_modules_are_imported_lazily).
TRAINING_ONLY = {"tierwise.router.embed.finetune_train"}


def test_training_only_modules_are_imported_lazily() -> None:
    import ast

    for path in (ROOT / "router").rglob("*.py"):
        for node in ast.parse(path.read_text()).body:  # module level only
            if isinstance(node, ast.ImportFrom) and node.module:
                names = {node.module} | {f"{node.module}.{a.name}" for a in node.names}
            elif isinstance(node, ast.Import):
                names = {a.name for a in node.names}
            else:
                continue
            assert not names & TRAINING_ONLY, f"{path} imports {names & TRAINING_ONLY} at load"


def test_router_never_imports_training_stack() -> None:
    """router/ is what production installs: it must not pull eval, experiments, optuna or mlflow."""
    code = (
        "import sys, tierwise.router as r\n"
        "import pkgutil, importlib\n"
        "for m in pkgutil.walk_packages(r.__path__, 'tierwise.router.'):\n"
        f"    if m.name not in {sorted(TRAINING_ONLY)!r}:\n"
        "        importlib.import_module(m.name)\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in "
        "('optuna', 'mlflow', 'torch', 'sentence_transformers', 'pandas') or "
        "m.startswith(('tierwise.eval', 'tierwise.experiments'))]\n"
        "assert not bad, bad\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
