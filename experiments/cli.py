"""The `tierwise` command line. Each subcommand lives in its own module under experiments/commands.

Command modules are imported only when the CLI runs, and each imports its heavy dependencies
(torch, optuna, mlflow) inside its handler, so `tierwise --help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from tierwise.router.errors import TierwiseError

# Each module defines `register(subparsers)`, which adds its parser and sets `func`.
COMMAND_MODULES: tuple[str, ...] = (
    "tierwise.experiments.commands.data",
    "tierwise.experiments.commands.evaluate",
    "tierwise.experiments.commands.train",
    "tierwise.experiments.commands.tune",
    "tierwise.experiments.commands.route",
    "tierwise.experiments.commands.compare",
    "tierwise.experiments.commands.track",
    "tierwise.experiments.commands.check",
    "tierwise.experiments.commands.export",
    "tierwise.experiments.commands.serve",
    "tierwise.experiments.commands.gateway",
    "tierwise.experiments.commands.batch",
    "tierwise.experiments.commands.embed",
    "tierwise.experiments.commands.bench",
    "tierwise.experiments.commands.label",
)

DESCRIPTION = """\
tierwise learns, from your own traffic, to send each prompt to the cheapest LLM tier
that still meets your quality bar — and measures that honestly against every single model,
the zero router (mixtures of single models), random routing and the oracle.
"""


def build_parser() -> argparse.ArgumentParser:
    """The ``tierwise`` argument parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="tierwise",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    from tierwise.router import __version__

    parser.add_argument("--version", action="version", version=f"tierwise {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``tierwise`` CLI; returns the exit code (errors print one line, no traceback)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        from tierwise.experiments.commands.requires import check_requirements

        check_requirements(args)
        return int(args.func(args) or 0)
    except TierwiseError as err:
        print(f"tierwise: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tierwise: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # Output piped into `head` and closed early: not an error of ours; silence the flush too.
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115
        return 0


if __name__ == "__main__":
    sys.exit(main())
