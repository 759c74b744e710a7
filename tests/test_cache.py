"""On-disk embedding cache: only misses are embedded, across instances and processes."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from tierwise.router.cache import FILENAME, EmbeddingCache, embed_with_cache
from tierwise.router.embed import Embedder, HashingEmbedder
from tierwise.router.errors import ConfigError, DataError
from tierwise.router.normalize import NormalizationConfig, Normalizer

ROOT = Path(__file__).resolve().parents[1]


class CountingEmbedder(Embedder):
    """A real hashing embedder that records how many texts reached it (the thing we must save)."""

    def __init__(self, dim: int = 16, fail_after_calls: int | None = None) -> None:
        self.inner = HashingEmbedder(dim)
        self.calls = 0
        self.texts: list[str] = []
        self.fail_after_calls = fail_after_calls

    @property
    def identity(self) -> str:
        return self.inner.identity

    @property
    def dim(self) -> int:
        return self.inner.dim

    def _encode(self, texts: list[str], batch_size: int, progress: bool) -> np.ndarray:
        if self.fail_after_calls is not None and self.calls >= self.fail_after_calls:
            raise KeyboardInterrupt  # what a user pressing Ctrl-C mid-run looks like
        self.calls += 1
        self.texts += texts
        return self.inner.embed(texts)


TEXTS = [f"prompt number {i} about subject {i % 4}" for i in range(20)]


def test_second_run_embeds_nothing_and_returns_identical_vectors(tmp_path: Path) -> None:
    emb, norm = CountingEmbedder(), Normalizer(NormalizationConfig(mode="tail"))
    first = embed_with_cache(emb, norm, TEXTS, EmbeddingCache(tmp_path), progress=False)
    assert len(emb.texts) == 20
    again = embed_with_cache(emb, norm, TEXTS, EmbeddingCache(tmp_path), progress=False)
    assert len(emb.texts) == 20  # new cache object, same directory: all hits
    np.testing.assert_array_equal(first, again)
    np.testing.assert_allclose(first, HashingEmbedder(16).embed(TEXTS), atol=1e-6)


def test_only_misses_are_embedded_and_counted(tmp_path: Path) -> None:
    emb, cache = CountingEmbedder(), EmbeddingCache(tmp_path)
    embed_with_cache(emb, None, TEXTS[:12], cache, progress=False)
    out = embed_with_cache(emb, None, TEXTS[8:], cache, progress=False)
    assert emb.texts[12:] == TEXTS[12:]  # the second call embedded exactly the 8 new prompts
    assert (cache.hits, cache.misses) == (4, 20)
    assert cache.count() == 20 and cache.count(emb.identity) == 20
    np.testing.assert_allclose(out, HashingEmbedder(16).embed(TEXTS[8:]), atol=1e-6)


def test_duplicates_within_a_call_are_embedded_once(tmp_path: Path) -> None:
    emb = CountingEmbedder()
    out = embed_with_cache(emb, None, ["a b", "c d", "a b", "a b"], None, progress=False)
    assert emb.texts == ["a b", "c d"]
    np.testing.assert_array_equal(out[0], out[2])
    np.testing.assert_array_equal(out[0], out[3])


def test_prompts_that_normalize_alike_are_embedded_once() -> None:
    emb = CountingEmbedder()
    tail = Normalizer(NormalizationConfig(mode="tail", max_tokens=8))  # keeps the last 6 words
    texts = [
        "alpha " * 20 + "what is the capital of peru",
        "beta " * 20 + "what is the capital of peru",
    ]
    out = embed_with_cache(emb, tail, texts, None, progress=False)
    assert emb.texts == ["what is the capital of peru"]
    np.testing.assert_array_equal(out[0], out[1])


def test_normalizer_and_embedder_are_part_of_the_key(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path)
    emb = CountingEmbedder()
    embed_with_cache(
        emb, Normalizer(NormalizationConfig(mode="tail")), TEXTS, cache, progress=False
    )
    embed_with_cache(
        emb, Normalizer(NormalizationConfig(mode="head")), TEXTS, cache, progress=False
    )
    assert len(emb.texts) == 40
    other = CountingEmbedder(dim=32)
    embed_with_cache(
        other, Normalizer(NormalizationConfig(mode="tail")), TEXTS, cache, progress=False
    )
    assert len(other.texts) == 20
    assert cache.count() == 60


def test_interrupted_run_keeps_finished_chunks(tmp_path: Path) -> None:
    flaky = CountingEmbedder(fail_after_calls=2)
    with pytest.raises(KeyboardInterrupt):
        embed_with_cache(flaky, None, TEXTS, EmbeddingCache(tmp_path), progress=False, chunk_size=5)
    emb = CountingEmbedder()
    embed_with_cache(emb, None, TEXTS, EmbeddingCache(tmp_path), progress=False, chunk_size=5)
    assert emb.texts == TEXTS[10:]


def test_two_processes_share_one_cache(tmp_path: Path) -> None:
    """Two writers at once on overlapping prompts; then a third run embeds nothing."""
    script = tmp_path / "worker.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import sys
            sys.path.insert(0, {str(ROOT)!r}); sys.path.insert(0, {str(ROOT / "tests")!r})
            from test_cache import CountingEmbedder
            from tierwise.router.cache import EmbeddingCache, embed_with_cache
            lo, hi = int(sys.argv[2]), int(sys.argv[3])
            texts = [f"shared prompt {{i}}" for i in range(lo, hi)]
            emb = CountingEmbedder()
            for start in range(0, len(texts), 25):  # many small transactions to interleave
                embed_with_cache(emb, None, texts[start:start + 25], EmbeddingCache(sys.argv[1]),
                                 progress=False)
            print(len(emb.texts))
            """
        )
    )
    cache_dir = tmp_path / "cache"
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(cache_dir), lo, hi],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for lo, hi in (("0", "300"), ("150", "450"))
    ]
    results = [p.communicate(timeout=120) for p in procs]
    for p, (out, err) in zip(procs, results, strict=True):
        assert p.returncode == 0, err[-2000:]
        assert 150 <= int(out) <= 300
    emb = CountingEmbedder()
    texts = [f"shared prompt {i}" for i in range(450)]
    vecs = embed_with_cache(emb, None, texts, EmbeddingCache(cache_dir), progress=False)
    assert emb.texts == []
    assert EmbeddingCache(cache_dir).count() == 450
    np.testing.assert_allclose(vecs, HashingEmbedder(16).embed(texts), atol=1e-6)


def test_progress_bar_reports_misses(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    embed_with_cache(CountingEmbedder(), None, TEXTS, EmbeddingCache(tmp_path), progress=True)
    assert "embedding" in capsys.readouterr().err


def test_empty_input_and_bad_items(tmp_path: Path) -> None:
    emb = CountingEmbedder()
    assert embed_with_cache(emb, None, [], EmbeddingCache(tmp_path)).shape == (0, 16)
    with pytest.raises(DataError, match=r"`texts\[1\]` must be a str, got int"):
        embed_with_cache(emb, None, ["ok", 3], None)  # type: ignore[list-item]
    with pytest.raises(DataError, match=r"got a single str; wrap it"):
        embed_with_cache(emb, None, "one prompt", None)


def test_corrupt_cache_file_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / FILENAME).write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(DataError, match=r"is unusable .*delete the file and it will be rebuilt"):
        EmbeddingCache(tmp_path)


def test_cache_directory_that_is_a_file_is_a_clear_error(tmp_path: Path) -> None:
    f = tmp_path / "taken"
    f.write_text("x")
    with pytest.raises(ConfigError, match=r"cannot be created .*choose a writable `cache_dir`"):
        EmbeddingCache(f)


def test_changed_dimension_under_same_identity_is_refused(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path)
    cache.put_many("model@abc", "norm-v1:none", [b"k" * 32], np.ones((1, 8), np.float32))
    with pytest.raises(DataError, match=r"holds 8-dim vectors for 'model@abc', but the embedder"):
        cache.get_many("model@abc", "norm-v1:none", 16, [b"k" * 32])
