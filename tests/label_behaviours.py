"""Behaviours of the fake upstreams in tests/test_label*.py, and the prompts they answer.

Three tiers answer arithmetic questions: ``small`` is right on most additions and few
multi-step ("chain") questions, ``mid`` on more, ``big`` on almost all — decided by a hash of
(model, prompt), so reruns answer identically. ``judge`` grades an answer against the
reference the way an LLM judge would (with a few deliberate disagreements and a few outputs
without a rating). Each call is appended to the file in $LABEL_CALL_LOG (one hash of model and
messages per line), so tests count repeated calls at the upstream itself.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
from typing import Any

SKILL = {
    "small": {"add": 0.9, "chain": 0.25},
    "mid": {"add": 0.95, "chain": 0.6},
    "big": {"add": 0.99, "chain": 0.93},
}
PRICES = {"small": (0.1, 0.2), "mid": (1.0, 2.0), "big": (10.0, 30.0), "judge": (5.0, 15.0)}


def _h(*parts: str) -> float:
    d = hashlib.sha256("\x1f".join(parts).encode()).digest()
    return int.from_bytes(d[:8], "big") / 2**64


def _log(model: str, messages: list[dict[str, Any]]) -> None:
    path = os.environ.get("LABEL_CALL_LOG")
    if path:
        key = hashlib.sha256(json.dumps([model, messages], sort_keys=True).encode()).hexdigest()
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(key + "\n")


def call_key(model: str, messages: list[dict[str, Any]]) -> str:
    """The key _log writes for a call (tests compute it for the calls they expect)."""
    return hashlib.sha256(json.dumps([model, messages], sort_keys=True).encode()).hexdigest()


def make_question(rng: random.Random, task: str) -> tuple[str, int, str]:
    """(prompt, correct answer, working shown in an answer)."""
    if task == "add":
        a, b = rng.randint(10, 99), rng.randint(10, 99)
        return f"What is {a} plus {b}? Reply with the number.", a + b, f"{a} plus {b}"
    a, b, c = rng.randint(3, 19), rng.randint(3, 19), rng.randint(1, 30)
    prompt = f"Multiply {a} by {b}, then subtract {c}. What number do you get?"
    return prompt, a * b - c, f"{a} times {b} is {a * b}, minus {c}"


def answer_text(model: str, prompt: str, task: str, correct: int, working: str) -> str:
    right = _h(model, prompt) < SKILL.get(model, SKILL["mid"])[task]
    value = correct if right else correct + 1 + int(_h("off", model, prompt) * 5)
    return f"Working it out step by step: {working}. The answer is {value}."


def prompt_rows(n: int = 230, seed: int = 7) -> list[dict[str, Any]]:
    """A traffic log: id, prompt, task, reference answer, the served model's logged response;
    with a few duplicates (case/spacing variants) and empty prompts mixed in."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        task = "add" if rng.random() < 0.55 else "chain"
        prompt, correct, working = make_question(rng, task)
        served = answer_text("mid", prompt, task, correct, working)
        rows.append(
            {
                "id": f"q{i:04d}",
                "prompt": prompt,
                "task": task,
                "answer": str(correct),
                "response": served,
            }
        )
    for j in range(8):  # duplicates differing only in case and spacing
        src = rows[j * 3]
        rows.append({**src, "id": f"dup{j}", "prompt": "  " + src["prompt"].upper() + " "})
    rows.append({"id": "empty0", "prompt": "   ", "task": "add", "answer": "0", "response": ""})
    return rows


def _parse(prompt: str) -> tuple[str, int, str]:
    m = re.match(r"What is (\d+) plus (\d+)\?", prompt)
    if m:
        a, b = int(m.group(1)), int(m.group(2))
        return "add", a + b, f"{a} plus {b}"
    m = re.match(r"Multiply (\d+) by (\d+), then subtract (\d+)\.", prompt)
    if m:
        a, b, c = (int(g) for g in m.groups())
        return "chain", a * b - c, f"{a} times {b} is {a * b}, minus {c}"
    raise ValueError(f"unknown question {prompt[:60]!r}")


def tiers(model: str, messages: list[dict[str, Any]], params: dict[str, Any]) -> str:
    """small / mid / big answering arithmetic questions."""
    _log(model, messages)
    prompt = str(messages[-1]["content"]).strip()
    task, correct, working = _parse(prompt)
    return answer_text(model, prompt, task, correct, working)


def _between(text: str, start: str, end: str) -> str:
    i = text.find(start)
    j = text.find(end, i + len(start))
    return text[i + len(start) : j].strip() if i >= 0 and j >= 0 else ""


def judge(model: str, messages: list[dict[str, Any]], params: dict[str, Any]) -> str:
    """An LLM judge: rates 8-9 when the answer's last number equals the reference, else 2-3;
    flips about 4% of verdicts and writes no rating for about 2%."""
    _log(model, messages)
    text = str(messages[-1]["content"])
    answer = _between(text, "[The Start of Assistant's Answer]", "[The End of Assistant's Answer]")
    ref = _between(text, "[The Start of Reference Answer]", "[The End of Reference Answer]")
    nums = re.findall(r"-?\d+", answer)
    good = bool(nums) and nums[-1] == ref.strip()
    u = _h("judge", answer, ref)
    if u < 0.02:
        return "The response is hard to assess without more context; I will not rate it."
    if u < 0.06:
        good = not good
    rating = (8 + int(u * 100) % 2) if good else (2 + int(u * 100) % 2)
    return (
        f"The assistant's final number is {nums[-1] if nums else 'missing'}. Rating: [[{rating}]]"
    )
