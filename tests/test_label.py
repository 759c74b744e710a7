"""`tierwise label` end to end against fake OpenAI-compatible upstream processes.

200 prompts × 3 tiers labelled by reference match (with the dry-run estimate checked against
the spend), then by an LLM judge upstream reusing the cached answers, then a router trained on
the written config with `tierwise train`. The fake upstreams count tokens as words, the
config's chars_per_token says so (5 characters per word in these prompts).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest
from label_behaviours import (
    PRICES,
    answer_text,
    logged_calls,
    logging_upstream,
    parse_question,
    write_inputs,
)

from tierwise.experiments.cli import main

TIERS = ("small", "mid", "big")


def _words(text: str) -> int:
    return len(text.split())


def _expected(prompt: str, task: str, reference: str, tier: str) -> tuple[float, str]:
    _, correct, working = parse_question(prompt)
    answer = answer_text(tier, prompt, task, correct, working)
    return float(answer.rsplit(" ", 1)[1].rstrip(".") == reference), answer


@pytest.fixture(scope="module")
def upstreams(tmp_path_factory: pytest.TempPathFactory):
    logs = tmp_path_factory.mktemp("label-logs")
    with (
        logging_upstream("tiers", logs / "tiers.log") as tiers,
        logging_upstream("judge", logs / "judge.log") as judge,
    ):
        yield tiers, judge, logs


def test_label_reference_judge_and_train(upstreams, tmp_path: Path, capsys) -> None:
    tiers_up, judge_up, logs = upstreams
    cfg = write_inputs(tmp_path, tiers_up.base_url, judge_up.base_url)

    # --dry-run: the plan and its estimated cost, nothing sent
    assert main(["label", str(cfg), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "239 rows read, 1 empty prompts skipped, 8 duplicates dropped" in out
    assert "calls: 600 to tiers (0 more already in the cache)" in out
    estimate = float(re.search(r"estimated cost: \$([\d.]+)", out).group(1))  # type: ignore[union-attr]
    assert tiers_up.calls() == 0

    # the real run: every tier once per prompt, scored by numeric reference match
    assert main(["label", str(cfg), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert tiers_up.stats()["calls"] == {t: 200 for t in TIERS}
    report = json.loads((tmp_path / "out" / "label_report.json").read_text())
    measured = report["cost"]["total_usd"]
    assert abs(estimate - measured) / measured <= 0.20, (estimate, measured)
    assert "dataset arith" in out and "oracle" in out  # the `data inspect` view

    table = pd.read_parquet(tmp_path / "out" / "table.parquet")
    assert len(table) == 200 and table["id"].is_unique
    assert set(table["task"]) == {"add", "chain"}
    for _, row in table.iterrows():
        for tier in TIERS:
            quality, answer = _expected(row["prompt"], row["task"], row["reference"], tier)
            assert row[tier] == quality, (row["id"], tier)
            t_in, t_out = _words(row["prompt"]), _words(answer)
            assert row[f"{tier}|input_tokens"] == t_in
            assert row[f"{tier}|output_tokens"] == t_out
            price_in, price_out = PRICES[tier]
            cost = (t_in * price_in + t_out * price_out) / 1e6
            assert row[f"{tier}|total_cost"] == pytest.approx(cost, rel=1e-9)
    means = table[list(TIERS)].mean()
    assert means["small"] < means["mid"] < means["big"]
    answers = [
        json.loads(x) for x in (tmp_path / "out" / "answers.jsonl").read_text().split("\n") if x
    ]
    assert len(answers) == 600 and all(a["answer"].startswith("Working it out") for a in answers)

    # an LLM judge on the same answers: the tiers are not called again (shared call cache)
    judge_cfg = write_inputs(
        tmp_path,
        tiers_up.base_url,
        judge_up.base_url,
        name="arith_judge",
        score={
            "method": "judge",
            "judge": {
                "tier": "judge",
                "upstreams": "judge_upstreams.yaml",
                "expected_output_tokens": 12,
            },
            "reference": {"match": "numeric"},
        },
        output={"dir": "judged", "cache": "out/calls.sqlite"},
    )
    assert main(["label", str(judge_cfg), "--no-progress", "--no-inspect"]) == 0
    out = capsys.readouterr().out
    assert tiers_up.calls() == 600
    judged = [
        json.loads(x) for x in (tmp_path / "judged" / "answers.jsonl").read_text().split("\n") if x
    ]
    # one judge call per distinct (prompt, answer): tiers that answered alike share it
    distinct = {(a["id"], a["answer"]) for a in judged}
    assert judge_up.calls("judge") == len(distinct) < 600
    assert logged_calls(logs / "judge.log").most_common(1)[0][1] == 1
    unscorable = [a for a in judged if a["score"] is None]
    assert all(
        "has no [[rating]]" in a["note"] and "not rate" in a["judge_raw"] for a in unscorable
    )
    assert 0 < len(unscorable) < 30
    assert all(
        re.search(r"Rating: \[\[\d+\]\]", a["judge_raw"]) for a in judged if a["score"] is not None
    )
    rep = json.loads((tmp_path / "judged" / "label_report.json").read_text())
    for t in rep["tiers"]:
        share = sum(1 for a in unscorable if a["tier"] == t["tier"]) / 200
        assert t["unscorable_share"] == pytest.approx(share)
        agree = t["judge_vs_reference"]
        # the fake judge flips ~4% of verdicts
        assert agree["n"] == 200 - round(share * 200) and 0.85 <= agree["agreement"] < 1.0
    assert "judge vs reference" in out
    judged_table = pd.read_parquet(tmp_path / "judged" / "table.parquet")
    scores = judged_table[list(TIERS)].to_numpy().ravel()
    assert int(pd.isna(scores).sum()) == len(unscorable)  # blank: drop_row in the written config
    assert ((scores[~pd.isna(scores)] >= 0) & (scores[~pd.isna(scores)] <= 1)).all()

    # train a router on what labelling wrote, without editing it
    written = tmp_path / "out" / "arith.yaml"
    assert (
        main(["train", str(written), "--no-progress", "--no-track", "--out", str(tmp_path / "run")])
        == 0
    )
    out = capsys.readouterr().out
    assert "router (" in out and "oracle" in out
    from tierwise.router.core import Router

    router = Router.load(str(tmp_path / "run" / "router.tierwise"))
    add, chain = router.route(
        [
            "What is 12 plus 30? Reply with the number.",
            "Multiply 13 by 17, then subtract 9. What number do you get?",
        ]
    )
    assert add.model in TIERS and chain.model in TIERS
    # the labels taught it that `small` handles additions better than multi-step questions
    assert add.p_success["small"] > chain.p_success["small"] + 0.1
