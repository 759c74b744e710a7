"""Prompt normalization before embedding: choose which part of a long prompt the model sees.

Why: embedding models read a fixed number of tokens (256 for MiniLM) and silently drop the rest.
Benchmark-style prompts (RouterBench) open with the same few-shot examples and put the actual
question last, so the model's own head truncation embeds only the shared prefix and every prompt
looks alike. ``tail`` keeps the end, ``head_tail`` keeps some of both (the default: instructions
often come first, the question last), ``last_turn`` keeps only the user's last chat message.

Truncation counts the model's own tokens when its fast tokenizer is given (cut points come from
the tokenizer's character offsets, so the kept text is the original text, formatting included);
otherwise it counts whitespace-separated words.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from tierwise.router.errors import ConfigError
from tierwise.router.schema import StrictModel

if TYPE_CHECKING:
    from tierwise.router.embed.base import Embedder

Mode = Literal["none", "head", "tail", "head_tail", "last_turn"]
DEFAULT_MAX_TOKENS = 256  # MiniLM's limit; used when neither config nor embedder gives one
# Without the model's tokenizer we count words; English averages ~1.3 tokens per word, so the
# word budget is 3/4 of the token budget and the model does not cut the kept tail itself.
WORDS_PER_TOKEN = 0.75
SEPARATOR = " ... "  # marks where head_tail removed the middle
_VERSION = 1  # bump when the output of apply() changes for the same config: it is in the key
_WORD = re.compile(r"\S+")


class NormalizationConfig(StrictModel):
    """How a prompt is cut to the embedder's token budget (the ``normalization`` config section)."""

    mode: Mode = "head_tail"
    # None: the embedder's limit (256 for MiniLM). A larger value is capped at that limit, since
    # the model would otherwise cut the kept text again, from the end.
    max_tokens: int | None = Field(default=None, ge=8, le=1_000_000)
    # head_tail / last_turn: share of the budget given to the start of the prompt.
    head_fraction: float = Field(default=0.25, ge=0.0, le=1.0)


class _Tokens:
    """Character spans of tokens: the model's fast tokenizer if given, else whitespace words."""

    def __init__(self, tokenizer: Any | None) -> None:
        self.exact = tokenizer is not None
        self.specials = 0
        self.key = "words"
        self._backend: Any = None
        if tokenizer is None:
            return
        backend = getattr(tokenizer, "backend_tokenizer", tokenizer)
        if not hasattr(backend, "to_str") or not hasattr(backend, "encode"):
            raise ConfigError(
                "`tokenizer` must be a Hugging Face fast tokenizer (with offsets) or a "
                f"tokenizers.Tokenizer, got {type(tokenizer).__name__}; pass None to count words."
            )
        # The tokenizer's definition, hashed: a different vocabulary cuts differently. Truncation
        # and padding are per-call state that transformers writes into it, so they are left out.
        spec = json.loads(backend.to_str())
        spec["truncation"] = spec["padding"] = None
        canonical = json.dumps(spec, sort_keys=True, ensure_ascii=False)
        self.key = "tok-" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]
        # A private copy, never truncating: the model's own tokenizer has its truncation switched
        # on and off by each encode call, which also makes sharing it across threads unsafe.
        self._backend = type(backend).from_str(canonical)
        self.specials = int(self._backend.num_special_tokens_to_add(False))

    def spans(self, text: str) -> list[tuple[int, int]]:
        if self._backend is None:
            return [m.span() for m in _WORD.finditer(text)]
        offsets = self._backend.encode(text, add_special_tokens=False).offsets
        return [(int(s), int(e)) for s, e in offsets if e > s]

    def count(self, text: str) -> int:
        return len(self.spans(text))


class Normalizer:
    """Apply a :class:`NormalizationConfig` to prompt text; ``key`` identifies the transform."""

    def __init__(
        self,
        config: NormalizationConfig | None = None,
        tokenizer: Any | None = None,
        *,
        model_max_tokens: int | None = None,
    ) -> None:
        self.config = config or NormalizationConfig()
        self._tokens = _Tokens(tokenizer)
        limit = self.config.max_tokens or model_max_tokens or DEFAULT_MAX_TOKENS
        if model_max_tokens:
            limit = min(limit, model_max_tokens)
        self.max_tokens = limit
        if tokenizer is None:
            self.budget = max(1, int(limit * WORDS_PER_TOKEN))
        else:
            self.budget = max(1, limit - self._tokens.specials)
        self._sep_cost = self._tokens.count(SEPARATOR)

    @classmethod
    def for_embedder(cls, config: NormalizationConfig | None, embedder: Embedder) -> Normalizer:
        """A normalizer that counts ``embedder``'s tokens against its own limit."""
        return cls(config, embedder.tokenizer, model_max_tokens=embedder.max_tokens)

    @property
    def key(self) -> str:
        """Stable text naming everything that changes :meth:`apply`'s output (a cache key part)."""
        c = self.config
        if c.mode == "none":
            return f"norm-v{_VERSION}:none"
        part = f":head_fraction={c.head_fraction:g}" if c.mode in ("head_tail", "last_turn") else ""
        return f"norm-v{_VERSION}:{c.mode}:budget={self.budget}{part}:{self._tokens.key}"

    def apply(self, text: str) -> str:
        mode = self.config.mode
        if mode == "none":
            return text
        if mode == "last_turn":
            return self._truncate(last_user_turn(text), "head_tail")
        return self._truncate(text, mode)

    def _truncate(self, text: str, mode: str) -> str:
        spans = self._tokens.spans(text)
        budget = self.budget
        if len(spans) <= budget:
            return text
        head = {"head": budget, "tail": 0}.get(mode, round(budget * self.config.head_fraction))
        if 0 < head < budget and budget - head <= self._sep_cost:
            head = budget  # no room for a tail after the separator
        tail = budget - head
        out = _cut(text, spans, head, tail, self._sep_cost)
        for _ in range(3):  # a cut inside a word can re-tokenize into a few more tokens
            if not self._tokens.exact:
                break
            over = self._tokens.count(out) - budget
            if over <= 0:
                break
            if tail > over:
                tail -= over
            else:
                head = max(1, head - over)
            out = _cut(text, spans, head, tail, self._sep_cost)
        return out


def _cut(text: str, spans: list[tuple[int, int]], head: int, tail: int, sep_cost: int) -> str:
    """Keep the first ``head`` and last ``tail`` tokens (minus the separator's cost if both)."""
    if head > 0 and tail > 0:
        tail = max(1, tail - sep_cost)
        return text[: spans[head - 1][1]].rstrip() + SEPARATOR + text[spans[-tail][0] :].lstrip()
    if head > 0:
        return text[: spans[head - 1][1]]
    return text[spans[-tail][0] :]


# ---- last user turn of a chat transcript -------------------------------------------------------

_USER_ROLES = {"user", "human"}
_ROLE_KEYS = ("role", "from", "speaker")
_CONTENT_KEYS = ("content", "value", "text")
# Turn markers of common transcript and chat-template formats. Plain "Name:" markers count only at
# the start of a line, so "the user: ..." inside a sentence is not a turn.
_MARKERS = re.compile(
    r"(?P<user>^[ \t]*(?:#{1,4}[ \t]*)?(?:user|human)[ \t]*:"
    r"|<\|im_start\|>[ \t]*user\b|<\|user\|>|<start_of_turn>user\b|\[INST\]"
    r"|<\|start_header_id\|>user<\|end_header_id\|>)"
    r"|(?P<other>^[ \t]*(?:#{1,4}[ \t]*)?(?:assistant|ai|bot|gpt|system|response)[ \t]*:"
    r"|<\|im_start\|>[ \t]*\w+|<\|im_end\|>|<\|(?:assistant|system|end)\|>|\[/INST\]"
    r"|<end_of_turn>|<\|eot_id\|>|<\|start_header_id\|>\w+<\|end_header_id\|>|</s>)",
    re.IGNORECASE | re.MULTILINE,
)


def _message_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # OpenAI-style parts: [{"type": "text", "text": ...}, ...]
        parts = [p if isinstance(p, str) else p.get("text") for p in content if p is not None]
        return "\n".join(p for p in parts if isinstance(p, str))
    return ""


def _from_json(text: str) -> str | None:
    stripped = text.strip()
    if not stripped.startswith(("[", "{")):
        return None
    try:
        data = json.loads(stripped)
    except ValueError:
        return None
    if isinstance(data, dict):
        data = data.get("messages") or data.get("conversations") or data.get("conversation")
    if not isinstance(data, list):
        return None
    for msg in reversed(data):
        if not isinstance(msg, dict):
            continue
        role = next((msg[k] for k in _ROLE_KEYS if isinstance(msg.get(k), str)), "")
        if role.lower() in _USER_ROLES:
            body = next((msg[k] for k in _CONTENT_KEYS if k in msg), None)
            content = _message_text(body).strip()
            if content:
                return content
    return None


def _from_transcript(text: str) -> str | None:
    marks = list(_MARKERS.finditer(text))
    for i in range(len(marks) - 1, -1, -1):
        if marks[i].group("user") is None:
            continue
        end = marks[i + 1].start() if i + 1 < len(marks) else len(text)
        content = text[marks[i].end() : end].strip()
        if content:
            return content
    return None


def last_user_turn(text: str) -> str:
    """The last non-empty user message of a chat prompt, or the whole text if it is not a chat.

    Understands a JSON list of ``{role, content}`` messages (also ``{"messages": [...]}`` and
    ShareGPT's ``{from, value}``), "User:/Assistant:" and "### Human:" transcripts, and the
    ChatML, Llama and Gemma chat templates.
    """
    return _from_json(text) or _from_transcript(text) or text
