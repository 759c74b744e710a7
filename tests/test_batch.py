"""`tierwise batch`: JSONL/CSV/Parquet in and out, in chunks, bad rows kept with an error."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from runtime_helpers import hashing_artifact

from tierwise.experiments.cli import main
from tierwise.experiments.commands.batch import route_file
from tierwise.router.core import Router
from tierwise.router.errors import ConfigError, DataError
from tierwise.router.runtime import load_runtime

GOOD = ["math code sql", "love poem story", "history war", "python physics", "a tale of two"]


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # logreg, not kNN: kNN near-ties can flip with the BLAS kernel a batch size picks.
    return hashing_artifact(tmp_path_factory.mktemp("batch") / "r.tierwise", predictor="logreg")


@pytest.fixture(scope="module")
def expected(artifact: Path) -> list[str | None]:
    return [d.model for d in Router.load(str(artifact)).route(GOOD)]


def read_output(path: Path) -> list[dict]:
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    if path.suffix == ".csv":
        with path.open(encoding="utf-8", newline="") as fh:
            return list(csv.DictReader(fh))
    return pq.read_table(path).to_pylist()


def write_input(path: Path, rows: list[dict]) -> None:
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    elif path.suffix == ".csv":
        with path.open("w", encoding="utf-8", newline="") as fh:
            w = csv.DictWriter(fh, ["id", "text"])
            w.writeheader()
            w.writerows(rows)
    else:
        pq.write_table(pa.Table.from_pylist(rows), path)


@pytest.mark.parametrize("src", [".jsonl", ".csv", ".parquet"])
@pytest.mark.parametrize("dst", [".jsonl", ".csv", ".parquet"])
def test_every_format_pair_gives_the_routers_decisions(
    artifact: Path, expected: list[str | None], tmp_path: Path, src: str, dst: str
) -> None:
    rows = [{"id": f"q{i}", "text": p} for i, p in enumerate(GOOD)]
    write_input(tmp_path / f"in{src}", rows)
    code = main(["batch", str(artifact), str(tmp_path / f"in{src}"), str(tmp_path / f"out{dst}"),
                 "--prompt-column", "text", "--keep", "id", "--chunk-size", "2",
                 "--no-progress"])  # fmt: skip
    assert code == 0
    out = read_output(tmp_path / f"out{dst}")
    assert [r["model"] for r in out] == expected
    assert [r["id"] for r in out] == [f"q{i}" for i in range(len(GOOD))]
    assert [int(r["row"]) for r in out] == [1, 2, 3, 4, 5]
    p_small = [r["p_success"]["small"] if dst == ".jsonl" else float(r["p_success.small"])
               for r in out]  # fmt: skip
    want = Router.load(str(artifact)).route(GOOD)
    assert p_small == pytest.approx([d.p_success["small"] for d in want])


def test_bad_jsonl_rows_get_errors_and_the_rest_is_routed(
    artifact: Path, expected: list[str | None], tmp_path: Path
) -> None:
    lines = [
        json.dumps({"id": 1, "prompt": GOOD[0]}),
        json.dumps({"id": 2, "prompt": ""}),
        "{not json",
        json.dumps({"id": 4}),
        json.dumps({"id": 5, "prompt": 7}),
        "",
        json.dumps([GOOD[1]]),
        json.dumps({"id": 8, "prompt": GOOD[1]}),
    ]
    src = tmp_path / "in.jsonl"
    src.write_bytes("\n".join(lines).encode() + b"\n" + b'{"id": 9, "prompt": "caf\xe9"}\n')
    assert main(["batch", str(artifact), str(src), str(tmp_path / "o.jsonl"), "--keep", "id",
                 "--no-progress"]) == 1  # fmt: skip
    out = read_output(tmp_path / "o.jsonl")
    assert [r["row"] for r in out] == [1, 2, 3, 4, 5, 7, 8, 9]  # the blank line 6 is skipped
    assert [r["model"] for r in out] == [expected[0], None, None, None, None, None,
                                         expected[1], None]  # fmt: skip
    errors = [r["error"] for r in out]
    assert errors[0] is None and errors[6] is None
    assert errors[1].startswith("row 2: `prompt` must contain non-whitespace text")
    assert errors[2].startswith("row 3: not valid JSON")
    assert errors[3] == "row 4: no `prompt` field"
    assert errors[4].startswith("row 5: `prompt` must be a string, got int 7")
    assert errors[5] == "row 7: expected a JSON object, got list"
    assert errors[7].startswith("row 9: not UTF-8 at byte")
    assert [r["id"] for r in out] == [1, 2, None, 4, 5, None, 8, None]


def test_bad_csv_rows_get_errors(artifact: Path, tmp_path: Path) -> None:
    src = tmp_path / "in.csv"
    src.write_bytes(b'id,prompt\n1,math code\n2,"love, poem"\n3,\n4,caf\xe9 au lait\n5\n')
    summary = route_file(load_runtime(artifact), src, tmp_path / "out.csv", keep=["id"])
    assert (summary.rows, summary.errors) == (5, 3)
    out = read_output(tmp_path / "out.csv")
    assert [r["error"] for r in out[:2]] == ["", ""]
    assert "row 3: `prompt` must contain non-whitespace text" in out[2]["error"]
    assert out[3]["error"].startswith("row 4: `prompt` is not valid UTF-8 (byte 0xe9")
    assert out[4]["error"] == "row 5: only 1 cells, no `prompt`"


def test_chunking_does_not_change_decisions(artifact: Path, tmp_path: Path) -> None:
    prompts = [f"{GOOD[i % 5]} {i}" for i in range(23)]
    write_input(tmp_path / "in.jsonl", [{"prompt": p} for p in prompts])
    router = load_runtime(artifact)
    outs = []
    for size in (1, 4, 1000):
        dst = tmp_path / f"o{size}.jsonl"
        assert route_file(router, tmp_path / "in.jsonl", dst, chunk_size=size).rows == 23
        outs.append([(r["model"], r["p_success"]) for r in read_output(dst)])
    for other in outs[1:]:
        assert [m for m, _ in other] == [m for m, _ in outs[0]]
        for (_, p), (_, q) in zip(other, outs[0], strict=True):
            assert p == pytest.approx(q, abs=1e-6)
    assert [m for m, _ in outs[0]] == [d.model for d in router.route(prompts)]


def test_usage_errors_are_clear_and_write_nothing(artifact: Path, tmp_path: Path) -> None:
    router = load_runtime(artifact)
    src = tmp_path / "in.csv"
    src.write_text("id,text\n1,hello\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"column `prompt` not found; its columns are \['id', "):
        route_file(router, src, tmp_path / "out.csv")
    assert not list(tmp_path.glob("*out*"))  # the temporary output is removed
    (tmp_path / "exists.jsonl").write_text("keep me\n")
    with pytest.raises(ConfigError, match="exists; choose another path or pass --overwrite"):
        route_file(router, src, tmp_path / "exists.jsonl", prompt_column="text")
    assert (tmp_path / "exists.jsonl").read_text() == "keep me\n"
    with pytest.raises(ConfigError, match=r"must end with one of .*got '\.xlsx'"):
        route_file(router, src, tmp_path / "out.xlsx", prompt_column="text")
    with pytest.raises(ConfigError, match=r"--keep \['model'\] would clash"):
        route_file(router, src, tmp_path / "o.csv", prompt_column="text", keep=["model"])
    with pytest.raises(ConfigError, match="--chunk-size must be a positive integer, got 0"):
        route_file(router, src, tmp_path / "o.csv", prompt_column="text", chunk_size=0)
    code = main(["batch", str(artifact), str(tmp_path / "nope.jsonl"), str(tmp_path / "o.jsonl")])
    assert code == 2
