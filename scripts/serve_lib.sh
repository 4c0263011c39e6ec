# Shared by scripts that benchmark a server they start (sourced, not run).
#
# wait_http PORT PID: until http://127.0.0.1:PORT/health answers 200 (then 0),
#   the process PID exits or 300 s pass (then 1).
# bench_server LABEL PORT PID LOG ARGS...: waits for the server, runs
#   bench/agent_bench.py --port PORT --label LABEL ARGS... (its lines on
#   stdout), or says the server did not come up and shows LOG's tail; then
#   stops the server (SIGTERM) and waits for it.
wait_http() {
  for _ in $(seq 1500); do
    kill -0 "$2" 2> /dev/null || return 1
    python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$1/health', timeout=1)" \
      2> /dev/null && return 0
    sleep 0.2
  done
  return 1
}

bench_server() {
  local label=$1 port=$2 pid=$3 log=$4
  shift 4
  if wait_http "$port" "$pid"; then
    python3 bench/agent_bench.py --port "$port" --label "$label" "$@"
  else
    echo "$label did not come up (log: $log)"
    tail -5 "$log"
  fi
  kill -TERM "$pid" 2> /dev/null
  wait "$pid"
}
