"""LLM judge: a judge model (a tier of the upstreams file) grades each answer with a rubric.

``rating``: the judge writes a 1-10 score as ``[[7]]`` (MT-bench's convention; ``Rating: 7``
is accepted too), mapped to [0, 1] as (score - 1) / 9. ``pairwise``: the judge compares the
answer (A) with the reference answer (B) and writes ``[[A]]``, ``[[B]]`` or ``[[C]]`` (tie),
mapped to 1, 0 and the configured ``tie`` value. The judge's whole output is kept in the
answers file. Output the parser cannot read is unscorable (value None), never a guess.
"""

from __future__ import annotations

import re

from tierwise.eval.labelling.config import JudgeConfig
from tierwise.eval.labelling.scorers.base import AskFn, Score, Scorer
from tierwise.eval.labelling.sources import Example
from tierwise.router.errors import ConfigError
from tierwise.router.upstreams import UpstreamError

RATING_RUBRIC = """\
Please act as an impartial judge and evaluate the quality of the response provided by an AI \
assistant to the user question displayed below. Consider correctness first, then helpfulness, \
relevance, depth and level of detail.{reference_note} Begin your evaluation with a short \
explanation, then rate the response on a scale of 1 to 10 by strictly following this format: \
"[[rating]]", for example: "Rating: [[5]]".

[Question]
{prompt}
{reference_block}
[The Start of Assistant's Answer]
{answer}
[The End of Assistant's Answer]"""

PAIRWISE_RUBRIC = """\
Please act as an impartial judge and compare two answers to the user question below: \
answer A (an assistant's) and answer B (a reference). Judge correctness first, then \
helpfulness. After a short explanation, output your verdict strictly as "[[A]]" if A is \
better, "[[B]]" if B is better, or "[[C]]" for a tie.

[Question]
{prompt}

[The Start of Answer A]
{answer}
[The End of Answer A]

[The Start of Answer B]
{reference}
[The End of Answer B]"""

_RATING = (
    re.compile(r"\[\[\s*(\d+(?:\.\d+)?)\s*\]\]"),
    re.compile(r"rating\s*:\s*(\d+(?:\.\d+)?)", re.I),
)
_VERDICT = re.compile(r"\[\[\s*([ABC])\s*\]\]")


def fill(template: str, **values: str) -> str:
    """Replace ``{name}`` placeholders only (a rubric may hold other braces, e.g. JSON)."""
    for k, v in values.items():
        template = template.replace("{" + k + "}", v)
    return template


def parse_rating(text: str) -> Score:
    """A judge's 1-10 rating as a score in [0, 1], or the reason none was found."""
    for rx in _RATING:
        found = rx.findall(text)
        if found:
            s = float(found[-1])
            if 1 <= s <= 10:
                return Score((s - 1) / 9, f"rating {s:g}", raw=text)
            return Score(None, f"rating {s:g} is outside 1-10", raw=text)
    return Score(None, "the judge's output has no [[rating]]", raw=text)


def parse_verdict(text: str, tie: float) -> Score:
    """A pairwise judge's [[A]]/[[B]]/[[C]] verdict as a score (``tie`` for C)."""
    found = _VERDICT.findall(text)
    if not found:
        return Score(None, "the judge's output has no [[A]]/[[B]]/[[C]] verdict", raw=text)
    verdict = found[-1]
    value = {"A": 1.0, "B": 0.0, "C": tie}[verdict]
    return Score(value, f"verdict {verdict}", raw=text)


class JudgeScorer(Scorer):
    """``score.method: judge``: asks the judge tier through the runner's cached, budgeted call."""

    name = "judge"
    calls_upstream = True

    def __init__(self, cfg: JudgeConfig, ask: AskFn) -> None:
        self.cfg = cfg
        self.ask = ask
        self.rubric = cfg.rubric or (RATING_RUBRIC if cfg.mode == "rating" else PAIRWISE_RUBRIC)
        if "{answer}" not in self.rubric:
            raise ConfigError(
                "`score.judge.rubric` must contain {answer} (and usually {prompt}), got a "
                "template without it; add the placeholder"
            )

    def messages(self, answer: str, example: Example) -> list[dict[str, str]]:
        ref = example.reference or ""
        block = f"\n[The Start of Reference Answer]\n{ref}\n[The End of Reference Answer]\n"
        text = fill(
            self.rubric,
            reference_note=" A reference answer is given; use it to check correctness."
            if ref
            else "",
            reference_block=block if ref else "",
            prompt=example.prompt,
            answer=answer,
            reference=ref,
        )
        return [{"role": "user", "content": text}]

    async def score(self, answer: str, example: Example) -> Score:
        if not answer.strip():
            return Score(None, "empty answer")
        try:
            out = await self.ask(self.cfg.tier, self.messages(answer, example), self.cfg.params)
        except UpstreamError as err:
            return Score(None, f"judge call failed: {str(err)[:200]}")
        if self.cfg.mode == "rating":
            return parse_rating(out)
        return parse_verdict(out, self.cfg.tie)
