"""Typed, strict YAML configs: every section is a pydantic model that rejects unknown keys.

YAML is read with a bounded loader: a config whose anchors and aliases would expand into more
than :data:`MAX_YAML_NODES` nodes (a "billion laughs" bomb fits in 1.5 KB) is refused before any
value is built, and error messages show values through a bounded repr, so no input can make
reading or reporting a config take unbounded time or memory.
"""

from __future__ import annotations

import reprlib
import stat
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from tierwise.router.errors import ConfigError

M = TypeVar("M", bound=BaseModel)
MAX_YAML_BYTES = 16 * 1024 * 1024  # a routing or pricing config is a few KB
MAX_YAML_NODES = 100_000  # after expanding aliases; real configs have hundreds
_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxlist, _REPR.maxtuple, _REPR.maxdict = 3, 6, 6, 6
_REPR.maxstring = _REPR.maxother = 80


def bounded_repr(value: Any, limit: int = 120) -> str:
    """``repr(value)`` cut to ``limit`` characters, never building the full repr first."""
    text = _REPR.repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


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
        elif e["type"] == "missing":
            parts.append(f"`{loc}` field required; add it")
        elif e["type"] == "value_error" and (
            ", got " in e["msg"] or isinstance(e.get("input"), dict)
        ):
            # Our validator's message names the value itself (or the value is a whole section):
            # a second "got" would be noise.
            parts.append(f"`{loc}` {e['msg'].lower()}")
        else:
            value = e.get("input")
            shown = bounded_repr(value) if not isinstance(value, dict) else "a mapping"
            parts.append(f"`{loc}` {e['msg'].lower()}, got {shown}")
    return f"{source}: " + "; ".join(parts)


def parse_model(model: type[M], data: Any, source: str = "config") -> M:
    """Validate ``data`` against ``model``; raise ConfigError with one clear line on failure."""
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, source)) from None


class _YamlTooLarge(yaml.YAMLError):
    """Raised by the bounded loader; read_yaml turns it into a ConfigError."""


def _expanded_size(node: yaml.Node, memo: dict[int, int], limit: int) -> int:
    """Nodes ``node`` stands for once every alias is expanded (shared nodes counted each time).

    Memoized per node object, so it runs in time linear in the *document*, not in the expansion.
    """
    key = id(node)
    if key in memo:
        if memo[key] < 0:
            raise _YamlTooLarge("an alias refers to the node that contains it (a recursive anchor)")
        return memo[key]
    memo[key] = -1  # in progress
    total = 1
    if isinstance(node, yaml.SequenceNode):
        for child in node.value:
            total += _expanded_size(child, memo, limit)
            if total > limit:
                break
    elif isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            total += _expanded_size(k, memo, limit) + _expanded_size(v, memo, limit)
            if total > limit:
                break
    memo[key] = total
    return total


class BoundedSafeLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses documents expanding to more than MAX_YAML_NODES nodes."""

    max_nodes = MAX_YAML_NODES

    def compose_document(self) -> yaml.Node | None:
        node: yaml.Node | None = super().compose_document()
        if node is not None and _expanded_size(node, {}, self.max_nodes) > self.max_nodes:
            raise _YamlTooLarge(
                f"its anchors and aliases expand to more than {self.max_nodes:,} values "
                "(an alias bomb?); write the values out or use fewer aliases"
            )
        return node


def load_yaml_text(text: str) -> Any:
    """Parse YAML text with :class:`BoundedSafeLoader` (may raise yaml.YAMLError)."""
    return yaml.load(text, Loader=BoundedSafeLoader)  # a SafeLoader subclass


def file_kind(path: Path) -> str:
    """What ``path`` is, for messages: "a directory", "a FIFO", "a device", ... (stat only)."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return "nothing (it does not exist)"
    for test, name in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "a regular file" if stat.S_ISREG(mode) else "a special file"


def read_yaml(path: str | Path) -> Any:
    """Read a YAML file, turning I/O, size, syntax and alias-bomb problems into ConfigError."""
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"config file {str(p)!r} does not exist; pass the path of a YAML file")
    if not p.is_file():  # stat only: a FIFO or device is never opened (could block or not end)
        raise ConfigError(
            f"config file {str(p)!r} must be a regular file, got {file_kind(p)}; pass the path "
            "of a YAML file"
        )
    size = p.stat().st_size
    if size > MAX_YAML_BYTES:
        raise ConfigError(
            f"config file {str(p)!r} must be at most {MAX_YAML_BYTES:,} bytes, got {size:,}; "
            "pass a YAML config, not a data file"
        )
    try:
        return load_yaml_text(p.read_text(encoding="utf-8"))
    except _YamlTooLarge as err:
        raise ConfigError(f"{p}: refused: {err}") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{p}: not valid YAML{where}: {getattr(err, 'problem', err)}") from None
    except RecursionError:
        raise ConfigError(f"{p}: YAML nested too deeply; a config is a few levels deep") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{p}: not UTF-8 text; save the config as UTF-8") from None


def load_yaml_model(model: type[M], path: str | Path) -> M:
    """Read ``path`` and validate it against ``model``."""
    data = read_yaml(path)
    if data is None:
        data = {}
    return parse_model(model, data, source=str(path))
