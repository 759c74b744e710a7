"""Training with a `target` certifies every predictor × policy, and reports the deployed point."""

from __future__ import annotations

import numpy as np
import pytest
from guarantee_helpers import synthetic, write_log

from tierwise.experiments.config import load_experiment
from tierwise.experiments.training import Prepared, prepare, train
from tierwise.router.errors import ConfigError
from tierwise.router.predictors import available_predictors


@pytest.fixture(scope="module")
def prep(tmp_path_factory) -> Prepared:
    d = tmp_path_factory.mktemp("matrix")
    cfg = write_log(d, synthetic(2000, 1), extra_yaml="target: {kind: relative, value: 0.85}\n")
    return prepare(load_experiment(cfg), progress=False)


def _deployed_quality(result, prep: Prepared) -> float:
    picks = [prep.test.models.index(d.model) for d in result.router.route(list(prep.test.prompts))]
    return float(prep.test.quality[np.arange(prep.test.n_prompts), picks].mean())


@pytest.mark.parametrize("policy", ["utility", "threshold"])
@pytest.mark.parametrize("predictor", available_predictors())
def test_every_predictor_and_policy_is_certified(prep, predictor, policy):
    router_cfg = prep.config.router.model_copy(
        update={
            "predictor": prep.config.router.predictor.model_copy(update={"name": predictor}),
            "policy": prep.config.router.policy.model_copy(update={"name": policy}),
        }
    )
    cfg = prep.config.model_copy(update={"router": router_cfg})
    result = train(cfg, prep=prep, progress=False)
    cert, router = result.certificate, result.router
    assert cert is not None and router.certificate_ is not None
    assert router.certificate_["target"] == {**cfg.target.model_dump()}
    assert cert.passed, cert.explain()  # 85% of the big tier is reachable on this traffic
    assert router.knob_ == cert.knob and router.fallback_model_ is None
    # The report's operating point is the certified knob, i.e. what route() does on test.
    row = next(r for r in result.report.rows if r.name == result.policy_name)
    assert row.quality == pytest.approx(_deployed_quality(result, prep))


def test_fallback_is_what_the_report_scores(prep):
    cfg = prep.config.model_copy(
        update={"target": prep.config.target.model_copy(update={"value": 1.2})}
    )
    result = train(cfg, prep=prep, progress=False)
    assert result.certificate is not None and result.certificate.fallback
    assert result.router.fallback_model_ == "big"
    row = next(r for r in result.report.rows if r.name == result.policy_name)
    big = prep.test.quality[:, prep.test.models.index("big")].mean()
    assert row.quality == pytest.approx(big) == pytest.approx(_deployed_quality(result, prep))


def test_a_fixed_knob_and_a_target_are_refused_together(tmp_path):
    cfg = write_log(
        tmp_path,
        synthetic(50, 1),
        extra_yaml="  policy: {knob: 0.5}\ntarget: {value: 0.8}\n",
    )
    with pytest.raises(
        ConfigError, match=r"`router\.policy\.knob` and `target` cannot both be set"
    ):
        load_experiment(cfg)
