"""Issue 10: artifact loading checks cheap things first — file kind and size, format version
range, JSON depth, declared array sizes, metadata against arrays — and refuses in one line.

Every hostile file is built here; hashes and checksums are recomputed as a forger would
(tests/artifact_helpers.py), so only the new checks stand between the file and the loader.
"""

from __future__ import annotations

import io
import json
import os
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from artifact_helpers import forge, npz_with, read_members, sealed, write_zip
from runtime_helpers import hashing_artifact

from tierwise.router.artifact import load_artifact
from tierwise.router.errors import ArtifactError


@pytest.fixture(scope="module")
def router_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return hashing_artifact(tmp_path_factory.mktemp("hard-art") / "r.tierwise")


@pytest.fixture()
def copy(router_file: Path, tmp_path: Path) -> Path:
    path = tmp_path / "copy.tierwise"
    path.write_bytes(router_file.read_bytes())
    return path


def one_line(err: pytest.ExceptionInfo[ArtifactError]) -> str:
    text = str(err.value)
    assert "\n" not in text and len(text) < 600
    return text


@pytest.mark.parametrize("version", [-(10**12), 0, -1])
def test_a_wild_format_version_is_refused_before_any_migration_loop(
    copy: Path, version: int
) -> None:
    forge(copy, lambda m: m.update(format_version=version))
    t0 = time.perf_counter()
    want = rf"format version {version} is older than any this tierwise can read \(`format"
    with pytest.raises(ArtifactError, match=want):
        load_artifact(copy)
    assert time.perf_counter() - t0 < 1.0


def test_a_deeply_nested_manifest_is_one_line(tmp_path: Path) -> None:
    for depth in (200_000, 100):
        path = tmp_path / f"deep{depth}.tierwise"
        nested = b"[" * depth + b"]" * depth
        write_zip(path, [("manifest.json", b'{"format_version": 1, "x": ' + nested + b"}")])
        with pytest.raises(ArtifactError, match=r"nests JSON more than 64 levels deep") as err:
            load_artifact(path)
        one_line(err)


def test_a_npy_header_declaring_terabytes_is_refused_before_allocating(copy: Path) -> None:
    # A valid .npy header declaring 10**12 float64 values, followed by just one value.
    header = {"descr": "<f8", "fortran_order": False, "shape": (10**12,)}
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, header)
    huge = buf.getvalue() + np.zeros(1, dtype="<f8").tobytes()
    npz = npz_with({"policy.knob_grid.npy": huge})
    forge(copy, lambda m: m.update(arrays={"policy.knob_grid": {"dtype": "<f8",
                                                                "shape": [10**12]}}),
          {"arrays.npz": npz})  # fmt: skip
    with pytest.raises(ArtifactError, match=r"array `policy.knob_grid` .* declares shape "
                                            r"\(1000000000000,\) of float64 \(7450.6 GiB\) but "
                                            r"holds 8 bytes of data"):  # fmt: skip
        load_artifact(copy)


def test_devices_fifos_and_links_to_them_are_never_opened(router_file: Path, tmp_path: Path):
    with pytest.raises(ArtifactError, match="artifact /dev/zero must be a regular file, got a "
                                            "character device"):  # fmt: skip
        load_artifact("/dev/zero")
    fifo = tmp_path / "pipe.tierwise"
    os.mkfifo(fifo)  # opening it for reading would block forever
    with pytest.raises(ArtifactError, match=r"must be a regular file, got a FIFO \(named pipe\)"):
        load_artifact(fifo)
    link = tmp_path / "zero.tierwise"
    link.symlink_to("/dev/zero")
    with pytest.raises(ArtifactError, match="must be a regular file, got a character device"):
        load_artifact(link)
    # A directory artifact whose arrays.npz is a FIFO.
    manifest, members = read_members(router_file)
    folder = tmp_path / "dir"
    folder.mkdir()
    (folder / "manifest.json").write_bytes(sealed(manifest, members))
    os.mkfifo(folder / "arrays.npz")
    with pytest.raises(ArtifactError, match=r"arrays\.npz must be a regular file, got a FIFO"):
        load_artifact(folder)


def test_json_depth_counts_without_recursion() -> None:
    from tierwise.router.artifact._manifest import json_depth

    deep: list = []
    for _ in range(5_000):
        deep = [deep]
    assert json_depth(deep) == 5_001
    assert json_depth({"a": [1, {"b": 2}]}) == 3
    assert json_depth(json.loads("3")) == 0


def _edit_payload(key: str, value_of: object) -> Callable[[dict], None]:
    def edit(m: dict) -> None:
        p = m["payload"]
        target, leaf = (p["embedder"], "dim") if key == "dim" else (p, key)
        target[leaf] = value_of(target[leaf]) if callable(value_of) else value_of

    return edit


@pytest.mark.parametrize(
    ("key", "change", "match"),
    [
        ("models", lambda ms: ms[1:], r"predictor and cost model give 3 and 3 columns but the "
                                      r"manifest lists 2 models \['mid', 'big'\]"),
        ("models", lambda ms: [*ms, "xl"], r"give 3 and 3 columns but the manifest lists 4"),
        ("models", lambda ms: ms[:-1], r"reference_model 'big' is not one of the models"),
        ("models", lambda ms: [ms[0]] * 3, r"`payload.models` must name each model once"),
        ("models", [], r"`payload.models` must be a non-empty list of model names, got \[\]"),
        ("dim", lambda d: d * 2, r"do not fit the manifest's 3 models and 128-dim embeddings "
                                 r"\(DataError: `X` has 128 features"),
    ],
)  # fmt: skip
def test_metadata_that_disagrees_with_the_arrays_is_refused_at_load(
    copy: Path, key: str, change: object, match: str
) -> None:
    from tierwise.router.core import Router

    forge(copy, _edit_payload(key, change))
    with pytest.raises(ArtifactError, match=match) as err:
        Router.load(str(copy))
    one_line(err)


def test_a_knob_grid_that_disagrees_with_its_curve_is_refused(copy: Path) -> None:
    from tierwise.router.core import Router

    _, members = read_members(copy)
    with zipfile.ZipFile(io.BytesIO(members["arrays.npz"])) as zf:
        arrays = {n: zf.read(n) for n in zf.namelist()}
    grid = np.load(io.BytesIO(arrays["policy.knob_grid.npy"]))[:-1]
    buf = io.BytesIO()
    np.save(buf, grid)
    arrays["policy.knob_grid.npy"] = buf.getvalue()
    edit = lambda m: m["arrays"]["policy.knob_grid"].update(shape=list(grid.shape))  # noqa: E731
    forge(copy, edit, {"arrays.npz": npz_with(arrays)})
    with pytest.raises(ArtifactError, match=r"`policy.calibration_curve` must have shape "
                                            rf"\({len(grid)}, 2\) to match"):  # fmt: skip
        Router.load(str(copy))
