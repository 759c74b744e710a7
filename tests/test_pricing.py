"""router.pricing: price tables from YAML / JSON, vectorized costs, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tierwise.router.errors import ConfigError, DataError
from tierwise.router.pricing import PriceTable

FIXTURES = Path(__file__).parent / "fixtures" / "data"
CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_load_yaml_and_cost_vectorized() -> None:
    t = PriceTable.load(FIXTURES / "prices_small.yaml")
    assert t.version == "test-2024"
    assert t.models == ("big", "small")
    cost = t.cost("big", np.array([1_000_000, 2000]), np.array([0, 1000]))
    np.testing.assert_allclose(cost, [10.0, (2000 * 10 + 1000 * 30) / 1e6])
    # scalar in, 0-d array out; the per-request fee is added once per request
    assert float(t.cost("small", 0, 0)) == pytest.approx(0.0001)
    two_d = t.cost("small", np.ones((2, 3)) * 1e6, np.zeros((2, 3)))
    assert two_d.shape == (2, 3)
    np.testing.assert_allclose(two_d, 0.5 + 0.0001)


def test_cached_input_tokens_billed_at_cached_price(tmp_path: Path) -> None:
    p = write(
        tmp_path,
        "p.yaml",
        "version: v1\nmodels:\n"
        "  m: {input_per_1m: 2.0, output_per_1m: 8.0, cached_input_per_1m: 0.5}\n"
        "  n: {input_per_1m: 2.0, output_per_1m: 8.0}\n",
    )
    t = PriceTable.load(p)
    full = t.cost("m", [1_000_000], [0])
    cached = t.cost("m", [1_000_000], [0], cached_input_tokens=[400_000])
    np.testing.assert_allclose(full, [2.0])
    np.testing.assert_allclose(cached, [0.6 * 2.0 + 0.4 * 0.5])
    # without a cached price, cached tokens cost the normal input price
    np.testing.assert_allclose(t.cost("n", [1_000_000], [0], cached_input_tokens=[400_000]), [2.0])
    with pytest.raises(DataError, match="must not exceed `input_tokens`"):
        t.cost("m", [10], [0], cached_input_tokens=[11])


def test_unknown_model_lists_valid_ones() -> None:
    t = PriceTable.load(FIXTURES / "prices_small.yaml")
    with pytest.raises(
        DataError, match=r"model 'gpt-9' is not in price table.*valid models: \['big', 'small'\]"
    ):
        t.cost("gpt-9", [1], [1])


def test_negative_price_is_rejected(tmp_path: Path) -> None:
    p = write(
        tmp_path, "neg.yaml", "version: v\nmodels:\n  m: {input_per_1m: -1, output_per_1m: 2}\n"
    )
    with pytest.raises(
        ConfigError,
        match=r"`models\.m\.input_per_1m` value error, must be a finite price >= 0; fix it, got -1",
    ):
        PriceTable.load(p)


def test_negative_or_nan_tokens_are_rejected() -> None:
    t = PriceTable.load(FIXTURES / "prices_small.yaml")
    with pytest.raises(DataError, match=r"`output_tokens` must be finite counts >= 0, got -5.0"):
        t.cost("big", [1, 2], [3, -5])
    with pytest.raises(DataError, match=r"`input_tokens` must be finite counts >= 0, got nan"):
        t.cost("big", [np.nan], [3])


def test_unknown_key_and_missing_version(tmp_path: Path) -> None:
    p = write(
        tmp_path, "typo.yaml", "version: v\nmodels:\n  m: {input_per_1m: 1, output_per_1M: 2}\n"
    )
    with pytest.raises(ConfigError, match=r"unknown key `models\.m\.output_per_1M`"):
        PriceTable.load(p)
    p = write(tmp_path, "nover.yaml", "models:\n  m: {input_per_1m: 1, output_per_1m: 2}\n")
    with pytest.raises(ConfigError, match=r"`version` field required"):
        PriceTable.load(p)
    with pytest.raises(ConfigError, match="does not exist"):
        PriceTable.load(tmp_path / "absent.yaml")


def test_routerarena_style_json(tmp_path: Path) -> None:
    data = {
        "a": {"input_token_price_per_million": 0.25, "output_token_price_per_million": 1.25},
        "b": {"input_token_price_per_million": 0.1, "output_token_price_per_million": 0.4},
    }
    p = write(tmp_path, "cost.json", json.dumps(data))
    t = PriceTable.load(p)
    assert t.version.startswith("cost.json@sha256:")
    np.testing.assert_allclose(t.cost("a", [349], [120]), [(349 * 0.25 + 120 * 1.25) / 1e6])


def test_litellm_style_json_and_bad_json(tmp_path: Path) -> None:
    p = write(
        tmp_path,
        "l.json",
        json.dumps({"x": {"input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6}}),
    )
    t = PriceTable.load(p)
    assert t.price("x").input_per_1m == pytest.approx(1.0)
    assert t.price("x").output_per_1m == pytest.approx(2.0)
    p = write(tmp_path, "bad.json", json.dumps({"x": {"per_token": 1}}))
    with pytest.raises(ConfigError, match="entry 'x' has no known price keys"):
        PriceTable.load(p)
    p = write(tmp_path, "broken.json", "{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        PriceTable.load(p)


def test_converted_routerarena_table_matches_its_json() -> None:
    """configs/prices/routerarena.yaml is a faithful conversion of RouterArena's cost.json."""
    src = CONFIGS.parents[1] / "shared" / "data" / "routerarena" / "cost.json"
    if not src.is_file():
        pytest.skip(f"shared data not present at {src}")
    yaml_t = PriceTable.load(CONFIGS / "prices" / "routerarena.yaml")
    json_t = PriceTable.load(src)
    assert yaml_t.models == json_t.models
    for m in json_t.models:
        assert yaml_t.price(m).input_per_1m == json_t.price(m).input_per_1m
        assert yaml_t.price(m).output_per_1m == json_t.price(m).output_per_1m


@pytest.mark.parametrize("name", sorted(p.name for p in (CONFIGS / "prices").glob("*.yaml")))
def test_shipped_price_tables_load(name: str) -> None:
    t = PriceTable.load(CONFIGS / "prices" / name)
    assert len(t) >= 2
    assert t.spec.source, "a shipped price table must say where its prices came from"
