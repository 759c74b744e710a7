"""Typed, strict YAML configs: every section is a pydantic model that rejects unknown keys."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from tierwise.router.errors import ConfigError

M = TypeVar("M", bound=BaseModel)


class StrictModel(BaseModel):
    """Base for config sections: unknown keys are an error, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)


def format_validation_error(err: ValidationError, source: str) -> str:
    """Turn pydantic's multi-line report into one readable message naming key, value and fix."""
    parts = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "<root>"
        if e["type"] == "extra_forbidden":
            parts.append(f"unknown key `{loc}`; remove it or check its spelling")
        elif e["type"] == "value_error" and ", got " in e["msg"]:
            # Our validator's message names the value itself; a second "got" would be noise.
            parts.append(f"`{loc}` {e['msg'].lower()}")
        else:
            value = e.get("input")
            shown = repr(value) if not isinstance(value, dict) else "a mapping"
            parts.append(f"`{loc}` {e['msg'].lower()}, got {shown}")
    return f"{source}: " + "; ".join(parts)


def parse_model(model: type[M], data: Any, source: str = "config") -> M:
    """Validate ``data`` against ``model``; raise ConfigError with one clear line on failure."""
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, source)) from None


def read_yaml(path: str | Path) -> Any:
    """Read a YAML file, turning I/O and syntax problems into ConfigError."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file {str(p)!r} does not exist; pass the path of a YAML file")
    try:
        return yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{p}: not valid YAML{where}: {getattr(err, 'problem', err)}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{p}: not UTF-8 text; save the config as UTF-8") from None


def load_yaml_model(model: type[M], path: str | Path) -> M:
    """Read ``path`` and validate it against ``model``."""
    data = read_yaml(path)
    if data is None:
        data = {}
    return parse_model(model, data, source=str(path))
