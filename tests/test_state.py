"""router.state: one get_state/from_state (format check, error wrapping) for every fitted part."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tierwise.router.calibration import Calibrator
from tierwise.router.errors import ArtifactError
from tierwise.router.expected_cost import ExpectedCostModel
from tierwise.router.length import OutputLengthModel
from tierwise.router.predictors import get_predictor
from tierwise.router.state import STATE_FORMAT, StateExport

MODELS = ("small", "large")


def _fitted() -> dict[str, StateExport]:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 6))
    Y = (rng.uniform(size=(40, 2)) < [0.4, 0.8]).astype(float)
    tokens = rng.integers(5, 200, size=(40, 2)).astype(float)
    chars = rng.integers(20, 400, size=40).astype(float)
    cost = np.stack([chars * 1e-6, chars * 1e-5], axis=1)
    return {
        "predictor 'logreg'": get_predictor("logreg").fit(X, Y),
        "calibrator": Calibrator("platt").fit(rng.uniform(size=(40, 2)), Y),
        "length-model": OutputLengthModel().fit(X, tokens),
        "expected-cost model": ExpectedCostModel().fit(
            X, chars, cost, MODELS, output_tokens=tokens
        ),
    }


@pytest.mark.parametrize("label", list(_fitted()))
def test_every_part_round_trips_through_json_and_npz_and_checks_its_format(label: str) -> None:
    obj = _fitted()[label]
    assert isinstance(obj, StateExport)
    params, arrays = obj.get_state()
    assert params["format"] == STATE_FORMAT
    twin = type(obj).from_state(json.loads(json.dumps(params)), arrays)
    assert json.dumps(twin.get_state()[0], sort_keys=True) == json.dumps(params, sort_keys=True)
    with pytest.raises(ArtifactError, match=rf"^{label} state format must be 1, got 2; re-export"):
        type(obj).from_state({**params, "format": 2}, arrays)
    with pytest.raises(ArtifactError, match=rf"^{label} state must be a JSON object, got list"):
        type(obj).from_state([], arrays)  # type: ignore[arg-type]
    incomplete = {k: v for k, v in params.items() if k in ("format",)}
    with pytest.raises(ArtifactError, match=rf"^{label} state is incomplete or invalid: KeyError"):
        type(obj).from_state(incomplete, arrays)


def test_only_the_expected_cost_model_reads_states_saved_without_a_format() -> None:
    """Artifacts saved before router.state kept no format in the cost model's state."""
    parts = _fitted()
    for label, obj in parts.items():
        params, arrays = obj.get_state()
        legacy = {k: v for k, v in params.items() if k != "format"}
        if label == "expected-cost model":
            assert type(obj).from_state(legacy, arrays).get_state()[0] == params
        else:
            with pytest.raises(ArtifactError, match=r"state format must be 1, got None"):
                type(obj).from_state(legacy, arrays)
