#!/usr/bin/env bash
# Installs the pinned Flower (fleet/requirements.txt) into .venv-fleet/ at the repository's root
# (git-ignored). Idempotent: a venv that already has the pinned versions is left as it is.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${EDGETUNE_FLEET_VENV:-$root/.venv-fleet}"
if [ -x "$venv/bin/flwr" ] && "$venv/bin/python" -c 'import flwr, starlette, uvicorn, sys; sys.exit(flwr.__version__ != "1.18.0")' 2>/dev/null; then
  exit 0
fi
python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$root/fleet/requirements.txt"
"$venv/bin/flwr" --version >/dev/null
