#!/usr/bin/env bash
# Quantizes the stories260K weights (tests/data) to 4 bits, packs them for
# firmware and builds main.c
# against the generated header and linker fragment, then runs it.
#   build-and-run.sh SLMOPT CC WORKDIR
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
slmopt="$1" cc="$2" work="$3"
mkdir -p "$work"
# 4-bit weights, the embedding table included: the device decodes the rows it needs.
"$slmopt" quantize "$root/tests/data/stories260K/model.safetensors" -o "$work/q4.slm" --bits '*=q4' -q
"$slmopt" pack "$work/q4.slm" -o "$work/model.bin" --name stories260K \
  --model-version 1 --symbol model --emit bin,c-header,partition,ld --partition-offset 0x110000 -q
echo "== $work/model.partitions.csv"
cat "$work/model.partitions.csv"
echo "== $work/model.ld"
cat "$work/model.ld"
"$cc" -std=c99 -Wall -Wextra -Werror -pedantic -I "$work" -I "$root/formats/blob" "$here/main.c" \
  -Wl,-T,"$work/model.ld" -o "$work/firmware"
"$work/firmware"
