"""Issue 10: a YAML config can never make reading or reporting it take unbounded time or memory."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tierwise.router.errors import ConfigError
from tierwise.router.schema import StrictModel, bounded_repr, load_yaml_model, read_yaml


class Described(StrictModel):
    description: str = ""


def alias_bomb(levels: int = 9) -> str:
    """The classic "billion laughs": ~0.5 KB of YAML standing for 9**levels strings."""
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, levels + 1):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
    return "\n".join(lines) + f"\ndescription: *a{levels}\n"


def test_an_alias_bomb_is_refused_at_once(tmp_path: Path) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(alias_bomb())
    t0 = time.perf_counter()
    with pytest.raises(ConfigError, match=r"bomb\.yaml: refused: its anchors and aliases expand "
                                          r"to more than 100,000 values"):  # fmt: skip
        load_yaml_model(Described, path)
    assert time.perf_counter() - t0 < 2.0


def test_recursive_anchors_and_deep_nesting_are_one_line_errors(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("a: &a [1, *a]\n")
    with pytest.raises(ConfigError, match="an alias refers to the node that contains it"):
        read_yaml(path)
    path.write_text("[" * 600)
    with pytest.raises(ConfigError, match="YAML nested too deeply"):
        read_yaml(path)


def test_modest_aliases_still_work(tmp_path: Path) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text("base: &b [x, y]\nother: *b\nmore: [*b, *b]\n")
    assert read_yaml(path) == {"base": ["x", "y"], "other": ["x", "y"], "more": [["x", "y"]] * 2}


def test_a_huge_wrong_value_is_shown_truncated(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_text("description:\n" + "".join(f"  - item{i}\n" for i in range(3_000)))
    with pytest.raises(ConfigError, match=r"`description` input should be a valid string") as err:
        load_yaml_model(Described, path)
    assert len(str(err.value)) < 300 and "item2999" not in str(err.value)
    assert bounded_repr("x" * 10_000).startswith("'xxx") and len(bounded_repr("x" * 10_000)) <= 120


def test_fifos_and_devices_are_not_opened(tmp_path: Path) -> None:
    fifo = tmp_path / "cfg.yaml"
    os.mkfifo(fifo)  # opening it for reading would block forever
    with pytest.raises(ConfigError, match=r"must be a regular file, got a FIFO \(named pipe\)"):
        read_yaml(fifo)
    with pytest.raises(ConfigError, match="must be a regular file, got a character device"):
        read_yaml("/dev/zero")
