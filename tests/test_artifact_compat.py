"""Compatibility: every committed artifact of every released format keeps loading, forever.

tests/fixtures/artifacts/v1/ was written once by tierwise 0.1.0 (format version 1) with
``save_artifact(path, V1_PAYLOAD, v1_arrays())``. Never regenerate it: when the format changes,
add a migration (router/artifact/_migrations.py) and a new vN/ fixture beside it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from artifact_helpers import forge, read_members

from tierwise.router.artifact import (
    FORMAT_VERSION,
    artifact_info,
    load_artifact,
    register_migration,
)
from tierwise.router.artifact._io import npz_bytes
from tierwise.router.artifact._migrations import MIGRATIONS
from tierwise.router.errors import ArtifactError

FIXTURES = Path(__file__).parent / "fixtures" / "artifacts"

V1_PAYLOAD = {
    "kind": "tierwise-router",
    "embedder": {"name": "sentence-transformers/all-MiniLM-L6-v2", "dimension": 8},
    "text_normalization": {"unicode": "NFC", "strip": True, "max_chars": 4000},
    "predictor": {"name": "ridge", "params": {"alpha": 1.0}},
    "calibration": {"method": "isotonic", "x": [0.0, 0.5, 1.0], "y": [0.02, 0.61, 0.98]},
    "policy": {"name": "cheapest_above", "knob": 0.85},
    "tiers": [
        {"model": "small", "input_usd_per_mtok": 0.1, "output_usd_per_mtok": 0.4},
        {"model": "medium", "input_usd_per_mtok": 0.5, "output_usd_per_mtok": 1.5},
        {"model": "large", "input_usd_per_mtok": 3.0, "output_usd_per_mtok": 15.0},
    ],
    "price_table_version": "fixture-2025-01",
    "training_data": {"fingerprint": "0123456789abcdef" * 4, "n_prompts": 174},
    "test_metrics": {"quality": 0.8125, "cost_usd": 0.0421, "n_test": 52},
}


def v1_arrays() -> dict[str, np.ndarray]:
    return {
        "centroids": (np.arange(48).reshape(6, 8) / 47 - 0.5).astype(np.float16),
        "coef": np.linspace(-1.0, 1.0, 24).reshape(3, 8).astype(np.float32),
        "intercept": np.array([0.1, -0.2, 0.3]),
        "tier_names": np.array(["small", "medium", "large"]),
        "tier_enabled": np.array([True, True, False]),
        "train_counts": np.array([120, 45, 9], dtype=np.int64),
        "threshold": np.array(0.85),
    }


@pytest.mark.parametrize("name", ["router", "router.tierwise"])
def test_committed_v1_fixture_loads(name: str) -> None:
    path = FIXTURES / "v1" / name
    art = load_artifact(path)
    assert art.format_version == 1
    assert art.payload == V1_PAYLOAD
    want = v1_arrays()
    assert set(art.arrays) == set(want)
    for key, arr in want.items():
        assert art.arrays[key].dtype == arr.dtype, key
        np.testing.assert_array_equal(art.arrays[key], arr, err_msg=key)
    info = artifact_info(path)
    assert info["tierwise_version"] == "0.1.0"
    assert info["arrays"]["centroids"] == {"dtype": "<f2", "shape": [6, 8]}


def test_every_format_version_up_to_the_current_one_has_a_fixture() -> None:
    for version in range(1, FORMAT_VERSION + 1):
        assert (FIXTURES / f"v{version}" / "router" / "manifest.json").is_file(), version
        assert (FIXTURES / f"v{version}" / "router.tierwise").is_file(), version


# ---------------------------------------------------------------- the migration registry


def _as_version_0(manifest: dict) -> None:
    """A plausible older layout: the knob sat at the top of the payload, tier flags were int8."""
    manifest["format_version"] = 0
    manifest["payload"]["knob"] = manifest["payload"].pop("policy")["knob"]
    manifest["arrays"]["tier_enabled"]["dtype"] = "|i1"


def _upgrade_0_to_1(manifest: dict, arrays: dict) -> tuple[dict, dict]:
    payload = manifest["payload"]
    payload["policy"] = {"name": "cheapest_above", "knob": payload.pop("knob")}
    manifest["format_version"] = 1
    manifest["arrays"]["tier_enabled"]["dtype"] = "|b1"
    return manifest, {**arrays, "tier_enabled": arrays["tier_enabled"].astype(bool)}


def _copy_fixture(tmp_path: Path) -> Path:
    """The v1 fixture rewritten as a version 0 artifact (hashes and checksum fixed up)."""
    path = tmp_path / "old"
    path.mkdir()
    manifest, _ = read_members(FIXTURES / "v1" / "router")
    (path / "manifest.json").write_text(json.dumps(manifest))
    arrays = {**v1_arrays(), "tier_enabled": np.array([1, 1, 0], dtype=np.int8)}
    forge(path, _as_version_0, {"arrays.npz": npz_bytes(arrays)})
    return path


def test_older_format_is_migrated_by_the_registered_upgrade(tmp_path: Path, monkeypatch) -> None:
    path = _copy_fixture(tmp_path)
    monkeypatch.setitem(MIGRATIONS, 0, _upgrade_0_to_1)
    art = load_artifact(path)
    assert art.format_version == 0  # what was on disk
    assert art.manifest["format_version"] == 1  # what the caller gets
    assert art.payload == V1_PAYLOAD
    assert art.arrays["tier_enabled"].dtype == bool
    np.testing.assert_array_equal(art.arrays["tier_enabled"], [True, True, False])


def test_older_format_without_an_upgrade_is_refused(tmp_path: Path) -> None:
    path = _copy_fixture(tmp_path)
    with pytest.raises(ArtifactError, match=r"format version 0 is older than any this tierwise"):
        load_artifact(path)


def test_a_failing_upgrade_is_reported_as_one_clear_error(tmp_path: Path, monkeypatch) -> None:
    path = _copy_fixture(tmp_path)

    def broken(manifest: dict, arrays: dict) -> tuple[dict, dict]:
        raise KeyError("knob")

    monkeypatch.setitem(MIGRATIONS, 0, broken)
    with pytest.raises(ArtifactError, match=r"upgrading the artifact from format version 0 to 1"):
        load_artifact(path)


def test_an_upgrade_must_produce_a_valid_current_manifest(tmp_path: Path, monkeypatch) -> None:
    path = _copy_fixture(tmp_path)

    def sloppy(manifest: dict, arrays: dict) -> tuple[dict, dict]:
        manifest["format_version"] = 1  # but the top-level `knob` is left in the payload's place
        manifest["legacy"] = True
        return manifest, arrays

    monkeypatch.setitem(MIGRATIONS, 0, sloppy)
    with pytest.raises(ArtifactError, match=r"unknown key `legacy`"):
        load_artifact(path)


def test_registering_two_upgrades_from_one_version_is_an_error(monkeypatch) -> None:
    monkeypatch.setitem(MIGRATIONS, 0, _upgrade_0_to_1)
    with pytest.raises(ValueError, match=r"a migration from artifact format version 0 exists"):
        register_migration(0)(_upgrade_0_to_1)
