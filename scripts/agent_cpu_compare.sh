#!/usr/bin/env bash
# The agent workload (bench/agent_bench.py) on the CPU: reprise serve, then
# llama-server, same model, same requests, for each concurrency in CONC.
#   [LLAMA_SERVER=/path/to/llama-server] MODEL=file.gguf [CONC="1 4"] [REPS=3] \
#     [VARIANTS="--prefill-order arrival;--prefill-order shortest"] \
#     [AGENT_ARGS="--turns 6 ..."] bash scripts/agent_cpu_compare.sh
# llama-server (skipped when LLAMA_SERVER is unset): the source of
# node-llama-cpp@3.21.1 (scripts/gpu_prepare.sh puts it in .gpu/llama.cpp),
# built with -DGGML_CUDA=OFF -DLLAMA_BUILD_SERVER=ON -DLLAMA_USE_PREBUILT_UI=OFF.
# VARIANTS: reprise runs once per ';'-separated set of extra serve flags
# (default: one run without). AGENT_ARGS replaces the workload's default
# shape. Prints one line per run (BENCHMARKS.md).
set -uo pipefail
cd "$(dirname "$0")/.."
: "${MODEL:?set MODEL}"
CONC=${CONC:-"1 4"}
REPS=${REPS:-3}
THREADS=${THREADS:-2}
COMMON=${AGENT_ARGS:-"--system-tokens 4000 --add-min 200 --add-max 1000 --gen-min 32 \
--gen-max 64 --max-history 8192 --turns 8"}
IFS=';' read -r -a VLIST <<< "${VARIANTS:-;}"
[ ${#VLIST[@]} -eq 0 ] && VLIST=("")
source scripts/serve_lib.sh  # bench_server
for rep in $(seq "$REPS"); do
  for c in $CONC; do
    for va in "${VLIST[@]}"; do
      read -r -a extra <<< "$va"
      build/bin/reprise serve --model "$MODEL" --port 18190 --parallel "$c" --threads "$THREADS" \
        --ctx-size 9216 --prompt-cache-size $((2 * c + 2)) "${extra[@]}" \
        > /tmp/agent-reprise.log 2>&1 &
      bench_server "reprise${va:+ $va} rep$rep" 18190 $! /tmp/agent-reprise.log \
        --concurrency "$c" $COMMON
    done
    [ -n "${LLAMA_SERVER:-}" ] || continue
    "$LLAMA_SERVER" -m "$MODEL" -np "$c" -c $((c * 9216)) --cache-ram 2048 --port 18191 \
      -t "$THREADS" > /tmp/agent-llama.log 2>&1 &
    bench_server "llama-server rep$rep" 18191 $! /tmp/agent-llama.log --concurrency "$c" $COMMON
  done
done
