"""Artifact probes: tampered, truncated and hostile router artifacts, loaded as a server would.

Each file is built from a small hashing-embedder router; forged ones get their hashes and
checksum recomputed (the checksum detects accidents, it does not authenticate), so only the
loader's own checks stand in the way. Each load runs in a child process with a 3 GiB address
space limit and a 30 s timeout, exactly as ``tierwise serve`` loads (``load_runtime`` with the
default embedder allow-list), then routes three prompts:

- handled: refused with one line of ArtifactError/ConfigError text, or (for a harmless change
  such as a reformatted manifest) loaded and routed exactly like the original;
- crashed: a traceback, MemoryError, a hang or a killed process;
- silently wrong: a hostile file loaded, or a harmless one routed differently.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from reliability import ROOT, probe, use_test_helpers

use_test_helpers()
from artifact_helpers import manifest_checksum, npz_with  # noqa: E402

CATEGORY = "artifacts"
PROMPTS = ["math code sql python", "love poem story", "history war physics"]
CHILD = """
import json, resource, sys
resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))
from tierwise.router.errors import TierwiseError
from tierwise.router.runtime import load_runtime
try:
    router = load_runtime(sys.argv[1], allow_embedders=())
except TierwiseError as err:
    print(json.dumps({"refused": str(err)}))
    sys.exit(0)
decisions = router.route(json.loads(sys.argv[2]))
print(json.dumps({"routed": [[d.model, d.error] for d in decisions]}))
"""


# ---------------------------------------------------------------- forging helpers


def members(path: Path) -> tuple[dict[str, Any], dict[str, bytes]]:
    with zipfile.ZipFile(path) as zf:
        files = {n: zf.read(n) for n in zf.namelist()}
    return json.loads(files.pop("manifest.json")), files


def write(path: Path, manifest: Any, files: dict[str, bytes], *, seal: bool = True) -> Path:
    """A single-file artifact; ``seal`` recomputes the files table and checksum (a forger)."""
    if seal and isinstance(manifest, dict):
        manifest = dict(manifest)
        manifest["files"] = {
            n: {"sha256": hashlib.sha256(b).hexdigest(), "size": len(b)} for n, b in files.items()
        }
        manifest["checksum"] = manifest_checksum(manifest)
    text = manifest if isinstance(manifest, bytes) else json.dumps(manifest).encode()
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("manifest.json", text)
        for name, data in files.items():
            zf.writestr(name, data)
    return path


def npz_members(blob: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(blob)) as zf:
        return {n: zf.read(n) for n in zf.namelist()}


def npy(arr: np.ndarray, *, allow_pickle: bool = False) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=allow_pickle)
    return buf.getvalue()


def with_array(man: dict[str, Any], files: dict[str, bytes], name: str, data: bytes,
               spec: dict[str, Any]) -> tuple[dict[str, Any], dict[str, bytes]]:  # fmt: skip
    arrays = npz_members(files["arrays.npz"]) | {f"{name}.npy": data}
    man = json.loads(json.dumps(man))
    man["arrays"][name] = spec
    return man, {"arrays.npz": npz_with(arrays)}


def edited(man: dict[str, Any], edit: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    out = json.loads(json.dumps(man))
    edit(out)
    return out


# ---------------------------------------------------------------- the probes


def build(work: Path, base: Path) -> list[tuple[str, Path, bool]]:
    """(name, path, must_refuse) for every probe file."""
    man, files = members(base)
    arr = files["arrays.npz"]
    payload = man["payload"]
    p: list[tuple[str, Path, bool]] = []

    def add(name: str, path: Path, refuse: bool = True) -> None:
        p.append((name, path, refuse))

    def f(name: str) -> Path:
        return work / name

    f("garbage.tierwise").write_bytes(os.urandom(4096))
    add("random bytes", f("garbage.tierwise"))
    f("empty.tierwise").write_bytes(b"")
    add("empty file", f("empty.tierwise"))
    f("half.tierwise").write_bytes(base.read_bytes()[: base.stat().st_size // 2])
    add("truncated zip", f("half.tierwise"))
    add("/dev/zero", Path("/dev/zero"))
    fifo = f("fifo.tierwise")
    if not fifo.exists():
        os.mkfifo(fifo)
    add("FIFO", fifo)
    link = f("zero-link.tierwise")
    if not link.exists():
        link.symlink_to("/dev/zero")
    add("symlink to /dev/zero", link)
    d = f("dir-fifo")
    d.mkdir(exist_ok=True)
    (d / "manifest.json").write_text(json.dumps(man))
    if not (d / "arrays.npz").exists():
        os.mkfifo(d / "arrays.npz")
    add("directory whose arrays.npz is a FIFO", d)
    add("manifest not JSON", write(f("notjson.tierwise"), b"{not json", files, seal=False))
    deep = b"[" * 200_000 + b"]" * 200_000
    add("manifest nested 200k deep", write(f("deep.tierwise"), deep, files, seal=False))
    add("format_version -10^12", write(f("v-neg.tierwise"),
                                       edited(man, lambda m: m.update(format_version=-(10**12))),
                                       files))  # fmt: skip
    add("format_version 10^12", write(f("v-big.tierwise"),
                                      edited(man, lambda m: m.update(format_version=10**12)),
                                      files))  # fmt: skip
    add("format_version as a string", write(f("v-str.tierwise"),
                                            edited(man, lambda m: m.update(format_version="1")),
                                            files))  # fmt: skip
    bad = edited(man, lambda m: m["payload"].update(models=["a", "b", "c"]))
    add("payload edited, checksum not", write(f("edit.tierwise"), bad, files, seal=False))
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f8", "fortran_order": False, "shape": (10**12,)}
    )
    huge = header.getvalue() + np.zeros(1).tobytes()
    m2, f2 = with_array(man, files, "policy.knob_grid", huge, {"dtype": "<f8", "shape": [10**12]})
    add(".npy header declaring 7 TiB", write(f("npy-huge.tierwise"), m2, f2))
    obj = npy(np.array([{"a": 1}], dtype=object), allow_pickle=True)
    m2, f2 = with_array(man, files, "evil", obj, {"dtype": "|O", "shape": [1]})
    add("pickled object array", write(f("pickle.tierwise"), m2, f2))
    rec = npy(np.zeros(2, dtype=[("a", "<f4")]))
    m2, f2 = with_array(man, files, "rec", rec, {"dtype": "|V4", "shape": [2]})
    add("structured array", write(f("struct.tierwise"), m2, f2))
    with zipfile.ZipFile(f("traversal.tierwise"), "w") as zf:
        zf.writestr("manifest.json", json.dumps(man))
        zf.writestr("../../etc/arrays.npz", arr)
    add("zip member ../../etc", f("traversal.tierwise"))
    zeros = b"\0" * (200 << 20)
    with zipfile.ZipFile(f("bomb.tierwise"), "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("manifest.json", json.dumps(man))
        zf.writestr("arrays.npz", zeros)
    add("zip bomb (200 MB of zeros deflated)", f("bomb.tierwise"))
    add("unlisted zip member", write(f("extra.tierwise"), man, files | {"x.py": b"print(1)"},
                                     seal=False))  # fmt: skip
    add("models list shortened, resealed",
        write(f("models-short.tierwise"), edited(man, lambda m: m["payload"].update(
            models=payload["models"][:-1])), files))  # fmt: skip
    add("models list lengthened, resealed",
        write(f("models-long.tierwise"), edited(man, lambda m: m["payload"].update(
            models=[*payload["models"], "extra"])), files))  # fmt: skip
    add("models list duplicated names, resealed",
        write(f("models-dup.tierwise"), edited(man, lambda m: m["payload"].update(
            models=[payload["models"][0]] * len(payload["models"]))), files))  # fmt: skip
    add("embedder dim changed, resealed",
        write(f("dim.tierwise"), edited(man, lambda m: m["payload"]["embedder"].update(
            dim=payload["embedder"]["dim"] * 2)), files))  # fmt: skip

    def embedder(spec: str) -> Callable[[dict[str, Any]], None]:
        return lambda m: m["payload"]["config"]["embedder"].update(name=spec)

    add(
        "embedder sentence-transformers:/etc",
        write(f("st-etc.tierwise"), edited(man, embedder("sentence-transformers:/etc")), files),
    )
    add("embedder onnx:/tmp", write(f("onnx-tmp.tierwise"), edited(man, embedder("onnx:/tmp")),
                                    files))  # fmt: skip
    add("unknown policy", write(f("policy.tierwise"), edited(man, lambda m: m["payload"][
        "policy"].update(name="nope")), files))  # fmt: skip
    add("fallback model not among the models", write(f("fallback.tierwise"), edited(
        man, lambda m: m["payload"]["policy"].update(fallback_model="ghost")), files))  # fmt: skip
    arrays = npz_members(arr)
    grid = "policy.knob_grid.npy"
    short = np.load(io.BytesIO(arrays[grid]))[:-1]
    m2 = edited(man, lambda m: m["arrays"]["policy.knob_grid"].update(shape=list(short.shape)))
    add("knob grid shorter than its calibration curve, resealed", write(
        f("grid.tierwise"), m2, {"arrays.npz": npz_with(arrays | {grid: npy(short)})}))  # fmt: skip
    pred = next(n for n in arrays if n.startswith("predictor.") and
                np.load(io.BytesIO(arrays[n])).ndim == 2)  # fmt: skip
    cut = np.load(io.BytesIO(arrays[pred]))[:, :-1]
    m2 = edited(man, lambda m: m["arrays"][pred[:-4]].update(shape=list(cut.shape)))
    add(f"array {pred[:-4]} one column short, resealed", write(
        f("pred.tierwise"), m2, {"arrays.npz": npz_with(arrays | {pred: npy(cut)})}))  # fmt: skip
    big = {"format_version": 1, "pad": "x" * (65 << 20)}
    add("65 MB manifest", write(f("bigman.tierwise"), big, files, seal=False))
    add("reformatted manifest (harmless)", write(f("pretty.tierwise"),
        json.dumps(man, indent=7).encode(), files, seal=False), False)  # fmt: skip
    return p


def load_child(path: Path, timeout: float = 30.0) -> tuple[str, str]:
    """("refused"|"routed"|"crashed", detail) of loading ``path`` as a server would."""
    try:
        proc = subprocess.run(
            [sys.executable, "-c", CHILD, str(path), json.dumps(PROMPTS)],
            capture_output=True, text=True, timeout=timeout, cwd=ROOT,
            env={**os.environ, "TOKENIZERS_PARALLELISM": "false"},
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return "crashed", f"no answer in {timeout:.0f} s (a hang)"
    last = proc.stdout.strip().splitlines()[-1:] or [""]
    if proc.returncode != 0 or not last[0].startswith("{"):
        tail = (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]
        return "crashed", f"exit {proc.returncode}: {tail}"
    out = json.loads(last[0])
    if "refused" in out:
        return "refused", out["refused"]
    return "routed", json.dumps(out["routed"])


def run(workdir: Path) -> list[dict[str, Any]]:
    """Build every probe file and load each one as a server would; see the module docstring."""
    use_test_helpers()
    from runtime_helpers import hashing_artifact

    workdir.mkdir(parents=True, exist_ok=True)
    base = hashing_artifact(workdir / "base.tierwise")
    kind, want = load_child(base)
    if kind != "routed":
        return [probe(CATEGORY, "the untouched artifact", "crashed", want)]
    results = []
    for name, path, must_refuse in build(workdir, base):
        kind, detail = load_child(path)
        if kind == "crashed":
            outcome = "crashed"
        elif kind == "refused":
            one_line = "\n" not in detail
            outcome = "handled" if must_refuse and one_line else "silently_wrong"
            if not one_line:
                detail = "refused, but in several lines: " + detail
        else:
            same = detail == want
            outcome = "handled" if not must_refuse and same else "silently_wrong"
            detail = ("loaded and routed: " if must_refuse else "routed differently: ") + detail
            if same and not must_refuse:
                detail = "loaded and routed like the original"
        results.append(probe(CATEGORY, name, outcome, detail))
    return results
