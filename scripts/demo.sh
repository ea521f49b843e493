#!/usr/bin/env bash
# Quick start (a): install what is missing, build, and run the main job on a
# real model, ending in an accuracy report. The optimization passes (prune,
# quantize, lowrank, pack) are not in yet; today the job is: inspect the
# openWakeWord embedding model, re-encode it with memory-mapped external
# weights, run it, and verify the re-encoded model against the original with
# an accuracy gate. Later issues put the real passes in the middle.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bash "$root/scripts/setup-deps.sh"
bash "$root/scripts/build.sh" "$root/build"
models="$(bash "$root/scripts/fetch-testdata.sh")"
slmopt="$root/build/apps/slmopt/slmopt"
work="$root/build/demo"
mkdir -p "$work"

echo "== inspect"
"$slmopt" inspect "$models/embedding_model.onnx" --top 10
echo "== convert (weights to external data)"
"$slmopt" convert "$models/embedding_model.onnx" -o "$work/embedding.onnx" --external always
echo "== run"
"$slmopt" run "$work/embedding.onnx" --random 1 -o "$work/outputs"
echo "== eval (accuracy gate)"
"$slmopt" eval --reference "$models/embedding_model.onnx" --candidate "$work/embedding.onnx" \
  --random 16 --seed 1 --gate "cosine>=0.9999" --gate "rel_l2.upper<=1e-6" --report "$work/eval.json"
