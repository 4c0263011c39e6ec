#!/usr/bin/env bash
# `make run [MODEL=path.gguf] [ARGS="--port 9000 ..."]`: serve a model with
# `reprise serve`. Without MODEL, serve the built-in demo model, created once
# (deterministically: fixed shape and seed) at models/demo.gguf. The demo
# model has random weights: its output is noise (the server says so in its
# log and in /v1/models); it exists to show the API and the prompt cache.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=./build/bin/reprise
MODEL="${1:-}"
shift || true
if [ -z "$MODEL" ]; then
  MODEL=models/demo.gguf
  if [ ! -f "$MODEL" ]; then
    mkdir -p models
    echo "Creating the demo model (random weights, output is noise) at $MODEL ..." >&2
    "$BIN" make-model --preset demo --out "$MODEL.tmp"
    mv "$MODEL.tmp" "$MODEL"
  fi
fi
if [ ! -f "$MODEL" ]; then
  echo "error: model file '$MODEL' not found. Run: make run MODEL=/path/to/model.gguf" >&2
  exit 2
fi
exec "$BIN" serve --model "$MODEL" "$@"
