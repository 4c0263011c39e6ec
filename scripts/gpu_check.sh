#!/usr/bin/env bash
# The whole GPU check in one device call: build with CUDA, run every GPU test,
# run the benchmarks (reprise and the llama.cpp CUDA peer, alternating, on the
# same GGUF files), and write logs plus gpu_results.json under $OUT.
#
# Needs, in the carried and git-ignored folder .gpu/ (made here by
# scripts/gpu_prepare.sh on a Debian 12 machine):
#   .gpu/debs/      .debs of the build dependencies, unpacked with dpkg -x
#   .gpu/fixtures/  reference/, stories260K/, vocab/ggml-vocab-llama-spm.gguf
#   .gpu/llama.cpp/ llama.cpp source of node-llama-cpp@3.21.1 (the peer)
# Device call:  command "bash scripts/gpu_check.sh all", carry [".gpu"].
# Stages (each fits one 10-minute call; "all" runs build, tests, bench):
#   build   configure + build reprise and gpu_tests (sm_90 only, for speed)
#   tests   gpu_tests, again with the OPTIN paths on and without CUDA graphs,
#           the CPU suites that are cheap (sanity), a served completion
#           (TESTS_QUICK=1: the first pass and the served completion only)
#   bench   Llama-3-8B-shaped models (F16, Q8_0, Q4_0, Q4_K): pp512 + tg128,
#           pp8192 + tg32 (decode at an 8k context); quantized pp512 without
#           the tensor cores; device copy bandwidth for the roofline
#   sweep   decode vs concurrency: reprise bench --batch B for B in SWEEP
#           (default "1 2 4 8 16 32 64") on the SWEEP_TYPE (q4_k) model,
#           SWEEP_PP (512) prompt tokens each, then 64 steps of B tokens:
#           total and per-stream tok/s, fraction of the copy bandwidth
#   longctx one conversation of LONG_HISTORY (120000) tokens on LONG_TYPE
#           (q4_k): cold prefill, then follow-ups of 500 tokens from the GPU
#           tier and from the host tier (bench/long_context.py)
#   kernels the decode matmuls alone (bench/gemv_bench.cc: each Llama-3-8B
#           decode call at n = 1, CUDA events, weights cycled past the L2):
#           GB/s per (type, call), staged and warp-per-row quantized GEMV;
#           then the step's other kernels alone (bench/decode_ops_bench.cc:
#           norms, quantization, SwiGLU, decode attention at 512/4k/32k)
#   quick   pp512 + tg128 on TYPES, then a profiled pp512 + tg32 (a
#           change's speed in a minute or two)
#   optbench  pp512 + tg128 (TYPES) and pp8192 + tg32 (LONG_TYPES), each
#           without and with the OPTIN list
#   profile GPU time per op kind (REPRISE_CUDA_PROFILE=1) of pp PROFILE_PP
#           (512) + tg32 on TYPES, without and with the OPTIN list
#   nsight  Nsight Compute (ncu) on the matmul / attention kernels of a pp
#           NSIGHT_PP (512) + tg4 bench on TYPES: SOL, occupancy, stalls
#           (NSIGHT_BATCH=B: B streams; NSIGHT_SKIP / NSIGHT_COUNT pick launches)
#   peer    build llama.cpp (CUDA) and run llama-bench on the same files
#   depth   decode at a DEPTH (32768) token context, reprise and llama-bench
#           (-d; DEPTH_PEER=0 skips it), on the LONG_TYPES models
#   peerbuild  start the peer's build in the background (put it early: peer
#              waits for it)
#   flips   the pending opt-ins against the default, and the latest change
#           that has no switch (see flips() below; q32: that change alone)
#   optin   the opt-in kernels only: their in-process bit comparisons with the
#           default kernels, then goldens / determinism / engine tests with
#           every OPTIN path on (a quick first check: "build optin")
#   agent   the agent workload (bench/agent_bench.py) against reprise serve
#           and, when built, llama-server; AGENT_TYPE=q4_k, AGENT_CONC="1 8 32",
#           AGENT_HISTORY=16384, AGENT_TURNS=8, AGENT_SYSTEM=7000,
#           AGENT_BENCH_ARGS (more agent_bench.py flags for both servers,
#           e.g. "--temperature 0.7 --top-p 0.95"),
#           AGENT_SERVERS="reprise llama-server", AGENT_VARIANTS (reprise
#           runs with these extra flags, ';'-separated, e.g. "--prefill-chunk
#           2048;--prefill-order shortest"; default: one run, no flags)
# Environment: TYPES="f16 q8_0 q4_0 q4_k", LONG_TYPES (those also run at
# pp8192 + tg32; default TYPES), REPS=3, PEER_REPS=5, NOMMA=0 (skip the
# quantized pp512 without the tensor cores), MODEL_LAYERS (e.g. 4: models of
# that many layers, made in seconds; per-layer figures and profiles only),
# OFFS (fast paths whose decode bench runs with them off; default
# ATTN_LAST_MERGES, all: "GEMV_STAGED FUSE PDL ATTN_LAST_MERGES"),
# OPTIN (the opt-in paths the tests and benches also run with, on together:
# default "REPRISE_CUDA_FUSE_ATTN=1 REPRISE_CUDA_GEMV_SPLIT=1
# REPRISE_CUDA_MMA_SKIP_TILES=1"; a list of X=0
# runs them with defaults off).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export OUT=${OUT:-/tmp/gpu_out}
# Everything is written to $WORK; $OUT gets gpu_check.log, gpu_tests.log,
# gpu_results.json and gpu_logs.tar.gz (the device tool returns at most 8 files).
WORK=/tmp/gpu_work
mkdir -p "$OUT" "$WORK"
STAGES=${*:-all}
[ "$STAGES" = all ] && STAGES="build tests bench"
TYPES=${TYPES:-"f16 q8_0 q4_0 q4_k"}
LONG_TYPES=${LONG_TYPES:-$TYPES}
REPS=${REPS:-3}
# Paths written without a GPU, off by default until a run here validates them
# (tests and benches run them on through this list).
# (BLOCKED, RAW, WIDE_MERGE and MMA_PIPE were validated on an H100 on
# 2026-12-05 and are the default now; ATTN_MMA, MMA_PIPE32 and HALF_MULTI on
# 2026-12-06, default too (=0 turns each off); ATTN_QREGS and GEMV_WIDE (to
# 16 tokens) later that day, and GEMV_SPLIT for Q8_0 and Q4_0 (=1: every
# type). FUSE_ATTN gives the same bits but slower decode, so it stays
# opt-in. HALF_PREFILL_SMEM (F16 / BF16 prefill of Q/K/V and gate/up in one
# launch, totals in shared memory) became the default in the eleventh run;
# MMA_SKIP_TILES (decode batches smaller than a tensor-core tile) gave the
# same bits but measured much slower, so it stays opt-in. A new path written
# without a GPU joins this list until "build optin" has validated it, and
# gets a pair in flips().)
OPTIN=${OPTIN:-"REPRISE_CUDA_FUSE_ATTN=1 REPRISE_CUDA_GEMV_SPLIT=1 REPRISE_CUDA_MMA_SKIP_TILES=1"}
PEER_REPS=${PEER_REPS:-5}
DEPS=/tmp/reprise-deps
BUILD=/tmp/reprise-build
MODELS=/tmp/reprise-models
# The main log is written straight into $OUT, so a call cut off at its time
# limit still returns it; gpu_results.json is rewritten after every figure.
LOG=$OUT/gpu_check.log
exec > >(tee -a "$LOG") 2>&1

say() { echo "== $(date +%H:%M:%S) $*"; }

unpack_deps() {
  mkdir -p "$DEPS/.unpacked"
  local n=0
  for f in .gpu/debs/*.deb; do
    [ -e "$DEPS/.unpacked/${f##*/}" ] && continue
    dpkg -x "$f" "$DEPS" && touch "$DEPS/.unpacked/${f##*/}" && n=$((n + 1))
  done
  say "unpacked $n new .debs into $DEPS"
}

# The unpacked libraries (cpp-httplib, pcre2, ...) are found by our binaries
# through their rpath, and by pkgconf through a wrapper: nothing else on the
# machine (cmake, Python) sees them.
DEPLIB=$DEPS/usr/lib/x86_64-linux-gnu

build() {
  unpack_deps
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.mem --format=csv | tee "$WORK/gpu.txt"
  local pc=$DEPS/pkgconf-wrapper
  printf '#!/bin/sh\nLD_LIBRARY_PATH=%s PKG_CONFIG_SYSROOT_DIR=%s PKG_CONFIG_LIBDIR=%s exec %s "$@"\n' \
    "$DEPLIB" "$DEPS" "$DEPLIB/pkgconfig:$DEPS/usr/share/pkgconfig" "$DEPS/usr/bin/pkgconf" > "$pc"
  chmod +x "$pc"
  say "configure"
  cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DREPRISE_CUDA=ON \
    -DCMAKE_CUDA_ARCHITECTURES=90-real -DREPRISE_BUILD_BENCH=OFF \
    -DCMAKE_PREFIX_PATH="$DEPS/usr" -DPKG_CONFIG_EXECUTABLE="$pc" \
    -DCMAKE_EXE_LINKER_FLAGS="-Wl,-rpath-link,$DEPLIB -Wl,-rpath,$DEPLIB" \
    -DREPRISE_FIXTURES_DIR="$ROOT/.gpu/fixtures" > "$WORK/configure.log" 2>&1 \
    || { tail -30 "$WORK/configure.log"; return 1; }
  say "build"
  ninja -C "$BUILD" -k 0 reprise gpu_tests model_tests golden_tests \
    > "$WORK/build.log" 2>&1 || { grep -E "error|FAILED" "$WORK/build.log" | head -40; return 1; }
  say "built"
}

tests() {
  say "gpu_tests"
  "$BUILD/bin/gpu_tests" --gtest_brief=0 > "$WORK/gpu_tests.log" 2>&1
  local rc=$?
  cp "$WORK/gpu_tests.log" "$OUT/"
  grep -E "^\[  (PASSED|FAILED|SKIPPED) |^\[ gpu vs cpu \]|Failure|error" "$WORK/gpu_tests.log" | head -60
  tail -3 "$WORK/gpu_tests.log"
  if [ $rc -ne 0 ]; then
    # Each fast path off in turn (same bits): which one the failure follows.
    local sw
    for sw in "MMA:the tensor-core matmul" "ATTN_TILES:the tiled prefill attention" \
              "FUSE:the fused activation quantization" "PDL:programmatic dependent launch" \
              "GEMV_STAGED:the staged GEMV" "HALF_MMA:F16 / BF16 on the tensor cores" \
              "ATTN_LAST_MERGES:merging in the last attention chunk block" \
              "ATTN_MMA:the tensor-core attention order"; do
      say "gpu_tests failed: again without ${sw#*:} (REPRISE_CUDA_${sw%%:*}=0)"
      env "REPRISE_CUDA_${sw%%:*}=0" "$BUILD/bin/gpu_tests" --gtest_brief=1 \
        > "$WORK/gpu_tests_no_${sw%%:*}.log" 2>&1
      grep -E "^\[  (PASSED|FAILED) |Failure" "$WORK/gpu_tests_no_${sw%%:*}.log" | head -30
      tail -3 "$WORK/gpu_tests_no_${sw%%:*}.log"
    done
  fi
  if [ "${TESTS_QUICK:-0}" = 1 ]; then  # the default pass and the server only
    serve_smoke || rc=1
    return $rc
  fi
  # The opt-in paths, not yet validated on a GPU (OPTIN: each REPRISE_CUDA_X=1):
  # every test again with all of them on; on a failure, with each alone.
  say "gpu_tests with the opt-in paths on ($OPTIN)"
  if ! env $OPTIN "$BUILD/bin/gpu_tests" --gtest_brief=1 > "$WORK/gpu_tests_optin.log" 2>&1; then
    rc=1
    grep -E "^\[  (PASSED|FAILED) |Failure" "$WORK/gpu_tests_optin.log" | head -30
    local on
    for on in $OPTIN; do
      say "gpu_tests with $on alone"
      env "$on" "$BUILD/bin/gpu_tests" --gtest_brief=1 > "$WORK/gpu_tests_${on%%=*}.log" 2>&1
      grep -E "^\[  (PASSED|FAILED) |Failure" "$WORK/gpu_tests_${on%%=*}.log" | head -20
      tail -2 "$WORK/gpu_tests_${on%%=*}.log"
    done
  fi
  tail -3 "$WORK/gpu_tests_optin.log"
  say "gpu_tests without CUDA graphs (REPRISE_CUDA_GRAPHS=0: every decode step launches its kernels)"
  REPRISE_CUDA_GRAPHS=0 "$BUILD/bin/gpu_tests" --gtest_brief=1 \
    --gtest_filter='GpuDeterminism*:GpuEngine*:GpuStories*:GpuKv*' > "$WORK/gpu_tests_nographs.log" 2>&1
  grep -E "^\[  (PASSED|FAILED) |Failure" "$WORK/gpu_tests_nographs.log" | head -30
  tail -3 "$WORK/gpu_tests_nographs.log"
  cp "$WORK/gpu_tests_nographs.log" "$OUT/"
  say "CPU model and golden tests (the refactored forward pass, on this machine's CPU)"
  "$BUILD/bin/model_tests" --gtest_brief=1 2>&1 | tail -2
  "$BUILD/bin/golden_tests" --gtest_brief=1 --gtest_filter='-StoriesCli*' 2>&1 | tail -2
  serve_smoke || rc=1
  return $rc
}

# `reprise serve --device cuda` end to end: a completion, its follow-up hits
# the cache in GPU memory, /metrics names the device tier, SIGTERM exits 0.
serve_smoke() {
  say "serve --device cuda (stories260K)"
  "$BUILD/bin/reprise" serve --device cuda --model .gpu/fixtures/stories260K/stories260K.gguf \
    --port 18080 > "$WORK/serve.log" 2>&1 &
  local pid=$!
  python3 - <<'PY'
import json, time, urllib.request
base = "http://127.0.0.1:18080"
for _ in range(200):
    try:
        urllib.request.urlopen(base + "/health", timeout=1); break
    except Exception: time.sleep(0.1)
def post(prompt, n):
    req = urllib.request.Request(base + "/v1/completions", data=json.dumps(
        {"prompt": prompt, "max_tokens": n, "temperature": 0}).encode(),
        headers={"Content-Type": "application/json"})
    return json.load(urllib.request.urlopen(req, timeout=60))
a = post("Once upon a time, there was a little girl named Lily.", 24)
b = post("Once upon a time, there was a little girl named Lily." + a["choices"][0]["text"] + " She", 24)
m = urllib.request.urlopen(base + "/metrics", timeout=5).read().decode()
tier = [l for l in m.splitlines() if l.startswith("reprise_kv_tier_bytes{")]
print("serve smoke: turn 1:", repr(a["choices"][0]["text"][:60]))
print("serve smoke: turn 2 cached", b["usage"]["prompt_tokens_details"]["cached_tokens"], "of",
      b["usage"]["prompt_tokens"], "|", " ".join(tier))
assert b["usage"]["prompt_tokens_details"]["cached_tokens"] > 0
assert any('tier="device"' in l for l in tier)
PY
  local ok=$?
  kill -TERM "$pid"; wait "$pid"; local st=$?
  grep -E "cuda:|host tier|KV budget|error" "$WORK/serve.log" | head -5
  [ $ok -eq 0 ] && [ $st -eq 0 ] && say "serve smoke ok" || { say "serve smoke FAILED (exit $st)"; return 1; }
}

# The Llama-3-8B-shaped file of type $1 (MODEL_LAYERS: fewer layers, for a
# quick per-layer profile: making a 32-layer file takes ~1-2 minutes).
model_path() { echo "$MODELS/llama3-8b-$1${MODEL_LAYERS:+-l$MODEL_LAYERS}.gguf"; }

make_models() {
  mkdir -p "$MODELS"
  for t in $TYPES; do
    local f; f=$(model_path "$t")
    [ -f "$f" ] && continue
    say "make-model llama3-8b $t${MODEL_LAYERS:+, $MODEL_LAYERS layers}"
    "$BUILD/bin/reprise" make-model --preset llama3-8b --type "$t" ${MODEL_LAYERS:+--layers "$MODEL_LAYERS"} \
      --vocab-from .gpu/fixtures/vocab/ggml-vocab-llama-spm.gguf --out "$f" 2>&1 | tail -1
  done
  sync
}

kernels() {
  say "gemv_bench (GEMV_TYPES: ${GEMV_TYPES:=q4_k,q8_0,q4_0,q6_k,f16})"
  cmake -S . -B "$BUILD" -DREPRISE_BUILD_BENCH=ON >> "$WORK/configure.log" 2>&1 \
    && ninja -C "$BUILD" gemv_bench decode_ops_bench >> "$WORK/build.log" 2>&1 \
    || { grep -E "error|FAILED" "$WORK/build.log" | tail -20; return 1; }
  "$BUILD/bin/gemv_bench" "$GEMV_TYPES" 1 200 | tee "$WORK/gemv.jsonl"
  REPRISE_CUDA_GEMV_STAGED=0 "$BUILD/bin/gemv_bench" "${GEMV_TYPES/,f16/}" 1 200 | tee -a "$WORK/gemv.jsonl"
  "$BUILD/bin/gemv_bench" q4_k 4 100 | tee -a "$WORK/gemv.jsonl"
  "$BUILD/bin/decode_ops_bench" 500 | tee -a "$WORK/gemv.jsonl"
  say "decode_ops_bench with the opt-in paths on ($OPTIN)"
  env $OPTIN "$BUILD/bin/decode_ops_bench" 500 | tee -a "$WORK/gemv.jsonl"
  cp "$WORK/gemv.jsonl" "$OUT/" 2>/dev/null
}

bandwidth() {
  python3 - <<'EOF' | tee "$WORK/bandwidth.json"
import json, torch
x = torch.empty(2 << 30, dtype=torch.uint8, device="cuda"); y = torch.empty_like(x)
for _ in range(3): y.copy_(x)
torch.cuda.synchronize()
ts = []
for _ in range(20):
    s = torch.cuda.Event(enable_timing=True); e = torch.cuda.Event(enable_timing=True)
    s.record(); y.copy_(x); e.record(); torch.cuda.synchronize(); ts.append(s.elapsed_time(e))
ts.sort(); ms = ts[len(ts) // 2]
print(json.dumps({"copy_bytes": 2 * x.numel(), "median_ms": ms, "gb_per_s": 2 * x.numel() / ms / 1e6}))
EOF
}

# One `reprise bench --device cuda` run: SECONDS (its time limit), NAME (it
# writes $WORK/bench-NAME.json and .log and prints the JSON), TYPE (the
# model), then bench's options. Environment prefixes (REPRISE_CUDA_*=...)
# pass through to it.
rbench() {
  local secs=$1 name=$2 t=$3
  shift 3
  timeout "$secs" "$BUILD/bin/reprise" bench --device cuda --model "$(model_path "$t")" --json "$@" \
    > "$WORK/bench-$name.json" 2> "$WORK/bench-$name.log" \
    || echo "bench $name failed or timed out (see bench-$name.log)"
  cat "$WORK/bench-$name.json" 2>/dev/null
}

# GPU time per op kind of model type $1 (REPRISE_CUDA_PROFILE=1): pp
# PROFILE_PP (512) + tg32, one rep; $2 names the run.
profile_type() {
  local pp=${PROFILE_PP:-512} name=${2:-$1-profile}
  say "reprise bench $1 pp$pp tg32, profiled ($name)"
  REPRISE_CUDA_PROFILE=1 rbench 240 "$name" "$1" --pp "$pp" --tg 32 --reps 1 > /dev/null
  grep "cuda profile" "$WORK/bench-$name.log" | head -24
}

# Nsight Compute on the kernels NSIGHT_KERNELS (a regex, default the
# matmuls and attention) of a pp NSIGHT_PP (512) + tg4 bench on TYPES (with
# MODEL_LAYERS=4 it takes a minute): speed of light, occupancy, warp stalls,
# memory; one CSV a type in $OUT. Needs ncu (the CUDA toolkit's) and access
# to the GPU's counters; says so when either is missing.
nsight() {
  local ncu
  ncu=$(command -v ncu || ls /usr/local/cuda/bin/ncu /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
  [ -n "$ncu" ] && [ -x "$ncu" ] || { say "nsight: no ncu on this machine"; return 1; }
  make_models
  local t
  for t in $TYPES; do
    say "ncu on $t pp${NSIGHT_PP:-512} (kernels ${NSIGHT_KERNELS:-MatMul|Attention|Gemv})"
    REPRISE_CUDA_GRAPHS=0 timeout "${NSIGHT_SECS:-400}" "$ncu" --target-processes all --clock-control none \
      -k "regex:${NSIGHT_KERNELS:-MatMul|Attention|Gemv}" --launch-skip "${NSIGHT_SKIP:-0}" \
      --launch-count "${NSIGHT_COUNT:-40}" --section SpeedOfLight --section Occupancy \
      --section LaunchStats --section WarpStateStats --section SchedulerStats \
      --section MemoryWorkloadAnalysis --section ComputeWorkloadAnalysis --csv --page details \
      "$BUILD/bin/reprise" bench --device cuda --model "$(model_path "$t")" \
      --pp "${NSIGHT_PP:-512}" --tg 4 --reps 1 --no-warmup ${NSIGHT_BATCH:+--batch "$NSIGHT_BATCH"} \
      > "$WORK/nsight-$t.csv" 2> "$WORK/nsight-$t.log"
    echo "ncu rc $? ($(wc -l < "$WORK/nsight-$t.csv") lines)"
    grep -iE "ERR_NVGPUCTRPERM|permission|error" "$WORK/nsight-$t.log" | head -5
    cp "$WORK/nsight-$t.csv" "$OUT/" 2>/dev/null
    python3 - "$WORK/nsight-$t.csv" <<'PY' || true
import csv, sys, collections
rows = list(csv.reader(open(sys.argv[1])))
hdr = next((i for i, r in enumerate(rows) if "Kernel Name" in r), None)
if hdr is None: sys.exit(0)
h = rows[hdr]; ki, mi, vi = h.index("Kernel Name"), h.index("Metric Name"), h.index("Metric Value")
want = ("Duration", "Compute (SM) Throughput", "Memory Throughput", "Achieved Occupancy",
        "Registers Per Thread", "Issue Slots Busy", "No Eligible")
agg = collections.defaultdict(lambda: collections.defaultdict(list))
for r in rows[hdr + 1:]:
    if len(r) > vi and r[mi] in want:
        try: agg[r[ki][:70]][r[mi]].append(float(r[vi].replace(",", "")))
        except ValueError: pass
for k, m in agg.items():
    print(k, {n: round(sum(v) / len(v), 1) for n, v in m.items()})
PY
  done
}

# Profiled pp PROFILE_PP + tg32 on TYPES, without and with OPTIN.
profile() {
  make_models
  local t
  for t in $TYPES; do
    profile_type "$t" "$t-profile${PROFILE_PP:-512}"
    (export $OPTIN; profile_type "$t" "$t-profile${PROFILE_PP:-512}-optin")
  done
}

# pp512 + tg128 on TYPES, then one profiled pp512 + tg32: a change's speed in
# a minute or two, when the device time is short.
quick() {
  make_models
  local t
  for t in $TYPES; do
    say "reprise bench $t pp512 tg128"
    rbench 150 "$t-pp512" "$t" --pp 512 --tg 128 --reps "$REPS"
    profile_type "$t"
  done
  results > /dev/null
}

# The opt-in list's speed in a few minutes: pp512 + tg128 on TYPES and
# pp8192 + tg32 on LONG_TYPES, each without and with OPTIN.
optbench() {
  make_models
  local t
  for t in $TYPES; do
    say "reprise bench $t pp512 tg128"
    rbench 150 "$t-pp512" "$t" --pp 512 --tg 128 --reps "$REPS"
    say "reprise bench $t pp512 tg128 with the opt-in paths ($OPTIN)"
    (export $OPTIN; rbench 150 "$t-optin" "$t" --pp 512 --tg 128 --reps "$REPS")
  done
  for t in $LONG_TYPES; do
    say "reprise bench $t pp8192 tg32"
    rbench 150 "$t-pp8192" "$t" --pp 8192 --tg 32 --reps "$REPS"
    say "reprise bench $t pp8192 tg32 with the opt-in paths"
    (export $OPTIN; rbench 150 "$t-pp8192-optin" "$t" --pp 8192 --tg 32 --reps "$REPS")
  done
  results > /dev/null
}

bench() {
  make_models
  bandwidth
  for t in $TYPES; do
    for pp in 512 8192; do
      # pp8192 only for LONG_TYPES; its tg32 is decode at an 8k context.
      [ "$pp" = 8192 ] && ! [[ " $LONG_TYPES " == *" $t "* ]] && continue
      local tg=128; [ "$pp" = 8192 ] && tg=32
      say "reprise bench $t pp$pp tg$tg"
      rbench 150 "$t-pp$pp" "$t" --pp "$pp" --tg "$tg" --reps "$REPS"
      results > /dev/null
    done
  done
  # The opt-in paths (OPTIN) against the defaults above, then the paths
  # validated on 2026-12-06 each turned off alone (what each default gives).
  local off on
  for t in $TYPES; do
    say "reprise bench $t pp512 tg128 with the opt-in paths ($OPTIN)"
    (export $OPTIN; rbench 150 "$t-optin" "$t" --pp 512 --tg 128 --reps "$REPS")
    off=REPRISE_CUDA_ATTN_MMA=0
    case $t in
      q8_0|q4_0) off="$off REPRISE_CUDA_MMA_PIPE32=0" ;;
      f16) off="$off REPRISE_CUDA_HALF_MULTI=0" ;;
    esac
    for on in $off; do
      say "reprise bench $t pp512 tg128 with $on"
      (export "$on"; rbench 150 "$t-${on%%=*}-off" "$t" --pp 512 --tg 128 --reps "$REPS")
    done
  done
  for t in $LONG_TYPES; do
    say "reprise bench $t pp8192 tg32 with the opt-in paths"
    (export $OPTIN; rbench 150 "$t-pp8192-optin" "$t" --pp 8192 --tg 32 --reps "$REPS")
    say "reprise bench $t pp8192 tg32 with the f32 attention order (REPRISE_CUDA_ATTN_MMA=0)"
    REPRISE_CUDA_ATTN_MMA=0 rbench 150 "$t-pp8192-attnf32" "$t" --pp 8192 --tg 32 --reps "$REPS"
  done
  # Decode without CUDA graphs (REPRISE_CUDA_GRAPHS=0), to measure them.
  for t in $TYPES; do
    say "reprise bench $t tg128 without CUDA graphs"
    REPRISE_CUDA_GRAPHS=0 rbench 150 "$t-nographs" "$t" --pp 512 --tg 128 --reps "$REPS"
  done
  # Quantized decode with one fast path off (OFFS, default ATTN_LAST_MERGES;
  # measured before: GEMV_STAGED FUSE PDL): the warp-per-row GEMV
  # (GEMV_STAGED), a separate quantize kernel before each matmul (FUSE), no
  # programmatic dependent launch (PDL), decode attention's chunk states merged
  # by a kernel of their own (ATTN_LAST_MERGES).
  local sw t
  for sw in "GEMV_STAGED:nostaged:with the warp-per-row GEMV" \
            "FUSE:nofuse:without the fused quantization" \
            "PDL:nopdl:without programmatic dependent launch" \
            "ATTN_LAST_MERGES:mergekernel:with a separate attention merge kernel"; do
    local var=${sw%%:*} rest=${sw#*:}
    [[ " ${OFFS:-ATTN_LAST_MERGES} " == *" $var "* ]] || continue
    for t in $TYPES; do
      case $t in f16|f32|bf16) continue ;; esac
      say "reprise bench $t tg128 ${rest#*:}"
      (export "REPRISE_CUDA_$var=0"; rbench 150 "$t-${rest%%:*}" "$t" --pp 512 --tg 128 --reps "$REPS")
    done
  done
  for t in $TYPES; do profile_type "$t"; done
  # The quantized prefill without the tensor cores (the GEMV kernel), to
  # measure what the MMA path buys.
  for t in $TYPES; do
    case $t in f16|f32|bf16) continue ;; esac
    [ "${NOMMA:-1}" = 0 ] && continue
    say "reprise bench $t pp512 without MMA"
    REPRISE_CUDA_MMA=0 rbench 150 "$t-pp512-nomma" "$t" --pp 512 --tg 0 --reps "$REPS"
  done
  results
}

sweep() {
  local t=${SWEEP_TYPE:-q4_k}
  TYPES=$t make_models
  [ -f "$WORK/bandwidth.json" ] || bandwidth
  for b in ${SWEEP:-1 2 4 8 16 32 64}; do
    say "reprise bench $t, $b streams"
    rbench 240 "$t-batch$b" "$t" --pp "${SWEEP_PP:-512}" --tg 64 --reps 1 --batch "$b"
    results > /dev/null
  done
  results
}

# Decode deep in a context: tg32 after DEPTH (32768) tokens, reprise
# (pp DEPTH then tg32 in one session) and llama-bench -d DEPTH, LONG_TYPES.
depth() {
  local d=${DEPTH:-32768}
  TYPES="$LONG_TYPES" make_models
  for t in $LONG_TYPES; do
    say "reprise bench $t pp$d tg32 (decode at a ${d}-token context)"
    rbench 240 "$t-depth$d" "$t" --pp "$d" --tg 32 --reps 1
    say "reprise bench $t pp$d tg32 with the opt-in paths ($OPTIN)"
    (export $OPTIN; rbench 240 "$t-depth$d-optin" "$t" --pp "$d" --tg 32 --reps 1)
  done
  [ "${DEPTH_PEER:-1}" = 0 ] && { results > /dev/null; return 0; }
  await_peer || return 1
  for t in $LONG_TYPES; do
    say "llama-bench $t tg32 at depth $d"
    timeout 240 "$PEER_BUILD/bin/llama-bench" -m "$(model_path "$t")" -p 0 -n 32 -d "$d" \
      -fa 1 -r 2 -o json > "$WORK/peer-$t-depth$d.json" 2> "$WORK/peer-$t-depth$d.log" \
      || tail -5 "$WORK/peer-$t-depth$d.log"
  done
  results > /dev/null
}

PEER_BUILD=/tmp/llama-build
build_peer() {
  local src=.gpu/llama.cpp pb=$PEER_BUILD
  [ -x "$pb/bin/llama-bench" ] && [ -x "$pb/bin/llama-server" ] && return 0
  cmake -S "$src" -B "$pb" -G Ninja -DCMAKE_BUILD_TYPE=Release -DGGML_CUDA=ON \
    -DCMAKE_CUDA_ARCHITECTURES=90 -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF \
    -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=ON -DLLAMA_USE_PREBUILT_UI=OFF \
    -DLLAMA_BUILD_UI=OFF > "$WORK/peer-configure.log" 2>&1 || { tail -20 "$WORK/peer-configure.log"; return 1; }
  cmake --build "$pb" -j "$(nproc)" --target llama-bench llama-server > "$WORK/peer-build.log" 2>&1 \
    || { tail -20 "$WORK/peer-build.log"; return 1; }
}

# Starts the peer's build in the background (it takes minutes; the GPU stages
# run meanwhile, so their timings share the CPU with a compiler: GPU-bound).
peerbuild() {
  say "building llama.cpp (CUDA, sm_90) in the background"
  ( build_peer; echo $? > "$WORK/peer-build.rc" ) &
}

# The peer's binaries: waits for the background build, or builds them now.
await_peer() {
  if [ -e "$WORK/peer-build.rc" ] || pgrep -f "cmake --build $PEER_BUILD" > /dev/null; then
    say "waiting for the background llama.cpp build"
    while [ ! -e "$WORK/peer-build.rc" ]; do sleep 2; done
  else
    say "build llama.cpp (CUDA, sm_90)"
    build_peer
  fi
}

peer() {
  make_models
  await_peer || return 1
  local pb=$PEER_BUILD
  [ -x "$pb/bin/llama-bench" ] || { say "llama.cpp build failed"; tail -20 "$WORK/peer-build.log"; return 1; }
  for t in $TYPES; do
    say "llama-bench $t"
    "$pb/bin/llama-bench" -m "$(model_path "$t")" -p 512,8192 -n 128 -fa 1 \
      -r "$PEER_REPS" -o json > "$WORK/peer-$t.json" 2> "$WORK/peer-$t.log" || tail -5 "$WORK/peer-$t.log"
    results > /dev/null
  done
  results
}

# The agent workload (issue 17, bench/agent_bench.py): AGENT_CONC concurrent
# conversations (a shared AGENT_SYSTEM-token system prompt, turns adding
# 200-2000 tokens and generating 100-500, up to AGENT_HISTORY tokens or
# AGENT_TURNS turns) against reprise serve --device cuda, then against
# llama-server (CUDA, -np = concurrency, -kvu, --cache-ram) when the peer is built;
# a fresh server per run, the same requests for both. AGENT_SERVERS (default
# "reprise llama-server") picks which run, e.g. the peer alone at 32
# conversations (~4 min) in a call of its own.
source scripts/serve_lib.sh  # wait_http, bench_server
agent() {
  local t=${AGENT_TYPE:-q4_k} hist=${AGENT_HISTORY:-16384} turns=${AGENT_TURNS:-8}
  local sys=${AGENT_SYSTEM:-7000} f=$(model_path "${AGENT_TYPE:-q4_k}")
  TYPES=$t make_models
  local servers=${AGENT_SERVERS:-"reprise llama-server"}
  if [[ " $servers " == *" llama-server "* ]]; then  # the peer only when it runs
    await_peer || say "no llama-server: reprise only"
  fi
  for c in ${AGENT_CONC:-1 8 32}; do
    local common="--concurrency $c --system-tokens $sys --max-history $hist --turns $turns --id-max 30000 ${AGENT_BENCH_ARGS:-}"
    if [[ " $servers " == *" reprise "* ]]; then
      local variants=${AGENT_VARIANTS:-""} va
      IFS=';' read -r -a vlist <<< "${variants:-;}"
      [ ${#vlist[@]} -eq 0 ] && vlist=("")
      for va in "${vlist[@]}"; do
        local extra=() tag=$c label=reprise
        read -r -a extra <<< "$va"
        if [ ${#extra[@]} -gt 0 ]; then
          local vt=${va//--/}; vt=${vt// /-}
          tag=$c-$vt; label=reprise-$vt
        fi
        say "agent workload: reprise $va, $c conversations ($t, history <= $hist)"
        "$BUILD/bin/reprise" serve --device cuda --model "$f" --port 18090 --parallel "$c" \
          --ctx-size $((hist + 1024)) --prompt-cache-size $((2 * c + 2)) "${extra[@]}" \
          > "$WORK/agent-reprise-$tag.log" 2>&1 &
        bench_server "$label" 18090 $! "$WORK/agent-reprise-$tag.log" $common --metrics \
          --json "$WORK/agent-reprise-$tag.json" > >(tee -a "$WORK/agent.txt" "$OUT/agent.txt")
      done
    fi
    [[ " $servers " == *" llama-server "* ]] || continue
    [ -x "$PEER_BUILD/bin/llama-server" ] || continue
    # llama-server allocates -c tokens of F16 K/V up front (128 KiB a token
    # for this shape): at most what the GPU holds beside the weights (6 GiB
    # spare), one unified pool its slots share (-kvu; idle slots go to
    # --cache-ram), so 32 long conversations neither run out of memory at
    # start nor get a fixed per-slot cut.
    local free_mib pc
    free_mib=$(nvidia-smi --query-gpu=memory.free --format=csv,noheader,nounits | head -1)
    pc=$(( (free_mib * 1048576 - $(stat -c %s "$f") - (6 << 30)) / 131072 ))
    [ "$pc" -gt $((c * (hist + 1024))) ] && pc=$((c * (hist + 1024)))
    say "agent workload: llama-server, $c conversations (-c $pc, unified)"
    "$PEER_BUILD/bin/llama-server" -m "$f" -ngl 99 -fa on -np "$c" -kvu -c "$pc" \
      --cache-ram 16384 --port 18091 > "$WORK/agent-peer-$c.log" 2>&1 &
    bench_server llama-server 18091 $! "$WORK/agent-peer-$c.log" $common \
      --json "$WORK/agent-peer-$c.json" > >(tee -a "$WORK/agent.txt" "$OUT/agent.txt")
  done
  results > /dev/null
}

# One long conversation (issue 17): cold prefill of LONG_HISTORY tokens, then
# follow-ups adding 500 tokens from the GPU tier and from the host tier.
longctx() {
  local t=${LONG_TYPE:-q4_k} hist=${LONG_HISTORY:-120000}
  local f; f=$(model_path "$t")
  TYPES=$t make_models
  say "long context: reprise, $hist-token history ($t)"
  "$BUILD/bin/reprise" serve --device cuda --model "$f" --port 18092 --parallel 1 \
    --ctx-size $((hist + 4096)) --prompt-cache-size 1 --prompt-cache-host-bytes 40G \
    > "$WORK/longctx-reprise.log" 2>&1 &
  local pid=$!
  if wait_http 18092 "$pid"; then
    python3 bench/long_context.py --port 18092 --history "$hist" --new 500 --rounds 2 \
      --json "$WORK/longctx-reprise.json" | tee -a "$WORK/longctx.txt" "$OUT/longctx.txt"
  else
    say "reprise did not come up"; tail -5 "$WORK/longctx-reprise.log"
  fi
  kill -TERM "$pid" 2> /dev/null
  wait "$pid"
}

# The latest default flips, each against its =0 in one call, on the Q4_K
# file unless said: decode at DEPTH (32768) with and without ATTN_QREGS
# (the decode chunk kernel with the queries in registers); pp512 + tg128 on
# FLIP_TYPES ("q4_0 q8_0") with and without GEMV_SPLIT (the staged GEMV
# split over K, default for those types); 16 streams with and without
# GEMV_WIDE (16-token decode batches on the GEMV). Each pair runs the
# default first; the figures go to gpu_results.json. A path written without
# a GPU gets its pair here until it is decided: F16 pp512 and pp8192 with
# HALF_PREFILL_SMEM=0 (the default since the eleventh run off) and with
# MULTI=1 added (the shared launch, totals in registers); Q4_K at 24 and 32
# streams and F16 at 32 with MMA_SKIP_TILES=1 (a decode batch smaller than
# a tensor-core tile computes only its tokens' column tiles).
# Q8_0 / Q4_0's fused sub-block term (a2d6c51) has no switch: prefill and
# decode against the earlier runs' figures and the peer.
q32() {
  local t
  TYPES="q8_0 q4_0" make_models
  for t in q8_0 q4_0; do
    say "reprise bench $t pp512 tg128 and pp8192"
    rbench 150 "$t-pp512" "$t" --pp 512 --tg 128 --reps "$REPS"
    rbench 150 "$t-pp8192" "$t" --pp 8192 --tg 8 --reps 2
  done
  results > /dev/null
}

flips() {
  local t v
  TYPES="f16 ${FLIP_TYPES:-q8_0 q4_0 q4_k}" make_models
  for v in default REPRISE_CUDA_HALF_PREFILL_SMEM=0 \
           "REPRISE_CUDA_HALF_PREFILL_SMEM=0 REPRISE_CUDA_HALF_PREFILL_MULTI=1"; do
    say "reprise bench f16 pp512 tg32 and pp8192, $v"
    (if [ "$v" != default ]; then export $v; fi
     rbench 150 "f16-pp512-${v//[ =]/_}" f16 --pp 512 --tg 32 --reps "$REPS"
     rbench 150 "f16-pp8192-${v//[ =]/_}" f16 --pp 8192 --tg 8 --reps 2)
  done
  q32
  for v in "q4_k 24" "q4_k 32" "q4_0 32" "f16 32"; do
    set -- $v
    say "reprise bench $1, $2 streams, defaults, then REPRISE_CUDA_MMA_SKIP_TILES=1"
    rbench 240 "$1-batch$2" "$1" --pp 512 --tg 64 --reps 1 --batch "$2"
    (export REPRISE_CUDA_MMA_SKIP_TILES=1
     rbench 240 "$1-batch$2-skip" "$1" --pp 512 --tg 64 --reps 1 --batch "$2")
  done
  results > /dev/null
}

# gpu_results.json: every figure of the bench-*.json / peer-*.json files.
results() {
  python3 - "$WORK" <<'EOF'
import glob, json, os, sys
out = sys.argv[1]
gpu_txt = os.path.join(out, "gpu.txt")
res = {"gpu": open(gpu_txt).read().strip() if os.path.exists(gpu_txt) else None}
bw = os.path.join(out, "bandwidth.json")
if os.path.exists(bw): res["copy_bandwidth"] = json.load(open(bw))
res["reprise"] = {}
for f in sorted(glob.glob(os.path.join(out, "bench-*.json"))):
    try: res["reprise"][os.path.basename(f)[6:-5]] = json.load(open(f))
    except Exception as e: res["reprise"][os.path.basename(f)] = {"error": str(e)}
res["agent"] = {}
for f in sorted(glob.glob(os.path.join(out, "agent-*.json"))):
    try: res["agent"][os.path.basename(f)[6:-5]] = json.load(open(f))["summary"]
    except Exception as e: res["agent"][os.path.basename(f)] = {"error": str(e)}
res["longctx"] = {}
for f in sorted(glob.glob(os.path.join(out, "longctx-*.json"))):
    try: res["longctx"][os.path.basename(f)[8:-5]] = json.load(open(f))["summary"]
    except Exception as e: res["longctx"][os.path.basename(f)] = {"error": str(e)}
res["peer"] = {}
for f in sorted(glob.glob(os.path.join(out, "peer-*.json"))):
    try: res["peer"][os.path.basename(f)[5:-5]] = json.load(open(f))
    except Exception as e: res["peer"][os.path.basename(f)] = {"error": str(e)}
gbps = res.get("copy_bandwidth", {}).get("gb_per_s")
for k, v in res["reprise"].items():
    if isinstance(v, dict) and v.get("tg_tok_per_s") and gbps:
        if v.get("batch", 1) > 1:  # B streams: the weights once a step plus every stream's KV
            v["tg_fraction_of_roofline"] = (v["tg_weight_gb_per_s"] + v["tg_kv_gb_per_s"]) / gbps
            continue
        v["tg_roofline_tok_per_s"] = gbps * 1e9 / v["weight_bytes"]
        v["tg_fraction_of_roofline"] = v["tg_tok_per_s"] / v["tg_roofline_tok_per_s"]
json.dump(res, open(os.path.join(out, "gpu_results.json"), "w"), indent=1)
if os.environ.get("OUT"):
    json.dump(res, open(os.path.join(os.environ["OUT"], "gpu_results.json"), "w"), indent=1)
print(json.dumps(res)[:3000])
EOF
}

# The opt-in kernels alone, in a minute or two: the tests that compare their
# bits with the default kernels in-process, then the golden, determinism and
# engine tests with every OPTIN path on.
optin() {
  say "gpu_tests: the opt-in kernels against the defaults (in-process)"
  "$BUILD/bin/gpu_tests" --gtest_brief=1 --gtest_filter='GpuAttention*:GpuMatMulPipe*' \
    > "$WORK/gpu_tests_optin_bits.log" 2>&1
  local r=$?
  grep -E "^\[  (PASSED|FAILED) |Failure|differ" "$WORK/gpu_tests_optin_bits.log" | head -30
  tail -3 "$WORK/gpu_tests_optin_bits.log"
  # The fallback paths (same bits as HostDot): the warp-per-row GEMV with the
  # unpipelined MMA kernel, then prefill through the GEMV.
  say "gpu_tests: the matmuls on their fallback paths"
  REPRISE_CUDA_GEMV_STAGED=0 REPRISE_CUDA_MMA_PIPE=0 "$BUILD/bin/gpu_tests" --gtest_brief=1 \
    --gtest_filter='*GpuMatMul*' > "$WORK/gpu_tests_fallback.log" 2>&1 || r=1
  REPRISE_CUDA_MMA=0 "$BUILD/bin/gpu_tests" --gtest_brief=1 \
    --gtest_filter='*GpuMatMul.*' >> "$WORK/gpu_tests_fallback.log" 2>&1 || r=1
  grep -E "^\[  (PASSED|FAILED) |Failure" "$WORK/gpu_tests_fallback.log" | head -30
  say "gpu_tests with $OPTIN: goldens, determinism, engine, matmuls"
  env $OPTIN "$BUILD/bin/gpu_tests" --gtest_brief=1 \
    --gtest_filter='*GpuTransformers*:GpuStories*:*GpuDeterminism*:GpuEngine*:*GpuWeightTypes*:*GpuMatMul.*' \
    > "$WORK/gpu_tests_optin_subset.log" 2>&1 || r=1
  grep -E "^\[  (PASSED|FAILED) |Failure" "$WORK/gpu_tests_optin_subset.log" | head -30
  tail -3 "$WORK/gpu_tests_optin_subset.log"
  return $r
}

rc=0
for s in $STAGES; do
  $s || { rc=1; say "stage $s failed"; [ "$s" = build ] && break; }
done
for f in gpu_tests.log gpu_results.json; do [ -f "$WORK/$f" ] && cp "$WORK/$f" "$OUT/"; done
tar -czf "$OUT/gpu_logs.tar.gz" -C "$WORK" . 2>/dev/null
say "done (rc $rc); gpu_check.log, gpu_tests.log, gpu_results.json, gpu_logs.tar.gz in \$OUT"
exit $rc
