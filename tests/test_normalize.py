"""Prompt normalization: which part of a long prompt the embedder sees, and chat last turns."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tierwise.router.embed import Embedder, get_embedder
from tierwise.router.errors import ConfigError
from tierwise.router.normalize import (
    SEPARATOR,
    NormalizationConfig,
    Normalizer,
    last_user_turn,
)
from tierwise.router.schema import parse_model

SHOTS = [
    ("Which gas do plants absorb from the air?", "A) oxygen", "B) carbon dioxide", "B"),
    ("What is the largest planet in our solar system?", "A) Jupiter", "B) Mars", "A"),
    ("Which organ pumps blood through the body?", "A) lungs", "B) heart", "B"),
    ("What do bees make from nectar?", "A) honey", "B) wax", "A"),
    ("Which state of matter has a fixed shape?", "A) gas", "B) solid", "B"),
    ("How many legs does a spider have?", "A) eight", "B) six", "A"),
    ("What force pulls objects toward Earth?", "A) magnetism", "B) gravity", "B"),
    ("Which instrument measures temperature?", "A) barometer", "B) thermometer", "B"),
]
INSTRUCTION = 'Print only a single choice from "A" or "B" without explanation.\nAnswer:'


def routerbench_like(question: str) -> str:
    """Same few-shot prefix for every prompt (~400 tokens), the real question last."""
    shots = "".join(f"{q}\n{a}\n{b}\n{INSTRUCTION}\n{ans}\n\n" for q, a, b, ans in SHOTS * 2)
    return (
        f"Please answer with the letter of the correct answer.\n\n{shots}{question}\n{INSTRUCTION}"
    )


QUESTION = "Why does a metal spoon feel colder than a wooden spoon at room temperature?"
PROMPT = routerbench_like(QUESTION)


@pytest.fixture(scope="module")
def minilm() -> Embedder:
    return get_embedder("minilm")


def norm(mode: str, **kw: object) -> Normalizer:
    return Normalizer(NormalizationConfig(mode=mode, **kw))


# ---- word-counting (no tokenizer) --------------------------------------------------------------


def test_tail_keeps_the_question_and_head_does_not() -> None:
    assert QUESTION in norm("tail").apply(PROMPT)
    assert QUESTION not in norm("head").apply(PROMPT)
    assert norm("head").apply(PROMPT).startswith("Please answer with the letter")


def test_head_tail_keeps_both_ends_and_marks_the_cut() -> None:
    out = norm("head_tail", head_fraction=0.25).apply(PROMPT)
    assert out.startswith("Please answer with the letter")
    assert out.endswith(f"{QUESTION}\n{INSTRUCTION}")
    assert SEPARATOR in out


def test_word_budget_is_three_quarters_of_the_token_limit() -> None:
    n = norm("tail", max_tokens=100)
    assert n.budget == 75
    assert len(n.apply(PROMPT).split()) == 75


def test_truncation_keeps_original_formatting() -> None:
    out = norm("tail", max_tokens=40).apply(PROMPT)
    assert PROMPT.endswith(out)
    assert "\n" in out


@pytest.mark.parametrize("mode", ["none", "head", "tail", "head_tail", "last_turn"])
def test_short_prompts_are_unchanged(mode: str) -> None:
    assert norm(mode).apply("What is 2 + 2?") == "What is 2 + 2?"


def test_none_never_changes_text() -> None:
    assert norm("none").apply(PROMPT) == PROMPT


def test_head_fraction_zero_and_one_are_tail_and_head() -> None:
    assert norm("head_tail", head_fraction=0.0).apply(PROMPT) == norm("tail").apply(PROMPT)
    assert norm("head_tail", head_fraction=1.0).apply(PROMPT) == norm("head").apply(PROMPT)


def test_key_names_everything_that_changes_the_output() -> None:
    keys = {
        norm("tail").key,
        norm("head").key,
        norm("head_tail").key,
        norm("head_tail", head_fraction=0.5).key,
        norm("tail", max_tokens=128).key,
        norm("last_turn").key,
        norm("none").key,
    }
    assert len(keys) == 7
    assert norm("tail").key == norm("tail").key
    assert norm("tail").key == "norm-v1:tail:budget=192:words"


def test_default_limit_is_256_and_model_limit_caps_config() -> None:
    assert Normalizer(NormalizationConfig()).max_tokens == 256
    capped = Normalizer(NormalizationConfig(max_tokens=1000), model_max_tokens=128)
    assert capped.max_tokens == 128
    assert Normalizer(NormalizationConfig(), model_max_tokens=512).max_tokens == 512


def test_config_is_strict() -> None:
    with pytest.raises(ConfigError, match=r"unknown key `truncate`"):
        parse_model(NormalizationConfig, {"mode": "tail", "truncate": True}, "normalization")
    with pytest.raises(ConfigError, match=r"`mode` input should be 'none', 'head', 'tail'"):
        parse_model(NormalizationConfig, {"mode": "middle"}, "normalization")
    with pytest.raises(ConfigError, match=r"`head_fraction` input should be less than or equal"):
        parse_model(NormalizationConfig, {"head_fraction": 1.5}, "normalization")


def test_non_tokenizer_is_rejected() -> None:
    with pytest.raises(ConfigError, match=r"`tokenizer` must be a Hugging Face fast tokenizer"):
        Normalizer(NormalizationConfig(), tokenizer=str.split)


# ---- token-accurate with the real MiniLM tokenizer ---------------------------------------------


@pytest.mark.integration
@pytest.mark.parametrize("mode", ["head", "tail", "head_tail", "last_turn"])
def test_token_budget_is_exact_with_the_model_tokenizer(minilm: Embedder, mode: str) -> None:
    n = Normalizer.for_embedder(NormalizationConfig(mode=mode), minilm)
    out = n.apply(PROMPT)
    tok = minilm.tokenizer
    assert tok is not None
    n_tokens = len(tok(out, truncation=False, verbose=False)["input_ids"])  # with [CLS], [SEP]
    assert 240 <= n_tokens <= 256
    assert (QUESTION in out) == (mode != "head")
    assert ":tok-" in n.key


@pytest.mark.integration
def test_tail_separates_routerbench_prompts_that_head_truncation_merges(minilm: Embedder) -> None:
    """The reason this module exists: same few-shot prefix, different questions."""
    prompts = [PROMPT, routerbench_like("Which planet is known as the red planet?")]
    cfg = NormalizationConfig
    head = Normalizer.for_embedder(cfg(mode="none"), minilm)  # the model's own head truncation
    tail = Normalizer.for_embedder(cfg(mode="tail"), minilm)
    a, b = minilm.embed([head.apply(p) for p in prompts])
    c, d = minilm.embed([tail.apply(p) for p in prompts])
    assert float(a @ b) > 0.999  # the model never saw the questions
    assert float(c @ d) < float(a @ b) - 0.01
    assert not np.allclose(c, d)


# ---- last user turn ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            json.dumps(
                [
                    {"role": "system", "content": "Be brief."},
                    {"role": "user", "content": "first question"},
                    {"role": "assistant", "content": "an answer"},
                    {"role": "user", "content": "  the follow-up?  "},
                ]
            ),
            "the follow-up?",
        ),
        (
            json.dumps(
                {"messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]}
            ),
            "hi",
        ),
        (
            json.dumps([{"from": "human", "value": "sharegpt q"}, {"from": "gpt", "value": "a"}]),
            "sharegpt q",
        ),
        (
            "System: be nice\nUser: hello\nAssistant: hi!\nUser: what is 2+2?\nAssistant:",
            "what is 2+2?",
        ),
        ("\n\nHuman: tell me a joke\n\nAssistant: no\n\nHuman: please?\n\nAssistant:", "please?"),
        ("### Human: translate 'cat'\n### Assistant: chat\n### Human: and 'dog'\n", "and 'dog'"),
        (
            "<|im_start|>system\nYou help.<|im_end|>\n<|im_start|>user\nQ1<|im_end|>\n"
            "<|im_start|>assistant\nA1<|im_end|>\n<|im_start|>user\nQ2?<|im_end|>\n"
            "<|im_start|>assistant\n",
            "Q2?",
        ),
        ("<s>[INST] first [/INST] answer </s><s>[INST] second question [/INST]", "second question"),
        ("User: only one turn", "only one turn"),
        ("User: real question\nAssistant: answer\nUser:\n", "real question"),  # empty last turn
    ],
)
def test_last_user_turn_formats(text: str, expected: str) -> None:
    assert last_user_turn(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "A plain question with no chat markup?",
        "Summarize what the user: said in the log below.",  # "user:" mid-line is not a turn
        "[1, 2, 3]",  # JSON, but not messages
        '[{"role": "assistant", "content": "only the model spoke"}]',
        "{not json",
    ],
)
def test_last_user_turn_falls_back_to_whole_text(text: str) -> None:
    assert last_user_turn(text) == text


def test_last_turn_mode_truncates_the_extracted_turn() -> None:
    long_turn = " ".join(f"w{i}" for i in range(500))
    chat = json.dumps([{"role": "user", "content": "old"}, {"role": "user", "content": long_turn}])
    out = norm("last_turn", max_tokens=100).apply(chat)
    assert out.startswith("w0 ") and out.endswith("w499") and SEPARATOR in out
    assert "old" not in out


@pytest.mark.integration
def test_normalizer_is_safe_to_share_across_threads(minilm: Embedder) -> None:
    """A server normalizes requests on several threads while the model tokenizes too."""
    from concurrent.futures import ThreadPoolExecutor

    n = Normalizer.for_embedder(NormalizationConfig(mode="head_tail"), minilm)
    prompts = [routerbench_like(f"Question {i}: why is the sky blue at noon?") for i in range(24)]
    expected = [n.apply(p) for p in prompts]
    with ThreadPoolExecutor(max_workers=6) as pool:
        model_job = pool.submit(minilm.embed, prompts[:8])
        got = list(pool.map(n.apply, prompts))
        model_job.result()
    assert got == expected
