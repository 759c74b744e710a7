"""Save a fitted Router as a safe artifact and load it back (``Router.save``/``Router.load``).

The payload names every component and its JSON params; the arrays hold their fitted numbers,
each under a prefix (``predictor.``, ``calibration.``, ``cost.``). Nothing is pickled.

This module never imports the Router class: ``Router.load`` passes itself in
(:func:`restore_router`), so ``core`` -> ``_persist`` is the only direction between the two.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from tierwise.router import __version__
from tierwise.router.artifact._checks import check_router
from tierwise.router.artifact._embedded import embedded_embedder
from tierwise.router.artifact._store import LoadedArtifact, load_artifact, save_artifact
from tierwise.router.calibration import Calibrator
from tierwise.router.config import RouterConfig
from tierwise.router.errors import ArtifactError, TierwiseError
from tierwise.router.expected_cost import ExpectedCostModel
from tierwise.router.policies import get_policy
from tierwise.router.predictors import load_predictor
from tierwise.router.schema import parse_model

if TYPE_CHECKING:
    from tierwise.router.core import Router
    from tierwise.router.embed import Embedder

PARTS = ("predictor", "calibration", "cost")
R = TypeVar("R", bound="Router")


def _prefixed(prefix: str, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {f"{prefix}.{k}": v for k, v in arrays.items()}


def _unprefixed(prefix: str, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    p = prefix + "."
    return {k[len(p) :]: v for k, v in arrays.items() if k.startswith(p)}


def router_payload(router: Router) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The manifest payload and arrays describing a fitted router."""
    router._check_fitted()
    pred_params, pred_arrays = router.predictor_.get_state()
    cal_params, cal_arrays = router.calibrator_.get_state()
    cost_params, cost_arrays = router.cost_model_.get_state()
    arrays = {
        **_prefixed("predictor", pred_arrays),
        **_prefixed("calibration", cal_arrays),
        **_prefixed("cost", cost_arrays),
        "policy.knob_grid": np.asarray(router.knob_grid_, dtype=np.float64),
        "policy.calibration_curve": np.asarray(router.calibration_curve_, dtype=np.float64),
    }
    payload: dict[str, Any] = {
        "kind": "tierwise.router",
        "tierwise_version": __version__,
        # The cache location belongs to the training machine, not to the artifact.
        "config": router.config.model_dump(mode="json") | {"cache_dir": None},
        "models": list(router.models_),
        "embedder": {
            "spec": router.config.embedder.name,
            "identity": router.embedder_identity_,
            "dim": router.dim_,
        },
        "normalization": router.config.normalization.model_dump(mode="json"),
        "predictor": {"name": router.config.predictor.name, "state": pred_params},
        "calibration": {"method": router.config.calibration.method, "state": cal_params},
        "cost_model": cost_params,
        "price_table_version": router.price_table_version_,
        "policy": {
            "name": router.config.policy.name,
            "params": router.policy_.params,
            "knob": router.knob_,
            "reference_model": router.reference_model_,
            "target_quality": router.target_quality_,
            "fallback_model": router.fallback_model_,
        },
    }
    return payload, arrays


def save_router(
    router: Router,
    path: str | Path,
    *,
    metrics: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write a fitted router to ``path`` (a directory, or one file if it ends in ``.tierwise``)."""
    payload, arrays = router_payload(router)
    payload["metrics"] = metrics or {}
    payload["extra"] = extra or {}
    if getattr(router, "certificate_", None) is not None:
        payload["certificate"] = router.certificate_
    return save_artifact(path, payload, arrays)


def restore_router(
    cls: type[R], path: str | os.PathLike[str] | LoadedArtifact, *, embedder: Embedder | None
) -> R:
    """A ``cls`` (Router or a subclass) holding the router stored at ``path``.

    An artifact from `tierwise export` carries its own ONNX embedder: it is used unless
    ``embedder`` is passed; otherwise the embedder the artifact names is built lazily.
    ``path`` may also be an already loaded artifact.
    """
    art = path if isinstance(path, LoadedArtifact) else load_artifact(Path(path))
    path = art.path
    p = art.payload
    if p.get("kind") != "tierwise.router":
        raise ArtifactError(f"{path}: not a tierwise router artifact (kind={p.get('kind')!r})")
    if embedder is None:
        embedder = embedded_embedder(art)  # None unless the artifact bundles one
    try:
        config = parse_model(RouterConfig, p["config"], source=f"{path}: manifest config")
        router = cls(config, embedder=embedder)
        router.models_ = tuple(p["models"])
        router.embedder_identity_ = p["embedder"]["identity"]
        router.dim_ = int(p["embedder"]["dim"])
        router.predictor_ = load_predictor(
            p["predictor"]["name"], p["predictor"]["state"], _unprefixed("predictor", art.arrays)
        )
        router.calibrator_ = Calibrator.from_state(
            p["calibration"]["state"], _unprefixed("calibration", art.arrays)
        )
        router.cost_model_ = ExpectedCostModel.from_state(
            p["cost_model"], _unprefixed("cost", art.arrays)
        )
        pol = p["policy"]
        router.policy_ = get_policy(pol["name"], **pol["params"])
        router.knob_ = float(pol["knob"])
        router.reference_model_ = pol["reference_model"]
        router.target_quality_ = float(pol["target_quality"])
        router.fallback_model_ = pol.get("fallback_model")
        if router.fallback_model_ is not None and router.fallback_model_ not in router.models_:
            raise ArtifactError(
                f"{path}: policy.fallback_model {router.fallback_model_!r} is not one of the "
                f"models {list(router.models_)}; re-export the router with `tierwise train`"
            )
        router.knob_grid_ = art.arrays["policy.knob_grid"]
        router.calibration_curve_ = art.arrays["policy.calibration_curve"]
        router.price_table_version_ = p.get("price_table_version")
        router.certificate_ = p.get("certificate")
        router.manifest_ = art.manifest
    except ArtifactError:
        raise
    except TierwiseError as err:  # e.g. an unknown policy name: say which file it came from
        text = str(err) if str(err).startswith(str(path)) else f"{path}: {err}"
        raise ArtifactError(f"{text}; re-export the router with `tierwise train`") from None
    except (KeyError, TypeError, ValueError) as err:
        raise ArtifactError(
            f"{path}: router payload is incomplete or malformed ({type(err).__name__}: {err}); "
            "re-export the router with `tierwise train`"
        ) from None
    check_router(router, str(path))  # metadata against arrays: edits the checksum cannot catch
    if embedder is not None:
        check_embedder(router, embedder)
    return router


def check_embedder(router: Router, embedder: Embedder) -> None:
    """Refuse an embedder whose output the predictor was not trained on."""
    if embedder.dim != router.dim_:
        raise ArtifactError(
            f"embedder dimension must be {router.dim_} (as trained), got {embedder.dim} from "
            f"{embedder.identity!r}; load the artifact with the embedder it was trained with"
        )
