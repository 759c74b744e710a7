"""Embedder registry, the hashing embedder, and one conformance suite every embedder must pass."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tierwise.router.embed import Embedder, HashingEmbedder, available_embedders, get_embedder
from tierwise.router.errors import ConfigError, DataError

ROOT = Path(__file__).resolve().parents[1]

EMBEDDER_SPECS = [
    "hashing:64",
    pytest.param("minilm", marks=pytest.mark.integration),
]


@pytest.fixture(params=EMBEDDER_SPECS, scope="module")
def embedder(request: pytest.FixtureRequest) -> Embedder:
    return get_embedder(request.param)


# ---- conformance: the contract the router relies on ---------------------------------------------


def test_conformance_shape_dtype_and_unit_norm(embedder: Embedder) -> None:
    texts = ["What is the capital of France?", "def add(a, b): return a + b", "!!!", "é 漢字"]
    out = embedder.embed(texts, batch_size=2)
    assert out.shape == (4, embedder.dim)
    assert out.dtype == np.float32
    assert out.flags.c_contiguous
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)


def test_conformance_deterministic_and_batch_independent(embedder: Embedder) -> None:
    texts = [f"question number {i} about topic {i % 3}" for i in range(7)]
    a = embedder.embed(texts, batch_size=3)
    b = embedder.embed(texts[::-1], batch_size=32)[::-1]
    np.testing.assert_allclose(a, b, atol=1e-5)
    np.testing.assert_allclose(embedder.embed(texts[2:3]), a[2:3], atol=1e-5)


def test_conformance_empty_input_gives_empty_matrix(embedder: Embedder) -> None:
    out = embedder.embed([])
    assert out.shape == (0, embedder.dim)
    assert out.dtype == np.float32


def test_conformance_identity_is_stable_and_names_the_model(embedder: Embedder) -> None:
    again = get_embedder("minilm" if embedder.dim == 384 else "hashing:64")
    assert again.identity == embedder.identity
    assert isinstance(embedder.identity, str) and len(embedder.identity) > 8


def test_conformance_rejects_a_bare_string(embedder: Embedder) -> None:
    with pytest.raises(DataError, match=r"got a single str; wrap it"):
        embedder.embed("just one prompt")


def test_conformance_rejects_non_string_items_naming_position(embedder: Embedder) -> None:
    with pytest.raises(DataError, match=r"`texts\[1\]` must be a str, got NoneType"):
        embedder.embed(["fine", None])  # type: ignore[list-item]


def test_conformance_rejects_bad_batch_size(embedder: Embedder) -> None:
    with pytest.raises(ConfigError, match=r"`batch_size` must be a positive integer, got 0"):
        embedder.embed(["x"], batch_size=0)


# ---- hashing embedder -------------------------------------------------------------------------


def test_hashing_is_deterministic_across_processes() -> None:
    """crc32-based, not Python's salted hash(): a fresh interpreter gives the same bytes."""
    code = (
        "from router.embed import get_embedder\n"
        "print(get_embedder('hashing:32').embed(['same text every run']).tobytes().hex())\n"
    )
    outs = {
        subprocess.run(
            [sys.executable, "-c", code],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONHASHSEED": seed, "PATH": ""},
        ).stdout
        for seed in ("1", "2")
    }
    assert len(outs) == 1
    here = get_embedder("hashing:32").embed(["same text every run"]).tobytes().hex()
    assert outs.pop().strip() == here


def test_hashing_shared_words_are_closer_than_disjoint() -> None:
    e = HashingEmbedder(256)
    a, b, c = e.embed(["the cat sat on the mat", "a cat sat on a mat", "quantum chromodynamics"])
    assert float(a @ b) > 0.5 > float(a @ c)


def test_hashing_punctuation_only_text_is_still_a_unit_vector() -> None:
    out = HashingEmbedder(16).embed(["???", "..."])
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-6)
    assert not np.allclose(out[0], out[1])


def test_hashing_identity_changes_with_dim() -> None:
    assert get_embedder("hashing:64").identity != get_embedder("hashing:128").identity
    assert get_embedder("hashing:64").dim == 64


@pytest.mark.parametrize(
    ("spec", "pattern"),
    [
        ("hashing:abc", r"'hashing:abc' needs an integer dimension, e\.g\. 'hashing:256'"),
        ("hashing:1", r"hashing `dim` must be an integer in \[2, 1048576\], got 1"),
    ],
)
def test_hashing_bad_dims(spec: str, pattern: str) -> None:
    with pytest.raises(ConfigError, match=pattern):
        get_embedder(spec)


# ---- registry ---------------------------------------------------------------------------------


def test_unknown_embedder_lists_valid_names() -> None:
    with pytest.raises(
        ConfigError,
        match=r"`embedder` must be one of (.+, )?hashing:<dim>, (.+, )?minilm, (.+, )?"
        r"sentence-transformers:<name or local path>(, .+)?, got 'word2vec'\.$",
    ):
        get_embedder("word2vec")


def test_available_embedders_lists_the_builtins() -> None:
    assert {"minilm", "hashing:<dim>", "sentence-transformers:<name or local path>"} <= set(
        available_embedders()
    )


@pytest.mark.parametrize("spec", ["", "   ", None])
def test_empty_spec_is_rejected(spec: object) -> None:
    with pytest.raises(ConfigError, match=r"`embedder` must be a non-empty string"):
        get_embedder(spec)  # type: ignore[arg-type]


def test_sentence_transformers_needs_a_model_argument() -> None:
    with pytest.raises(
        ConfigError, match=r"needs an argument: write it as 'sentence-transformers:"
    ):
        get_embedder("sentence-transformers")


def test_minilm_takes_no_argument() -> None:
    with pytest.raises(ConfigError, match=r"'minilm' takes no argument, got 'minilm:large'"):
        get_embedder("minilm:large")


def test_nonexistent_model_name_fails_fast_with_how_to() -> None:
    start = time.monotonic()
    with pytest.raises(
        ConfigError,
        match=r"'acme/no-such-encoder' is neither a local directory nor in the Hugging Face cache;"
        r" pass a local model directory .*huggingface-cli download acme/no-such-encoder",
    ):
        get_embedder("sentence-transformers:acme/no-such-encoder")
    assert time.monotonic() - start < 5


def test_nonexistent_model_path_fails_fast(tmp_path: Path) -> None:
    missing = tmp_path / "models" / "mine"
    start = time.monotonic()
    with pytest.raises(ConfigError, match=r"no model directory at .*mine'; check the path"):
        get_embedder(f"sentence-transformers:{missing}")
    assert time.monotonic() - start < 5


def test_directory_that_is_not_a_model_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not a model")
    with pytest.raises(ConfigError, match=r"is not a sentence-transformers model directory"):
        get_embedder(f"sentence-transformers:{tmp_path}")


def test_a_file_instead_of_a_directory_is_rejected(tmp_path: Path) -> None:
    f = tmp_path / "model.bin"
    f.write_bytes(b"\0")
    with pytest.raises(ConfigError, match=r"must be a directory, got file"):
        get_embedder(f"sentence-transformers:{f}")


def test_importing_router_embed_does_not_import_torch() -> None:
    code = (
        "import sys, tierwise.router.embed, tierwise.router.normalize, tierwise.router.cache\n"
        "tierwise.router.embed.get_embedder('hashing:8').embed(['x'])\n"
        "heavy = [m for m in ('torch', 'sentence_transformers', 'transformers')\n"
        "         if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
