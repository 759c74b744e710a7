"""Prompt validation: every bad prompt gets one clear reason; a batch keeps the good ones."""

from __future__ import annotations

import pytest

from tierwise.router.errors import DataError
from tierwise.router.prompts import DEFAULT_MAX_CHARS, validate_batch, validate_prompt


@pytest.mark.parametrize(
    ("value", "pattern"),
    [
        (None, r"^`prompt` must be a non-empty string, got None \(a missing prompt\)\.$"),
        (float("nan"), r"^`prompt` must be a non-empty string, got NaN \(a missing prompt\)\.$"),
        (42, r"^`prompt` must be a string, got int 42; pass the prompt text\.$"),
        (["a", "b"], r"^`prompt` must be a string, got list \['a', 'b'\]"),
        ({"role": "user"}, r"^`prompt` must be a string, got dict "),
        ("", r"^`prompt` must contain non-whitespace text, got ''; send the user's message\.$"),
        (" \n\t\u3000 ", r"^`prompt` must contain non-whitespace text, got "),
        (b"", r"^`prompt` must contain non-whitespace text, got ''"),
        (
            b"caf\xe9 au lait",
            r"^`prompt` must be valid UTF-8, got byte 0xe9 at byte offset 3 that does not decode; "
            r"re-encode the source text as UTF-8\.$",
        ),
        (
            "broken \ud800 text",
            r"^`prompt` must be valid Unicode text, got a lone surrogate U\+D800 at character 7",
        ),
        (
            "x" * (DEFAULT_MAX_CHARS + 1),
            r"^`prompt` must be at most 100,000 characters, got 100,001; shorten it, or raise the "
            r"limit with the `max_prompt_chars` setting\.$",
        ),
    ],
    ids=[
        "none",
        "nan",
        "int",
        "list",
        "dict",
        "empty",
        "whitespace",
        "empty-bytes",
        "bad-utf8",
        "lone-surrogate",
        "too-long",
    ],
)
def test_bad_prompts_are_rejected_with_a_reason(value: object, pattern: str) -> None:
    with pytest.raises(DataError, match=pattern):
        validate_prompt(value)


def test_good_prompts_come_back_unchanged() -> None:
    assert validate_prompt("  What is 2+2?\n") == "  What is 2+2?\n"  # not stripped: cache key
    assert validate_prompt("naïve 漢字 🙂") == "naïve 漢字 🙂"
    assert validate_prompt("café".encode()) == "café"
    assert validate_prompt(bytearray(b"hi")) == "hi"
    assert validate_prompt("x" * DEFAULT_MAX_CHARS) == "x" * DEFAULT_MAX_CHARS


def test_limit_is_configurable() -> None:
    assert validate_prompt("abcdef", max_chars=6) == "abcdef"
    with pytest.raises(DataError, match=r"must be at most 5 characters, got 6"):
        validate_prompt("abcdef", max_chars=5)
    with pytest.raises(DataError, match=r"`max_chars` must be a positive integer, got 0"):
        validate_prompt("abc", max_chars=0)


def test_custom_name_appears_in_the_message() -> None:
    with pytest.raises(DataError, match=r"^`row 7 prompt` must be a non-empty string"):
        validate_prompt(None, name="row 7 prompt")


def test_batch_keeps_good_prompts_and_explains_bad_ones() -> None:
    prompts, errors = validate_batch(["fine", None, "  ", b"\xff", "also fine", 3.5])
    assert prompts == ["fine", None, None, None, "also fine", None]
    assert errors[0] is None and errors[4] is None
    assert errors[1] == "`prompt[1]` must be a non-empty string, got None (a missing prompt)."
    assert errors[2] is not None and errors[2].startswith("`prompt[2]` must contain non-whitespace")
    assert errors[3] is not None and "`prompt[3]` must be valid UTF-8, got byte 0xff" in errors[3]
    assert errors[5] == "`prompt[5]` must be a string, got float 3.5; pass the prompt text."


def test_batch_accepts_any_iterable_and_applies_the_limit() -> None:
    prompts, errors = validate_batch((p for p in ["ab", "abcd"]), max_chars=3)
    assert prompts == ["ab", None]
    assert errors[1] is not None and "at most 3 characters, got 4" in errors[1]
    assert validate_batch([]) == ([], [])
