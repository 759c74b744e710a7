"""Importer probes: hostile and odd traffic logs, each imported as `tierwise data inspect` does.

Run through the runner: ``python scripts/bench_reliability.py --only importers --no-load``.

Every probe writes its files into its own folder, builds a data config and imports it:

- a file that must be refused is *handled* when the import raises one line of ConfigError /
  DataError naming what the probe broke (``expect`` below), *silently wrong* when it loads,
  *crashed* on any other exception;
- a harmless oddity (a BOM, CRLF, "True"/"False" labels, a prompt reading "None") is *handled*
  when it loads with the right values, *silently wrong* when the values differ, *crashed* when
  it is refused or raises.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from reliability import probe

CATEGORY = "importers"
HEAD = "id,prompt,a,b,a|cost,b|cost"
ROWS = ["x1,Hello there,1,0,0.01,0.001", "x2,World peace,0,1,0.02,0.002"]
GOOD = "\n".join([HEAD, *ROWS]) + "\n"
PRICES = (
    "version: v\nmodels:\n  a: {input_per_1m: 1, output_per_1m: 2}\n"
    "  b: {input_per_1m: 1, output_per_1m: 2}\n"
)
LONG_HEAD = "id,prompt,model,correct,cost"
LONG = (
    LONG_HEAD + "\nx1,Hello,a,1,0.01\nx1,Hello,b,0,0.001\nx2,World,a,0,0.02\nx2,World,b,1,0.002\n"
)


def cfg(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "sources": [{"path": "log.csv", "quality": "{model}", "cost": "{model}|cost"}],
        "columns": {"id": "id", "prompt": "prompt"},
        "labels": {"missing": "drop_row"},
    }
    base.update(over)
    return base


def long_cfg(**over: Any) -> dict[str, Any]:
    src = {"path": "log.csv", "layout": "long", "model": "model", "quality": "correct",
           "cost": "cost"}  # fmt: skip
    return cfg(sources=[src], **over)


def src(**over: Any) -> list[dict[str, Any]]:
    return [{"path": "log.csv", "quality": "{model}", "cost": "{model}|cost", **over}]


def bad_rows(*rows: str, head: str = HEAD) -> str:
    return "\n".join([head, *rows]) + "\n"


# (name, files {name: text|bytes}, data config, expected error text | check on the dataset)
Check = Callable[[Any], bool]
PROBES: list[tuple[str, dict[str, str | bytes], dict[str, Any], str | Check]] = [
    # --- values
    ("non-numeric label", {"log.csv": GOOD.replace("x2,World peace,0", "x2,World peace,yes")},
     cfg(), "got 'yes'"),
    ("0.5 in a binary label", {"log.csv": GOOD.replace("Hello there,1,0", "Hello there,1,0.5")},
     cfg(), "binary label"),
    ("score out of range", {"log.csv": GOOD.replace("Hello there,1,0", "Hello there,11,2")},
     cfg(labels={"kind": "score", "range": [1, 10], "missing": "drop_row"}), "labels.range"),
    ("negative cost", {"log.csv": GOOD.replace("0.02", "-0.02")}, cfg(), "must be >= 0"),
    ("cost with a $ sign", {"log.csv": GOOD.replace("0.001", "$0.001")}, cfg(), "'$0.001'"),
    ("cost 1e308 (overflows totals)", {"log.csv": GOOD.replace("0.02", "1e308")}, cfg(),
     "1e308"),
    ("cost inf", {"log.csv": GOOD.replace("0.02", "inf")}, cfg(), "finite"),
    ("cost -inf", {"log.csv": GOOD.replace("0.02", "-inf")}, cfg(), "a|cost"),
    ("boolean cost", {"log.csv": GOOD.replace("0.02", "true")}, cfg(), "'true'"),
    ("blank cost, no price table", {"log.csv": GOOD.replace(",0.02,", ",,")}, cfg(),
     "is unknown"),
    ("token count 1e13", {"log.csv": bad_rows("x1,Hi,1,0,1e13,5", "x2,Yo,0,1,5,5",
                                             head="id,prompt,a,b,a|in,b|in")},
     cfg(sources=src(cost=None, input_tokens="{model}|in")), "1e13"),
    ("empty prompt", {"log.csv": GOOD.replace("Hello there", "")}, cfg(), "prompt is empty"),
    ("whitespace prompt", {"log.csv": GOOD.replace("Hello there", "   ")}, cfg(),
     "prompt is empty"),
    ("duplicate id", {"log.csv": GOOD.replace("x2,", "x1,")}, cfg(), "duplicate id 'x1'"),
    ("empty id", {"log.csv": GOOD.replace("x2,", ",")}, cfg(), "the id is empty"),
    ("every label missing", {"log.csv": bad_rows("x1,Hi,,0,0.1,0.1", "x2,Yo,1,,0.1,0.1")},
     cfg(), "missing label"),
    ("task_pattern that does not match", {"log.csv": bad_rows(*(r + ",t" for r in ROWS),
                                                              head=HEAD + ",task")},
     cfg(columns={"id": "id", "prompt": "prompt", "task": "task", "task_pattern": r"^(\d+)$"}),
     "task_pattern"),
    # --- columns and headers
    ("model listed but absent", {"log.csv": GOOD}, cfg(models=["a", "c"]), "column 'c'"),
    ("quality template matches nothing", {"log.csv": GOOD},
     cfg(sources=src(quality="{model}_ok")), "{model}_ok"),
    ("misspelt id column", {"log.csv": GOOD}, cfg(columns={"id": "qid", "prompt": "prompt"}),
     "'qid'"),
    ("misspelt prompt column", {"log.csv": GOOD},
     cfg(columns={"id": "id", "prompt": "question"}), "'question'"),
    ("misspelt task column", {"log.csv": bad_rows(*(r + ",t" for r in ROWS),
                                                  head=HEAD + ",eval_name")},
     cfg(columns={"id": "id", "prompt": "prompt", "task": "evalname"}), "'evalname'"),
    ("misspelt ignore_columns entry", {"log.csv": GOOD}, cfg(ignore_columns=["oracle"]),
     "'oracle'"),
    ("duplicated model column", {"log.csv": bad_rows(*(r + ",1" for r in ROWS),
                                                     head="id,prompt,a,b,a|cost,b|cost,a")},
     cfg(), "got 'a' twice"),
    ("duplicated cost column", {"log.csv": bad_rows(*(r + ",1" for r in ROWS),
                                                    head=HEAD + ",b|cost")},
     cfg(), "got 'b|cost' twice"),
    ("cost column without quality column", {"log.csv": bad_rows(*(r + ",1" for r in ROWS),
                                                                head=HEAD + ",c|cost")},
     cfg(), "model 'c'"),
    ("exclude_models names an unknown model", {"log.csv": GOOD}, cfg(exclude_models=["z"]),
     "['z']"),
    ("rename_models makes two models one", {"log.csv": GOOD},
     cfg(rename_models={"a": "b"}), "share a name"),
    ("rename_models names an unknown model", {"log.csv": GOOD},
     cfg(rename_models={"zz": "q"}), "['zz']"),
    ("ragged row (extra field)", {"log.csv": GOOD.replace("0.001\n", "0.001,9,9\n", 1)}, cfg(),
     "more fields than the header"),
    # --- prices
    ("price table lacks a model", {"log.csv": bad_rows("x1,Hi,1,0,1", "x2,Yo,0,1,1",
                                                       head="id,prompt,a,z,q"),
                                   "prices.yaml": PRICES},
     cfg(sources=src(cost=None), ignore_columns=["q"],
         cost={"prices": "prices.yaml", "assumed_output_tokens": 1}), "['z']"),
    ("price table has an unused model", {"log.csv": bad_rows("x1,Hi,1", "x2,Yo,0",
                                                             head="id,prompt,a"),
                                         "prices.yaml": PRICES},
     cfg(sources=src(cost=None), cost={"prices": "prices.yaml", "assumed_output_tokens": 1}),
     "['b']"),
    ("price table file missing", {"log.csv": GOOD.replace(",0.02,", ",,")},
     cfg(cost={"prices": "nope.yaml"}), "nope.yaml"),
    # --- files
    ("data file missing", {}, cfg(), "does not exist"),
    ("empty file", {"log.csv": ""}, cfg(), "empty"),
    ("ragged row after the first", {"log.csv": GOOD + "x3,Extra,1,0,0.1,0.1,7\n"}, cfg(),
     "Expected 6 fields"),
    ("header only", {"log.csv": HEAD + "\n"}, cfg(), "no rows"),
    ("named .gz, not gzip", {"log.csv.gz": GOOD}, cfg(sources=[{**src()[0],
                                                              "path": "log.csv.gz"}]), ".gz"),
    ("corrupt gzip", {"log.csv.gz": gzip.compress(GOOD.encode())[:30]},
     cfg(sources=[{**src()[0], "path": "log.csv.gz"}]), "gzip"),
    ("Parquet bytes in a .csv", {"log.csv": b"PAR1\x00\x00binary"}, cfg(), "Parquet"),
    ("CSV text in a .parquet", {"log.parquet": GOOD},
     cfg(sources=[{**src()[0], "path": "log.parquet"}]), "PARQUET"),
    ("zip archive named .csv", {"log.csv": b"PK\x03\x04rest"}, cfg(), "zip"),
    ("invalid UTF-8", {"log.csv": GOOD.encode().replace(b"Hello", b"H\xffllo")}, cfg(),
     "encoding"),
    ("unknown extension", {"log.txt": GOOD}, cfg(sources=[{**src()[0], "path": "log.txt"}]),
     "format"),
    ("broken JSONL line", {"log.jsonl": '{"id": "x1", "prompt": "Hi", "a": 1, "b": 0}\n{"id": \n'},
     cfg(sources=[{"path": "log.jsonl", "quality": "{model}"}]), "JSONL"),
    ("JSON that is not a table", {"log.json": '"just a string"'},
     cfg(sources=[{"path": "log.json", "quality": "{model}"}]), "log.json"),
    ("data path is a directory", {"log.csv/x": "x"}, cfg(), "does not exist"),
    ("data path is /dev/zero", {}, cfg(sources=[{**src()[0], "path": "/dev/zero",
                                                 "format": "csv"}]), "/dev/zero"),
    ("two sources give the quality", {"log.csv": GOOD, "log2.csv": GOOD},
     cfg(sources=[*src(), {"path": "log2.csv", "quality": "{model}"}]), "two sources"),
    # --- long layout
    ("long: two rows for one prompt and model", {"log.csv": LONG + "x1,Hello,a,0,0.01\n"},
     long_cfg(), "two rows"),
    ("long: empty model name", {"log.csv": LONG.replace("x2,World,b", "x2,World,")},
     long_cfg(), "model name is empty"),
    ("long: one id, two prompts", {"log.csv": LONG.replace("x1,Hello,b", "x1,Other,b")},
     long_cfg(), "different 'prompt'"),
    ("long: no id column configured", {"log.csv": LONG},
     long_cfg(columns={"prompt": "prompt"}), "columns.id"),
    ("long: negative cost", {"log.csv": LONG.replace("0.002", "-0.002")}, long_cfg(), ">= 0"),
    # --- the config itself
    ("unknown key in the data config", {"log.csv": GOOD}, cfg(labls={}), "labls"),
    ("labels.missing not stated", {"log.csv": GOOD}, cfg(labels={"kind": "binary"}),
     "`labels.missing` field required"),
    ("source with neither path nor hf", {"log.csv": GOOD},
     cfg(sources=[{"quality": "{model}"}]), "path"),
    ("long source without `model`", {"log.csv": LONG},
     cfg(sources=[{"path": "log.csv", "layout": "long", "quality": "correct"}]), "model"),
    # --- harmless oddities: must load, with the right values
    ("BOM at the start", {"log.csv": "\ufeff" + GOOD}, cfg(),
     lambda ds: list(ds.ids) == ["x1", "x2"]),
    ("CRLF line ends", {"log.csv": GOOD.replace("\n", "\r\n")}, cfg(),
     lambda ds: ds.prompts == ("Hello there", "World peace")),
    ("True/False labels", {"log.csv": GOOD.replace("Hello there,1,0", "Hello there,True,false")},
     cfg(), lambda ds: ds.quality[0].tolist() == [1.0, 0.0]),
    ("prompt reading 'None'", {"log.csv": GOOD.replace("Hello there", "None")}, cfg(),
     lambda ds: ds.prompts[0] == "None"),
    ("ids with leading zeros", {"log.csv": GOOD.replace("x1,", "007,")}, cfg(),
     lambda ds: "007" in list(ds.ids)),
    ("spaces around numbers", {"log.csv": GOOD.replace(",0.01,", ", 0.01 ,")}, cfg(),
     lambda ds: abs(float(ds.cost[0, 0]) - 0.01) < 1e-12),
    ("blank label, drop_row", {"log.csv": GOOD.replace("World peace,0,", "World peace,,")},
     cfg(), lambda ds: ds.n_prompts == 1),
    ("blank label, as_failure", {"log.csv": GOOD.replace("World peace,0,", "World peace,,")},
     cfg(labels={"missing": "as_failure"}), lambda ds: ds.quality[1].tolist() == [0.0, 1.0]),
    ("cost column ignored by the config", {"log.csv": bad_rows(*(r + ",1" for r in ROWS),
                                                               head=HEAD + ",c|cost")},
     cfg(ignore_columns=["c|cost"]), lambda ds: ds.models == ("a", "b")),
]  # fmt: skip


def _write(folder: Path, files: dict[str, str | bytes]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8", newline="")


def _one(name: str, folder: Path, data: dict[str, Any], expect: str | Check) -> dict[str, Any]:
    from tierwise.eval.importers import DataConfig, import_dataset
    from tierwise.router.errors import TierwiseError
    from tierwise.router.schema import parse_model

    try:
        ds = import_dataset(parse_model(DataConfig, data, source="data"), base_dir=folder,
                            progress=False)  # fmt: skip
    except TierwiseError as err:
        text = str(err)
        if callable(expect):
            return probe(CATEGORY, name, "crashed", f"valid input refused: {text}")
        ok = "\n" not in text and expect in text
        return probe(CATEGORY, name, "handled" if ok else "crashed",
                     text if ok else f"unclear message (wanted {expect!r}): {text}")  # fmt: skip
    except Exception as err:  # any other exception is a crash (a traceback for the user)
        return probe(CATEGORY, name, "crashed", f"{type(err).__name__}: {err}")
    if callable(expect):
        good = bool(expect(ds))
        detail = "loaded with the right values" if good else "loaded with wrong values"
        return probe(CATEGORY, name, "handled" if good else "silently_wrong", detail)
    return probe(CATEGORY, name, "silently_wrong", f"accepted: {ds.n_prompts} prompts, "
                 f"models {list(ds.models)}")  # fmt: skip


def run(workdir: Path) -> list[dict[str, Any]]:
    """Every probe of :data:`PROBES`, each in its own folder under ``workdir``."""
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    out = []
    for i, (name, files, data, expect) in enumerate(PROBES):
        folder = workdir / f"{i:02d}"
        _write(folder, files)
        out.append(_one(name, folder, data, expect))
    return out
