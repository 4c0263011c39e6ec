#!/usr/bin/env bash
# Crash loop for the disk tier (issue 14): ROUNDS times, start `reprise serve`
# with --prompt-cache-size 1 and a disk tier, drive distinct conversations
# so every request demotes the previous one, SIGKILL the server once
# demotion is under way, and restart. Every start must come up, discard no
# corrupt file (torn writes leave only temporaries, which are removed), and
# a conversation stored before the first crash must still be served from
# disk with the same temperature-0 output.
#
#   scripts/disk_tier_crash_loop.sh [ROUNDS=100] [BUILD_DIR=build]
# Prints one line per round and a summary; exits non-zero on any failure.
set -euo pipefail
ROUNDS=${1:-100}
BUILD=${2:-build}
REPRISE=$BUILD/bin/reprise
WORK=$(mktemp -d /tmp/disk_tier_crash.XXXXXX)
trap 'kill -9 $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
MODEL=$WORK/tiny.gguf
DIR=$WORK/cache
"$REPRISE" make-model --out "$MODEL" --dim 64 --layers 2 --heads 4 --kv-heads 2 --ffn 128 \
  --ctx 1024 --byte-vocab --seed 7 >/dev/null 2>&1

PID=""
PORT=""
start() {  # start [extra args...]; sets PID, PORT
  local log=$WORK/log.$1
  shift
  "$REPRISE" serve --model "$MODEL" --port 0 --threads 1 "$@" >"$log" 2>&1 &
  PID=$!
  for _ in $(seq 1 3000); do
    PORT=$(sed -n 's/.*listening on http:\/\/127.0.0.1:\([0-9]*\).*/\1/p' "$log" | head -1)
    [ -n "$PORT" ] && return 0
    kill -0 "$PID" 2>/dev/null || { echo "server died at start:"; cat "$log"; exit 1; }
    sleep 0.01
  done
  echo "server did not start"; exit 1
}
metric() { curl -s "http://127.0.0.1:$PORT/metrics" | awk -v n="$1" '$1 == n {print $2}'; }
complete() {  # complete PROMPT MAX_TOKENS -> JSON response
  curl -s "http://127.0.0.1:$PORT/v1/completions" -H 'Content-Type: application/json' \
    -d "{\"prompt\":\"$1\",\"max_tokens\":$2,\"temperature\":0,\"ignore_eos\":true}"
}
words() { python3 -c "import random,sys; r=random.Random(int(sys.argv[1])); print(' '.join(''.join(chr(97+r.randrange(26)) for _ in range(r.randrange(2,9))) for _ in range(60))[:int(sys.argv[2])])" "$1" "$2"; }

ARGS=(--prompt-cache-size 1 --prompt-cache-dir "$DIR" --prompt-cache-disk-bytes 256M)
FILLER=$(words 4 230)
KNOWN=$(words 1 300)
NEXT="$KNOWN $(words 2 40)"
start ref --prompt-cache-size 0
WANT=$(complete "$NEXT" 8 | python3 -c 'import json,sys; print(json.load(sys.stdin)["choices"][0]["text"])')
kill "$PID"; wait "$PID" || true
start init "${ARGS[@]}"
complete "$KNOWN" 4 >/dev/null
complete "$(words 3 200)" 2 >/dev/null  # demotes KNOWN
kill "$PID"; wait "$PID" || true

temps=0
for round in $(seq 1 "$ROUNDS"); do
  start "$round" "${ARGS[@]}"
  corrupt=$(metric reprise_kv_disk_corrupt_files_discarded_total)
  removed=$(sed -n 's/.*, \([0-9]*\) interrupted writes removed.*/\1/p' "$WORK/log.$round" | head -1)
  temps=$((temps + ${removed:-0}))
  got=$(complete "$NEXT" 8)
  text=$(echo "$got" | python3 -c 'import json,sys; print(json.load(sys.stdin)["choices"][0]["text"])')
  disk=$(echo "$got" | python3 -c 'import json,sys; print(json.load(sys.stdin)["usage"]["prompt_tokens_details"]["cached_tokens_from_disk"])')
  if [ "$corrupt" != "0" ] || [ "$text" != "$WANT" ] || [ "$disk" -lt 256 ]; then
    echo "round $round FAILED: corrupt=$corrupt from_disk=$disk same_output=$([ "$text" == "$WANT" ] && echo yes || echo no)"
    cat "$WORK/log.$round"
    exit 1
  fi
  # Heavy demotion: two clients, each request pushes the previous conversation to disk.
  for c in 1 2; do
    ( for i in $(seq 1 1000); do complete "$((round * 10000 + c * 1000 + i)) $FILLER" 2 >/dev/null || exit 0; done ) &
  done
  for _ in $(seq 1 2000); do
    d=$(metric 'reprise_kv_tier_demotions_total{tier="disk"}')
    [ "${d%.*}" -ge 8 ] 2>/dev/null && break
    sleep 0.01
  done
  sleep "0.0$((RANDOM % 9))"
  kill -9 "$PID"
  wait "$PID" 2>/dev/null || true
  wait 2>/dev/null || true
  echo "round $round: ok (from disk $disk, corrupt $corrupt, interrupted writes removed at start ${removed:-0})"
done
echo "summary: $ROUNDS kill -9 rounds, 0 corrupt loads, $temps interrupted writes removed at restarts, output identical every round"
