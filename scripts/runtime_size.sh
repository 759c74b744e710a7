#!/usr/bin/env bash
# Installed size of the production runtime: a fresh venv with `pip install <project>` and no
# extras, then proof that it routes with an exported artifact and has no training stack.
#
#   scripts/runtime_size.sh [ARTIFACT] [VENV_DIR]
#
# ARTIFACT: an artifact from `tierwise export` (optional: without it only the size is measured).
# VENV_DIR: where to build the venv (default /tmp/tierwise-rt; removed and rebuilt each run).
# SLIM=1: then also measure a slimmed copy: no pip/setuptools, no precompiled .pyc, and without
#   huggingface_hub and its dependencies (tokenizers needs the hub only for from_pretrained;
#   the runtime loads its tokenizer from the artifact), and route with it again.
# Needs network access to the package index (or a pip cache / PIP_FIND_LINKS that has the wheels).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
ARTIFACT="${1:-}"
VENV="${2:-/tmp/tierwise-rt}"
PYTHON="${PYTHON:-python3}"

rm -rf "$VENV"
"$PYTHON" -m venv "$VENV"
"$VENV/bin/pip" install -q --upgrade pip
# Install from a copy of the tracked files: setuptools writes build/ into the source tree.
SRC="$(mktemp -d)"
trap 'rm -rf "$SRC"' EXIT
git -C "$ROOT" ls-files -z | (cd "$ROOT" && tar --null -T - -cf -) | tar -xf - -C "$SRC"
start=$(date +%s)
"$VENV/bin/pip" install -q "$SRC"
echo "installed in $(( $(date +%s) - start )) s"

SITE="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
echo
echo "== installed size"
echo "venv total:                   $(du -sh "$VENV" | cut -f1)"
echo "site-packages:                $(du -sh "$SITE" | cut -f1)"
tooling=$(du -sc "$SITE"/pip "$SITE"/pip-* "$SITE"/setuptools "$SITE"/setuptools-* \
  "$SITE"/_distutils_hack "$SITE"/pkg_resources 2>/dev/null | tail -1 | cut -f1)
total=$(du -s "$SITE" | cut -f1)
echo "site-packages without pip/setuptools: $(( (total - tooling) / 1024 )) MB"
echo
echo "== largest installed distributions (MB)"
"$VENV/bin/python" - "$SITE" <<'EOF'
import sys
from importlib import metadata
from pathlib import Path

site = Path(sys.argv[1])
rows = []
for dist in metadata.distributions(path=[str(site)]):
    size = 0
    for f in dist.files or []:
        p = Path(dist.locate_file(f))
        if p.is_file():
            size += p.stat().st_size
    rows.append((size, dist.metadata["Name"], dist.version))
for size, name, version in sorted(rows, reverse=True)[:12]:
    print(f"  {size / 2**20:8.1f}  {name} {version}")
EOF

echo
echo "== no training stack"
"$VENV/bin/python" - <<'EOF'
import importlib.util
heavy = ["torch", "transformers", "sentence_transformers", "sklearn", "pandas", "scipy",
         "optuna", "mlflow", "fastapi", "uvicorn"]
present = [m for m in heavy if importlib.util.find_spec(m) is not None]
print("importable heavy packages:", present or "none")
assert not present, present
EOF

if [[ -n "$ARTIFACT" ]]; then
  echo
  echo "== routing with $ARTIFACT"
  cd /tmp  # never import the project from the source tree
  "$VENV/bin/tierwise" route "$ARTIFACT" "What is the capital of France?" \
    "Write a Python function that merges two sorted lists in linear time."
  "$VENV/bin/python" - "$ARTIFACT" <<'EOF'
import sys, time
t0 = time.perf_counter()
from tierwise.router.runtime import load_runtime
router = load_runtime(sys.argv[1], require_embedded=True)
print(f"load_runtime: {time.perf_counter() - t0:.2f} s, embedder {type(router.embedder).__name__}")
heavy = sorted({m.split('.')[0] for m in sys.modules} & {"torch", "transformers", "sklearn"})
print("heavy modules loaded:", heavy or "none")
assert not heavy
EOF
fi

if [[ "${SLIM:-0}" == "1" ]]; then
  echo
  echo "== slim: without the hub chain, pip/setuptools and precompiled bytecode"
  "$VENV/bin/pip" uninstall -q -y huggingface_hub hf-xet fsspec filelock tqdm click anyio httpx \
    httpcore h11 idna truststore httpx2 httpcore2 2>/dev/null || true
  "$VENV/bin/python" -m pip uninstall -q -y pip setuptools 2>/dev/null || true
  find "$VENV" -name __pycache__ -prune -exec rm -rf {} +
  echo "venv total (slim):            $(du -sh "$VENV" | cut -f1)"
  if [[ -n "$ARTIFACT" ]]; then
    cd /tmp
    "$VENV/bin/tierwise" route "$ARTIFACT" "What is the capital of France?" >/dev/null
    echo "slim venv routes: ok; after one run (bytecode of imported modules): $(du -sh "$VENV" | cut -f1)"
  fi
fi
