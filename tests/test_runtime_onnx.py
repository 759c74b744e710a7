"""The real thing: a MiniLM router exported with `tierwise export` and run without torch.

One session export (fp32) of a router trained with sentence-transformers MiniLM on synthetic
traffic. The ONNX runtime must reach the training-time router's decisions; a subprocess where
importing torch, transformers, sentence-transformers, scikit-learn (and pandas, scipy, optuna,
mlflow) raises must load the artifact, route, batch-route and serve over HTTP.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from runtime_helpers import BLOCK_HEAVY, CLI_MAIN, ROOT, Served, http, traffic, train_router

from tierwise.router.artifact import (
    decision_agreement,
    export_artifact,
    load_artifact,
    save_artifact,
)
from tierwise.router.core import Router
from tierwise.router.embed.onnx import OnnxEmbedder
from tierwise.router.errors import ArtifactError, ConfigError
from tierwise.router.runtime import PAYLOAD_KEY, load_runtime

pytestmark = pytest.mark.integration

EXTRA = [
    "How do I reset my password?",
    "Écris un poème sur l'été — 日本語も少し 🚀",
    "def f(x):\n    return x ** 2  # explain the complexity of this code",
    "Summarize this report. " + "The quarterly numbers were strong. " * 80,
    "math " * 300,
]
PROMPTS = list(traffic(150, 3).prompts) + EXTRA


@dataclass
class Exported:
    trained: Path
    runtime: Path
    decisions: list[str | None]  # the training-time (torch) router's choices on PROMPTS
    seconds: float


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Exported:
    root = tmp_path_factory.mktemp("onnx-runtime")
    router = train_router("minilm", n=240)
    trained = Path(router.save(str(root / "router.tierwise")))
    decisions = [d.model for d in router.route(PROMPTS)]
    t0 = time.perf_counter()
    runtime = export_artifact(trained, root / "runtime.tierwise")
    return Exported(trained, runtime, decisions, time.perf_counter() - t0)


def test_onnx_runtime_reaches_the_training_time_decisions(exported: Exported) -> None:
    assert len(set(exported.decisions)) >= 2  # a router that always says one model proves little
    runtime = load_runtime(exported.runtime)
    assert isinstance(runtime.embedder, OnnxEmbedder)
    got = [d.model for d in runtime.route(PROMPTS)]
    agree = sum(a == b for a, b in zip(got, exported.decisions, strict=True)) / len(PROMPTS)
    assert agree >= 0.99, f"only {agree:.1%} of decisions agree"
    torch_router = Router.load(str(exported.trained))
    want = torch_router.route(PROMPTS[:40])
    for a, b in zip(runtime.route(PROMPTS[:40]), want, strict=True):
        assert a.p_success == pytest.approx(b.p_success, abs=2e-3)


def test_decision_agreement_reports_what_export_check_prints(exported: Exported) -> None:
    agreement = decision_agreement(exported.trained, exported.runtime, [*PROMPTS[:60], ""])
    assert agreement.prompts == 60  # the invalid prompt is left out
    assert agreement.same_model >= 0.99 and agreement.max_p_diff < 0.01
    assert str(agreement).startswith(f"{agreement.same_model:.2%} of 60 prompts get the same")


def test_router_load_picks_up_the_bundled_embedder(exported: Exported) -> None:
    router = Router.load(str(exported.runtime))
    assert isinstance(router.embedder, OnnxEmbedder)
    assert router.embedder.identity == router.embedder_identity_  # fp32 keeps the identity
    payload = load_artifact(exported.runtime).payload
    assert payload[PAYLOAD_KEY]["quantization"] == "none"
    assert payload[PAYLOAD_KEY]["verification"]["min_cosine"] >= 0.9999
    trained = load_artifact(exported.trained)
    assert payload[PAYLOAD_KEY]["source_artifact_checksum"] == trained.manifest["checksum"]
    assert {k: v for k, v in payload.items() if k != PAYLOAD_KEY} == trained.payload


TORCH_FREE = """
import json, sys
from tierwise.router.runtime import load_runtime
runtime = load_runtime(sys.argv[1], require_embedded=True)
prompts = json.loads(open(sys.argv[2], encoding="utf-8").read())
models = [d.model for d in runtime.route(prompts)]
heavy = sorted({m.split(".")[0] for m in sys.modules} & set(BLOCKED))
print(json.dumps({"models": models, "heavy": heavy, "embedder": type(runtime.embedder).__name__}))
"""


def test_runtime_needs_no_training_stack(exported: Exported, tmp_path: Path) -> None:
    (tmp_path / "prompts.json").write_text(json.dumps(PROMPTS), encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, "-c", BLOCK_HEAVY + textwrap.dedent(TORCH_FREE), str(exported.runtime),
         str(tmp_path / "prompts.json")],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["heavy"] == [] and out["embedder"] == "OnnxEmbedder"
    agree = sum(a == b for a, b in zip(out["models"], exported.decisions, strict=True))
    assert agree / len(PROMPTS) >= 0.99

    src, dst = tmp_path / "in.jsonl", tmp_path / "out.csv"
    src.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in PROMPTS), encoding="utf-8")
    batch = subprocess.run(
        [sys.executable, "-c", BLOCK_HEAVY + CLI_MAIN, "batch", str(exported.runtime), str(src),
         str(dst), "--no-progress"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert batch.returncode == 0, batch.stderr[-3000:]
    rows = dst.read_text(encoding="utf-8").splitlines()[1:]
    assert len(rows) == len(PROMPTS)


def test_torch_free_server_routes_like_the_training_router(
    exported: Exported, tmp_path: Path
) -> None:
    with Served(exported.runtime, "--require-onnx", log=tmp_path / "s.log", torch_free=True) as s:
        health = json.loads(http("GET", s.url + "/health")[1])
        assert health["artifact"]["embedder_runtime"] == "OnnxEmbedder"
        status, body, _ = http("POST", s.url + "/route", {"prompts": PROMPTS[:50]})
        assert status == 200
        got = [d["model"] for d in json.loads(body)["decisions"]]
        agree = sum(a == b for a, b in zip(got, exported.decisions[:50], strict=True))
        assert agree / 50 >= 0.98
        status, body, _ = http("POST", s.url + "/route", {"prompt": PROMPTS[0]})
        assert status == 200 and json.loads(body)["model"] == exported.decisions[0]


def test_export_refuses_a_different_model_than_the_one_trained(
    exported: Exported, tmp_path: Path
) -> None:
    art = load_artifact(exported.trained)
    payload = {**art.payload, "embedder": {**art.payload["embedder"], "identity": "other@123"}}
    save_artifact(tmp_path / "other.tierwise", payload, art.arrays)
    with pytest.raises(ArtifactError, match="trained with embedder 'other@123', but 'minilm' here"):
        export_artifact(tmp_path / "other.tierwise", tmp_path / "out.tierwise")
    with pytest.raises(ConfigError, match="already exists"):
        export_artifact(exported.trained, exported.runtime)


def test_hot_swap_keeps_the_onnx_session_when_the_bundled_embedder_is_the_same(
    exported: Exported, tmp_path: Path
) -> None:
    from tierwise.router.serve.state import RouterHolder

    art = load_artifact(exported.runtime)
    served = tmp_path / "served.tierwise"

    def write(knob: float, source: str) -> None:  # a retrained router: same embedder bytes
        payload = json.loads(json.dumps(art.payload))
        payload["policy"]["knob"] = knob
        payload[PAYLOAD_KEY]["source_artifact_checksum"] = source
        save_artifact(served, payload, art.arrays)

    write(0.0, art.payload[PAYLOAD_KEY]["source_artifact_checksum"])
    holder = RouterHolder(served, allow_embedders=())
    first = holder.current
    write(1.0, art.payload[PAYLOAD_KEY]["source_artifact_checksum"])
    second = holder.reload()
    assert second.router.knob_ == 1.0 and second.checksum != first.checksum
    assert second.router.embedder is first.router.embedder  # no second ONNX session
    assert second.embedder_digest == first.embedder_digest is not None
    write(1.0, "another source")  # the bundled embedder's description differs: a new session
    third = holder.reload()
    assert third.router.embedder is not second.router.embedder
    assert [d.model for d in third.router.route(PROMPTS[:20])] == [
        d.model for d in second.router.route(PROMPTS[:20])
    ]
