#!/usr/bin/env bash
# `make demo`: the main job on the bundled real dataset (RouterBench, 3,164 prompts × 11 models,
# real per-query costs). Everything runs offline, from the checkout alone.
#   1. inspect the data           4. compare every tracked policy (MLflow)
#   2. train + compare baselines  5. route prompts with the chosen router
#   3. tune with Optuna, tracked in MLflow, register the best router
set -euo pipefail
cd "$(dirname "$0")/.."
CONFIG=configs/routerbench.yaml
TRIALS=${DEMO_TRIALS:-40}
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "1. tierwise data inspect $CONFIG"
tierwise data inspect "$CONFIG"

step "2. tierwise train $CONFIG   (the first run embeds ~3k prompts once; cached after)"
tierwise train "$CONFIG" --out runs/routerbench

step "3. tierwise tune $CONFIG --trials $TRIALS   (resumable Optuna study, tracked in MLflow)"
tierwise tune "$CONFIG" --trials "$TRIALS" --out runs/routerbench/tune \
  || echo "(no tuned router met the target on the calibration folds: the closest is reported above)"

step "4. tierwise compare routerbench   (every policy tracked in MLflow, cheapest at the target first)"
tierwise compare --config "$CONFIG" --limit 12

step "5. tierwise route runs/routerbench/router.tierwise ..."
tierwise route runs/routerbench/router.tierwise \
  "What is the capital of France?" \
  "Write a Python function that returns the n-th Fibonacci number using memoization." \
  "Which is heavier, a kilogram of feathers or a kilogram of steel? Explain the physics."

cat <<'TXT'

Where to look:
  runs/routerbench/cost_quality.png        the trained router against every baseline (test split)
  runs/routerbench/tune/                   the tuning report, Pareto chart and chosen router
  mlflow ui --backend-store-uri sqlite:///mlflow.db    then http://127.0.0.1:5000
      experiment "routerbench": one run per training, a study run with a child run per trial;
      Models → tierwise-routerbench: the registered routers (mlflow.pyfunc.load_model)
TXT
