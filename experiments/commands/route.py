"""`tierwise route ARTIFACT "prompt"` / `--file prompts.jsonl`: decisions as a table or JSONL."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from tierwise.router.errors import DataError
from tierwise.router.tables import text_table

HELP = """\
Route prompts with a saved router artifact. Give prompts as arguments, or a file with
--file (JSONL with a "prompt" field per line, or plain text with one prompt per line).
Each prompt gets the chosen model, every model's predicted success and expected cost;
an invalid prompt gets an error and does not stop the others.
"""


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``tierwise route`` to the CLI."""
    p = sub.add_parser(
        "route",
        help="route prompts with a saved router",
        description=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("artifact", help="router artifact (router.tierwise or a directory)")
    p.add_argument("prompts", nargs="*", help="prompt texts")
    p.add_argument("--file", type=Path, help="JSONL ({'prompt': ...} per line) or text file")
    p.add_argument("--jsonl", action="store_true", help="print one JSON decision per line")
    p.add_argument("--knob", type=float, default=None, help="override the policy knob")
    p.set_defaults(func=run)


def read_prompts(path: Path) -> list[Any]:
    """Prompts from a JSONL file (``prompt`` field) or a text file (one per line, as bytes)."""
    if not path.is_file():
        raise DataError(f"prompt file {str(path)!r} does not exist; pass an existing file")
    lines = path.read_bytes().splitlines()
    if path.suffix == ".jsonl":
        out: list[Any] = []
        for n, raw in enumerate(lines, 1):
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError):
                out.append(ValueError(f"{path}:{n}: not valid JSON"))
                continue
            out.append(obj.get("prompt") if isinstance(obj, dict) else obj)
        return out
    return [raw for raw in lines if raw.strip()]


def _shown(prompt: Any) -> str:
    # Text-file lines stay bytes so that the router reports broken UTF-8 per prompt; show text.
    text = prompt.decode("utf-8", "replace") if isinstance(prompt, bytes) else str(prompt)
    return (text[:50] + "…") if len(text) > 50 else text


def decision_table(decisions: list[Any], prompts: list[Any]) -> str:
    """One row per prompt: the chosen model, its P(success) and expected cost, or the error."""
    rows = []
    for d, p in zip(decisions, prompts, strict=True):
        if d.model is None:
            rows.append([d.index, "-", "", "", f"error: {d.error}"])
        else:
            ps, cs = d.p_success[d.model], d.expected_cost[d.model]
            rows.append([d.index, d.model, f"{ps:.3f}", f"{cs:.6f}", repr(_shown(p))])
    head = ["#", "model", "p(success)", "exp. cost $", "prompt / error"]
    return text_table(rows, head, align=["right", "left", "right", "right", "left"])


def run(args: argparse.Namespace) -> int:
    """Run ``tierwise route``; exit code 1 if any prompt could not be routed."""
    from tierwise.router.core import Router

    prompts: list[Any] = list(args.prompts)
    if args.file:
        prompts += read_prompts(args.file)
    if not prompts:
        raise DataError("no prompts given; pass prompt texts or --file prompts.jsonl")
    router = Router.load(args.artifact)
    decisions = router.route(prompts, knob=args.knob)
    if args.jsonl:
        for d in decisions:
            print(json.dumps(d.to_dict(), ensure_ascii=False))
    else:
        print(decision_table(decisions, prompts))
    return 0 if all(d.ok for d in decisions) else 1
