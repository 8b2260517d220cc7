#!/usr/bin/env bash
# Runs an aarch64 Linux binary on this x86_64 machine under user-mode qemu, the way ONNX Runtime needs:
#   - QEMU_CPU=cortex-a72 (Raspberry Pi 4). qemu's default CPU model ("max") makes ONNX Runtime pick
#     int8 kernels that give wrong results under emulation.
#   - an ARM /proc/cpuinfo: ONNX Runtime's cpuinfo library reads it to choose kernels; the host's x86
#     one is bind-mounted over with a fake Cortex-A72 one inside a private mount namespace
#     (`unshare -m`, needs root). Without root (or if unshare is refused) the fallback is qemu's own
#     path prefix: a sysroot overlay whose proc/cpuinfo qemu serves instead of the host's.
#   - the aarch64 glibc / dynamic loader / libstdc++ from Debian's libc6-arm64-cross (-L sysroot).
#
# Usage: cross/qemu-run.sh BINARY [ARGS...]
# Environment:
#   EDGETUNE_QEMU_CPU      qemu CPU model: cortex-a72 (default) or cortex-a76 (Raspberry Pi 5)
#   EDGETUNE_QEMU_SYSROOT  aarch64 sysroot (default /usr/aarch64-linux-gnu)
#   EDGETUNE_QEMU_NCPU     processors listed in the fake /proc/cpuinfo (default: this machine's count)
#   EDGETUNE_QEMU_MODE     unshare | prefix (default: unshare when root and it works, else prefix)
# The exit code is the binary's. Standard input, output and error pass through.
set -euo pipefail

die() { echo "qemu-run: $*" >&2; exit 2; }
[ $# -ge 1 ] || die "usage: $0 BINARY [ARGS...]"

qemu="$(command -v qemu-aarch64 || command -v qemu-aarch64-static || true)"
[ -n "$qemu" ] || die "qemu-aarch64 not found (apt-get install qemu-user, or run cross/setup.sh)"
sysroot="${EDGETUNE_QEMU_SYSROOT:-/usr/aarch64-linux-gnu}"
[ -e "$sysroot/lib/ld-linux-aarch64.so.1" ] || die "no aarch64 sysroot at $sysroot (apt-get install libc6-arm64-cross)"
cpu="${EDGETUNE_QEMU_CPU:-cortex-a72}"
ncpu="${EDGETUNE_QEMU_NCPU:-$(getconf _NPROCESSORS_CONF 2>/dev/null || nproc)}"

# Fake /proc/cpuinfo matching the CPU model, written as a 64-bit Raspberry Pi OS kernel prints it.
case "$cpu" in
  cortex-a72) part=0xd08 variant=0x0 rev=3 feats="fp asimd evtstrm crc32 cpuid" model="Raspberry Pi 4 Model B Rev 1.4" ;;
  cortex-a76) part=0xd0b variant=0x4 rev=1 feats="fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp" model="Raspberry Pi 5 Model B Rev 1.0" ;;
  *) die "EDGETUNE_QEMU_CPU=$cpu: only cortex-a72 and cortex-a76 have a fake /proc/cpuinfo here" ;;
esac

work="$(mktemp -d "${TMPDIR:-/tmp}/qemu-run.XXXXXX")"
trap 'rm -rf "$work"' EXIT
{
  for ((i = 0; i < ncpu; i++)); do
    printf 'processor\t: %d\nBogoMIPS\t: 108.00\nFeatures\t: %s\nCPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: %s\nCPU part\t: %s\nCPU revision\t: %s\n\n' \
      "$i" "$feats" "$variant" "$part" "$rev"
  done
  printf 'Revision\t: c03114\nSerial\t\t: 10000000deadbeef\nModel\t\t: %s\n' "$model"
} > "$work/cpuinfo"

export QEMU_CPU="$cpu"
# Let the binary find its own path (std::env::current_exe reads /proc/self/exe, which qemu emulates).
bin="$1"; shift
[ -f "$bin" ] || die "no such binary: $bin"

mode="${EDGETUNE_QEMU_MODE:-}"
if [ -z "$mode" ]; then
  mode=prefix
  if [ "$(id -u)" = 0 ] && command -v unshare >/dev/null && unshare -m --propagation private true 2>/dev/null; then
    mode=unshare
  fi
fi

# forward CMD...: runs CMD in the background and passes SIGTERM and SIGINT on to it (as SIGTERM:
# a non-interactive shell starts background commands with SIGINT ignored), so that an emulated
# service stops cleanly when this script is signalled; returns CMD's exit status.
forward() {
  "$@" <&0 &
  local pid=$! rc
  trap 'kill -TERM "$pid" 2>/dev/null' TERM INT
  while :; do
    wait "$pid"; rc=$?
    # A trapped signal interrupts wait while the command still runs: wait again.
    kill -0 "$pid" 2>/dev/null || break
  done
  trap - TERM INT
  return $rc
}

case "$mode" in
  unshare)
    # The bind mount exists only inside this process tree's private mount namespace.
    set +e
    forward unshare -m --propagation private -- /bin/sh -c '
      mount --bind "$1" /proc/cpuinfo || exit 125
      shift
      exec "$@"' qemu-run "$work/cpuinfo" "$qemu" -L "$sysroot" "$bin" "$@"
    rc=$?
    set -e
    [ $rc -ne 125 ] || die "could not bind-mount the fake /proc/cpuinfo (set EDGETUNE_QEMU_MODE=prefix)"
    exit $rc
    ;;
  prefix)
    # qemu looks every absolute path up in the -L prefix first: an overlay of the sysroot plus
    # proc/cpuinfo makes the emulated program read the fake file.
    mkdir -p "$work/root/proc"
    for e in "$sysroot"/*; do ln -s "$e" "$work/root/"; done
    cp "$work/cpuinfo" "$work/root/proc/cpuinfo"
    set +e
    forward "$qemu" -L "$work/root" "$bin" "$@"
    rc=$?
    set -e
    exit $rc
    ;;
  *) die "EDGETUNE_QEMU_MODE=$mode: use unshare or prefix" ;;
esac
