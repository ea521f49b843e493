#!/usr/bin/env bash
# Quick start (a): install what is missing, build, and run the main job on a
# real model. Until the optimization pipeline lands this inspects the
# openWakeWord embedding model; later issues extend it step by step.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bash "$root/scripts/setup-deps.sh"
bash "$root/scripts/build.sh" "$root/build"
models="$(bash "$root/scripts/fetch-testdata.sh")"
"$root/build/apps/slmopt/slmopt" inspect "$models/embedding_model.onnx" --top 10
