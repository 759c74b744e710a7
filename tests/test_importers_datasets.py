"""Every shipped dataset config, checked against an independent pandas computation of the file.

Per model, the mean quality and mean cost the importer reports must equal what plain pandas
computes from the raw files (and the price tables, read here with yaml directly).
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from tierwise.eval.dataset import RoutingDataset
from tierwise.experiments.config import load_dataset

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"
SHARED = ROOT.parent / "shared" / "data"
BUNDLED = ROOT / "data" / "routerbench" / "routerbench_arc_winogrande_mbpp.csv.gz"


def shared(*parts: str) -> Path:
    p = SHARED.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"shared data not present at {p} (CI has it at ../shared)")
    return p


def prices(name: str) -> dict[str, tuple[float, float]]:
    raw = yaml.safe_load((CONFIGS / "prices" / name).read_text())["models"]
    return {m: (float(v["input_per_1m"]), float(v["output_per_1m"])) for m, v in raw.items()}


def tokens(chars: pd.Series | np.ndarray) -> np.ndarray:
    return np.ceil(np.asarray(chars, dtype=float) / 4.0)


def assert_matches(ds: RoutingDataset, quality: dict[str, float], cost: dict[str, float]) -> None:
    assert sorted(ds.models) == sorted(quality)
    for j, m in enumerate(ds.models):
        assert ds.quality[:, j].mean() == pytest.approx(quality[m], abs=1e-12), m
        assert ds.cost[:, j].mean() == pytest.approx(cost[m], rel=1e-9), m


def routerbench_expected(df: pd.DataFrame) -> tuple[dict[str, float], dict[str, float], int]:
    models = [c for c in df.columns[3:] if "|" not in c and c != "oracle_model_to_route_to"]
    keep = df[models].notna().all(axis=1)
    kept = df[keep]
    q = {m: float(kept[m].mean()) for m in models}
    c = {m: float(kept[f"{m}|total_cost"].mean()) for m in models}
    return q, c, int(keep.sum())


def test_routerbench_bundled() -> None:
    df = pd.read_csv(BUNDLED)
    q, c, n = routerbench_expected(df)
    ds = load_dataset(CONFIGS / "routerbench.yaml")
    assert ds.n_prompts == n == 3150 and ds.n_models == 11
    assert ds.report is not None and ds.report.rows_read == 3164
    assert ds.report.dropped == {"missing label": 14}
    assert set(ds.report.cost_source.values()) == {"logged"}
    assert_matches(ds, q, c)


def test_bundled_copy_is_the_shared_file() -> None:
    src = shared("routerbench", "routerbench_arc_winogrande_mbpp.csv")
    with gzip.open(BUNDLED, "rb") as fh:
        assert fh.read() == src.read_bytes()
    a = load_dataset(CONFIGS / "routerbench.yaml")
    b = load_dataset(CONFIGS / "routerbench_shared.yaml")
    assert a.fingerprint() == b.fingerprint()
    assert (ROOT / "data" / "routerbench" / "LICENSE").read_text().startswith("MIT License")


def test_routellm_mmlu() -> None:
    df = pd.read_csv(shared("routellm", "mmlu_gpt4_vs_mixtral.csv"))
    p = prices("routellm.yaml")
    models = ["mistralai/Mixtral-8x7B-Instruct-v0.1", "gpt-4-1106-preview"]
    tin = tokens(df["prompt"].str.len())
    q = {m: float(df[m].astype(float).mean()) for m in models}
    c = {m: float(((tin * p[m][0] + 1 * p[m][1]) / 1e6).mean()) for m in models}
    ds = load_dataset(CONFIGS / "routellm_mmlu.yaml")
    assert ds.n_prompts == 14042 and ds.tasks is not None and len(set(ds.tasks)) == 57
    assert_matches(ds, q, c)


def test_routellm_gsm8k() -> None:
    df = pd.read_csv(shared("routellm", "gsm8k_gpt4_vs_mixtral.csv"))
    p = prices("routellm.yaml")
    models = ["mistralai/Mixtral-8x7B-Instruct-v0.1", "gpt-4-1106-preview"]
    tin = tokens(df["prompt"].str.len())
    q = {m: float(df[m].astype(float).mean()) for m in models}
    c = {
        m: float(((tin * p[m][0] + tokens(df[f"{m}_response"].str.len()) * p[m][1]) / 1e6).mean())
        for m in models
    }
    ds = load_dataset(CONFIGS / "routellm_gsm8k.yaml")
    assert ds.n_prompts == 1319
    assert_matches(ds, q, c)


def test_zeroeval_gsm8k() -> None:
    items = pd.read_csv(shared("zeroeval", "gsm_items.csv"))
    correct = pd.read_csv(shared("zeroeval", "gsm_correct_wide.csv"))
    chars = pd.read_csv(shared("zeroeval", "gsm_output_chars_wide.csv"))
    listed = pd.read_csv(shared("zeroeval", "gsm_models.csv"))["model"].tolist()
    p = prices("zeroeval.yaml")
    assert sorted(p) == sorted(listed), "the price table must cover all 42 ZeroEval models"
    models = [m for m in listed if m != "gemini-1.5-flash-exp-0827"]
    merged = items.merge(correct, on="id").merge(chars, on="id", suffixes=("", "|chars"))
    tin = tokens(merged["question"].str.len())
    q = {m: float(merged[m].mean()) for m in models}
    c = {
        m: float(((tin * p[m][0] + tokens(merged[f"{m}|chars"]) * p[m][1]) / 1e6).mean())
        for m in models
    }
    ds = load_dataset(CONFIGS / "zeroeval_gsm8k.yaml")
    assert ds.n_prompts == 1319 and ds.n_models == 41
    assert_matches(ds, q, c)


def test_arena_bench() -> None:
    scores = pd.read_csv(shared("arena-bench", "arena_bench_v1_gpt4_scores_wide.csv"))
    chars = pd.read_csv(shared("arena-bench", "arena_bench_v1_answer_chars_wide.csv"))
    p = prices("arena_bench.yaml")
    models = list(scores.columns[2:])
    merged = scores.merge(chars, on="question_id", suffixes=("", "|chars"))
    kept = merged[merged[models].notna().all(axis=1)]
    tin = tokens(kept["prompt"].str.len())
    q = {m: float((kept[m] >= 8).mean()) for m in models}
    c = {
        m: float(((tin * p[m][0] + tokens(kept[f"{m}|chars"]) * p[m][1]) / 1e6).mean())
        for m in models
    }
    ds = load_dataset(CONFIGS / "arena_bench.yaml")
    assert ds.n_prompts == len(kept) == 271
    assert ds.report is not None and ds.report.dropped == {"missing label": 29}
    assert_matches(ds, q, c)


def test_routerarena() -> None:
    df = pd.read_csv(shared("routerarena", "routerarena_2models_long.csv"))
    g = df.assign(score=df["score"].clip(0, 1)).groupby("model")
    q = {str(k): float(v) for k, v in g["score"].mean().items()}
    c = {str(k): float(v) for k, v in g["inference_cost"].mean().items()}
    ds = load_dataset(CONFIGS / "routerarena.yaml")
    assert ds.n_prompts == df["global_index"].nunique() == 809
    assert ds.report is not None and set(ds.report.cost_source.values()) == {"logged"}
    assert ds.tasks is not None and len(set(ds.tasks)) == 36
    assert ds.input_tokens is not None and ds.output_tokens is not None
    j = ds.model_index("gemini-2.0-flash-001")
    sub = df[df["model"] == "gemini-2.0-flash-001"].set_index("global_index")
    np.testing.assert_array_equal(ds.input_tokens[:, j], sub.loc[list(ds.ids), "input_tokens"])
    assert_matches(ds, q, c)
