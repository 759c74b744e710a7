"""The Router end to end on synthetic traffic with the tiny deterministic embedder."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from runtime_helpers import traffic

from tierwise.router.config import RouterConfig
from tierwise.router.core import Router
from tierwise.router.errors import ArtifactError, ConfigError
from tierwise.router.schema import parse_model


def config(predictor: str = "knn", policy: str = "utility") -> RouterConfig:
    return RouterConfig.model_validate(
        {
            "embedder": {"name": "hashing:64"},
            "predictor": {"name": predictor},
            "policy": {"name": policy},
        }
    )


@pytest.fixture(scope="module")
def data() -> tuple[SimpleNamespace, SimpleNamespace, SimpleNamespace]:
    return traffic(400, 1), traffic(200, 2), traffic(200, 3)


@pytest.mark.parametrize("policy", ["utility", "threshold"])
@pytest.mark.parametrize("predictor", ["knn", "logreg", "mf"])
def test_saved_then_loaded_router_gives_identical_decisions(data, tmp_path, predictor, policy):
    train, cal, test = data
    router = Router(config(predictor, policy)).fit(train, cal)
    before = router.route(list(test.prompts))
    router.save(str(tmp_path / "r.tierwise"))
    loaded = Router.load(str(tmp_path / "r.tierwise"))
    after = loaded.route(list(test.prompts))
    assert [d.model for d in before] == [d.model for d in after]
    assert [d.p_success for d in before] == [d.p_success for d in after]
    assert loaded.knob_ == router.knob_


def test_router_learns_to_send_easy_prompts_to_the_small_tier(data):
    train, cal, _ = data
    router = Router(config("logreg", "utility")).fit(train, cal)
    easy = router.route(["love poem story history war"] * 3)
    hard = router.route(["math code sql python physics"] * 3)
    cost = {"small": 0, "mid": 1, "big": 2}
    assert max(cost[d.model] for d in easy) < min(cost[d.model] for d in hard)


def test_bad_prompts_in_a_batch_do_not_lose_the_others(data):
    train, cal, _ = data
    router = Router(config()).fit(train, cal)
    out = router.route(["math code", "", None, 5, b"\xff\xfe", "love poem"])
    assert [d.ok for d in out] == [True, False, False, False, False, True]
    assert out[1].error and "non-whitespace" in out[1].error
    assert out[3].error and "must be a string" in out[3].error
    assert out[4].error and "UTF-8" in out[4].error
    assert out[5].model in {"small", "mid", "big"}


def test_knob_reaches_the_quality_target_on_calibration(data):
    train, cal, _ = data
    router = Router(config("knn", "threshold")).fit(train, cal)
    k = int(np.flatnonzero(router.knob_grid_ == router.knob_)[0])
    assert router.calibration_curve_[k, 0] >= router.target_quality_ - 1e-12


def test_unknown_config_key_is_rejected():
    with pytest.raises(ConfigError, match=r"unknown key `policy\.knobb`"):
        parse_model(RouterConfig, {"policy": {"knobb": 1}}, source="cfg.yaml")


def test_unfitted_router_says_so():
    with pytest.raises(ConfigError, match="not fitted"):
        Router(config()).route(["hi"])


def test_loading_with_an_embedder_of_the_wrong_dimension_is_refused(data, tmp_path):
    from tierwise.router.embed import get_embedder

    train, cal, _ = data
    Router(config()).fit(train, cal).save(str(tmp_path / "a"))
    with pytest.raises(ArtifactError, match="embedder dimension must be 64"):
        Router.load(str(tmp_path / "a"), embedder=get_embedder("hashing:32"))


def test_artifact_does_not_carry_the_training_machines_cache_path(data, tmp_path):
    train, cal, _ = data
    cfg = config().model_copy(update={"cache_dir": str(tmp_path / "cache")})
    Router(cfg).fit(train, cal).save(str(tmp_path / "r.tierwise"))
    assert Router.load(str(tmp_path / "r.tierwise")).config.cache_dir is None
