#!/usr/bin/env bash
# A local fleet you can run: a Flower 1.18 SuperLink and the edgetune ServerApp on 127.0.0.1 and N
# `edgetune fleet join` processes, each with a non-IID shard of DIR; prints the federated,
# centralized and local-only test metrics, bytes per device per round and round times.
#
#   fleet/simulate.sh --devices N --rounds R --data DIR --split-by TASK [--sampled K] --out DIR --json
#
# More flags: fleet/simulate.sh --help. The pinned flwr comes from .venv-fleet/ (fleet/setup-venv.sh
# makes it); the binary from $EDGETUNE_BIN, else target/release/edgetune, else target/debug/edgetune.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${EDGETUNE_FLEET_VENV:-$root/.venv-fleet}"
[ -x "$venv/bin/flwr" ] || bash "$root/fleet/setup-venv.sh"
tdir="${CARGO_TARGET_DIR:-$root/target}"
bin="${EDGETUNE_BIN:-}"
if [ -z "$bin" ]; then
  for b in "$tdir/release/edgetune" "$tdir/debug/edgetune"; do
    [ -x "$b" ] && { bin="$b"; break; }
  done
fi
[ -n "$bin" ] || { echo "simulate: no edgetune binary; build one (cargo build --release) or set EDGETUNE_BIN" >&2; exit 1; }
exec "$venv/bin/python" "$root/fleet/simulate.py" --bin "$bin" "$@"
