"""Docstrings: every public name has one, and the estimator-like classes' examples still run.

Every registered predictor and policy, the Calibrator and the Router carry one short example
(with the hashing embedder: no model download, well under a second each); a predictor or
policy registered later must bring its own, which `test_every_estimator_has_an_example`
enforces.
"""

from __future__ import annotations

import doctest
import importlib

import pytest

import tierwise.router.core  # noqa: F401 - imports every policy module the router ships
from tierwise.router.policies import available_policies, policy_class
from tierwise.router.predictors import available_predictors, predictor_class

MODULES = [
    "tierwise.router.core",
    "tierwise.router.calibration",
    *sorted({predictor_class(n).__module__ for n in available_predictors()}),
    *sorted({policy_class(n).__module__ for n in available_policies()}),
]


@pytest.mark.parametrize("module", MODULES)
def test_docstring_examples_run(module: str) -> None:
    mod = importlib.import_module(module)
    result = doctest.testmod(mod, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {module}"


def test_every_estimator_has_an_example() -> None:
    from tierwise.router.calibration import Calibrator
    from tierwise.router.core import Router

    classes = [Router, Calibrator]
    classes += [predictor_class(n) for n in available_predictors()]
    classes += [policy_class(n) for n in available_policies()]
    lacking = [c.__qualname__ for c in classes if ">>>" not in (c.__doc__ or "")]
    assert not lacking, f"add a short runnable example to the docstring of: {lacking}"


def test_every_public_class_and_function_has_a_docstring() -> None:
    """Module-level public names of every tierwise module (read with ast, nothing imported)."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    missing = []
    for part in ("router", "eval", "experiments"):
        for path in sorted((root / part).rglob("*.py")):
            tree = ast.parse(path.read_text(), filename=str(path))
            missing += [
                f"{path.relative_to(root)}:{node.lineno} {node.name}"
                for node in tree.body
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
                and not node.name.startswith("_")
                and not ast.get_docstring(node)
            ]
    assert not missing, "public names without a docstring:\n" + "\n".join(missing)
