"""compare(): rows, table, JSON, MLflow metrics, plot, and clear errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tierwise.eval.dataset import RoutingDataset
from tierwise.eval.reporting import EvaluationConfig, compare, compare_dataset
from tierwise.router.errors import ConfigError, DataError
from tierwise.router.schema import parse_model

MODELS = ["small", "medium", "large"]


def _data(n: int = 40, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    q = (rng.random((n, 3)) < [0.5, 0.65, 0.85]).astype(float)
    c = rng.uniform(0.8, 1.2, (n, 3)) * [0.001, 0.004, 0.02]
    return q, c


def test_every_baseline_is_reported_beside_the_policy():
    q, c = _data()
    sweep = np.stack([np.full(40, 0), np.where(q[:, 0] == 1, 0, 2), np.full(40, 2)])
    rep = compare(q, c, MODELS, {"cheat": sweep}, EvaluationConfig(bootstrap_samples=50))
    names = [r.name for r in rep.rows]
    assert names[:2] == ["cheat", "random @ cheat"]
    assert set(MODELS) <= set(names) and names[-2:] == ["zero router", "oracle"]
    # Default operating point: the highest-quality knob row (the cheat: small if it succeeds).
    cheat = rep.row("cheat")
    rows = np.arange(40)
    assert cheat.quality == pytest.approx(q[rows, sweep[1]].mean())
    assert cheat.cost_per_1k == pytest.approx(1000 * c[rows, sweep[1]].mean())
    # Reference = best single model (large): % columns are relative to it.
    assert rep.reference == "large"
    assert cheat.pct_ref_cost == pytest.approx(100 * c[rows, sweep[1]].mean() / c[:, 2].mean())
    # The cheat sees the labels: it beats the zero router but not the oracle.
    assert 0 < cheat.gap_closed <= 1
    # random @ cheat matches the cheat's cost at every knob (up to which prompts moved).
    rnd = np.array(rep.row("random @ cheat").points)
    np.testing.assert_allclose(rnd[:, 0], np.array(cheat.points)[:, 0], rtol=0.25)


def test_operating_points_choose_the_reported_row():
    q, c = _data()
    sweep = np.stack([np.full(40, 0), np.full(40, 2)])
    rep = compare(
        q, c, MODELS, {"p": sweep}, EvaluationConfig(bootstrap_samples=0), operating_points={"p": 0}
    )
    assert rep.row("p").quality == pytest.approx(q[:, 0].mean())
    with pytest.raises(
        ConfigError, match=r"`operating_points\['p'\]` must be a knob row in \[0, 1\]"
    ):
        compare(q, c, MODELS, {"p": sweep}, operating_points={"p": 5})


def test_table_json_and_metrics():
    q, c = _data()
    rep = compare(q, c, MODELS, None, EvaluationConfig(bootstrap_samples=30, quality_targets=[0.9]))
    table = rep.table()
    for text in (
        "zero router",
        "oracle",
        "random",
        "large (ref)",
        "cost@90%",
        "AIQ",
        "30 resamples",
    ):
        assert text in table
    assert "APGR" not in table  # three models: no two-model metrics
    payload = json.loads(json.dumps(rep.to_dict(), allow_nan=False))
    assert payload["reference"] == "large" and payload["n_prompts"] == 40
    oracle = next(r for r in payload["rows"] if r["name"] == "oracle")
    assert oracle["gap_closed"] == 1.0 and oracle["ci"]["aiq"]["low"] <= oracle["aiq"]
    small = next(r for r in payload["rows"] if r["name"] == "small")
    assert small["aiq"] is None  # AIQ is for curves, not single points
    metrics = rep.flat_metrics()
    assert metrics["oracle.gap_closed"] == 1.0 and "zero_router.aiq" in metrics
    assert "small.aiq" not in metrics


def test_no_bootstrap_means_no_intervals_and_is_fast():
    q, c = _data(400)
    rep = compare(q, c, MODELS, None, EvaluationConfig(bootstrap_samples=0))
    assert all(not r.ci for r in rep.rows)
    assert "no bootstrap" in rep.table()


def test_two_models_get_apgr_and_cpt():
    q, c = _data()
    q2, c2 = q[:, [0, 2]], c[:, [0, 2]]
    # Knobs: all weak, strong where weak fails (the oracle for 0/1 labels), all strong.
    sweep = np.stack([np.zeros(40, int), (q2[:, 0] == 0).astype(int), np.ones(40, int)])
    rep = compare(q2, c2, ["weak", "strong"], {"p": sweep}, EvaluationConfig(bootstrap_samples=0))
    assert rep.two_model == ("weak", "strong")
    assert rep.row("strong").apgr == pytest.approx(1.0)
    assert rep.row("weak").apgr == pytest.approx(0.0)
    assert rep.row("zero router").apgr == pytest.approx(0.5)  # the straight line weak -> strong
    assert rep.row("p").apgr > 0.5
    assert rep.row("p").cpt["50%"] is not None
    assert "CPT(80%)" in rep.table()


def test_reference_model_by_name_and_errors():
    q, c = _data()
    rep = compare(q, c, MODELS, None, EvaluationConfig(reference="medium", bootstrap_samples=0))
    assert rep.reference == "medium" and rep.row("medium").pct_ref_quality == pytest.approx(100)
    with pytest.raises(ConfigError, match="`reference` must be 'best' or one of the models"):
        compare(q, c, MODELS, None, EvaluationConfig(reference="huge"))
    with pytest.raises(ConfigError, match="`models` must name the 3 quality columns, got 2"):
        compare(q, c, MODELS[:2])
    with pytest.raises(ConfigError, match="policy name 'oracle' clashes with a baseline"):
        compare(q, c, MODELS, {"oracle": np.zeros(40, int)})
    with pytest.raises(DataError, match=r"`policies\['p'\]` must have shape \(40,\)"):
        compare(q, c, MODELS, {"p": np.zeros(39, int)})


def test_evaluation_config_is_strict():
    with pytest.raises(ConfigError, match="unknown key `bootstrap`"):
        parse_model(EvaluationConfig, {"bootstrap": 10})
    with pytest.raises(ConfigError, match="quality target must be a fraction in"):
        parse_model(EvaluationConfig, {"quality_targets": [0.95, -1]})
    with pytest.raises(ConfigError, match="`ci_level`"):
        parse_model(EvaluationConfig, {"ci_level": 1.5})


def _dataset(q: np.ndarray, c: np.ndarray) -> RoutingDataset:
    n = q.shape[0]
    return RoutingDataset(
        name="tiny",
        ids=np.array([str(i) for i in range(n)]),
        prompts=tuple(f"prompt {i}" for i in range(n)),
        models=tuple(MODELS),
        quality=q,
        cost=c,
    )


def test_compare_dataset_refuses_unknown_labels():
    q, c = _data()
    rep = compare_dataset(_dataset(q, c), None, EvaluationConfig(bootstrap_samples=0))
    assert rep.n_prompts == 40
    q[3, 1] = np.nan
    with pytest.raises(DataError, match="1 unknown quality labels"):
        compare_dataset(_dataset(q, c))


def test_plot_writes_a_png(tmp_path):
    q, c = _data()
    sweep = np.stack([np.full(40, 0), np.where(q[:, 0] == 1, 0, 2), np.full(40, 2)])
    rep = compare(q, c, MODELS, {"cheat": sweep}, EvaluationConfig(bootstrap_samples=0))
    out = rep.plot(tmp_path / "sub" / "curve.png", title="tiny")
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000


def test_plot_handles_free_models(tmp_path):
    q, c = _data()
    c[:, 0] = 0.0  # a free model: the log axis falls back to symlog instead of failing
    out = compare(q, c, MODELS, None, EvaluationConfig(bootstrap_samples=0)).plot(
        tmp_path / "f.png"
    )
    assert out.stat().st_size > 20_000


def test_two_model_metrics_need_a_costlier_better_model():
    q, c = _data()
    # The better model (large) made the cheaper one: nothing to trade, so no APGR/CPT.
    q2, c2 = q[:, [0, 2]], c[:, [2, 0]]
    rep = compare(q2, c2, ["weak", "strong"], None, EvaluationConfig(bootstrap_samples=0))
    assert rep.two_model is None and "APGR" not in rep.table()


def test_the_reference_reaches_its_own_quality():
    # Means of the same column summed in different orders differ by an ulp; 100% must still hold.
    q, c = _data(777, seed=3)
    rep = compare(q, c, MODELS, None, EvaluationConfig(bootstrap_samples=0))
    assert rep.row("large").cost_at["100%"] == pytest.approx(rep.row("large").cost_per_1k)


def test_several_policies_each_get_their_random_twin():
    q, c = _data()
    a, b = np.zeros((2, 40), dtype=int), np.full((2, 40), 2)
    a[1] = 1
    b[0] = 1
    rep = compare(q, c, MODELS, {"a": a, "b": b}, EvaluationConfig(bootstrap_samples=0))
    assert [r.name for r in rep.rows[:4]] == ["a", "random @ a", "b", "random @ b"]
