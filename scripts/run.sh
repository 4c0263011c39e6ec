#!/usr/bin/env bash
# `make run`: until the server lands, generate from stories260K if present.
set -euo pipefail
MODEL="${1:-}"
shift || true
if [ -z "$MODEL" ]; then
  MODEL="../shared/fixtures/stories260K/stories260K.gguf"
  if [ ! -f "$MODEL" ]; then
    echo "No model given. Run: make run MODEL=/path/to/model.gguf" >&2
    exit 2
  fi
fi
exec ./build/bin/reprise generate --model "$MODEL" --prompt "Once upon a time" --n-predict 64 "$@"
