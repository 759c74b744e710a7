"""router.artifact: round trips, and every way a stored router can be broken or hostile."""

from __future__ import annotations

import ast
import io
import json
import os
import re
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from artifact_helpers import forge, npz_with, read_members, write_zip

from tierwise.router.artifact import FORMAT_VERSION, artifact_info, load_artifact, save_artifact
from tierwise.router.errors import ArtifactError

PAYLOAD = {
    "embedder": {"name": "all-MiniLM-L6-v2", "dimension": 384, "normalize": True},
    "text_normalization": {"lowercase": False, "strip": True, "max_chars": 8000},
    "predictor": {"name": "knn", "params": {"k": 25, "weights": "distance"}},
    "calibration": {"method": "isotonic", "x": [0.0, 0.25, 1.0], "y": [0.05, 0.3, 0.97]},
    "policy": {"name": "cheapest_above", "knob": 0.8125},
    "tiers": [
        {"model": "small-model", "input_per_mtok": 0.15, "output_per_mtok": 0.6},
        {"model": "große-model ✓", "input_per_mtok": 2.5, "output_per_mtok": 10.0},
    ],
    "price_table_version": "2025-06-01",
    "data_fingerprint": "ab" * 32,
    "metrics": {"test_quality": 0.1 + 0.2, "tiny": 1e-300, "count": 2**53 + 1, "none": None},
}


def sample_arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    return {
        "embeddings": rng.standard_normal((50, 384)).astype(np.float16),
        "coef": rng.standard_normal((3, 384)).astype(np.float32),
        "big_endian": np.arange(5, dtype=">f8"),
        "fortran": np.asfortranarray(np.arange(12, dtype=np.int16).reshape(3, 4)),
        "labels": np.array(["small", "große ✓", ""]),
        "mask": np.array([True, False, True]),
        "counts": np.array([0, 2**40, -1], dtype=np.int64),
        "bytes8": np.arange(4, dtype=np.uint8),
        "cplx": np.array([1 + 2j], dtype=np.complex64),
        "threshold": np.array(0.75),
        "empty": np.zeros((0, 384), dtype=np.float16),
    }


def assert_same_arrays(got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> None:
    assert set(got) == set(want)
    for name, arr in want.items():
        assert got[name].dtype == arr.dtype, name
        assert got[name].shape == arr.shape, name
        np.testing.assert_array_equal(got[name], arr, err_msg=name)


@pytest.fixture(params=["dir", "file"])
def saved(request, tmp_path: Path) -> Path:
    path = tmp_path / ("router" if request.param == "dir" else "router.tierwise")
    return save_artifact(path, PAYLOAD, sample_arrays())


# ---------------------------------------------------------------- round trips


def test_round_trip_gives_identical_payload_and_arrays(saved: Path) -> None:
    art = load_artifact(saved)
    assert art.payload == PAYLOAD
    assert_same_arrays(art.arrays, sample_arrays())
    assert art.format_version == FORMAT_VERSION == 1
    assert art.manifest["tierwise_version"] == __import__("router").__version__
    assert art.manifest["created_at"].endswith("+00:00")
    assert art.path == saved
    assert saved.is_dir() == (saved.suffix != ".tierwise")


def test_single_file_layout_is_a_small_deterministic_zip(tmp_path: Path) -> None:
    a = save_artifact(tmp_path / "a.tierwise", PAYLOAD, sample_arrays())
    b = save_artifact(tmp_path / "b", PAYLOAD, sample_arrays(), single_file=True)
    with zipfile.ZipFile(a) as za, zipfile.ZipFile(b) as zb:
        assert za.namelist() == ["manifest.json", "arrays.npz"]
        assert za.read("arrays.npz") == zb.read("arrays.npz")  # same arrays, same bytes
        assert {i.date_time for i in za.infolist()} == {(1980, 1, 1, 0, 0, 0)}
    raw = sum(v.nbytes for v in sample_arrays().values())
    assert b.is_file() and a.stat().st_size < raw + 8000  # headers + manifest stay small


def test_single_file_false_keeps_a_directory_even_with_the_suffix(tmp_path: Path) -> None:
    path = save_artifact(tmp_path / "x.tierwise", PAYLOAD, {}, single_file=False)
    assert path.is_dir() and (path / "manifest.json").is_file()
    assert load_artifact(path).arrays == {}


def test_numpy_scalars_and_tuples_in_payload_become_json(tmp_path: Path) -> None:
    payload = {"k": np.int64(5), "x": np.float32(0.5), "flag": np.bool_(True), "pair": (1, "a")}
    art = load_artifact(save_artifact(tmp_path / "a", payload, {}))
    assert art.payload == {"k": 5, "x": 0.5, "flag": True, "pair": [1, "a"]}
    assert type(art.payload["k"]) is int and type(art.payload["flag"]) is bool


def test_saving_again_replaces_an_existing_artifact(saved: Path) -> None:
    save_artifact(saved, {"v": 2}, {"a": np.ones(3)})
    art = load_artifact(saved)
    assert art.payload == {"v": 2}
    assert_same_arrays(art.arrays, {"a": np.ones(3)})


def test_artifact_info_summarizes_without_loading_arrays(saved: Path) -> None:
    info = artifact_info(saved)
    assert info["format_version"] == 1
    assert info["kind"] == ("directory" if saved.is_dir() else "single_file")
    assert info["payload"] == PAYLOAD
    assert info["arrays"]["embeddings"] == {"dtype": "<f2", "shape": [50, 384]}
    manifest, members = read_members(saved)
    assert info["checksum"] == manifest["checksum"]
    assert info["files"]["arrays.npz"]["size"] == len(members["arrays.npz"])
    assert info["total_bytes"] > len(members["arrays.npz"])
    json.dumps(info)  # printable by a CLI as-is


# ---------------------------------------------------------------- refused at save


@pytest.mark.parametrize(
    ("arrays", "match"),
    [
        ({"o": np.array([{"a": 1}, None], dtype=object)}, r"`o` .*got object.*never store pickled"),
        ({"t": np.array(["2024-01-01"], dtype="datetime64[D]")}, r"`t` .*datetime64"),
        ({"s": np.zeros(2, dtype=[("a", "<f4"), ("b", "<i4")])}, r"`s` .*kind 'V'"),
        ({"b": np.array([b"raw"])}, r"`b` .*got \|S3"),
        ({"../up": np.ones(2)}, r"array name must be .*got '\.\./up'"),
        ({"": np.ones(2)}, r"array name must be .*got ''"),
    ],
)
def test_save_refuses_unsafe_arrays(tmp_path: Path, arrays, match: str) -> None:
    with pytest.raises(ArtifactError, match=match):
        save_artifact(tmp_path / "a", {}, arrays)
    assert not (tmp_path / "a").exists()


@pytest.mark.parametrize(
    ("payload", "match"),
    [
        ({"m": {"auc": float("nan")}}, r"`payload\.m\.auc` must be a finite number, got nan"),
        ({"x": [1, float("inf")]}, r"`payload\.x\[1\]` must be a finite number, got inf"),
        ({"w": np.ones(3)}, r"`payload\.w` is a numpy array; pass it in `arrays`"),
        ({"p": Path("/tmp")}, r"`payload\.p` must be JSON-safe .* got PosixPath"),
        ({1: "a"}, r"`payload` keys must be strings, got 1"),
    ],
)
def test_save_refuses_payloads_that_are_not_json(tmp_path: Path, payload, match: str) -> None:
    with pytest.raises(ArtifactError, match=match):
        save_artifact(tmp_path / "a", payload, {})


def test_save_refuses_to_overwrite_what_is_not_an_artifact(tmp_path: Path) -> None:
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("keep me")
    with pytest.raises(ArtifactError, match=r"non-empty directory without manifest\.json"):
        save_artifact(tmp_path / "notes", {}, {})
    (tmp_path / "thesis.tierwise").write_text("keep me too")
    with pytest.raises(ArtifactError, match=r"exists and is not a tierwise artifact; refusing"):
        save_artifact(tmp_path / "thesis.tierwise", {}, {})
    assert (tmp_path / "notes" / "todo.txt").read_text() == "keep me"
    assert (tmp_path / "thesis.tierwise").read_text() == "keep me too"


# ---------------------------------------------------------------- tampering and corruption


def test_tampered_array_bytes_are_refused(saved: Path) -> None:
    manifest, members = read_members(saved)
    npz = bytearray(members["arrays.npz"])
    npz[len(npz) // 2] ^= 0x01  # same size, one bit flipped inside the embeddings
    if saved.is_dir():
        (saved / "arrays.npz").write_bytes(bytes(npz))
    else:
        write_zip(
            saved, [("manifest.json", json.dumps(manifest).encode()), ("arrays.npz", bytes(npz))]
        )
    with pytest.raises(ArtifactError, match=r"arrays\.npz.* does not match the sha256"):
        load_artifact(saved)


def test_edited_manifest_payload_is_refused(saved: Path) -> None:
    manifest, members = read_members(saved)
    manifest["payload"]["policy"]["knob"] = 0.5  # the checksum is left as it was
    data = json.dumps(manifest).encode()
    if saved.is_dir():
        (saved / "manifest.json").write_bytes(data)
    else:
        write_zip(saved, [("manifest.json", data), ("arrays.npz", members["arrays.npz"])])
    with pytest.raises(ArtifactError, match=r"manifest\.json.* was modified after it was written"):
        load_artifact(saved)
    with pytest.raises(ArtifactError, match=r"was modified after it was written"):
        artifact_info(saved)


def test_reformatting_the_manifest_is_not_an_edit(tmp_path: Path) -> None:
    path = save_artifact(tmp_path / "a", PAYLOAD, {})
    manifest = json.loads((path / "manifest.json").read_text())
    (path / "manifest.json").write_text(json.dumps(manifest, indent=7, sort_keys=False))
    assert load_artifact(path).payload == PAYLOAD


def test_truncated_npz_is_refused(tmp_path: Path) -> None:
    path = save_artifact(tmp_path / "a", PAYLOAD, sample_arrays())
    npz = path / "arrays.npz"
    npz.write_bytes(npz.read_bytes()[:-100])
    with pytest.raises(ArtifactError, match=r"arrays\.npz is \d+ bytes but the manifest says"):
        load_artifact(path)
    with pytest.raises(ArtifactError, match=r"arrays\.npz is not the size the manifest says"):
        artifact_info(path)


def test_truncated_npz_with_forged_hashes_is_still_refused(saved: Path) -> None:
    _, members = read_members(saved)
    forge(saved, members={"arrays.npz": members["arrays.npz"][:-100]})
    with pytest.raises(ArtifactError, match=r"not a readable \.npz archive"):
        load_artifact(saved)


@pytest.mark.parametrize("name", ["arrays.npz", "manifest.json"])
def test_missing_file_is_refused(tmp_path: Path, name: str) -> None:
    path = save_artifact(tmp_path / "a", PAYLOAD, sample_arrays())
    (path / name).unlink()
    with pytest.raises(ArtifactError, match=re.escape(name) + " is missing"):
        load_artifact(path)


def test_unlisted_file_in_a_directory_is_ignored(tmp_path: Path) -> None:
    path = save_artifact(tmp_path / "a", PAYLOAD, sample_arrays())
    (path / "README.md").write_text("notes about this router")
    planted = io.BytesIO()
    np.savez(planted, embeddings=np.zeros((50, 384), dtype=np.float16))
    (path / "extra.npz").write_bytes(planted.getvalue())
    art = load_artifact(path)
    assert_same_arrays(art.arrays, sample_arrays())  # the planted arrays had no effect


def test_unlisted_member_in_a_single_file_is_refused(tmp_path: Path) -> None:
    path = save_artifact(tmp_path / "a.tierwise", PAYLOAD, sample_arrays())
    with zipfile.ZipFile(path, "a") as zf:
        zf.writestr("extra.npz", b"anything")
    with pytest.raises(
        ArtifactError, match=r"members not listed in its manifest: \['extra\.npz'\]"
    ):
        load_artifact(path)


def test_future_format_version_is_refused(saved: Path) -> None:
    forge(saved, lambda m: m.update(format_version=2, new_field={"x": 1}))
    msg = (
        r"artifact format version 2 is newer than this tierwise \(supports ≤ 1\); upgrade tierwise"
    )
    with pytest.raises(ArtifactError, match=msg):
        load_artifact(saved)
    with pytest.raises(ArtifactError, match=msg):
        artifact_info(saved)


def test_unknown_manifest_key_is_refused_even_with_a_valid_checksum(saved: Path) -> None:
    forge(saved, lambda m: m.update(signed_by="someone"))
    with pytest.raises(ArtifactError, match=r"unknown key `signed_by`"):
        load_artifact(saved)


def test_manifest_array_spec_must_match_the_arrays(saved: Path) -> None:
    forge(saved, lambda m: m["arrays"]["mask"].update(shape=[4]))
    with pytest.raises(ArtifactError, match=r"array `mask` .* is \|b1 \[3\] but the manifest says"):
        load_artifact(saved)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        (b"{not json", r"manifest\.json is not valid JSON"),
        (b'{"format_version": 1, "format_version": 1}', r"not valid JSON \(duplicate key"),
        (b'{"format_version": NaN}', r"not valid JSON \(NaN is not valid JSON"),
        (b"[1, 2]", r"must be a JSON object with an integer `format_version`, got None"),
        (b'{"format_version": "1"}', r"integer `format_version`, got '1'"),
    ],
)
def test_malformed_manifest_is_refused(tmp_path: Path, text: bytes, match: str) -> None:
    path = save_artifact(tmp_path / "a", {}, {})
    (path / "manifest.json").write_bytes(text)
    with pytest.raises(ArtifactError, match=match):
        load_artifact(path)


# ---------------------------------------------------------------- hostile files


class _RunsCode:
    """Unpickling this object creates a directory: proof that code ran."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_pickle_inside_npz_is_refused_and_never_runs(saved: Path, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    evil = np.array([_RunsCode(str(marker))], dtype=object)
    npy = io.BytesIO()
    np.save(npy, evil, allow_pickle=True)
    npz = npz_with({"mask.npy": npy.getvalue()})
    # Hashes, sizes and checksum all match: only the pickle refusal stands in the way.
    forge(
        saved,
        lambda m: m.update(arrays={"mask": {"dtype": "|O", "shape": [1]}}),
        {"arrays.npz": npz},
    )
    with pytest.raises(ArtifactError, match=r"array `mask` .* is a pickled object array; refusing"):
        load_artifact(saved)
    assert not marker.exists()


def test_structured_array_inside_npz_is_refused_by_the_dtype_allow_list(saved: Path) -> None:
    npy = io.BytesIO()
    np.save(npy, np.zeros(3, dtype=[("a", "<f4")]), allow_pickle=False)
    forge(
        saved,
        lambda m: m.update(arrays={"s": {"dtype": "|V4", "shape": [3]}}),
        {"arrays.npz": npz_with({"s.npy": npy.getvalue()})},
    )
    with pytest.raises(
        ArtifactError, match=r"array `s` .* must have a numeric, bool or fixed-width"
    ):
        load_artifact(saved)


@pytest.mark.parametrize("bad", ["../evil.txt", "/etc/evil", "sub/../../evil", "a\\..\\evil"])
def test_zip_path_traversal_is_refused(tmp_path: Path, bad: str) -> None:
    path = save_artifact(tmp_path / "a.tierwise", PAYLOAD, {})
    with zipfile.ZipFile(path, "a") as zf:
        zf.writestr(zipfile.ZipInfo(bad), b"owned")
    with pytest.raises(ArtifactError, match=r"unsafe member name"):
        load_artifact(path)
    assert not (tmp_path / "evil.txt").exists()


def test_npz_member_path_traversal_is_refused(saved: Path) -> None:
    npy = io.BytesIO()
    np.save(npy, np.ones(2))
    forge(saved, members={"arrays.npz": npz_with({"../x.npy": npy.getvalue()})})
    with pytest.raises(ArtifactError, match=r"arrays\.npz.*unsafe member name '\.\./x\.npy'"):
        load_artifact(saved)


def test_zip_bomb_by_compression_ratio_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bomb.tierwise"
    write_zip(
        path, [("manifest.json", b"{}"), ("arrays.npz", bytes(20 << 20))], zipfile.ZIP_DEFLATED
    )
    with pytest.raises(ArtifactError, match=r"member 'arrays\.npz' expands \d+× .* zip bomb"):
        load_artifact(path)


def test_zip_bomb_by_declared_size_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bomb.tierwise"
    write_zip(path, [("manifest.json", b"{}"), ("arrays.npz", b"x" * 100)])
    data = bytearray(path.read_bytes())
    # Central directory entry of arrays.npz: uncompressed size is at offset 24 of its header.
    cd = data.rindex(b"PK\x01\x02")
    struct.pack_into("<I", data, cd + 24, 3 << 30)
    path.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match=r"'arrays\.npz' declares 3\.0 GiB uncompressed"):
        load_artifact(path)


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda p: p, r"artifact .*nowhere does not exist"),
        (lambda p: (p.write_text("hello"), p)[1], r"not a tierwise artifact \(neither a directory"),
        (lambda p: (p.mkdir(), p)[1], r"manifest\.json is missing"),
        (
            lambda p: (write_zip(p, [("model.bin", b"0")]), p)[1],
            r"member manifest\.json\) is missing",
        ),
    ],
    ids=["missing", "text-file", "empty-dir", "other-zip"],
)
def test_not_an_artifact_is_refused(tmp_path: Path, make, match: str) -> None:
    path = make(tmp_path / "nowhere")
    with pytest.raises(ArtifactError, match=match):
        load_artifact(path)
    with pytest.raises(ArtifactError, match=match):
        artifact_info(path)


def test_passing_the_manifest_instead_of_its_directory_says_so(tmp_path: Path) -> None:
    path = save_artifact(tmp_path / "a", PAYLOAD, {})
    with pytest.raises(ArtifactError, match=r"is the manifest inside an artifact; pass its dir"):
        load_artifact(path / "manifest.json")


def test_artifact_modules_import_only_stdlib_numpy_and_pydantic() -> None:
    """The production loader must not drag in anything beyond the core install."""
    root = Path(__file__).resolve().parents[1]
    for name in ("__init__.py", "_io.py", "_manifest.py", "_migrations.py", "_store.py"):
        tree = ast.parse((root / "router" / "artifact" / name).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                mods = (
                    [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module]
                )
                for mod in mods:
                    top = (mod or "").split(".")[0]
                    assert (
                        top in sys.stdlib_module_names
                        or top in {"numpy", "pydantic"}
                        or (mod or "").startswith("tierwise.router")
                    ), mod
    code = (
        "import json, sys; before = set(sys.modules)\n"
        "import tierwise.router.artifact\n"
        "new = {m.split('.')[0] for m in set(sys.modules) - before}\n"
        "print(json.dumps(sorted(m for m in new if m not in sys.stdlib_module_names)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True
    )
    # numpy's and pydantic's own helpers; yaml arrives only through router.schema (core dependency).
    allowed = {
        "numpy",
        "cython_runtime",
        "pydantic",
        "pydantic_core",
        "typing_extensions",
        "annotated_types",
        "typing_inspection",
        "tierwise",
        "yaml",
    }
    loaded = {m for m in json.loads(out.stdout) if not m.startswith("_")}
    assert loaded <= allowed, loaded - allowed
