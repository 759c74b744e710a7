"""ONNX export of MiniLM and the torch-free runtime: same vectors as sentence-transformers.

Exports once per session (fp32 and int8); the runtime is also run in a subprocess where importing
torch, transformers or sentence-transformers raises, to prove production needs none of them.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from tierwise.router.artifact import export_onnx
from tierwise.router.embed import get_embedder
from tierwise.router.embed.onnx import OnnxEmbedder
from tierwise.router.embed.sentence import SentenceTransformerEmbedder
from tierwise.router.errors import ArtifactError, ConfigError, DataError
from tierwise.router.normalize import NormalizationConfig, Normalizer

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[1]
LONG = "Summarize this meeting transcript. " + " ".join(
    f"Speaker {i % 3} said item {i} was discussed at length." for i in range(80)
)
PROMPTS = [
    "hi",
    "How do I reset my password for the billing dashboard?",
    "What is the capital of France?",
    "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)  # complexity?",
    "Écris un poème sur l'été — naïve café, 日本語のテキスト, Проверка юникода 🚀🔥",
    "",
    "   \n\t ",
    "Solve for x: 3x + 7 = 22. Show every step of your reasoning.",
    LONG,  # ~700 tokens: cut at 256
    "word " * 400,
    "¿Cuál es la mejor manera de aprender a programar en 2024?",
    "Translate 'good morning, how are you?' into German, Japanese and Swahili.",
]


@dataclass
class Exports:
    fp32: Path
    int8: Path
    fp32_seconds: float


@pytest.fixture(scope="session")
def torch_minilm() -> SentenceTransformerEmbedder:
    emb = get_embedder("minilm")
    assert isinstance(emb, SentenceTransformerEmbedder)
    return emb


@pytest.fixture(scope="session")
def exports(
    tmp_path_factory: pytest.TempPathFactory, torch_minilm: SentenceTransformerEmbedder
) -> Exports:
    root = tmp_path_factory.mktemp("onnx")
    t0 = time.perf_counter()
    fp32 = export_onnx(torch_minilm, root / "fp32")
    seconds = time.perf_counter() - t0
    int8 = export_onnx("minilm", root / "int8", quantize="int8")
    return Exports(fp32, int8, seconds)


@pytest.fixture(scope="session")
def expected(torch_minilm: SentenceTransformerEmbedder) -> np.ndarray:
    return torch_minilm.embed(PROMPTS)


@pytest.fixture(scope="session")
def onnx_fp32(exports: Exports) -> OnnxEmbedder:
    return OnnxEmbedder(exports.fp32)


@pytest.fixture(scope="session")
def onnx_int8(exports: Exports) -> OnnxEmbedder:
    return OnnxEmbedder(exports.int8)


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=1)


# ---- agreement with sentence-transformers -------------------------------------------------------


def test_fp32_matches_sentence_transformers_batched(
    onnx_fp32: OnnxEmbedder, expected: np.ndarray
) -> None:
    got = onnx_fp32.embed(PROMPTS, batch_size=4)  # several padded batches, sorted by length
    assert got.shape == (len(PROMPTS), 384) and got.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    cos = cosines(got, expected)
    assert cos.min() >= 0.9999, dict(zip(PROMPTS, cos.round(6), strict=True))


def test_fp32_single_prompt_path_matches(onnx_fp32: OnnxEmbedder, expected: np.ndarray) -> None:
    for i, prompt in enumerate(PROMPTS):
        got = onnx_fp32.embed([prompt])[0]
        assert float(got @ expected[i]) >= 0.9999, prompt[:40]


def test_fp32_keeps_torch_identity_dim_and_limit(
    onnx_fp32: OnnxEmbedder, torch_minilm: SentenceTransformerEmbedder
) -> None:
    # Same identity: embedding caches and router artifacts built with torch stay valid.
    assert onnx_fp32.identity == torch_minilm.identity
    assert (onnx_fp32.dim, onnx_fp32.max_tokens) == (torch_minilm.dim, torch_minilm.max_tokens)
    assert onnx_fp32.config.quantization == "none"
    assert onnx_fp32.config.verification is not None
    assert onnx_fp32.config.verification.min_cosine >= 0.9999


def test_long_prompts_truncate_at_the_same_token(onnx_fp32: OnnxEmbedder) -> None:
    base = onnx_fp32.embed([LONG, LONG + " And then a completely different closing topic."])
    assert float(base[0] @ base[1]) >= 0.99999  # the tail beyond 256 tokens is not seen
    head = onnx_fp32.embed([LONG[:200]])[0]
    assert float(head @ base[0]) < 0.99  # but the text within the limit is


def test_batch_order_and_size_do_not_change_vectors(onnx_fp32: OnnxEmbedder) -> None:
    texts = [f"question {i} about topic {i % 3}" + " more" * i for i in range(9)]
    a = onnx_fp32.embed(texts, batch_size=2)
    b = onnx_fp32.embed(texts[::-1], batch_size=64)[::-1]
    np.testing.assert_allclose(a, b, atol=1e-5)
    assert onnx_fp32.embed([]).shape == (0, 384)


def test_int8_stays_close_to_torch_with_its_own_identity(
    onnx_int8: OnnxEmbedder, onnx_fp32: OnnxEmbedder, expected: np.ndarray, exports: Exports
) -> None:
    got = onnx_int8.embed(PROMPTS, batch_size=5)
    cos = cosines(got, expected)
    # Measured on these prompts: worst 0.978 ("" and whitespace-only), mean 0.989. The bounds
    # leave ~1% for onnxruntime kernel differences across CPUs (VNNI vs AVX2 int8 paths).
    assert cos.min() >= 0.97, dict(zip(PROMPTS, cos.round(4), strict=True))
    assert cos.mean() >= 0.985
    # What routing uses: which prompts look alike. Pairwise similarities must keep their order.
    sims_int8 = (got @ got.T)[np.triu_indices(len(PROMPTS), 1)]
    sims_ref = (expected @ expected.T)[np.triu_indices(len(PROMPTS), 1)]
    assert np.corrcoef(sims_int8, sims_ref)[0, 1] >= 0.99
    assert onnx_int8.identity.startswith(onnx_fp32.identity + "+onnx-int8@")
    assert onnx_int8.identity != onnx_fp32.identity
    assert (exports.int8 / "model.onnx").stat().st_size < 0.7 * (
        exports.fp32 / "model.onnx"
    ).stat().st_size


def test_export_and_load_time_are_reasonable(exports: Exports) -> None:
    assert exports.fp32_seconds < 120  # includes loading the model twice and verifying
    t0 = time.perf_counter()
    OnnxEmbedder(exports.fp32, verify=True)
    assert time.perf_counter() - t0 < 5


# ---- fits the rest of the runtime ---------------------------------------------------------------


def test_registry_builds_it_from_a_spec(exports: Exports, onnx_fp32: OnnxEmbedder) -> None:
    emb = get_embedder(f"onnx:{exports.fp32}")
    assert isinstance(emb, OnnxEmbedder)
    assert emb.identity == onnx_fp32.identity
    with pytest.raises(ConfigError, match="needs an argument"):
        get_embedder("onnx")


def test_normalizer_counts_the_same_tokens_as_torch(
    onnx_fp32: OnnxEmbedder, torch_minilm: SentenceTransformerEmbedder
) -> None:
    cfg = NormalizationConfig(mode="head_tail")
    ours = Normalizer.for_embedder(cfg, onnx_fp32)
    theirs = Normalizer.for_embedder(cfg, torch_minilm)
    assert ours.key == theirs.key  # so normalized-prompt caches are shared too
    text = "word " * 300 + "the actual question: what is 2 + 2?"
    assert ours.apply(text) == theirs.apply(text) != text


def test_from_bytes_equals_loading_the_directory(exports: Exports, onnx_fp32: OnnxEmbedder) -> None:
    model = (exports.fp32 / "model.onnx").read_bytes()
    tok = (exports.fp32 / "tokenizer.json").read_text(encoding="utf-8")
    emb = OnnxEmbedder.from_bytes(onnx_fp32.config, model, tok, where="bundle.tierwise")
    assert emb.identity == onnx_fp32.identity
    np.testing.assert_allclose(emb.embed(PROMPTS[:4]), onnx_fp32.embed(PROMPTS[:4]), atol=1e-6)
    with pytest.raises(
        ArtifactError, match=r"bundle\.tierwise: model\.onnx bytes do not match.*fix it"
    ):
        OnnxEmbedder.from_bytes(
            onnx_fp32.config, model[:-1] + b"x", tok, where="bundle.tierwise", fix="fix it"
        )


def test_exported_tokenizer_json_pads_and_truncates(exports: Exports) -> None:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(exports.fp32 / "tokenizer.json"))
    a, b = tok.encode_batch(["hi", "word " * 400])
    assert len(a.ids) == len(b.ids) == 256
    assert sum(a.attention_mask) == 3


def test_non_string_prompt_is_a_data_error(onnx_fp32: OnnxEmbedder) -> None:
    with pytest.raises(DataError, match=r"`texts\[1\]` must be a str"):
        onnx_fp32.embed(["ok", None])  # type: ignore[list-item]


BLOCKED_RUN = """
import importlib.abc, json, sys
import numpy as np

class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "transformers", "sentence_transformers"):
            raise ImportError(f"{name} is blocked in this test")
        return None

sys.meta_path.insert(0, Block())
from tierwise.router.embed.onnx import OnnxEmbedder

emb = OnnxEmbedder(sys.argv[1])
prompts = json.loads(open(sys.argv[2], encoding="utf-8").read())
got = np.concatenate([emb.embed(prompts, batch_size=3), emb.embed(prompts[:1])])
expected = np.load(sys.argv[3])
expected = np.concatenate([expected, expected[:1]])
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "transformers"))
print(json.dumps({"min_cos": float(np.sum(got * expected, axis=1).min()), "heavy": heavy,
                  "identity": emb.identity}))
"""


def test_runtime_works_with_torch_import_blocked(
    exports: Exports, expected: np.ndarray, onnx_fp32: OnnxEmbedder, tmp_path: Path
) -> None:
    (tmp_path / "prompts.json").write_text(json.dumps(PROMPTS), encoding="utf-8")
    np.save(tmp_path / "expected.npy", expected)
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(BLOCKED_RUN), str(exports.fp32),
         str(tmp_path / "prompts.json"), str(tmp_path / "expected.npy")],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["heavy"] == []
    assert result["min_cos"] >= 0.9999
    assert result["identity"] == onnx_fp32.identity


# ---- export options -----------------------------------------------------------------------------


def test_export_with_a_smaller_limit_replaces_a_directory(
    exports: Exports, torch_minilm: SentenceTransformerEmbedder, tmp_path: Path
) -> None:
    out = tmp_path / "short"
    out.mkdir()
    (out / "stale.txt").write_text("old export", encoding="utf-8")
    with pytest.raises(ConfigError, match="already exists and is not empty"):
        export_onnx(torch_minilm, out, max_tokens=128)
    with pytest.raises(ConfigError, match="not an earlier export; refusing to delete it"):
        export_onnx(torch_minilm, out, max_tokens=128, overwrite=True)
    (out / "embedder.json").write_text("{}", encoding="utf-8")  # now it looks like an export
    export_onnx(torch_minilm, out, max_tokens=128, overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == [
        "embedder.json",
        "model.onnx",
        "tokenizer.json",
    ]
    assert [p.name for p in tmp_path.iterdir()] == ["short"]  # no temp dir left behind
    emb = OnnxEmbedder(out)
    assert emb.max_tokens == 128
    assert emb.identity == torch_minilm.identity.replace(":max_tokens=256", ":max_tokens=128")
    long_a, long_b = emb.embed(["word " * 130 + "alpha beta", "word " * 130 + "gamma delta"])
    assert float(long_a @ long_b) >= 0.99999  # both cut before the differing words


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"quantize": "fp16"}, r"`quantize` must be one of none, int8, got 'fp16'"),
        ({"max_tokens": 1000}, r"`max_tokens` must be an integer from 8 to 512"),
    ],
)
def test_export_rejects_bad_options(
    torch_minilm: SentenceTransformerEmbedder, tmp_path: Path, kwargs: dict, match: str
) -> None:
    with pytest.raises(ConfigError, match=match):
        export_onnx(torch_minilm, tmp_path / "out", **kwargs)
    assert not (tmp_path / "out").exists()


def test_export_rejects_what_it_cannot_export(
    torch_minilm: SentenceTransformerEmbedder, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match="must name a sentence-transformers model"):
        export_onnx("hashing:64", tmp_path / "a")
    with pytest.raises(ConfigError, match="SentenceTransformerEmbedder, an embedder spec"):
        export_onnx(42, tmp_path / "b")  # type: ignore[arg-type]
    # A CLS-pooling model: same weights, linked not copied, with its pooling config changed.
    cls_model = tmp_path / "cls-model"
    for f in torch_minilm.directory.rglob("*"):
        if f.is_file():
            (cls_model / f.relative_to(torch_minilm.directory)).parent.mkdir(
                parents=True, exist_ok=True
            )
            (cls_model / f.relative_to(torch_minilm.directory)).symlink_to(f)
    pooling = cls_model / "1_Pooling" / "config.json"
    cfg = json.loads(pooling.read_text())
    pooling.unlink()
    cfg.update(pooling_mode_mean_tokens=False, pooling_mode_cls_token=True)
    pooling.write_text(json.dumps(cfg))
    with pytest.raises(ConfigError, match=r"supports Transformer -> mean Pooling.*'cls'"):
        export_onnx(str(cls_model), tmp_path / "c")


# ---- broken export directories ------------------------------------------------------------------


@pytest.fixture
def small_copy(exports: Exports, tmp_path: Path) -> Path:
    """The export's config and tokenizer, with the 90 MB model linked rather than copied."""
    out = tmp_path / "copy"
    out.mkdir()
    for name in ("embedder.json", "tokenizer.json"):
        shutil.copy(exports.fp32 / name, out / name)
    (out / "model.onnx").symlink_to(exports.fp32 / "model.onnx")
    return out


def edit_config(directory: Path, **changes: object) -> None:
    path = directory / "embedder.json"
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


def test_missing_directory_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist or is not a directory"):
        OnnxEmbedder(tmp_path / "nope")
    with pytest.raises(ConfigError, match="`num_threads` must be a positive integer"):
        OnnxEmbedder(tmp_path, num_threads=0)


def test_directory_without_export_is_an_artifact_error(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match=r"not an ONNX embedder export \(embedder.json"):
        OnnxEmbedder(tmp_path)


def test_small_copy_loads(small_copy: Path, onnx_fp32: OnnxEmbedder) -> None:
    assert OnnxEmbedder(small_copy).identity == onnx_fp32.identity  # the fixture itself is valid


def test_bad_config_json_is_an_artifact_error(small_copy: Path) -> None:
    (small_copy / "embedder.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ArtifactError, match=r"embedder\.json: not valid JSON"):
        OnnxEmbedder(small_copy)


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"pooling": "cls"}, r"`pooling` input should be 'mean', got 'cls'"),
        ({"surprise": 1}, r"unknown key `surprise`"),
        ({"format_version": 99}, r"`format_version` must be at most 1, got 99.*newer tierwise"),
        ({"dim": 0}, r"`dim` input should be greater than 0"),
    ],
)
def test_invalid_config_is_an_artifact_error(small_copy: Path, changes: dict, match: str) -> None:
    edit_config(small_copy, **changes)
    with pytest.raises(ArtifactError, match=match):
        OnnxEmbedder(small_copy)


def test_missing_or_replaced_model_is_an_artifact_error(small_copy: Path) -> None:
    model = small_copy / "model.onnx"
    model.unlink()
    with pytest.raises(ArtifactError, match=r"model\.onnx is missing"):
        OnnxEmbedder(small_copy)
    model.write_bytes(b"\x08\x07not an onnx model")
    with pytest.raises(ArtifactError, match=r"checksum does not match embedder\.json"):
        OnnxEmbedder(small_copy)
    with pytest.raises(ArtifactError, match="onnxruntime cannot load the model"):
        OnnxEmbedder(small_copy, verify=False)


def test_changed_tokenizer_is_detected(small_copy: Path) -> None:
    tok = small_copy / "tokenizer.json"
    tok.write_text(tok.read_text().replace('"[UNK]"', '"[UNKNOWN]"', 1))
    with pytest.raises(ArtifactError, match=r"tokenizer\.json: checksum does not match"):
        OnnxEmbedder(small_copy)
