#!/usr/bin/env bash
# Does a read-back from the disk tier stall the other streams? Runs
# bench/promotion_overlap.py against reprise serve with a disk tier twice:
# promotions read inline on the engine thread (REPRISE_OVERLAP_PROMOTIONS=0)
# and overlapped (the default). Prints one line per round and a summary per
# mode (BENCHMARKS.md, "Promotions overlapped with decoding").
#   MODEL=file.gguf [HISTORY=8000] [ROUNDS=3] [THREADS=2] [ID_MAX=30000] \
#     bash scripts/promotion_overlap.sh
set -uo pipefail
cd "$(dirname "$0")/.."
: "${MODEL:?set MODEL to a .gguf file}"
HISTORY=${HISTORY:-8000}
ROUNDS=${ROUNDS:-3}
THREADS=${THREADS:-2}
ID_MIN=${ID_MIN:-300}
ID_MAX=${ID_MAX:-30000}
source scripts/serve_lib.sh  # wait_http
for overlap in 0 1; do
  dir=$(mktemp -d /tmp/reprise-overlap.XXXXXX)
  REPRISE_OVERLAP_PROMOTIONS=$overlap build/bin/reprise serve --model "$MODEL" --port 18195 \
    --parallel 2 --threads "$THREADS" --ctx-size $((HISTORY + 512)) --prompt-cache-size 1 \
    --prompt-cache-dir "$dir" --prompt-cache-disk-bytes 4G > /tmp/overlap-reprise.log 2>&1 &
  pid=$!
  if wait_http 18195 "$pid"; then
    python3 bench/promotion_overlap.py --port 18195 --label "overlap=$overlap" \
      --history "$HISTORY" --rounds "$ROUNDS" --id-min "$ID_MIN" --id-max "$ID_MAX"
  else
    echo "reprise did not come up:"; tail -5 /tmp/overlap-reprise.log
  fi
  kill -TERM "$pid" 2> /dev/null
  wait "$pid"
  rm -rf "$dir"
done
