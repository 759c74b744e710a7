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
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
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


def parse_question(prompt: str) -> tuple[str, int, str]:
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
    task, correct, working = parse_question(prompt)
    return answer_text(model, prompt, task, correct, working)


def _between(text: str, start: str, end: str) -> str:
    i = text.find(start)
    j = text.find(end, i + len(start))
    return text[i + len(start) : j].strip() if i >= 0 and j >= 0 else ""


def judge(model: str, messages: list[dict[str, Any]], params: dict[str, Any]) -> str:
    """An LLM judge: rates 8-9 when the answer's last number equals the reference (or, without
    one, the question's answer), else 2-3;
    flips about 4% of verdicts and writes no rating for about 2%."""
    _log(model, messages)
    text = str(messages[-1]["content"])
    if "[The Start of Answer A]" in text:  # pairwise: as good as the reference is a tie
        a = re.findall(r"-?\d+", _between(text, "[The Start of Answer A]", "[The End of Answer A]"))
        b = _between(text, "[The Start of Answer B]", "[The End of Answer B]")
        return "Both give the same result. [[C]]" if a and a[-1] == b else "B is right. [[B]]"
    answer = _between(text, "[The Start of Assistant's Answer]", "[The End of Assistant's Answer]")
    ref = _between(text, "[The Start of Reference Answer]", "[The End of Reference Answer]")
    if not ref:  # no reference given: the judge works the question out itself
        ref = str(parse_question(_between(text, "[Question]", "[The Start of Assistant"))[1])
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


# ---- inputs of the tests: a traffic log, an upstreams file and a labelling config ------------


def write_inputs(folder: Path, tier_url: str, judge_url: str | None = None, **config: Any) -> Path:
    """Write prompts.jsonl, upstreams.yaml and label.yaml into ``folder``; ``config`` entries
    replace top-level keys of the labelling config. Returns the config's path."""
    import yaml

    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "prompts.jsonl").open("w", encoding="utf-8") as fh:
        for row in prompt_rows():
            fh.write(json.dumps(row) + "\n")
    ups: dict[str, Any] = {
        t: {"usd_per_1m_input": p[0], "usd_per_1m_output": p[1]} for t, p in PRICES.items()
    }
    judge = {"base_url": judge_url or tier_url, "max_concurrency": 8, **ups.pop("judge")}
    upstreams = {
        "default": {"base_url": tier_url, "max_concurrency": 8, "backoff_s": 0.05},
        "upstreams": ups,
    }
    # the tiers' file is the one the gateway reads too: the judge has a file of its own
    (folder / "upstreams.yaml").write_text(yaml.safe_dump(upstreams))
    (folder / "judge_upstreams.yaml").write_text(yaml.safe_dump({"upstreams": {"judge": judge}}))
    cfg: dict[str, Any] = {
        "name": "arith",
        "upstreams": "upstreams.yaml",
        "tiers": ["small", "mid", "big"],
        "source": {"path": "prompts.jsonl"},
        "columns": {
            "id": "id",
            "prompt": "prompt",
            "task": "task",
            "reference": "answer",
            "response": "response",
        },
        "sample": {"n": 200, "stratify": "task", "seed": 0},
        # the fake upstream counts words as tokens: ~5 characters each in these prompts
        "generation": {"params": {"temperature": 0, "max_tokens": 64}, "chars_per_token": 5},
        "score": {"method": "reference", "reference": {"match": "numeric"}},
        "output": {
            "dir": "out",
            "experiment": {
                "router": {"embedder": {"name": "hashing:64"}, "predictor": {"name": "knn"}},
                "tracking": {"enabled": False},
            },
        },
        **config,
    }
    path = folder / "label.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def logged_calls(path: Path) -> Counter[str]:
    """Calls the behaviours saw, per call_key (the $LABEL_CALL_LOG file)."""
    if not path.exists():
        return Counter()
    return Counter(path.read_text().split())


@contextmanager
def logging_upstream(behaviour: str, log: Path) -> Iterator[Any]:
    """A fake upstream process whose behaviour logs each call to ``log``."""
    from upstream_helpers import start_fake_upstream

    old = os.environ.get("LABEL_CALL_LOG")
    os.environ["LABEL_CALL_LOG"] = str(log)
    try:
        with start_fake_upstream(behaviour=f"{__file__}:{behaviour}") as up:
            yield up
    finally:
        if old is None:
            os.environ.pop("LABEL_CALL_LOG", None)
        else:
            os.environ["LABEL_CALL_LOG"] = old


def last_number_matches(answer: str, example: dict[str, Any]) -> bool | None:
    """A user's Python scorer (``score.python.function: label_behaviours:last_number_matches``)."""
    nums = re.findall(r"-?\d+", answer)
    if not nums:
        return None
    return nums[-1] == str(example["reference"])


if __name__ == "__main__":  # write a demo traffic log: python tests/label_behaviours.py DIR
    import sys

    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    with (out / "prompts.jsonl").open("w", encoding="utf-8") as fh:
        for row in prompt_rows():
            fh.write(json.dumps(row) + "\n")
    print(f"wrote {out / 'prompts.jsonl'}")
