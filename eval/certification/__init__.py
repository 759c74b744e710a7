"""Certification: a routing knob whose mean routed quality meets a target with stated confidence.

The public face of the quality guarantee (Learn-then-Test); ``_``-prefixed modules are private:

- ``_certify`` — the target config and the fixed-order test over a knob grid;
- ``_bounds`` / ``_wsr`` — p-values and upper confidence bounds (Hoeffding–Bentkus, binomial,
  betting/WSR);
- ``_report`` — the certificate and check results as data (JSON, text);
- ``_guarantee`` — certify a fitted Router's knob on a held-out calibration half;
- ``_check`` — re-test a stored certificate on fresh labelled traffic.
"""

from __future__ import annotations

from tierwise.eval.certification._bounds import METHODS, risk_p_value, risk_upper_bound
from tierwise.eval.certification._certify import (
    TargetConfig,
    TargetLike,
    as_target,
    certify,
    check_guarantee,
    naive_knob,
)
from tierwise.eval.certification._check import (
    TrafficCheck,
    align_models,
    check_router,
    recertify,
    reference_of,
    stored_target,
)
from tierwise.eval.certification._guarantee import (
    DEFAULT_HOLDOUT,
    CertificationSplit,
    KnobSweep,
    advice,
    certify_predictions,
    certify_router,
    certify_sample,
    reference_index,
    require_known,
    split_for_certification,
    sweep_realized,
)
from tierwise.eval.certification._report import Certificate, CheckResult, Interval
from tierwise.eval.certification._wsr import wsr_p_value, wsr_upper_bound

__all__ = [
    "DEFAULT_HOLDOUT",
    "METHODS",
    "Certificate",
    "CertificationSplit",
    "CheckResult",
    "Interval",
    "KnobSweep",
    "TargetConfig",
    "TargetLike",
    "TrafficCheck",
    "advice",
    "align_models",
    "as_target",
    "certify",
    "certify_predictions",
    "certify_router",
    "certify_sample",
    "check_guarantee",
    "check_router",
    "naive_knob",
    "recertify",
    "reference_index",
    "reference_of",
    "require_known",
    "risk_p_value",
    "risk_upper_bound",
    "split_for_certification",
    "stored_target",
    "sweep_realized",
    "wsr_p_value",
    "wsr_upper_bound",
]
