"""Reference match: compare the answer with the example's reference answer.

- ``exact``: equal after stripping surrounding whitespace;
- ``normalized``: equal after SQuAD-style normalization (case, punctuation, articles, spacing);
- ``numeric``: the answer's last number equals the reference's last number within a relative
  ``tolerance`` (thousands separators, $ and % are ignored; GSM8K's ``#### 72`` works);
- ``choice``: the multiple-choice letter the answer commits to ("The answer is (C)",
  "Answer: C", "C." at the start, or a lone letter) equals the reference's letter;
- ``regex``: ``pattern`` extracts from the answer (first group of its last match, else the
  whole match), then compared normalized.

An answer in which nothing can be found (no number, no letter, no match, empty) is unscorable
(value None) with a note saying what was missing.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable

from tierwise.eval.labelling.config import ReferenceMatchConfig
from tierwise.eval.labelling.scorers.base import Score, Scorer
from tierwise.eval.labelling.sources import Example

_NUMBER = re.compile(r"[-+]?\$?\s?\d[\d,]*(?:\.\d+)?|[-+]?\.\d+")
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans("", "", string.punctuation)


def squad_normalize(text: str) -> str:
    """SQuAD's answer normalization: casefold, strip punctuation and articles, squeeze spaces."""
    text = text.casefold().translate(_PUNCT)
    return " ".join(_ARTICLES.sub(" ", text).split())


def last_number(text: str) -> float | None:
    """The last number in ``text`` (commas ignored), or None."""
    found = _NUMBER.findall(text)
    if not found:
        return None
    token = found[-1].replace(",", "").replace("$", "").replace(" ", "")
    try:
        return float(token)
    except ValueError:
        return None


def choice_letter(text: str, letters: str) -> str | None:
    """The option letter an answer commits to, or None."""
    cls = "[" + re.escape(letters) + re.escape(letters.lower()) + "]"
    patterns = (
        rf"answer\s*(?:is|:)?\s*:?\s*\(?({cls})\)?(?![\w])",
        rf"\(({cls})\)",
        rf"^\s*({cls})\s*(?:[.):]|$)",
    )
    for p in patterns:
        found = re.findall(p, text, flags=re.IGNORECASE | re.MULTILINE)
        if found:
            return str(found[-1]).upper()
    words = re.findall(rf"\b({cls})\b", text.strip())
    if len(text.strip()) <= 3 and words:
        return words[-1].upper()
    return None


def _exact(answer: str, ref: str, cfg: ReferenceMatchConfig) -> Score:
    return Score(float(answer.strip() == ref.strip()))


def _normalized(answer: str, ref: str, cfg: ReferenceMatchConfig) -> Score:
    return Score(float(squad_normalize(answer) == squad_normalize(ref)))


def _numeric(answer: str, ref: str, cfg: ReferenceMatchConfig) -> Score:
    want = last_number(ref)
    if want is None:
        return Score(None, f"the reference {ref[:40]!r} has no number")
    got = last_number(answer)
    if got is None:
        return Score(None, "no number in the answer")
    return Score(float(abs(got - want) <= cfg.tolerance * max(1.0, abs(want))), f"found {got:g}")


def _choice(answer: str, ref: str, cfg: ReferenceMatchConfig) -> Score:
    want = choice_letter(ref, cfg.letters)
    if want is None:
        return Score(None, f"the reference {ref[:40]!r} names no option letter")
    got = choice_letter(answer, cfg.letters)
    if got is None:
        return Score(None, "no option letter in the answer")
    return Score(float(got == want), f"found {got}")


def _regex(answer: str, ref: str, cfg: ReferenceMatchConfig) -> Score:
    assert cfg.pattern is not None
    matches = list(re.finditer(cfg.pattern, answer))
    if not matches:
        return Score(None, "the pattern does not match the answer")
    m = matches[-1]
    got = m.group(1) if m.groups() else m.group(0)
    return Score(float(squad_normalize(got or "") == squad_normalize(ref)), f"found {got!r}")


MATCHERS: dict[str, Callable[[str, str, ReferenceMatchConfig], Score]] = {
    "exact": _exact,
    "normalized": _normalized,
    "numeric": _numeric,
    "choice": _choice,
    "regex": _regex,
}


def match(answer: str, reference: str | None, cfg: ReferenceMatchConfig) -> Score:
    """Score ``answer`` against ``reference`` with the configured matcher."""
    if reference is None or not reference.strip():
        return Score(None, "no reference answer for this prompt")
    if not answer.strip():
        return Score(None, "empty answer")
    return MATCHERS[cfg.match](answer, reference, cfg)


class ReferenceScorer(Scorer):
    """``score.method: reference``."""

    name = "reference"

    def __init__(self, cfg: ReferenceMatchConfig) -> None:
        self.cfg = cfg

    async def score(self, answer: str, example: Example) -> Score:
        return match(answer, example.reference, self.cfg)
