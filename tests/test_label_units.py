"""`tierwise label`'s parts: reference matchers, judge parsing, the Python scorer, one
conformance suite for every scorer, sampling and dedup, the gateway's decision log as a
source, config and input errors, the budget, and a small run with failing calls."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from label_behaviours import logged_calls, logging_upstream, write_inputs

from tierwise.eval.labelling import load_labelling
from tierwise.eval.labelling.budget import Budget
from tierwise.eval.labelling.config import (
    JudgeConfig,
    ReferenceMatchConfig,
    ScoreConfig,
)
from tierwise.eval.labelling.job import prepare
from tierwise.eval.labelling.scorers import SCORERS, Score, Scorer, make_scorer, match
from tierwise.eval.labelling.scorers.judge import parse_rating, parse_verdict
from tierwise.eval.labelling.sources import Example, allocate, load_prompts
from tierwise.experiments.cli import main
from tierwise.router.errors import ConfigError, DataError


def ref(kind: str, **kw: Any) -> ReferenceMatchConfig:
    return ReferenceMatchConfig(match=kind, **kw)


@pytest.mark.parametrize(
    ("kind", "answer", "reference", "value"),
    [
        ("exact", " Paris ", "Paris", 1.0),
        ("exact", "paris", "Paris", 0.0),
        ("normalized", "The Paris!", "paris", 1.0),
        ("normalized", "Lyon", "paris", 0.0),
        ("numeric", "so 12 + 30 = 42.", "42", 1.0),
        ("numeric", "The total is $1,234.50", "#### 1234.5", 1.0),
        ("numeric", "I get 41", "42", 0.0),
        ("numeric", "no idea", "42", None),
        ("numeric", "42", "forty-two", None),
        ("choice", "The answer is (C).", "C", 1.0),
        ("choice", "Answer: b", "(B)", 1.0),
        ("choice", "D. Because the sky is blue", "A", 0.0),
        ("choice", "I think it depends.", "A", None),
        ("numeric", "", "42", None),
        ("numeric", "42", None, None),
    ],
)
def test_reference_matchers(kind: str, answer: str, reference: str | None, value: Any) -> None:
    assert match(answer, reference, ref(kind)).value == value


def test_regex_matcher_takes_the_last_match_first_group() -> None:
    cfg = ref("regex", pattern=r"FINAL: (\w+)")
    assert match("FINAL: no\nwait... FINAL: Yes", "yes", cfg).value == 1.0
    assert match("nothing final here", "yes", cfg) == Score(
        None, "the pattern does not match the answer"
    )
    with pytest.raises(ValueError, match=r"`pattern` is required with `match: regex`"):
        ref("regex")


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("Good. Rating: [[7]]", 6 / 9),
        ("Rating: 10", 1.0),
        ("[[1]] then [[4]]", 3 / 9),
        ("Rating: [[11]]", None),
        ("no score", None),
    ],
)
def test_judge_rating_maps_1_to_10_onto_0_1(text: str, value: float | None) -> None:
    got = parse_rating(text)
    assert got.raw == text
    assert got.value == (None if value is None else pytest.approx(value))


def test_judge_pairwise_verdicts() -> None:
    assert parse_verdict("A is right. [[A]]", tie=0.5).value == 1.0
    assert parse_verdict("[[B]]", tie=0.5).value == 0.0
    assert parse_verdict("same [[C]]", tie=0.5).value == 0.5
    assert parse_verdict("cannot decide", tie=0.5).value is None


async def _fake_judge(tier: str, messages: list[dict[str, Any]], params: dict[str, Any]) -> str:
    return "[[A]] Rating: [[8]]" if "Paris" in messages[0]["content"] else "Rating: [[2]]"


def _scorer(name: str) -> Scorer:
    cfgs = {
        "reference": ScoreConfig(method="reference", reference=ref("normalized")),
        "judge": ScoreConfig(method="judge", judge=JudgeConfig(tier="j")),
        "python": ScoreConfig.model_validate(
            {"method": "python", "python": {"function": "label_behaviours:last_number_matches"}}
        ),
    }
    return make_scorer(cfgs[name], ask=_fake_judge)


@pytest.mark.parametrize("name", sorted(SCORERS))
def test_every_scorer_returns_a_score_in_0_1_or_none_and_never_raises(name: str) -> None:
    scorer = _scorer(name)
    assert scorer.name == name and isinstance(scorer, SCORERS[name])
    ex = Example(id="1", prompt="Capital of France?", reference="Paris", row={"reference": "Paris"})
    for answer in ("Paris", "", "\x00\ufffd", "x" * 50_000, "42", "None"):
        got = asyncio.run(scorer.score(answer, ex))
        assert isinstance(got, Score)
        assert got.value is None or 0.0 <= got.value <= 1.0
        if got.value is None:
            assert got.note
    assert asyncio.run(scorer.score("", ex)).value is None  # an empty answer is never scored


def test_python_scorer_errors_are_clear_and_per_answer(tmp_path: Path, monkeypatch) -> None:
    missing = r"cannot import module 'no_such_pkg.x' \(No module named 'no_such_pkg'\)"
    with pytest.raises(ConfigError, match=missing):
        make_scorer(
            ScoreConfig.model_validate(
                {"method": "python", "python": {"function": "no_such_pkg.x:check"}}
            )
        )
    with pytest.raises(ConfigError, match=r"has no function 'nope'"):
        make_scorer(
            ScoreConfig.model_validate(
                {"method": "python", "python": {"function": "label_behaviours:nope"}}
            )
        )
    (tmp_path / "my_scores.py").write_text(
        "def check(answer, example):\n"
        "    if answer == 'boom':\n        raise RuntimeError('bad test harness')\n"
        "    return 7 if answer == 'seven' else 0.25\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    scorer = make_scorer(
        ScoreConfig.model_validate({"method": "python", "python": {"function": "my_scores:check"}})
    )
    ex = Example(id="1", prompt="p")
    assert asyncio.run(scorer.score("fine", ex)).value == 0.25
    boom = asyncio.run(scorer.score("boom", ex))
    assert boom.value is None and "raised RuntimeError: bad test harness" in boom.note
    seven = asyncio.run(scorer.score("seven", ex))
    assert seven.value is None and "must return a bool, a float in [0, 1] or None" in seven.note


def test_allocate_is_proportional_and_exact() -> None:
    assert allocate([50, 30, 20], 10) == [5, 3, 2]
    assert sum(allocate([7, 1, 1], 4)) == 4
    assert allocate([3, 2], 10) == [3, 2]


def _write_cfg(tmp_path: Path, rows: list[dict[str, Any]], **cfg: Any) -> Path:
    pd.DataFrame(rows).to_csv(tmp_path / "log.csv", index=False)
    (tmp_path / "up.yaml").write_text(
        yaml.safe_dump(
            {
                "default": {
                    "base_url": "http://127.0.0.1:9/v1",
                    "usd_per_1m_input": 1,
                    "usd_per_1m_output": 2,
                }
            }
        )
    )
    data = {
        "name": "t",
        "upstreams": "up.yaml",
        "tiers": ["a", "b"],
        "source": {"path": "log.csv"},
        "columns": {"reference": "ref"},
        "score": {"method": "reference"},
        **cfg,
    }
    (tmp_path / "label.yaml").write_text(yaml.safe_dump(data))
    return tmp_path / "label.yaml"


def test_sampling_is_stratified_deduplicated_and_reproducible(tmp_path: Path) -> None:
    rows = [
        {"prompt": f"question {i}", "ref": "1", "cat": "big" if i < 80 else "small"}
        for i in range(100)
    ]
    rows += [
        {"prompt": "  QUESTION 3 ", "ref": "1", "cat": "big"},
        {"prompt": "", "ref": "1", "cat": "big"},
    ]
    path = _write_cfg(tmp_path, rows, sample={"n": 10, "stratify": "cat", "seed": 3})
    picked, found = load_prompts(load_labelling(path))
    assert (found.read, found.duplicates, found.skipped_empty) == (102, 1, 1)
    assert [e.row["cat"] for e in picked].count("small") == 2 and len(picked) == 10
    again, _ = load_prompts(load_labelling(path))
    assert [e.id for e in again] == [e.id for e in picked]


@pytest.mark.parametrize(
    ("cfg", "error", "message"),
    [
        (
            {"score": {"method": "reference"}, "columns": {}},
            ConfigError,
            r"`score.method: reference` needs `columns.reference`",
        ),
        ({"score": {"method": "judge"}}, ConfigError, r"`method: judge` needs a `judge:` section"),
        ({"budget": 3}, ConfigError, r"unknown key `budget`"),
        ({"generation": {"params": {"stream": True}}}, ConfigError, r"must not set \['stream'\]"),
        (
            {"columns": {"reference": "answer"}},
            DataError,
            r"column 'answer' \(reference\) is missing; columns are \['prompt', 'ref'\]",
        ),
    ],
)
def test_config_and_input_errors_are_one_clear_line(tmp_path: Path, cfg, error, message) -> None:
    path = _write_cfg(tmp_path, [{"prompt": "hi", "ref": "1"}], **cfg)
    with pytest.raises(error, match=message):
        prepare(load_labelling(path))


def test_upstreams_without_prices_or_keys_fail_before_any_call(tmp_path: Path, capsys) -> None:
    path = _write_cfg(tmp_path, [{"prompt": "hi", "ref": "1"}])
    (tmp_path / "up.yaml").write_text(
        yaml.safe_dump({"default": {"base_url": "http://127.0.0.1:9/v1"}})
    )
    with pytest.raises(ConfigError, match=r"upstream\(s\) \['a', 'b'\] must have prices"):
        prepare(load_labelling(path))
    (tmp_path / "up.yaml").write_text(
        yaml.safe_dump(
            {
                "default": {
                    "base_url": "http://127.0.0.1:9/v1",
                    "api_key_env": "TIERWISE_TEST_UNSET_KEY",
                    "usd_per_1m_input": 1,
                    "usd_per_1m_output": 2,
                }
            }
        )
    )
    assert main(["label", str(path), "--no-progress"]) == 2
    assert "environment variable `TIERWISE_TEST_UNSET_KEY`" in capsys.readouterr().err


def test_budget_reservations() -> None:
    b = Budget(1.0, spent_before_usd=0.5)
    assert b.fits(0.5) and not b.fits(0.51)
    b.reserve(0.4)
    assert not b.fits(0.2) and b.in_flight == 1
    b.settle(0.4, 0.1)
    assert b.reserved_usd == 0.0 and b.total_usd == pytest.approx(0.6) and b.fits(0.4)
    b.refuse(0.9)
    assert b.exhausted and not b.fits(0.0)


def _gateway_log(tmp_path: Path, name: str, fmt: str, records: list[dict[str, Any]]) -> Path:
    """Write ``records`` with the gateway's own sink; a label config reading them back."""
    from tierwise.router.gateway.decision_log import FileSink

    sink = FileSink(tmp_path / name, fmt)  # type: ignore[arg-type]
    sink.write(records)
    sink.close()
    scorer = {"function": "label_behaviours:last_number_matches"}
    source = {"kind": "gateway_log", "path": name}
    score = {"method": "python", "python": scorer}
    return _write_cfg(tmp_path, [], source=source, columns={}, score=score)


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_the_gateways_decision_log_is_a_source(tmp_path: Path, fmt: str) -> None:
    prompts = ["What is 2 plus 2?", None, "what is 2 PLUS 2?", "Name a color."]
    records = [
        {"request_id": f"r{i}", "prompt": p, "model": "small", "p_success": {"small": 0.5}}
        for i, p in enumerate(prompts)
    ]
    picked, found = load_prompts(load_labelling(_gateway_log(tmp_path, "log", fmt, records)))
    assert [(e.id, e.prompt) for e in picked] == [
        ("r0", "What is 2 plus 2?"),
        ("r3", "Name a color."),
    ]
    assert found.duplicates == 1
    hashed = _gateway_log(tmp_path, "hashed", fmt, [{"request_id": "r0", "prompt": None}])
    with pytest.raises(DataError, match=r"restart the gateway with --log-prompts"):
        load_prompts(load_labelling(hashed))


def test_a_postgresql_decision_log_is_a_source(tmp_path: Path) -> None:
    import uuid

    import psycopg2

    from tierwise.router.gateway.decision_log import PostgresSink

    url, table = "postgresql://postgres@127.0.0.1:5432/test", f"tw_label_{uuid.uuid4().hex[:10]}"
    sink = PostgresSink(url, table)
    try:
        sink.write(
            [
                {"request_id": f"r{i}", "prompt": p, "time": float(i)}
                for i, p in enumerate(["Hi there", None, "Name a color."])
            ]
        )
        sink.close()
        source = {"kind": "gateway_log", "path": url, "table": table}
        score = {"method": "python", "python": {"function": "label_behaviours:last_number_matches"}}
        path = _write_cfg(tmp_path, [], source=source, columns={}, score=score)
        picked, _ = load_prompts(load_labelling(path))
        assert [(e.id, e.prompt) for e in picked] == [("r0", "Hi there"), ("r2", "Name a color.")]
        source["table"] = "no_such_table"
        path = _write_cfg(tmp_path, [], source=source, columns={}, score=score)
        with pytest.raises(DataError, match=r"table 'no_such_table': .*check the URL"):
            load_prompts(load_labelling(path))
    finally:
        with psycopg2.connect(url) as conn, conn.cursor() as cur:
            cur.execute(f"DROP TABLE IF EXISTS {table}")


def test_failed_calls_are_reported_kept_out_of_the_table_and_retried(
    tmp_path: Path, capsys
) -> None:
    """A 400 is not retried (the request is wrong), a 503 is; a python scorer labels the rest."""
    log = tmp_path / "calls.log"
    with logging_upstream("tiers", log) as up:
        cfg = write_inputs(
            tmp_path,
            up.base_url,
            sample={"n": 12, "seed": 0},
            score={
                "method": "python",
                "python": {"function": "label_behaviours:last_number_matches"},
            },
        )
        up.fault(model="mid", fail_next=2, status=400, body={"error": {"message": "bad request"}})
        up.fault(model="big", fail_next=3, status=503)  # retried with backoff: no failure
        assert main(["label", str(cfg), "--no-progress", "--no-inspect"]) == 0
        err = capsys.readouterr().err
        assert "2 calls failed" in err
        answers = [
            json.loads(x) for x in (tmp_path / "out" / "answers.jsonl").read_text().split("\n") if x
        ]
        failed = [a for a in answers if a["error"]]
        assert len(failed) == 2 and all(
            a["tier"] == "mid" and "http_400" in a["error"] for a in failed
        )
        assert len(pd.read_parquet(tmp_path / "out" / "table.parquet")) == 10
        statuses = up.stats()["statuses"]
        assert statuses.get("mid:400") == 2  # not retried
        assert statuses.get("big:503") == 3 and statuses.get("big:200") == 12
        mark = sum(logged_calls(log).values())
        assert main(["label", str(cfg), "--no-progress", "--no-inspect"]) == 0
        assert sum(logged_calls(log).values()) - mark == 2  # only the failed calls again
        table = pd.read_parquet(tmp_path / "out" / "table.parquet")
        assert len(table) == 12 and set(table["small"].unique()) <= {0.0, 1.0}


@pytest.mark.parametrize("name", ["label_example", "label_judge", "label_gateway"])
def test_the_shipped_label_configs_validate(name: str) -> None:
    cfg = load_labelling(Path(__file__).resolve().parents[1] / "configs" / f"{name}.yaml")
    assert cfg.tiers == ["small", "mid", "big"]
    assert cfg.upstreams_config().for_tier("big").has_prices
    judge = cfg.judge_upstreams()
    assert judge is None or judge.for_tier("judge").has_prices


def test_label_without_httpx_names_the_extra_before_any_work(monkeypatch, capsys) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "httpx", None)  # what an install without it looks like
    assert main(["label", "x.yaml"]) == 2
    err = capsys.readouterr().err
    assert "`tierwise label` needs httpx" in err and "pip install 'tierwise[train]'" in err


def test_a_pairwise_judge_against_the_reference_labels_a_small_run(tmp_path: Path) -> None:
    """End to end with a pairwise judge: a tie with the reference is a success (tie: 1)."""
    with (
        logging_upstream("tiers", tmp_path / "t.log") as tiers,
        logging_upstream("judge", tmp_path / "j.log") as judge,
    ):
        cfg = write_inputs(
            tmp_path,
            tiers.base_url,
            judge.base_url,
            sample={"n": 12, "seed": 4},
            score={
                "method": "judge",
                "reference": {"match": "numeric"},
                "judge": {"tier": "judge", "upstreams": "judge_upstreams.yaml", "mode": "pairwise"},
            },
        )
        assert main(["label", str(cfg), "--no-progress", "--no-inspect"]) == 0
    answers = [
        json.loads(x) for x in (tmp_path / "out" / "answers.jsonl").read_text().split("\n") if x
    ]
    assert len(answers) == 36
    for a in answers:
        assert a["judge_raw"].endswith(("[[C]]", "[[B]]"))
        assert a["score"] == a["reference_score"]  # this judge agrees with numeric match
    table = pd.read_parquet(tmp_path / "out" / "table.parquet")
    assert set(table[["small", "mid", "big"]].to_numpy().ravel()) <= {0.0, 1.0}
