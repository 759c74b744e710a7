"""Per-tier calibration: monotone, fixes a miscalibrated score, exports and reloads exactly."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tierwise.router.calibration import (
    METHODS,
    Calibrator,
    brier_score,
    expected_calibration_error,
)
from tierwise.router.errors import ArtifactError, ConfigError, DataError
from tierwise.router.predictors import NotFittedError

ROOT = Path(__file__).resolve().parents[1]


def miscalibrated(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Tier 0 is overconfident (score = sqrt p), tier 1 underconfident (score = p²)."""
    rng = np.random.default_rng(seed)
    true_p = rng.uniform(0.02, 0.98, size=(n, 2))
    Y = (rng.random((n, 2)) < true_p).astype(np.float64)
    P = np.column_stack([np.sqrt(true_p[:, 0]), true_p[:, 1] ** 2])
    return P, Y


@pytest.mark.parametrize("method", ["isotonic", "centered_isotonic", "platt"])
def test_calibration_improves_brier_and_ece_on_held_out_data(method: str) -> None:
    P_fit, Y_fit = miscalibrated(3000, 0)
    P_new, Y_new = miscalibrated(3000, 1)
    cal = Calibrator(method).fit(P_fit, Y_fit)
    Pc = cal.transform(P_new)
    assert brier_score(Pc, Y_new) < brier_score(P_new, Y_new) - 0.005
    assert expected_calibration_error(Pc, Y_new) < 0.04 < expected_calibration_error(P_new, Y_new)


@pytest.mark.parametrize("method", ["isotonic", "centered_isotonic", "platt"])
def test_maps_are_monotone_per_tier(method: str) -> None:
    P, Y = miscalibrated(500, 2)
    cal = Calibrator(method).fit(P, Y)
    grid = np.repeat(np.linspace(0, 1, 201)[:, None], 2, axis=1)
    out = cal.transform(grid)
    assert np.all(np.diff(out, axis=0) >= -1e-12)
    assert np.all((out >= 0) & (out <= 1))


def test_centered_isotonic_keeps_more_distinct_values_than_isotonic() -> None:
    P, Y = miscalibrated(500, 3)
    grid = np.repeat(np.linspace(0.05, 0.95, 200)[:, None], 2, axis=1)
    steps = Calibrator("isotonic").fit(P, Y).transform(grid)
    centred = Calibrator("centered_isotonic").fit(P, Y).transform(grid)
    assert len(np.unique(centred[:, 0])) > 2 * len(np.unique(steps[:, 0]))


def test_none_is_identity_and_unknown_labels_are_masked() -> None:
    P, Y = miscalibrated(400, 4)
    np.testing.assert_array_equal(Calibrator("none").fit(P, Y).transform(P), P)
    Yn = Y.copy()
    Yn[::2, 0] = np.nan
    with_nan = Calibrator("platt").fit(P, Yn)
    alone = Calibrator("platt").fit(P[1::2, :1], Y[1::2, :1])
    np.testing.assert_allclose(with_nan.transform(P)[:, 0], alone.transform(P[:, :1])[:, 0])


def test_tier_with_too_few_labels_keeps_identity() -> None:
    P, Y = miscalibrated(300, 5)
    Y[5:, 1] = np.nan  # only 5 labels for tier 1
    cal = Calibrator("isotonic", min_samples=10).fit(P, Y)
    assert cal.methods_ == ["isotonic", "none"]
    np.testing.assert_array_equal(cal.transform(P)[:, 1], P[:, 1])
    Y[:, 1] = np.nan  # no labels at all is not an error here either
    assert Calibrator("platt").fit(P, Y).methods_ == ["platt", "none"]


def test_one_class_tier_stays_finite() -> None:
    P, Y = miscalibrated(300, 6)
    Y[:, 0] = 1.0
    out = Calibrator("platt").fit(P, Y).transform(P)
    assert np.all(np.isfinite(out)) and out[:, 0].min() > 0.9 and out[:, 0].max() < 1.0
    iso = Calibrator("isotonic").fit(P, Y).transform(P)
    assert np.all(iso[:, 0] == 1.0)


@pytest.mark.parametrize("method", METHODS)
def test_state_round_trip_is_exact(method: str, tmp_path) -> None:
    P, Y = miscalibrated(400, 7)
    cal = Calibrator(method).fit(P, Y)
    params, arrays = cal.get_state()
    np.savez(tmp_path / "c.npz", **arrays)
    with np.load(tmp_path / "c.npz") as z:
        loaded = {k: z[k] for k in z.files}
    twin = Calibrator.from_state(json.loads(json.dumps(params)), loaded)
    np.testing.assert_array_equal(twin.transform(P), cal.transform(P))


def test_transform_from_state_never_imports_sklearn(tmp_path) -> None:
    P, Y = miscalibrated(400, 8)
    cal = Calibrator("isotonic").fit(P, Y)
    params, arrays = cal.get_state()
    (tmp_path / "p.json").write_text(json.dumps(params))
    np.savez(tmp_path / "a.npz", **arrays)
    np.save(tmp_path / "P.npy", P)
    np.save(tmp_path / "expected.npy", cal.transform(P))
    code = f"""
import json, sys
import numpy as np
from tierwise.router.calibration import Calibrator
d = {str(tmp_path)!r}
with np.load(d + "/a.npz") as z:
    arrays = {{k: z[k] for k in z.files}}
cal = Calibrator.from_state(json.load(open(d + "/p.json")), arrays)
assert np.array_equal(cal.transform(np.load(d + "/P.npy")), np.load(d + "/expected.npy"))
assert "sklearn" not in sys.modules and "scipy" not in sys.modules
"""
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_bad_inputs_and_states_raise_clear_errors() -> None:
    P, Y = miscalibrated(100, 9)
    with pytest.raises(ConfigError, match=r"`calibration.method` must be one of \['isotonic'"):
        Calibrator("beta").fit(P, Y)
    with pytest.raises(NotFittedError, match=r"not fitted yet"):
        Calibrator().transform(P)
    bad = P.copy()
    bad[4, 1] = 1.5
    with pytest.raises(DataError, match=r"probabilities in \[0, 1\], got 1.5 at row 4, column 1"):
        Calibrator().fit(bad, Y)
    with pytest.raises(DataError, match=r"`Y` must have the shape of `P`"):
        Calibrator().fit(P, Y[:50])
    cal = Calibrator("isotonic").fit(P, Y)
    with pytest.raises(DataError, match=r"must have 2 model columns, got 1"):
        cal.transform(P[:, :1])
    params, arrays = cal.get_state()
    with pytest.raises(ArtifactError, match=r"incomplete or invalid"):
        Calibrator.from_state(params, {k: v for k, v in arrays.items() if k != "offsets"})
    broken = dict(arrays, breaks_y=arrays["breaks_y"][:-1])
    with pytest.raises(ArtifactError, match=r"inconsistent"):
        Calibrator.from_state(params, broken)
