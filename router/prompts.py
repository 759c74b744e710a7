"""Check prompts before they are embedded: one clear reason per bad prompt, never a crash.

Over-long prompts are rejected, not truncated. The embedder reads only a few hundred tokens, so
a 100,000-character prompt gains nothing from being read whole, and text that long in a routing
request is far more often an upstream bug (a whole file or log pasted into the prompt field) than
a real question; a clear error lets the caller fall back to its default model. Raise the limit
with the ``max_prompt_chars`` setting (``max_chars`` here) when such prompts are expected.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from tierwise.router.errors import DataError

DEFAULT_MAX_CHARS = 100_000


def _describe(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def validate_prompt(
    value: object, *, max_chars: int = DEFAULT_MAX_CHARS, name: str = "prompt"
) -> str:
    """Return ``value`` as a str if it is a usable prompt, else raise DataError saying why.

    Accepts ``str`` and UTF-8 ``bytes``; the text is returned unchanged (not stripped), so the
    same prompt always hashes to the same cache key.
    """
    if value is None:
        raise DataError(f"`{name}` must be a non-empty string, got None (a missing prompt).")
    if isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
        try:
            value = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            raise DataError(
                f"`{name}` must be valid UTF-8, got byte 0x{raw[err.start]:02x} at byte offset "
                f"{err.start} that does not decode; re-encode the source text as UTF-8."
            ) from None
    if isinstance(value, float) and math.isnan(value):
        raise DataError(f"`{name}` must be a non-empty string, got NaN (a missing prompt).")
    if not isinstance(value, str):
        raise DataError(
            f"`{name}` must be a string, got {type(value).__name__} {_describe(value)}; "
            "pass the prompt text."
        )
    if not value.strip():
        raise DataError(
            f"`{name}` must contain non-whitespace text, got {_describe(value)}; "
            "send the user's message."
        )
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as err:
        raise DataError(
            f"`{name}` must be valid Unicode text, got a lone surrogate "
            f"U+{ord(value[err.start]):04X} at character {err.start} (broken UTF-16 or a bad "
            "decode upstream); decode the source with errors='replace' or fix the encoding."
        ) from None
    if isinstance(max_chars, bool) or not isinstance(max_chars, int) or max_chars < 1:
        raise DataError(f"`max_chars` must be a positive integer, got {max_chars!r}.")
    if len(value) > max_chars:
        raise DataError(
            f"`{name}` must be at most {max_chars:,} characters, got {len(value):,}; shorten it, "
            "or raise the limit with the `max_prompt_chars` setting."
        )
    return value


def validate_batch(
    values: Iterable[object], *, max_chars: int = DEFAULT_MAX_CHARS
) -> tuple[list[str | None], list[str | None]]:
    """Validate each prompt on its own: ``(prompts, errors)``, one of the two set per position.

    A bad prompt yields ``None`` in ``prompts`` and its reason in ``errors``; the others keep their
    decisions. The reason names the position, e.g. "`prompt[3]` must be a string, got int 5...".
    """
    prompts: list[str | None] = []
    errors: list[str | None] = []
    for i, value in enumerate(values):
        try:
            prompts.append(validate_prompt(value, max_chars=max_chars, name=f"prompt[{i}]"))
            errors.append(None)
        except DataError as err:
            prompts.append(None)
            errors.append(str(err))
    return prompts, errors
