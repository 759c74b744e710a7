"""Which text of an OpenAI request the router embeds, and checks of the request's shape.

Routers are trained on single prompts (what a user asked), so by default (``last_user``) the
gateway embeds the text of the **last user message**: system prompts are left out (an app sends
the same one with every request, which would make all prompts look alike to the embedder, the
trap of RouterBench's shared few-shot prefix) and so are earlier turns. ``conversation`` embeds
every user and assistant turn as a ``User: ... / Assistant: ...`` transcript instead (still no
system prompt), for routers trained on whole chats. Either way the artifact's own normalization
(``head_tail``, ``last_turn``...) then cuts the text to the embedder's budget exactly as in
training, since :meth:`Router.route` applies it.
"""

from __future__ import annotations

from typing import Any, Literal

from tierwise.router.serve.schemas import ClientError

EmbedMode = Literal["last_user", "conversation"]
EMBED_MODES: tuple[str, ...] = ("last_user", "conversation")
ROUTE_MODEL = "tierwise"


def message_text(content: Any) -> str:
    """A message's text: a string, or the text parts of a list of content parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [p.get("text") for p in content if isinstance(p, dict) and p.get("type") == "text"]
        return "\n".join(p for p in parts if isinstance(p, str))
    return ""


def check_messages(messages: Any) -> list[dict[str, Any]]:
    """The ``messages`` list, or a ClientError(400) naming what is wrong with it."""
    if not isinstance(messages, list) or not messages:
        raise ClientError(
            400,
            "`messages` must be a non-empty list of {role, content} objects, got "
            + ("an empty list" if isinstance(messages, list) else type(messages).__name__),
        )
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str):
            raise ClientError(400, f"`messages[{i}]` must be an object with a string `role`")
    return messages


def routed_text(messages: list[dict[str, Any]], mode: EmbedMode = "last_user") -> str:
    """The text the router embeds for a chat (see the module docstring)."""
    if mode == "conversation":
        turns = [
            f"{m['role'].capitalize()}: {message_text(m.get('content'))}"
            for m in messages
            if m["role"] in ("user", "assistant")
        ]
        if turns:
            return "\n\n".join(turns)
    for m in reversed(messages):
        if m["role"] == "user":
            text = message_text(m.get("content"))
            if text.strip():
                return text
    raise ClientError(
        400,
        "`messages` must hold a user message with text to route on; send the user's "
        "message, or pin a tier with `model: <tier name>`",
    )


def parse_model(value: Any, tiers: tuple[str, ...]) -> tuple[str | None, float | None]:
    """``(pinned tier, knob)`` from the request's ``model``: ``tierwise[:knob]`` routes."""
    if not isinstance(value, str) or not value:
        raise ClientError(
            400, f"`model` must be 'tierwise', 'tierwise:<knob>' or one of {list(tiers)}"
        )
    if value in tiers:
        return value, None
    if value == ROUTE_MODEL:
        return None, None
    if value.startswith(ROUTE_MODEL + ":"):
        text = value[len(ROUTE_MODEL) + 1 :]
        try:
            knob = float(text)
        except ValueError:
            knob = float("nan")
        if knob == knob and abs(knob) != float("inf"):
            return None, knob
        raise ClientError(
            400, f"the knob in `model` must be a finite number, got {text!r} (e.g. 'tierwise:0.5')"
        )
    raise ClientError(
        404,
        f"`model` must be 'tierwise', 'tierwise:<knob>' or one of the tiers {list(tiers)}, "
        f"got {value!r}",
    )
