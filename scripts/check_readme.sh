#!/usr/bin/env bash
# Run every README command on a fresh clone, as a new user would, in two venvs:
#   runtime  `pip install .` (no extras): each command works or prints its `pip install` line
#   full     `make install` (torch CPU + [train,dev]) plus [serve,batch]: each command works
# Prints one line per command (ok / install-line / FAIL) and exits 1 if any FAILed.
#
# usage: scripts/check_readme.sh [REPO]        (default: this checkout's committed HEAD)
#   KEEP=1                  keep the temp dir          WORK=/path  use this dir
#   TIERWISE_CACHE_DIR=...  reuse an embedding cache (the first MiniLM embedding of RouterBench
#                           takes ~7 min on 2 busy cores; with the checkout's cache, seconds)
#   TRIALS=200              trials for the README's `tierwise tune` (default as in the README)
set -uo pipefail
REPO=${1:-$(cd "$(dirname "$0")/.." && pwd)}
WORK=${WORK:-$(mktemp -d /tmp/tierwise-readme.XXXXXX)}
TRIALS=${TRIALS:-200}
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false MPLBACKEND=Agg
[ "${KEEP:-0}" = 1 ] || trap 'rm -rf "$WORK"' EXIT
FAILS=0
log() { printf '%-8s %-44s %s\n' "$1" "$2" "$3"; }

# check VENV NAME CMD...: run CMD in the clone with VENV's bin first on PATH. In the runtime venv a
# command may instead fail with one line naming the extra to install.
check() {
  local venv=$1 name=$2; shift 2
  local out rc t0=$SECONDS
  out=$(cd "$WORK/clone" && PATH="$WORK/$venv/bin:$PATH" timeout 1800 bash -c "$*" 2>&1); rc=$?
  local took="($((SECONDS - t0))s)"
  if [ $rc -eq 0 ]; then
    log ok "$venv: $name" "$took"
  elif [ "$venv" = runtime ] && grep -q "pip install 'tierwise\[" <<<"$out" \
      && { ! grep -q Traceback <<<"$out" \
           || tail -n 1 <<<"$out" | grep -q "^tierwise.router.errors.ConfigError: .*pip install"; }
  then  # a CLI prints one line; a Python snippet raises ConfigError naming the extra
    log install "$venv: $name" "$(grep -o "pip install 'tierwise\[[a-z]*\]'" <<<"$out" | head -1) $took"
  else
    log FAIL "$venv: $name" "exit $rc $took"
    tail -n 15 <<<"$out" | sed 's/^/    | /'
    FAILS=$((FAILS + 1))
  fi
}

git clone -q "$REPO" "$WORK/clone" || exit 1
cd "$WORK/clone"
echo "clone of $(git -C "$WORK/clone" log --oneline -1) in $WORK"

# Inputs the README refers to without shipping them.
cat > "$WORK/clone/logs.jsonl" <<'JSONL'
{"prompt": "What is the capital of France?"}
{"prompt": "Write a Python function that returns the n-th Fibonacci number."}
{"prompt": ""}
JSONL
mkdir -p /tmp/badlog
printf 'id,prompt,small,big,small|cost,big|cost\nq1,Hi,1,1,0.001,0.01\nq2,Yo,0,1,-0.002,0.01\n' \
  > /tmp/badlog/log.csv
cat > "$WORK/clone/bad.yaml" <<'YAML'
name: bad
data:
  sources: [{path: /tmp/badlog/log.csv, quality: "{model}", cost: "{model}|cost"}]
  columns: {id: id, prompt: prompt}
  labels: {kind: binary, missing: drop_row}
YAML
# The README's Python snippets, as written there (files, so that quotes in them need no
# escaping; the pyfunc one uses the absolute URI the README shows).
cat > "$WORK/route_snippet.py" <<'PY'
from tierwise.router.core import Router
router = Router.load("runs/routerbench/router.tierwise")
print([d.model for d in router.route(["What is 2 + 2?", "Prove Fermat's little theorem."])])
PY
cat > "$WORK/pyfunc_snippet.py" <<'PY'
import os, mlflow
mlflow.set_tracking_uri("sqlite:///" + os.path.abspath("mlflow.db"))
print(mlflow.pyfunc.load_model("models:/tierwise-routerbench/1").predict(["Say hi"]))
PY

commands() {  # VENV: every README command, in README order
  local v=$1
  check "$v" "tierwise --help" "tierwise --help >/dev/null"
  check "$v" "data inspect routerbench" "tierwise data inspect configs/routerbench.yaml"
  check "$v" "data inspect bad.yaml (exit 2, one line)" \
    "tierwise data inspect bad.yaml; [ \$? = 2 ]"
  check "$v" "evaluate --baselines" "tierwise evaluate configs/routerbench.yaml --baselines"
  check "$v" "train routerbench" "tierwise train configs/routerbench.yaml"
  check "$v" "route 2 prompts" "tierwise route runs/routerbench/router.tierwise \
    'What is the capital of France?' 'Write a Python function that returns the n-th Fibonacci number.'"
  check "$v" "python: Router.load + route" "python $WORK/route_snippet.py"
  check "$v" "tune --trials $TRIALS" "tierwise tune configs/routerbench.yaml --trials $TRIALS"
  check "$v" "compare routerbench" "tierwise compare routerbench"
  if [ "$v" = runtime ]; then  # mlflow is not a tierwise command: the README says it is in [train]
    log skip "$v: mlflow ui, mlflow.pyfunc" "need mlflow: pip install 'tierwise[train]'"
  else
  check "$v" "mlflow ui (starts, answers)" "mlflow ui --backend-store-uri sqlite:///mlflow.db \
    --port 5517 >/dev/null 2>&1 & pid=\$!; for i in \$(seq 60); do sleep 1; \
    curl -sf 127.0.0.1:5517 >/dev/null && { kill \$pid; exit 0; }; done; kill \$pid; exit 1"
  check "$v" "python: mlflow.pyfunc models:/…/1" "python $WORK/pyfunc_snippet.py"
  fi
  check "$v" "train routerbench_certified" "tierwise train configs/routerbench_certified.yaml"
  local onnx=runs/routerbench/router-onnx.tierwise  # the runtime venv writes its own copy
  [ "$v" = runtime ] && onnx=runs/routerbench/router-onnx-runtime.tierwise
  check "$v" "export --int8" "rm -rf $onnx; tierwise export runs/routerbench/router.tierwise \
    $onnx --int8"
  check "$v" "serve + curl /route, empty prompt 422" "tierwise serve \
    runs/routerbench/router-onnx.tierwise --host 127.0.0.1 --port 8517 & pid=\$!; ok=1; \
    for i in \$(seq 120); do sleep 1; kill -0 \$pid 2>/dev/null || break; \
      curl -sf 127.0.0.1:8517/health >/dev/null && { ok=0; break; }; done; \
    [ \$ok = 0 ] && curl -sf 127.0.0.1:8517/route -d '{\"prompt\": \"What is 2 + 2?\"}' \
    && code=\$(curl -s -o /dev/null -w '%{http_code}' 127.0.0.1:8517/route -d '{\"prompt\": \"\"}') \
    && [ \"\$code\" = 422 ]; rc=\$?; kill \$pid 2>/dev/null; wait \$pid 2>/dev/null; exit \$rc"
  check "$v" "batch logs.jsonl decisions.parquet" "rm -f decisions.parquet; \
    tierwise batch runs/routerbench/router-onnx.tierwise logs.jsonl decisions.parquet; \
    rc=\$?; [ \$rc = 1 ] && [ -f decisions.parquet ] || exit \$rc"  # 1: the empty prompt row
}

t0=$SECONDS
echo "== full venv (make install, then [serve,batch])"
(cd "$WORK/clone" && make -s install >/dev/null 2>&1 && .venv/bin/pip install -q -c \
  constraints.txt '.[serve,batch]' >/dev/null 2>&1) || { echo "FAIL: make install"; exit 1; }
ln -s "$WORK/clone/.venv" "$WORK/full"
echo "installed in $((SECONDS - t0))s"
commands full

t0=$SECONDS
echo "== runtime venv (pip install . — no extras)"
python3 -m venv "$WORK/runtime" && "$WORK/runtime/bin/pip" install -q "$WORK/clone" >/dev/null 2>&1 \
  || { echo "FAIL: pip install ."; exit 1; }
echo "installed in $((SECONDS - t0))s"
commands runtime

echo "== $FAILS command(s) failed"
[ $FAILS = 0 ]
