"""The installed distribution owns one top-level name, `tierwise` (wheel and editable install),
and the README's Layout table matches the tree.

The wheel is built without network or build isolation from a copy of the source (so a build in
the shared checkout never races another one), installed with `--no-deps` into a fresh venv that
sees the main venv's dependencies through a `.pth` file, and imported from an empty directory:
`tierwise` imports, `router`, `eval` and `experiments` do not exist.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PARTS = ("router", "eval", "experiments")
SITE = Path(sysconfig.get_paths()["purelib"])  # the main venv's site-packages


def _run(*cmd: str | Path, cwd: Path | None = None) -> str:
    proc = subprocess.run(
        [str(c) for c in cmd], cwd=cwd, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, f"{cmd} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The package's sources as a build sees them (links included), away from the checkout."""
    dst = tmp_path_factory.mktemp("src")
    skip = shutil.ignore_patterns("__pycache__", "*.pyc")
    for part in PARTS:
        shutil.copytree(ROOT / part, dst / part, ignore=skip)
    shutil.copytree(ROOT / "tierwise", dst / "tierwise", symlinks=True, ignore=skip)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, dst / name)
    return dst


def _fresh_venv(path: Path) -> Path:
    """A venv without pip (installs go through the main venv's pip) that sees the main venv's
    dependencies: only a path entry, so their `.pth` hooks (the editable finder) stay off."""
    _run(sys.executable, "-m", "venv", "--without-pip", path)
    python = path / "bin" / "python"
    site = Path(_run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])")
                .strip())  # fmt: skip
    (site / "main_venv_deps.pth").write_text(str(SITE) + "\n")
    return python


def _pip(python: Path, *args: str | Path) -> None:
    _run(sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "-q", *args)


def _check_imports(python: Path, cwd: Path) -> str:
    code = (
        "import importlib, tierwise\n"
        "from tierwise import Router\n"
        "assert Router.__module__ == 'tierwise.router.core'\n"
        "import tierwise.router, tierwise.eval, tierwise.experiments\n"
        "for name in ('router', 'eval', 'experiments'):\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except ModuleNotFoundError:\n"
        "        continue\n"
        "    raise SystemExit(f'{name} is importable as a top-level name')\n"
        "print(tierwise.__file__)\n"
    )
    cwd.mkdir(exist_ok=True)
    assert not any(cwd.iterdir()), "the import check must run from an empty directory"
    return _run(python, "-c", code, cwd=cwd).strip()


def test_wheel_names_only_tierwise_and_installs_as_tierwise(source: Path, tmp_path: Path) -> None:
    out = tmp_path / "dist"
    _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", out, source)  # fmt: skip
    (wheel,) = out.glob("tierwise-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        dist_info = next(n.split("/")[0] for n in names if n.endswith(".dist-info/RECORD"))
        top_level = zf.read(f"{dist_info}/top_level.txt").decode().split()
        record = zf.read(f"{dist_info}/RECORD").decode().splitlines()
    assert top_level == ["tierwise"]
    tops = {line.split(",")[0].split("/")[0] for line in record if line}
    assert tops == {"tierwise", dist_info}, tops
    assert {f"tierwise/{p}/__init__.py" for p in PARTS} <= set(names)
    assert "tierwise/router/artifact/__init__.py" in names  # subpackages are shipped too

    python = _fresh_venv(tmp_path / "venv")
    _pip(python, wheel)
    where = _check_imports(python, tmp_path / "empty")
    assert str(tmp_path / "venv") in where  # the installed copy, not the checkout


def test_editable_install_maps_the_folders_into_tierwise(source: Path, tmp_path: Path) -> None:
    python = _fresh_venv(tmp_path / "venv")
    _pip(python, "--no-build-isolation", "-e", source)
    where = _check_imports(python, tmp_path / "empty")
    assert where == str(source / "tierwise" / "__init__.py")  # edits take effect in place


# ------------------------------------------------------------------ README Layout table


def _layout_rows() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Layout", 1)[1]
    rows = [ln for ln in section.splitlines() if ln.startswith("| `")]
    assert rows, "README's Layout section has no table rows"
    return [p for ln in rows for p in re.findall(r"`([^`]+/)`", ln.split("|")[1])]


def test_readme_layout_matches_the_tree() -> None:
    listed = _layout_rows()
    missing = [p for p in listed if not (ROOT / p).is_dir()]
    assert not missing, f"README Layout lists folders that do not exist: {missing}"
    need = ["tierwise/", *(f"{p}/" for p in PARTS)]
    need += [
        f"{part}/{sub.name}/"
        for part in PARTS
        for sub in sorted((ROOT / part).iterdir())
        if (sub / "__init__.py").is_file()
    ]
    unlisted = [p for p in need if p not in listed]
    assert not unlisted, f"README Layout does not list these packages: {unlisted}"
