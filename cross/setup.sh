#!/usr/bin/env bash
# Installs everything the aarch64 cross build and its emulated tests need, from Debian apt, PyPI and
# rustup only, then fetches the aarch64 (and host) ONNX Runtime library and the models through
# models/setup.sh. Idempotent: installed pieces are detected and skipped (no apt-get update, no
# network at all when everything is there). Run as root (apt-get); the pip and rustup steps also work
# as a normal user when the apt packages are already present.
#
# Usage: cross/setup.sh [--no-models]
# Environment: EDGETUNE_CROSS_TARGET (default aarch64-unknown-linux-gnu)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

target="${EDGETUNE_CROSS_TARGET:-aarch64-unknown-linux-gnu}"
# Pinned so CI and users get the same linker; both are binary wheels on PyPI.
ZIGLANG_VERSION=0.17.1
CARGO_ZIGBUILD_VERSION=0.24.1

models=1
for a in "$@"; do
  case "$a" in
    --no-models) models=0 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "cross/setup.sh: unknown argument $a" >&2; exit 2 ;;
  esac
done

say() { echo "cross/setup.sh: $*" >&2; }

# 1. Debian packages: aarch64 GCC (a plain-cargo linker and binutils: readelf/objdump/strip), the
#    aarch64 glibc + loader + libstdc++ (the sysroot qemu runs against), user-mode qemu, unshare/mount.
apt_pkgs=(gcc-aarch64-linux-gnu binutils-aarch64-linux-gnu libc6-arm64-cross libc6-dev-arm64-cross
          libstdc++6-arm64-cross)
missing=()
for p in "${apt_pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# qemu-user-static provides the same emulator; either will do.
command -v qemu-aarch64 >/dev/null || command -v qemu-aarch64-static >/dev/null || missing+=(qemu-user)
command -v unshare >/dev/null || missing+=(util-linux)
if [ ${#missing[@]} -gt 0 ]; then
  say "apt-get install ${missing[*]}"
  [ "$(id -u)" = 0 ] || { say "need root for apt-get (or install: ${missing[*]})"; exit 1; }
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  say "apt packages present"
fi

# 2. Zig (the linker cargo-zigbuild drives; it targets an exact glibc version) and cargo-zigbuild.
pyver_of() { python3 -m pip show "$1" 2>/dev/null | sed -n 's/^Version: //p'; }
if [ "$(pyver_of ziglang)" != "$ZIGLANG_VERSION" ] || [ "$(pyver_of cargo-zigbuild)" != "$CARGO_ZIGBUILD_VERSION" ] \
   || ! command -v cargo-zigbuild >/dev/null; then
  say "pip install ziglang==$ZIGLANG_VERSION cargo-zigbuild==$CARGO_ZIGBUILD_VERSION"
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
    "ziglang==$ZIGLANG_VERSION" "cargo-zigbuild==$CARGO_ZIGBUILD_VERSION"
  hash -r
  command -v cargo-zigbuild >/dev/null || { say "cargo-zigbuild installed but not on PATH ($(python3 -m site --user-base)/bin?)"; exit 1; }
else
  say "ziglang $ZIGLANG_VERSION and cargo-zigbuild $CARGO_ZIGBUILD_VERSION present"
fi

# 3. The Rust standard library for the target (rustup's dist server; fails clearly when unreachable).
if rustc --print sysroot >/dev/null 2>&1 && [ -d "$(rustc --print sysroot)/lib/rustlib/$target/lib" ]; then
  say "rust-std for $target present ($(rustc -V))"
else
  say "rustup target add $target"
  if ! rustup target add "$target"; then
    say "rustup could not install the $target standard library: its dist server is unreachable or refused."
    say "Fix: install it where the dist server is reachable (rustup target add $target) and copy"
    say "     \$(rustc --print sysroot)/lib/rustlib/$target here."
    exit 1
  fi
fi

# 4. ONNX Runtime for the target (and the host, for the comparison runs) plus the models.
if [ "$models" = 1 ]; then
  host_arch="$(uname -m)"
  target_arch="${target%%-*}"
  archs=("$target_arch"); [ "$host_arch" = "$target_arch" ] || archs+=("$host_arch")
  bash models/setup.sh "${archs[@]}"
fi
say "done"
