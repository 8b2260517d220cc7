#!/usr/bin/env bash
# Makes a deployable edgetune folder for one target: copy it to the board and run OUT_DIR/edgetune.
#
# Usage: cross/bundle.sh TARGET OUT_DIR [--run RUN_DIR | --model MERGED.onnx] [options]
#   TARGET              aarch64-unknown-linux-gnu (or aarch64), x86_64-unknown-linux-gnu (or x86_64);
#                       a zigbuild glibc suffix (aarch64-unknown-linux-gnu.2.28) is accepted
#   --run RUN_DIR       include a finished run directory (as OUT_DIR/run)
#   --model FILE.onnx   include a merged model from `edgetune export` and the tokenizer.json beside it
#                       (as OUT_DIR/merged/)
#   --backbone PATH     backbone to include (an .onnx with tokenizer.json beside it, or a model
#                       directory); default: the run's recorded backbone, else $EDGETUNE_MODEL, else
#                       .models/default. Included for --run and for a training bundle (neither
#                       --run nor --model); with --model only when given (a merged model holds its
#                       own copy of the backbone, so it is needed only to train on the device too)
#   --no-backbone       leave the backbone out
#   --bin PATH          the edgetune binary to ship (default: target/TARGET/{dist,release}/edgetune,
#                       built with cross/build.sh or cargo if missing)
#   --tar               also write OUT_DIR.tar.gz
#
# Layout of OUT_DIR:
#   edgetune                 launcher: sets EDGETUNE_ORT_LIB (and EDGETUNE_MODEL if unset), execs bin/
#   bin/edgetune             the binary
#   lib/libonnxruntime.so    ONNX Runtime for the target (from models/setup.sh)
#   model/                   backbone ONNX + tokenizer.json
#   run/ | merged/           the run directory or the merged model (+ tokenizer.json)
#   MANIFEST.sha256, README.txt
# OUT_DIR must not exist or be empty, or be a folder this script made before (it is then replaced).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

say() { echo "cross/bundle.sh: $*" >&2; }
die() { echo "cross/bundle.sh: error: $*" >&2; exit 1; }
usage() { sed -n '2,30p' "$0" >&2; exit 2; }

[ $# -ge 2 ] || usage
target="${1%.2.*}"; out="$2"; shift 2
case "$target" in
  aarch64|arm64) target=aarch64-unknown-linux-gnu ;;
  x86_64|amd64|host) target=x86_64-unknown-linux-gnu ;;
  aarch64-unknown-linux-gnu|x86_64-unknown-linux-gnu) ;;
  *) die "unsupported target $target (aarch64-unknown-linux-gnu or x86_64-unknown-linux-gnu)" ;;
esac
arch="${target%%-*}"

run="" merged="" backbone="" no_backbone=0 bin="" tar=0
while [ $# -gt 0 ]; do
  case "$1" in
    --run) run="${2:?--run needs a directory}"; shift 2 ;;
    --model) merged="${2:?--model needs a file}"; shift 2 ;;
    --backbone) backbone="${2:?--backbone needs a path}"; shift 2 ;;
    --no-backbone) no_backbone=1; shift ;;
    --bin) bin="${2:?--bin needs a path}"; shift 2 ;;
    --tar) tar=1; shift ;;
    -h|--help) usage ;;
    *) die "unknown argument $1" ;;
  esac
done
[ -z "$run" ] || [ -z "$merged" ] || die "give --run or --model, not both"
[ -z "$run" ] || [ -f "$run/config.json" ] || die "$run is not a finished run directory (no config.json)"
[ -z "$merged" ] || [ -f "$merged" ] || die "no such merged model: $merged"
[ -z "$merged" ] || [ -f "$(dirname "$merged")/tokenizer.json" ] || die "no tokenizer.json beside $merged"
[ -z "$run" ] || [ "$no_backbone" = 0 ] || die "--run needs the backbone; drop --no-backbone"
# A merged model answers on its own: the backbone only travels with it when asked for.
if [ -n "$merged" ] && [ -z "$backbone" ]; then no_backbone=1; fi

# --- the binary -------------------------------------------------------------------------------
target_dir="${CARGO_TARGET_DIR:-$root/target}"
if [ -z "$bin" ]; then
  for p in dist release; do
    if [ -x "$target_dir/$target/$p/edgetune" ]; then bin="$target_dir/$target/$p/edgetune"; break; fi
  done
  # A host build without --target lands in target/<profile>/.
  if [ -z "$bin" ] && [ "$arch" = "$(uname -m)" ]; then
    for p in dist release; do
      if [ -x "$target_dir/$p/edgetune" ]; then bin="$target_dir/$p/edgetune"; break; fi
    done
  fi
fi
if [ -z "$bin" ]; then
  say "no built binary for $target: building it"
  if [ "$arch" = aarch64 ]; then
    bin="$(EDGETUNE_CROSS_TARGET="$target" "$root/cross/build.sh" | tail -n1)"
  else
    (cd "$root" && cargo build --locked --profile dist --target "$target" --bin edgetune)
    bin="$target_dir/$target/dist/edgetune"
  fi
fi
[ -f "$bin" ] || die "no binary at $bin"
case "$(od -An -tx1 -j18 -N2 "$bin" | tr -d ' ')" in  # ELF e_machine, little-endian
  b700) bin_arch=aarch64 ;;
  3e00) bin_arch=x86_64 ;;
  *) bin_arch=unknown ;;
esac
[ "$bin_arch" = "$arch" ] || die "$bin is a $bin_arch binary, not $arch"

# --- ONNX Runtime -------------------------------------------------------------------------------
ort="$root/.runtime/$arch/libonnxruntime.so"
[ -f "$ort" ] || { say "fetching ONNX Runtime for $arch"; bash "$root/models/setup.sh" "$arch"; }
[ -f "$ort" ] || die "no ONNX Runtime library at $ort"

# --- the backbone -------------------------------------------------------------------------------
bb_onnx="" bb_tok=""
if [ "$no_backbone" = 0 ]; then
  if [ -z "$backbone" ] && [ -n "$run" ]; then
    # The run records the files it was trained on; use them when they are still there.
    read -r bb_onnx bb_tok < <(python3 -c '
import json, sys
b = json.load(open(sys.argv[1]))["backbone"]
print(b["onnx"], b["tokenizer"])' "$run/config.json") || true
    if [ ! -f "$bb_onnx" ] || [ ! -f "$bb_tok" ]; then bb_onnx="" bb_tok=""; fi
  fi
  if [ -z "$bb_onnx" ]; then
    [ -n "$backbone" ] || backbone="${EDGETUNE_MODEL:-$root/.models/default}"
    if [ -d "$backbone" ]; then
      for n in backbone.int8.onnx backbone.onnx model.onnx; do
        if [ -f "$backbone/$n" ]; then bb_onnx="$backbone/$n"; break; fi
      done
      bb_tok="$backbone/tokenizer.json"
    else
      bb_onnx="$backbone"; bb_tok="$(dirname "$backbone")/tokenizer.json"
    fi
  fi
  [ -f "$bb_onnx" ] || die "no backbone ONNX found ($backbone); pass --backbone or run models/setup.sh"
  [ -f "$bb_tok" ] || die "no tokenizer.json beside the backbone $bb_onnx"
fi

# --- assemble -----------------------------------------------------------------------------------
if [ -e "$out" ]; then
  [ -d "$out" ] || die "$out exists and is not a directory"
  if [ -n "$(ls -A "$out")" ]; then
    [ -f "$out/MANIFEST.sha256" ] && [ -x "$out/edgetune" ] || die "$out is not empty and not a bundle: refusing to replace it"
  fi
fi
mkdir -p "$(dirname "$out")"
tmp="$(mktemp -d "$(dirname "$out")/.bundle.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/bin" "$tmp/lib"
cp "$bin" "$tmp/bin/edgetune"; chmod 755 "$tmp/bin/edgetune"
cp -L "$ort" "$tmp/lib/libonnxruntime.so"
if [ -n "$bb_onnx" ]; then
  mkdir -p "$tmp/model"
  name="$(basename "$bb_onnx")"
  case "$name" in backbone.int8.onnx|backbone.onnx|model.onnx) ;; *) name=model.onnx ;; esac
  cp -L "$bb_onnx" "$tmp/model/$name"
  cp -L "$bb_tok" "$tmp/model/tokenizer.json"
  # External tensor data (model.onnx.data / *.onnx_data) must travel with the graph.
  for ext in "$bb_onnx.data" "${bb_onnx%.onnx}.onnx_data"; do
    if [ -f "$ext" ]; then cp -L "$ext" "$tmp/model/"; fi
  done
fi
if [ -n "$run" ]; then
  mkdir -p "$tmp/run"
  # The finished run only: config.json, weights, anything small beside them; never checkpoints.
  (cd "$run" && find . -maxdepth 1 -type f -print0) | while IFS= read -r -d '' f; do cp -L "$run/$f" "$tmp/run/"; done
fi
if [ -n "$merged" ]; then
  mkdir -p "$tmp/merged"
  cp -L "$merged" "$tmp/merged/"
  cp -L "$(dirname "$merged")/tokenizer.json" "$tmp/merged/tokenizer.json"
  for ext in "$merged.data" "${merged%.onnx}.onnx_data"; do
    if [ -f "$ext" ]; then cp -L "$ext" "$tmp/merged/"; fi
  done
fi

cat > "$tmp/edgetune" <<'SH'
#!/bin/sh
# edgetune bundle launcher: the bundled ONNX Runtime and backbone, then the real binary.
here="$(cd "$(dirname "$0")" && pwd)"
export EDGETUNE_ORT_LIB="$here/lib/libonnxruntime.so"
if [ -z "${EDGETUNE_MODEL:-}" ] && [ -d "$here/model" ]; then
  export EDGETUNE_MODEL="$here/model"
fi
exec "$here/bin/edgetune" "$@"
SH
chmod 755 "$tmp/edgetune"

version="$(cd "$root" && sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)"
commit="$(cd "$root" && git rev-parse --short HEAD 2>/dev/null || echo unknown)"
{
  echo "edgetune $version ($commit) for $target"
  echo
  echo "Copy this folder to the device and run ./edgetune from it (any working directory)."
  echo "Needs glibc >= 2.28 (aarch64 builds), nothing else: ONNX Runtime is in lib/."
  echo
  echo "  ./edgetune --version"
  if [ -n "$run" ]; then echo "  echo 'wake me up at seven' | ./edgetune infer --run run"; fi
  if [ -n "$merged" ]; then echo "  echo 'wake me up at seven' | ./edgetune infer --model merged/$(basename "$merged")"; fi
  if [ -n "$bb_onnx" ]; then echo "  ./edgetune train --data DATA_DIR --out my-run     # backbone: model/"; fi
  echo "  ./edgetune --threads 4 ...                      # pin the thread count"
} > "$tmp/README.txt"
(cd "$tmp" && find . -type f ! -name MANIFEST.sha256 | sort | sed 's|^\./||' | xargs sha256sum > MANIFEST.sha256)

rm -rf "$out"
mv "$tmp" "$out"
trap - EXIT
chmod 755 "$out"
mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }
total=0
while IFS= read -r f; do
  b="$(stat -c %s "$out/$f")"; total=$((total + b))
  printf '  %-40s %10d bytes (%s)\n' "$f" "$b" "$(mib "$b")" >&2
done < <(cd "$out" && find . -type f | sort | sed 's|^\./||')
say "bundle for $target in $out: $total bytes ($(mib "$total"))"
if [ "$tar" = 1 ]; then
  tar -C "$(dirname "$out")" -czf "$out.tar.gz" "$(basename "$out")"
  tb="$(stat -c %s "$out.tar.gz")"
  say "archive $out.tar.gz: $tb bytes ($(mib "$tb"))"
fi
