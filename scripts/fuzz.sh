#!/usr/bin/env bash
# scripts/fuzz.sh [SECONDS] [TARGET...]: builds the libFuzzer targets (clang,
# ASan + UBSan) and runs each for SECONDS (default 60), two at a time, or
# until SLMOPT_FUZZ_RUNS executions when that is set. Seeds
# come from the project's writers (slmopt_fuzz_seeds), ONNX's conformance
# models and tensors, and the saved findings in tests/fuzz/regressions/; each
# target's grown corpus stays in build-fuzz/corpus/ for the next run.
# Prints executions and coverage per target (also build-fuzz/fuzz-summary.md);
# exits 1 when a target found a crash, leak, timeout or out-of-memory, with
# the input in build-fuzz/findings/TARGET/.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
seconds="${1:-60}"
shift || true
build="${SLMOPT_FUZZ_BUILD:-$root/build-fuzz}"

bash "$root/scripts/setup-deps.sh"
CC=clang CXX=clang++ cmake -S "$root" -B "$build" -G Ninja -DSLMOPT_FUZZ=ON -DCMAKE_BUILD_TYPE=Release >/dev/null
mapfile -t all_targets < "$build/fuzz_targets.txt"
# Only what fuzzing needs (scripts/test.sh builds the rest of this folder for the sanitized test run).
cmake --build "$build" -j2 --target slmopt_fuzz_seeds "${all_targets[@]/#/fuzz_}" >/dev/null

targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=("${all_targets[@]}")

seeds="$build/seeds"
rm -rf "$seeds"
"$build/tests/fuzz/slmopt_fuzz_seeds" "$seeds" "$root"
# Real files as ONNX's exporters and test generators wrote them: the smallest
# conformance models (every op family) and their input tensors.
onnx_data=/usr/share/libonnx-testdata/data/node
if [ -d "$onnx_data" ]; then
  # awk takes the first hundred itself: `head` would close the pipe early and,
  # under pipefail, fail the script with SIGPIPE.
  find "$onnx_data" -name model.onnx -size -2k | sort | awk 'NR % 8 == 0 && ++n <= 100' |
    while read -r m; do cp "$m" "$seeds/onnx/$(basename "$(dirname "$m")").onnx"; done
  find "$onnx_data" -path '*test_data_set_0*' -name 'input_0.pb' -size -4k | sort | awk 'NR % 8 == 0 && ++n <= 60' |
    while read -r t; do cp "$t" "$seeds/tensor_pb/$(basename "$(dirname "$(dirname "$t")")").pb"; done
fi

mkdir -p "$build/corpus" "$build/findings" "$build/logs"
run_one() {
  local name="$1" seconds="$2" root="$3" build="$4"
  local corpus="$build/corpus/$name" findings="$build/findings/$name/"
  mkdir -p "$corpus" "$findings"
  local extra=()
  [ -d "$root/tests/fuzz/regressions/$name" ] && extra+=("$root/tests/fuzz/regressions/$name")
  # The external-data file an ONNX model may reference sits beside the input.
  ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 UBSAN_OPTIONS=print_stacktrace=1 \
    "$build/tests/fuzz/fuzz_$name" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
    -runs="${SLMOPT_FUZZ_RUNS:--1}" -print_final_stats=1 -artifact_prefix="$findings" "$corpus" "$build/seeds/$name" "${extra[@]}" \
    > "$build/logs/$name.log" 2>&1
}
export -f run_one
status=0
printf '%s\n' "${targets[@]}" | xargs -P2 -I{} bash -c 'run_one "$@"' _ {} "$seconds" "$root" "$build" || status=1

summary="$build/fuzz-summary.md"
{
  echo "| target | seconds | executions | exec/s | coverage (edges) | features | corpus | result |"
  echo "|---|---|---|---|---|---|---|---|"
  for name in "${targets[@]}"; do
    log="$build/logs/$name.log"
    runs=$( (grep -oE 'number_of_executed_units: +[0-9]+' "$log" || true) | awk '{print $2}' | tail -1)
    rate=$( (grep -oE 'average_exec_per_sec: +[0-9]+' "$log" || true) | awk '{print $2}' | tail -1)
    cov=$( (grep -oE 'cov: [0-9]+' "$log" || true) | tail -1 | awk '{print $2}')
    ft=$( (grep -oE 'ft: [0-9]+' "$log" || true) | tail -1 | awk '{print $2}')
    corpus=$(find "$build/corpus/$name" -type f | wc -l)
    result=ok
    if [ -z "$runs" ] || grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error:|==ERROR|Test unit written' "$log"; then
      result="FINDING (logs/$name.log)"
      status=1
    fi
    echo "| $name | $seconds | ${runs:-0} | ${rate:-0} | ${cov:-0} | ${ft:-0} | $corpus | $result |"
  done
} > "$summary"
cat "$summary"
exit $status
