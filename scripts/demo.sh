#!/usr/bin/env bash
# Quick start (a): install what is missing, build, and run the main job on a
# real model, ending in an accuracy report: inspect the openWakeWord embedding
# model, re-encode it with memory-mapped external weights, quantize it by
# per-layer rules (examples/wakeword-bits.yaml) to .slm, run it, and verify
# both against the original with accuracy gates; prune it, factorize the
# classifier, and pack the quantized model into a flash blob with firmware
# outputs and golden vectors, verified and evaluated against the original.
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
echo "== calibrate (activation statistics, X^T X per layer)"
# Random windows stand in for recorded audio here; tests/test_calibration.cpp
# calibrates on speech (espeak-ng) and docs/quantize.md reports those figures.
"$slmopt" calibrate "$models/embedding_model.onnx" --random 32 --seed 7 -o "$work/embedding.stats"
echo "== quantize (per-layer rules, GPTQ on the calibration statistics)"
"$slmopt" quantize "$models/embedding_model.onnx" -o "$work/embedding.slm" --config "$root/examples/wakeword-bits.yaml" \
  --algorithm gptq --calib-stats "$work/embedding.stats" --report "$work/quantize.json"
echo "== plan (each layer's bits for the least measured error within 300 KiB of weights)"
"$slmopt" plan "$models/embedding_model.onnx" -o "$work/plan.yaml" --budget 300KiB --random 16 --seed 1 \
  --curve "$work/plan.svg" --report "$work/plan.json"
"$slmopt" quantize "$models/embedding_model.onnx" -o "$work/embedding-planned.slm" --config "$work/plan.yaml" -q
"$slmopt" eval --reference "$models/embedding_model.onnx" --candidate "$work/embedding-planned.slm" \
  --random 16 --seed 2 --gate "cosine>=0.999" --report "$work/eval-planned.json"
echo "== prune (SparseGPT, 30 % of every layer, on the calibration statistics)"
"$slmopt" prune "$models/embedding_model.onnx" -o "$work/embedding-pruned.onnx" --sparsity 0.3 --method sparsegpt \
  --calib-stats "$work/embedding.stats" --report "$work/prune.json"
echo "== eval (pruned model, accuracy gate)"
"$slmopt" eval --reference "$models/embedding_model.onnx" --candidate "$work/embedding-pruned.onnx" \
  --random 16 --seed 1 --gate "cosine>=0.99" --report "$work/eval-pruned.json"
echo "== lowrank (the alexa classifier at half its parameters, whitened by its inputs' X^T X)"
"$slmopt" calibrate "$models/alexa_v0.1.onnx" --random 64 --seed 7 -o "$work/alexa.stats" -q
"$slmopt" lowrank "$models/alexa_v0.1.onnx" -o "$work/alexa-lowrank.onnx" --params 0.5 --method whiten \
  --calib-stats "$work/alexa.stats" --report "$work/lowrank.json"
"$slmopt" eval --reference "$models/alexa_v0.1.onnx" --candidate "$work/alexa-lowrank.onnx" \
  --random 16 --seed 1 --gate "rel_l2<=0.05" --report "$work/eval-lowrank.json"
echo "== run"
"$slmopt" run "$work/embedding.slm" --random 1 -o "$work/outputs"
echo "== eval (accuracy gate)"
"$slmopt" eval --reference "$models/embedding_model.onnx" --candidate "$work/embedding.onnx" \
  --random 16 --seed 1 --gate "cosine>=0.9999" --gate "rel_l2.upper<=1e-6" --report "$work/eval.json"
echo "== eval (quantized model, accuracy gate)"
"$slmopt" eval --reference "$models/embedding_model.onnx" --candidate "$work/embedding.slm" \
  --random 16 --seed 1 --gate "cosine>=0.999" --report "$work/eval-quantized.json"
echo "== pack (flash blob, C header, partition row, linker fragment, OTA package; 4 MiB flash, 2 MiB RAM)"
"$slmopt" pack "$work/embedding.slm" -o "$work/embedding.bin" --emit bin,c-header,partition,ld,ota \
  --golden-random 2 --flash 4MiB --ram 2MiB
echo "== verify (checksums, hash, golden outputs)"
"$slmopt" verify "$work/embedding.bin" --run
echo "== eval (packed blob against the original float model, accuracy gate)"
"$slmopt" eval --reference "$models/embedding_model.onnx" --candidate "$work/embedding.bin" \
  --random 16 --seed 1 --gate "cosine>=0.999" --report "$work/eval-blob.json"
