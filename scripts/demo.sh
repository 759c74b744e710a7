#!/usr/bin/env bash
# `make demo`: the main job on the bundled real dataset (RouterBench, 3,164 prompts × 11 models).
# 1. inspect the data, 2. train the default router and compare it with every baseline on the
# untouched test split, 3. route a few prompts with the saved artifact.
set -euo pipefail
cd "$(dirname "$0")/.."
CONFIG=configs/routerbench.yaml
echo "== 1. tierwise data inspect $CONFIG"
tierwise data inspect "$CONFIG"
echo
echo "== 2. tierwise train $CONFIG   (first run embeds ~3k prompts once; cached after)"
tierwise train "$CONFIG" --out runs/routerbench
echo
echo "== 3. tierwise route runs/routerbench/router.tierwise ..."
tierwise route runs/routerbench/router.tierwise \
  "What is the capital of France?" \
  "Write a Python function that returns the n-th Fibonacci number using memoization." \
  "Which is heavier, a kilogram of feathers or a kilogram of steel? Explain the physics."
