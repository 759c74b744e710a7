"""router.runtime and the artifact export without a real model: loading, refusals, broken bundles.

The real MiniLM export (torch vs ONNX decisions, torch-free subprocess) is test_runtime_onnx.py.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from runtime_helpers import hashing_artifact

from tierwise.router.artifact import export_artifact, load_artifact, save_artifact
from tierwise.router.core import Router
from tierwise.router.errors import ArtifactError, ConfigError
from tierwise.router.runtime import (
    MODEL_ARRAY,
    PAYLOAD_KEY,
    TOKENIZER_ARRAY,
    RuntimeRouter,
    load_runtime,
)

PROMPTS = ["math code sql", "love poem", "history of war " * 50, "python"]


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return hashing_artifact(tmp_path_factory.mktemp("rt") / "r.tierwise")


def test_runtime_router_decides_exactly_like_the_router(artifact: Path) -> None:
    router = Router.load(str(artifact))
    runtime = load_runtime(artifact)
    assert isinstance(runtime, RuntimeRouter)
    assert runtime.manifest_ == router.manifest_
    got, want = runtime.route([*PROMPTS, "", 3]), router.route([*PROMPTS, "", 3])
    assert [d.to_dict() for d in got] == [d.to_dict() for d in want]
    assert runtime.route(PROMPTS, knob=0.0)[0].knob == 0.0


def test_runtime_never_touches_the_embedding_cache(tmp_path: Path) -> None:
    """A training config's cache_dir travels in the artifact; serving must not open it."""
    path = hashing_artifact(tmp_path / "r.tierwise")
    art = load_artifact(path)
    payload = {**art.payload, "config": {**art.payload["config"], "cache_dir": str(tmp_path / "c")}}
    save_artifact(path, payload, art.arrays)
    runtime = load_runtime(path)
    runtime.route(PROMPTS)
    assert not (tmp_path / "c").exists()


def test_plain_artifact_is_refused_when_an_embedded_one_is_required(artifact: Path) -> None:
    with pytest.raises(ArtifactError, match="has no bundled ONNX embedder; create one with"):
        load_runtime(artifact, require_embedded=True)


def test_export_refuses_embedders_without_a_network_and_existing_outputs(
    artifact: Path, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match="not a sentence-transformers model"):
        export_artifact(artifact, tmp_path / "out.tierwise")
    (tmp_path / "taken.tierwise").write_text("x")
    with pytest.raises(ConfigError, match="already exists; choose a new path or pass overwrite"):
        export_artifact(artifact, tmp_path / "taken.tierwise")
    with pytest.raises(ConfigError, match="must differ from the source artifact"):
        export_artifact(artifact, artifact, overwrite=True)
    with pytest.raises(ConfigError, match="`quantize` must be one of none, int8, got 'fp16'"):
        export_artifact(artifact, tmp_path / "o.tierwise", quantize="fp16")


def _bundle(
    path: Path, name: str, model: bytes, tokenizer: bytes, **config_changes: object
) -> Path:
    """An artifact carrying a (fake) bundled embedder: checksums right unless overridden."""
    art = load_artifact(path)
    config = {
        "format": "tierwise-onnx-embedder", "format_version": 1,
        "identity": art.payload["embedder"]["identity"], "source_identity": "x", "dim": 64,
        "max_tokens": 128, "pooling": "mean", "normalize": True, "quantization": "none",
        "inputs": ["input_ids", "attention_mask"], "output": "last_hidden_state",
        "model_sha256": hashlib.sha256(model).hexdigest(),
        "tokenizer_sha256": hashlib.sha256(tokenizer).hexdigest(),
        "exporter": {}, "verification": None, "source_artifact_checksum": "abc",
    }  # fmt: skip
    config.update(config_changes)
    arrays = {**art.arrays, MODEL_ARRAY: np.frombuffer(model, np.uint8),
              TOKENIZER_ARRAY: np.frombuffer(tokenizer, np.uint8)}  # fmt: skip
    out = path.with_name(name)
    save_artifact(out, {**art.payload, PAYLOAD_KEY: config}, arrays)
    return out


def test_broken_bundled_embedders_are_clear_errors(artifact: Path, tmp_path: Path) -> None:
    path = tmp_path / "r.tierwise"
    path.write_bytes(artifact.read_bytes())
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel

    tok = Tokenizer(WordLevel({"[UNK]": 0, "a": 1}, unk_token="[UNK]")).to_str().encode()
    with pytest.raises(ArtifactError, match="tokenizer cannot be loaded"):
        load_runtime(_bundle(path, "t.tierwise", b"m", b'{"version": "1.0"}'))
    bad_sha = _bundle(path, "sha.tierwise", b"model", tok, model_sha256="0" * 64)
    with pytest.raises(ArtifactError, match=r"model\.onnx bytes do not match the checksum"):
        load_runtime(bad_sha)
    with pytest.raises(ArtifactError, match="do not match the checksum"):
        Router.load(str(bad_sha))  # Router.load uses the bundled embedder too
    not_onnx = _bundle(path, "onnx.tierwise", b"definitely not onnx", tok)
    with pytest.raises(ArtifactError, match="onnxruntime cannot load"):
        load_runtime(not_onnx)
    bad_config = _bundle(path, "cfg.tierwise", b"m", tok, pooling="max")
    with pytest.raises(
        ArtifactError, match=r"`runtime_embedder`.*pooling.*re-run `tierwise export`"
    ):
        load_runtime(bad_config)
    art = load_artifact(bad_sha)
    arrays = {k: v for k, v in art.arrays.items() if k != TOKENIZER_ARRAY}
    save_artifact(tmp_path / "missing.tierwise", art.payload, arrays)
    with pytest.raises(ArtifactError, match=r"arrays \['runtime.tokenizer_json'\] are missing"):
        load_runtime(tmp_path / "missing.tierwise")
