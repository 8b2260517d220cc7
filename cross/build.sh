#!/usr/bin/env bash
# Cross-builds edgetune for aarch64 Linux with cargo-zigbuild against glibc 2.28, then checks the
# result automatically and fails loudly if any check fails:
#   - it is an AArch64 ELF executable,
#   - no versioned symbol it needs is newer than the glibc floor (GLIBC_2.28 by default),
#   - it is stripped and no larger than the size limit (12 MB for the size-optimized dist profile,
#     16 MB for release, which CI builds because it compiles in a fraction of dist's time).
# Prints the binary's path, size, newest glibc symbol version and the build's wall time; the last
# line of standard output is the binary's path (for scripts: bin="$(cross/build.sh | tail -n1)").
#
# Usage: cross/build.sh [--profile dist|release] [--ortcheck] [-- EXTRA CARGO ARGS]
#   --profile P   cargo profile (default dist: the size-optimized profile in .cargo/config.toml)
#   --ortcheck    also build cross/ortcheck (a small program that loads ONNX Runtime and runs a model)
# Environment:
#   EDGETUNE_CROSS_TARGET  Rust target (default aarch64-unknown-linux-gnu)
#   EDGETUNE_GLIBC         glibc floor (default 2.28)
#   EDGETUNE_MAX_BYTES     size limit in bytes (default 12000000 for dist, 16000000 otherwise)
#   CARGO_TARGET_DIR       as usual (default: target/ in the repository)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

target="${EDGETUNE_CROSS_TARGET:-aarch64-unknown-linux-gnu}"
glibc="${EDGETUNE_GLIBC:-2.28}"
profile=dist
ortcheck=0
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --profile) profile="$2"; shift 2 ;;
    --profile=*) profile="${1#*=}"; shift ;;
    --ortcheck) ortcheck=1; shift ;;
    --) shift; extra=("$@"); break ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "cross/build.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

default_max=16000000; [ "$profile" = dist ] && default_max=12000000
max_bytes="${EDGETUNE_MAX_BYTES:-$default_max}"

say() { echo "cross/build.sh: $*" >&2; }
fail() { echo "cross/build.sh: FAILED: $*" >&2; exit 1; }

command -v cargo-zigbuild >/dev/null || fail "cargo-zigbuild not found: run cross/setup.sh"
readelf="$(command -v aarch64-linux-gnu-readelf || command -v readelf || true)"
[ -n "$readelf" ] || fail "readelf not found: run cross/setup.sh (binutils-aarch64-linux-gnu)"

target_dir="${CARGO_TARGET_DIR:-$root/target}"
# cargo's directory name for a profile: dev -> debug, everything else keeps its name.
profile_dir="$profile"; [ "$profile" = dev ] && profile_dir=debug

# check_binary PATH: the AArch64, glibc-floor, stripped and size checks. Prints a summary line.
check_binary() {
  local bin="$1"
  [ -f "$bin" ] || fail "no binary at $bin"
  "$readelf" -h "$bin" | grep -q 'Machine:.*AArch64' || fail "$bin is not an AArch64 ELF file"
  # Versioned dependencies (.gnu.version_r): every "Name: GLIBC_x.y" the dynamic loader will demand.
  local versions newest
  versions="$("$readelf" -V -W "$bin" | sed -n 's/.*Name: \(GLIBC_[0-9][0-9.]*\).*/\1/p' | sort -Vu)"
  [ -n "$versions" ] || fail "$bin: no GLIBC symbol versions found (not dynamically linked against glibc?)"
  newest="$(tail -n1 <<< "$versions")"
  local too_new
  too_new="$(while read -r v; do
      n="${v#GLIBC_}"
      [ "$(printf '%s\n%s\n' "$n" "$glibc" | sort -V | tail -n1)" = "$glibc" ] || echo "$v"
    done <<< "$versions")"
  if [ -n "$too_new" ]; then
    echo "cross/build.sh: FAILED: $bin needs glibc symbol versions above GLIBC_$glibc: $(tr '\n' ' ' <<< "$too_new")" >&2
    echo "  symbols responsible:" >&2
    "$readelf" --dyn-syms -W "$bin" | grep -oE "[^ ]+@+($(paste -sd'|' <<< "$too_new"))" | sort -u | sed 's/^/    /' | head -20 >&2
    exit 1
  fi
  if "$readelf" -S -W "$bin" | grep -qE '\] \.(symtab|debug_info) '; then
    fail "$bin is not stripped (profile '$profile' must set strip = true)"
  fi
  local size
  size="$(stat -c %s "$bin")"
  [ "$size" -le "$max_bytes" ] || fail "$bin is $size bytes, over the limit of $max_bytes"
  local needed
  needed="$("$readelf" -d "$bin" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | paste -sd' ')"
  printf 'cross/build.sh: OK %s: %s bytes (%.1f MiB), stripped, newest glibc symbol %s (floor GLIBC_%s), needs: %s\n' \
    "$bin" "$size" "$(awk "BEGIN{print $size/1048576}")" "$newest" "$glibc" "$needed" >&2
}

zig_target="$target.$glibc"
start=$(date +%s)
say "cargo zigbuild --profile $profile --target $zig_target ${extra[*]}"
cargo zigbuild --locked --profile "$profile" --target "$zig_target" --bin edgetune "${extra[@]}"
bin="$target_dir/$target/$profile_dir/edgetune"
check_binary "$bin"
if [ "$ortcheck" = 1 ]; then
  # Its own workspace and lock file; the same target dir root, in a sub-folder.
  say "building cross/ortcheck"
  (cd cross/ortcheck && CARGO_TARGET_DIR="$target_dir/ortcheck" \
     cargo zigbuild --locked --release --target "$zig_target")
  check_binary "$target_dir/ortcheck/$target/release/ortcheck"
fi
say "wall time $(( $(date +%s) - start )) s"
echo "$bin"
