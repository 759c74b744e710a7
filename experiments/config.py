"""The experiment config: one YAML file per experiment, one typed section per concern.

    name: routerbench
    data: {...}      # eval.importers.DataConfig: where the traffic log is and how to read it
    split: {...}     # eval.splits.SplitConfig (defaults: 60/20/20 grouped by prompt text)

Sections other than ``data`` have defaults, so a config may give only ``name`` and ``data``.
To add a section, add a field with a default to ``ExperimentConfig`` (a StrictModel, so unknown
keys stay errors). Relative paths inside ``data`` are resolved against the config file's
directory, which ``load_experiment`` remembers as ``cfg.base_dir``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import Field, PrivateAttr, model_validator

from tierwise.eval.certification import TargetConfig
from tierwise.eval.importers.config import DataConfig
from tierwise.eval.reporting import EvaluationConfig
from tierwise.eval.splits import SplitConfig
from tierwise.experiments.tracking.config import TrackingConfig
from tierwise.experiments.tuning.config import TuneConfig
from tierwise.router.config import RouterConfig
from tierwise.router.errors import ConfigError
from tierwise.router.schema import StrictModel, load_yaml_model

if TYPE_CHECKING:
    from tierwise.eval.dataset import RoutingDataset


class ExperimentConfig(StrictModel):
    """An experiment YAML: data, splits, router, evaluation, target, tuning and tracking."""

    name: str = Field(min_length=1)
    description: str | None = None
    data: DataConfig
    split: SplitConfig = SplitConfig()
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    router: RouterConfig = Field(default_factory=RouterConfig)
    # Quality guarantee: when set, training certifies the policy knob (eval.certification).
    target: TargetConfig | None = None
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    # `tierwise tune`: search space, objective and study storage (experiments/tuning/config.py).
    tune: TuneConfig = Field(default_factory=TuneConfig)

    _base_dir: Path = PrivateAttr(default_factory=Path.cwd)
    _path: Path | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _knob_or_target(self) -> ExperimentConfig:
        if self.target is not None and self.router.policy.knob is not None:
            raise ValueError(
                "`router.policy.knob` and `target` cannot both be set: a fixed knob is not "
                "certified; remove the knob (the target sets it) or remove the target"
            )
        return self

    @property
    def base_dir(self) -> Path:
        """Directory that relative paths in this config are resolved against."""
        return self._base_dir

    @property
    def path(self) -> Path | None:
        return self._path

    def with_base_dir(
        self, base_dir: str | Path, path: str | Path | None = None
    ) -> ExperimentConfig:
        self._base_dir = Path(base_dir)
        self._path = None if path is None else Path(path)
        return self


def load_experiment(path: str | Path) -> ExperimentConfig:
    """Read and validate an experiment YAML; unknown keys and bad values raise ConfigError."""
    p = Path(path)
    cfg = load_yaml_model(ExperimentConfig, p)
    return cfg.with_base_dir(p.resolve().parent, p)


def load_dataset(
    cfg_or_path: ExperimentConfig | DataConfig | str | Path,
    base_dir: str | Path | None = None,
    progress: bool | None = None,
) -> RoutingDataset:
    """Import the dataset an experiment config (or a bare data section) describes."""
    from tierwise.eval.importers import import_dataset

    if isinstance(cfg_or_path, str | Path):
        cfg_or_path = load_experiment(cfg_or_path)
    if isinstance(cfg_or_path, ExperimentConfig):
        data = cfg_or_path.data
        base = Path(base_dir) if base_dir is not None else cfg_or_path.base_dir
        name = data.name or cfg_or_path.name
    elif isinstance(cfg_or_path, DataConfig):
        data, base = cfg_or_path, Path(base_dir or Path.cwd())
        name = cfg_or_path.name or "dataset"
    else:
        raise ConfigError(
            f"`load_dataset` needs an ExperimentConfig, DataConfig or a path, got "
            f"{type(cfg_or_path).__name__}"
        )
    return import_dataset(data, base_dir=base, name=name, progress=progress)
