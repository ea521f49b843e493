#!/usr/bin/env bash
# Quick start (b) and CI: install what is missing, build, fetch the real test
# data, run every test; then run the suite again built with AddressSanitizer
# and UBSan (skip with SLMOPT_SANITIZE_STAGE=0), and fuzz every parser for a
# short time (scripts/fuzz.sh; skip with SLMOPT_FUZZ_STAGE=0).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bash "$root/scripts/setup-deps.sh"
bash "$root/scripts/build.sh" "$root/build"

models="$(bash "$root/scripts/fetch-testdata.sh")"
export SLMOPT_MODELS="$models"
export SLMOPT_MODEL_FACTS="$(dirname "$models")/../model_facts.json"
export SLMOPT_MORE_MODELS="${SLMOPT_DATA:-$HOME/.cache/slmopt}/more-models"
export SLMOPT_ORT_MODULES="${SLMOPT_DATA:-$HOME/.cache/slmopt}/ort/node_modules"
export SLMOPT_QUANT_REF="${SLMOPT_DATA:-$HOME/.cache/slmopt}/quant-ref"
export SLMOPT_REQUIRE_TESTDATA=1  # missing test data fails instead of skipping

echo "== tests (Release)" >&2
ctest --test-dir "$root/build" --output-on-failure -j2

echo "== quantizer bytes: gcc against clang" >&2
# The quantizer alone, built with clang; its digest of every preset and
# algorithm must equal the gcc build's, and not depend on the thread count.
CC=clang CXX=clang++ cmake -S "$root" -B "$root/build-clang" -G Ninja -DSLMOPT_QUANT_ONLY=ON -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$root/build-clang" -j2 >/dev/null
"$root/build/bench/slmopt_quant_digest" > "$root/build/quant_digest_gcc.txt"
OMP_NUM_THREADS=1 "$root/build-clang/slmopt_quant_digest" > "$root/build/quant_digest_clang.txt"
if ! diff -u "$root/build/quant_digest_gcc.txt" "$root/build/quant_digest_clang.txt" >&2; then
  echo "quantized bytes differ between gcc and clang" >&2
  exit 1
fi
echo "identical: $(tail -1 "$root/build/quant_digest_gcc.txt")" >&2

if [ "${SLMOPT_SANITIZE_STAGE:-1}" = 1 ]; then
  echo "== tests (AddressSanitizer + UBSan)" >&2
  # The fuzzing build (clang, ASan + UBSan, libFuzzer coverage) runs the suite
  # too: the libraries are compiled with sanitizers once for both stages.
  CC=clang CXX=clang++ bash "$root/scripts/build.sh" "${SLMOPT_FUZZ_BUILD:-$root/build-fuzz}" -DSLMOPT_FUZZ=ON -DCMAKE_BUILD_TYPE=Release
  # The >2 GiB model test needs ~5 GB, the llama.cpp comparison quantizes
  # two million weights per preset, the calibrated wake-word chain
  # quantizes the embedding model twelve times, and stories260K's KL target
  # trains for 2,000 steps, and the 200,000-node graph's time bound is set
  # for an optimized build: they run in the Release stage only.
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --test-dir "${SLMOPT_FUZZ_BUILD:-$root/build-fuzz}" --output-on-failure -j2 -E "2 GiB|quant_beats_llama_cpp|calibrated wake-word|reaches the KL of|200,000-node"
fi

if [ "${SLMOPT_FUZZ_STAGE:-1}" = 1 ]; then
  # Every parser under libFuzzer with ASan + UBSan for a short time (skip
  # with SLMOPT_FUZZ_STAGE=0): a crash, leak, hang or sanitizer report fails CI.
  echo "== fuzzing (${SLMOPT_FUZZ_SECONDS:-30} s per target)" >&2
  bash "$root/scripts/fuzz.sh" "${SLMOPT_FUZZ_SECONDS:-30}"
fi
