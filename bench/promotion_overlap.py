#!/usr/bin/env python3
"""Does a read-back from the disk tier stall the other streams? (issue 14)

Against a reprise server started with a disk tier and --prompt-cache-size 1
(so a conversation leaves RAM as soon as another one is cached), each round:
  1. a long history H (--history token ids) is prefilled (1 output token);
  2. another short prompt pushes H out of RAM: its KV is demoted to disk;
  3. a stream S (--stream-tokens output tokens) starts and decodes;
  4. once S has --warmup tokens, a follow-up F = H + --new tokens arrives:
     its history is read back from disk while S keeps decoding.
Reported per round: F's TTFT and how many of its prompt tokens came from the
cache, and S's inter-token gaps: the median before F, the longest while F
waits for its first token. With the promotion read on the engine thread
(REPRISE_OVERLAP_PROMOTIONS=0), S stalls for the whole read; overlapped, S's
longest gap is F's prefill steps only.

Only the Python standard library.

  python3 bench/promotion_overlap.py --port 8080 --history 8000 --rounds 5
"""
import argparse
import http.client
import json
import random
import statistics
import sys
import threading
import time


def post(host, port, body, timeout, on_token=None):
    """A streamed /v1/completions; calls on_token(t) per text chunk; returns
    (ttft_s, usage)."""
    body = dict(body, stream=True, stream_options={"include_usage": True},
                temperature=0, ignore_eos=True)
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    t0 = time.perf_counter()
    ttft, usage, done = None, None, False
    try:
        conn.request("POST", "/v1/completions", json.dumps(body),
                     {"Content-Type": "application/json"})
        resp = conn.getresponse()
        if resp.status != 200:
            raise RuntimeError(f"HTTP {resp.status}: {resp.read(300)!r}")
        while True:
            line = resp.readline()
            if not line:
                break
            line = line.strip()
            if not line.startswith(b"data:"):
                continue
            data = line[5:].strip()
            if data == b"[DONE]":
                done = True
                break
            ev = json.loads(data)
            if "error" in ev:
                raise RuntimeError(f"error event: {ev['error']}")
            ch = ev.get("choices") or []
            if ch and ch[0].get("text"):
                now = time.perf_counter()
                if ttft is None:
                    ttft = now - t0
                if on_token:
                    on_token(now)
            if ev.get("usage"):
                usage = ev["usage"]
    finally:
        conn.close()
    if not done:
        raise RuntimeError("stream ended without [DONE]")
    return ttft, usage or {}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8080)
    ap.add_argument("--label", default="reprise")
    ap.add_argument("--history", type=int, default=8000)
    ap.add_argument("--new", type=int, default=64)
    ap.add_argument("--stream-tokens", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--id-min", type=int, default=300)
    ap.add_argument("--id-max", type=int, default=30000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=900)
    ap.add_argument("--json", help="write every round here")
    args = ap.parse_args()

    rows = []
    for r in range(args.rounds):
        rng = random.Random(args.seed * 7919 + r)
        ids = lambda n: [rng.randrange(args.id_min, args.id_max) for _ in range(n)]
        history = ids(args.history)
        post(args.host, args.port, {"prompt": history, "max_tokens": 1}, args.timeout)
        post(args.host, args.port, {"prompt": ids(16), "max_tokens": 1}, args.timeout)

        times = []
        cv = threading.Condition()
        err = []

        def on_token(t):
            with cv:
                times.append(t)
                cv.notify_all()

        def stream():
            try:
                post(args.host, args.port, {"prompt": ids(16), "max_tokens": args.stream_tokens},
                     args.timeout, on_token)
            except Exception as e:  # reported below
                err.append(str(e))
                with cv:
                    cv.notify_all()

        th = threading.Thread(target=stream)
        th.start()
        with cv:
            cv.wait_for(lambda: len(times) >= args.warmup or err, timeout=args.timeout)
        t_send = time.perf_counter()
        ttft, usage = post(args.host, args.port,
                           {"prompt": history + ids(args.new), "max_tokens": 1}, args.timeout)
        t_first = t_send + ttft
        th.join()
        if err:
            print(f"round {r}: the stream failed: {err[0]}", file=sys.stderr)
            return 1
        gaps_before = [b - a for a, b in zip(times, times[1:]) if b <= t_send]
        # Gaps that overlap F's wait for its first token.
        gaps_during = [b - a for a, b in zip(times, times[1:]) if b > t_send and a < t_first]
        details = usage.get("prompt_tokens_details") or {}
        row = {
            "round": r, "follow_up_ttft_ms": ttft * 1000,
            "prompt_tokens": usage.get("prompt_tokens"),
            "cached_tokens": details.get("cached_tokens"),
            "stream_gap_p50_ms": statistics.median(gaps_before) * 1000 if gaps_before else None,
            "stream_max_gap_during_ms": max(gaps_during) * 1000 if gaps_during else None,
            "stream_tokens_during": len(gaps_during),
        }
        rows.append(row)
        print(f"{args.label} round {r}: follow-up TTFT {row['follow_up_ttft_ms']:.0f} ms "
              f"(cached {row['cached_tokens']} of {row['prompt_tokens']}); stream gap p50 "
              f"{row['stream_gap_p50_ms'] or 0:.0f} ms, longest while it waited "
              f"{row['stream_max_gap_during_ms'] or 0:.0f} ms ({row['stream_tokens_during']} "
              f"tokens meanwhile)", flush=True)

    med = lambda k: statistics.median([x[k] for x in rows if x[k] is not None] or [0])
    summary = {"label": args.label, "rounds": len(rows), "history": args.history,
               "follow_up_ttft_ms_p50": med("follow_up_ttft_ms"),
               "stream_gap_p50_ms": med("stream_gap_p50_ms"),
               "stream_max_gap_during_ms_p50": med("stream_max_gap_during_ms")}
    print(f"{args.label}: median over {len(rows)} rounds: follow-up TTFT "
          f"{summary['follow_up_ttft_ms_p50']:.0f} ms, stream gap p50 "
          f"{summary['stream_gap_p50_ms']:.0f} ms, longest gap while it waited "
          f"{summary['stream_max_gap_during_ms_p50']:.0f} ms")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"summary": summary, "rounds": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
