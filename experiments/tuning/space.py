"""The search space, resolved and checked; one RouterConfig suggested per Optuna trial.

Optuna parameter names: ``embedder``, ``normalization``, ``predictor``, ``<predictor>.<param>``,
``calibration``, ``policy``, ``<policy>.<param>`` and, in multi-objective mode,
``operating_fraction``. A choice with one option and a fixed value are not Optuna parameters
(they still appear in the trial's ``router_config``).
"""

from __future__ import annotations

import hashlib
import inspect
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, get_args

from tierwise.experiments.tuning.config import Choices, Fixed, ParamRange, ParamSpec, TuneConfig
from tierwise.router.config import CalibrationConfig, RouterConfig
from tierwise.router.errors import ConfigError
from tierwise.router.normalize import NormalizationConfig
from tierwise.router.policies import available_policies, get_policy
from tierwise.router.predictors import get_predictor
from tierwise.router.predictors.registry import available_predictors, predictor_class

if TYPE_CHECKING:
    import optuna

_SCALAR = (str, int, float, bool, type(None))


def normalization_label(cfg: NormalizationConfig) -> str:
    """``head_tail`` for a mode with defaults, else ``mode,key=value,...`` (a categorical label)."""
    extra = cfg.model_dump(exclude_defaults=True, exclude={"mode"})
    return ",".join([cfg.mode, *(f"{k}={v}" for k, v in sorted(extra.items()))])


@dataclass(frozen=True)
class ResolvedSpace:
    """The space with defaults filled in from the router config, ready to suggest from."""

    embedders: tuple[str, ...]
    normalization: dict[str, NormalizationConfig]  # label -> config
    calibration: tuple[str, ...]
    predictors: dict[str, dict[str, ParamSpec]]
    policies: dict[str, dict[str, ParamSpec]]
    operating_fraction: ParamRange

    def describe(self) -> dict[str, Any]:
        """A JSON-able description: stored in the study, hashed to detect a changed space."""
        return {
            "embedders": list(self.embedders),
            "normalization": {k: v.model_dump(mode="json") for k, v in self.normalization.items()},
            "calibration": list(self.calibration),
            "predictors": {
                n: {k: s.model_dump(mode="json") for k, s in sorted(p.items())}
                for n, p in sorted(self.predictors.items())
            },
            "policies": {
                n: {k: s.model_dump(mode="json") for k, s in sorted(p.items())}
                for n, p in sorted(self.policies.items())
            },
            "operating_fraction": self.operating_fraction.model_dump(mode="json"),
        }


def _policy_params(name: str) -> list[str]:
    cls = type(get_policy(name))
    return sorted(k for k in inspect.signature(cls.__init__).parameters if k != "self")


def _combos(specs: dict[str, ParamSpec]) -> list[dict[str, Any]]:
    """One value set per corner of each parameter (others at their first corner)."""
    base = {k: s.corners()[0] for k, s in specs.items()}
    out = [dict(base)]
    for k, s in specs.items():
        out += [{**base, k: v} for v in s.corners()[1:]]
    return out


def _check_predictor(name: str, specs: dict[str, ParamSpec], where: str) -> None:
    if name not in available_predictors():
        raise ConfigError(
            f"`{where}.predictors` names predictor {name!r}, which is not registered; "
            f"valid: {available_predictors()}"
        )
    valid = sorted(get_predictor(name).get_params(deep=False))
    for key in specs:
        if key not in valid:
            raise ConfigError(
                f"`{where}.predictors.{name}.{key}` is not a parameter of predictor {name!r}; "
                f"valid: {valid}"
            )
    cls = predictor_class(name)
    for combo in _combos(specs):
        try:
            cls(**combo)._validate_params()
        except ConfigError as err:
            raise ConfigError(f"`{where}.predictors.{name}`: {err}") from None
        except (TypeError, ValueError) as err:
            raise ConfigError(
                f"`{where}.predictors.{name}`: invalid values {combo}: {err}"
            ) from None


def _check_policy(name: str, specs: dict[str, ParamSpec], where: str) -> None:
    if name not in available_policies():
        raise ConfigError(
            f"`{where}.policies` names policy {name!r}, which is not registered; "
            f"valid: {available_policies()}"
        )
    valid = _policy_params(name)
    for key in specs:
        if key not in valid:
            raise ConfigError(
                f"`{where}.policies.{name}.{key}` is not a parameter of policy {name!r}; "
                f"valid: {valid}"
            )
    for combo in _combos(specs):
        try:
            get_policy(name, **combo)
        except ConfigError as err:
            raise ConfigError(f"`{where}.policies.{name}`: {err}") from None


def resolve_space(
    tune: TuneConfig, router: RouterConfig, where: str = "tune.space"
) -> ResolvedSpace:
    """Fill defaults from ``router`` and check every name and value; ConfigError on the first."""
    space = tune.space
    methods = list(get_args(CalibrationConfig.model_fields["method"].annotation))
    for method in space.calibration:
        if method not in methods:
            raise ConfigError(
                f"`{where}.calibration` must list methods from {methods}, got {method!r}"
            )
    for name, specs in space.predictors.items():
        _check_predictor(name, specs, where)
    for name, specs in space.policies.items():
        _check_policy(name, specs, where)
    embedders = tuple(dict.fromkeys(space.embedders or [router.embedder.name]))
    norms: dict[str, NormalizationConfig] = {}
    for item in space.normalization or [router.normalization]:
        try:
            cfg = (
                NormalizationConfig.model_validate({"mode": item})
                if isinstance(item, str)
                else item
            )
        except ValueError:
            valid = list(get_args(NormalizationConfig.model_fields["mode"].annotation))
            raise ConfigError(
                f"`{where}.normalization` entries must be a mode from {valid} or a mapping "
                f"like {{mode: tail, max_tokens: 128}}, got {item!r}"
            ) from None
        norms[normalization_label(cfg)] = cfg
    return ResolvedSpace(
        embedders=embedders,
        normalization=norms,
        calibration=tuple(dict.fromkeys(space.calibration)),
        predictors=dict(space.predictors),
        policies=dict(space.policies),
        operating_fraction=space.operating_fraction,
    )


def space_fingerprint(description: dict[str, Any]) -> str:
    """A short hash of the search space (a study must not change space on resume)."""
    blob = json.dumps(description, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _label(value: Any) -> Any:
    """Optuna categoricals hold scalars: a list choice (e.g. layer sizes) goes in as JSON."""
    return value if isinstance(value, _SCALAR) else json.dumps(value)


def _suggest(trial: optuna.Trial, name: str, spec: ParamSpec) -> Any:
    if isinstance(spec, Fixed):
        return spec.value
    if isinstance(spec, Choices):
        if len(spec.choices) == 1:
            return spec.choices[0]
        labels = [_label(c) for c in spec.choices]
        picked = trial.suggest_categorical(name, labels)
        return spec.choices[labels.index(picked)]
    if spec.is_int:
        step = 1 if spec.step is None else int(spec.step)
        return trial.suggest_int(name, int(spec.low), int(spec.high), step=step, log=spec.log)
    return trial.suggest_float(
        name, float(spec.low), float(spec.high), step=spec.step, log=spec.log
    )


def _pick(trial: optuna.Trial, name: str, options: list[str]) -> str:
    return options[0] if len(options) == 1 else str(trial.suggest_categorical(name, options))


def suggest_config(
    trial: optuna.Trial,
    space: ResolvedSpace,
    base: RouterConfig,
    *,
    quality_fraction: float,
    multi_objective: bool,
) -> RouterConfig:
    """The trial's RouterConfig: ``base`` with every searched section replaced."""
    embedder = _pick(trial, "embedder", list(space.embedders))
    norm = _pick(trial, "normalization", list(space.normalization))
    predictor = _pick(trial, "predictor", sorted(space.predictors))
    p_params = {
        k: _suggest(trial, f"{predictor}.{k}", s)
        for k, s in sorted(space.predictors[predictor].items())
    }
    calibration = _pick(trial, "calibration", list(space.calibration))
    policy = _pick(trial, "policy", sorted(space.policies))
    q_params = {
        k: _suggest(trial, f"{policy}.{k}", s) for k, s in sorted(space.policies[policy].items())
    }
    if multi_objective:
        quality_fraction = float(_suggest(trial, "operating_fraction", space.operating_fraction))
    data = base.model_dump(mode="json")
    data["embedder"]["name"] = embedder
    data["normalization"] = space.normalization[norm].model_dump(mode="json")
    data["predictor"] = {"name": predictor, "params": p_params}
    data["calibration"] = {"method": calibration}
    data["policy"].update(name=policy, params=q_params, knob=None)
    data["policy"]["select"]["quality_fraction"] = quality_fraction
    data["cache_dir"] = None  # where embeddings are cached is the machine's business
    return RouterConfig.model_validate(data)
