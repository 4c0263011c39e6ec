#!/usr/bin/env python3
"""Agent workload benchmark (issue 17): many coding-agent conversations at
once against one OpenAI-compatible server (reprise or llama.cpp's
llama-server), the same workload for both.

Modelled on what OpenCode sends: every conversation opens with the same
system prompt + tool schemas (--system-tokens, ~7k), then turns that each add
--add-min..--add-max tokens (a user message or tool results) and generate
--gen-min..--gen-max tokens, until the history would pass --max-history or
--turns is reached. --concurrency conversations run at once, one thread each.

Requests are POST /v1/completions with the prompt as token ids (both servers
accept them), temperature 0 (--temperature / --top-p: what agents usually
send, e.g. 0.7 and 0.95; seeded per request), ignore_eos (so every reply has
its full length),
streamed; TTFT is the time to the first streamed text. A follow-up's prompt
is the previous prompt, then the reply's length in client-chosen token ids,
then the new tokens: the reply's own ids are not returned by the OpenAI API,
so a follow-up's new tokens are its added tokens plus the previous reply
(both servers pay the same). Token ids and lengths come from --seed, so two
runs (two servers) send byte-identical requests.

Reports, per run: requests, failures, first-turn and follow-up TTFT (p50,
p99), output tokens/s per stream (p50) and in total, the prompt tokens the
server reported as cached (reprise: usage.prompt_tokens_details.
cached_tokens; llama-server: timings.cache_n) over all follow-up prompt
tokens, and with --metrics the server's KV tier bytes (reprise /metrics).
Only the Python standard library: it runs on the GPU machine as is.

  python3 bench/agent_bench.py --port 8080 --label reprise --concurrency 8 \
      --system-tokens 7000 --max-history 32768 --turns 12 --json out.json
"""
import argparse
import http.client
import json
import random
import statistics
import sys
import threading
import time


def percentile(values, p):
    if not values:
        return None
    v = sorted(values)
    k = (len(v) - 1) * p / 100.0
    lo, hi = int(k), min(int(k) + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


SAMPLING = {"temperature": 0}  # set from --temperature / --top-p in main()


def stream_completion(host, port, prompt, max_tokens, timeout, on_token=None):
    """One streamed completion. Returns a dict (ttft_s, total_s, out_tokens,
    prompt_tokens, cached_tokens, usage: the server's usage object or {}) or
    raises RuntimeError with the reason. on_token(t), if given, is called with
    time.perf_counter() at every streamed text chunk."""
    body = json.dumps({
        "prompt": prompt, "max_tokens": max_tokens, **SAMPLING,
        "ignore_eos": True, "stream": True,
        "stream_options": {"include_usage": True}, "cache_prompt": True,
    })
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    t0 = time.perf_counter()
    try:
        conn.request("POST", "/v1/completions", body, {"Content-Type": "application/json"})
        resp = conn.getresponse()
        if resp.status != 200:
            raise RuntimeError(f"HTTP {resp.status}: {resp.read(300)!r}")
        ttft, chunks, usage, timings, done = None, 0, None, None, False
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
            choices = ev.get("choices") or []
            if choices and choices[0].get("text"):
                now = time.perf_counter()
                if ttft is None:
                    ttft = now - t0
                chunks += 1
                if on_token:
                    on_token(now)
            if ev.get("usage"):
                usage = ev["usage"]
            if ev.get("timings"):
                timings = ev["timings"]
        total = time.perf_counter() - t0
    finally:
        conn.close()
    if not done:
        raise RuntimeError("stream ended without [DONE]")
    if ttft is None:
        raise RuntimeError("no text streamed")
    out = (usage or {}).get("completion_tokens") or (timings or {}).get("predicted_n") or chunks
    ptoks = (usage or {}).get("prompt_tokens") or len(prompt)
    cached = None
    if usage and isinstance(usage.get("prompt_tokens_details"), dict):
        cached = usage["prompt_tokens_details"].get("cached_tokens")
    if cached is None and timings and "cache_n" in timings:
        cached = timings["cache_n"]
    return {"ttft_s": ttft, "total_s": total, "out_tokens": int(out),
            "prompt_tokens": int(ptoks), "cached_tokens": cached, "usage": usage or {}}


def conversation(idx, args, system, results, lock):
    rng = random.Random(args.seed * 1000003 + idx)
    ids = lambda n: [rng.randrange(args.id_min, args.id_max) for _ in range(n)]
    history = list(system)
    for turn in range(args.turns):
        add = rng.randint(args.add_min, args.add_max)
        gen = rng.randint(args.gen_min, args.gen_max)
        if turn > 0 and len(history) + add + gen > args.max_history:
            break
        prompt = history + ids(add)
        rec = {"conv": idx, "turn": turn, "prompt_len": len(prompt), "gen": gen}
        try:
            rec.update(stream_completion(args.host, args.port, prompt, gen, args.timeout))
        except Exception as e:  # recorded, the conversation stops
            rec["error"] = str(e)[:300]
            with lock:
                results.append(rec)
            return
        with lock:
            results.append(rec)
        history = prompt + ids(gen)


def server_metrics(host, port):
    try:
        conn = http.client.HTTPConnection(host, port, timeout=10)
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode(errors="replace")
        conn.close()
    except Exception:
        return {}
    keep = ("reprise_kv_tier_bytes", "reprise_gpu_memory_used_bytes", "reprise_preemptions_total")
    out = {}
    for line in text.splitlines():
        if line.startswith(keep):
            k, _, v = line.rpartition(" ")
            try:
                out[k] = float(v)
            except ValueError:
                pass
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8080)
    ap.add_argument("--label", default="server")
    ap.add_argument("--concurrency", type=int, default=1)
    ap.add_argument("--system-tokens", type=int, default=7000)
    ap.add_argument("--add-min", type=int, default=200)
    ap.add_argument("--add-max", type=int, default=2000)
    ap.add_argument("--gen-min", type=int, default=100)
    ap.add_argument("--gen-max", type=int, default=500)
    ap.add_argument("--max-history", type=int, default=32768)
    ap.add_argument("--turns", type=int, default=1000)
    ap.add_argument("--id-min", type=int, default=300, help="token ids drawn from [id-min, id-max)")
    ap.add_argument("--id-max", type=int, default=30000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=600)
    ap.add_argument("--temperature", type=float, default=0.0)
    ap.add_argument("--top-p", type=float, default=1.0)
    ap.add_argument("--metrics", action="store_true", help="read the server's /metrics at the end")
    ap.add_argument("--json", help="write the summary and every request here")
    args = ap.parse_args()
    if args.id_min >= args.id_max or args.add_min > args.add_max or args.gen_min > args.gen_max:
        sys.exit("error: a min is above its max")
    if args.temperature > 0:
        SAMPLING.update({"temperature": args.temperature, "top_p": args.top_p,
                         "seed": args.seed})

    system = [random.Random(args.seed).randrange(args.id_min, args.id_max)
              for _ in range(args.system_tokens)]
    results, lock = [], threading.Lock()
    threads = [threading.Thread(target=conversation, args=(i, args, system, results, lock))
               for i in range(args.concurrency)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0

    ok = [r for r in results if "error" not in r]
    failed = [r for r in results if "error" in r]
    first = [r["ttft_s"] * 1e3 for r in ok if r["turn"] == 0]
    follow = [r for r in ok if r["turn"] > 0]
    fttft = [r["ttft_s"] * 1e3 for r in follow]
    stream = [(r["out_tokens"] - 1) / (r["total_s"] - r["ttft_s"])
              for r in ok if r["out_tokens"] > 1 and r["total_s"] > r["ttft_s"]]
    cached = [r for r in follow if r.get("cached_tokens") is not None]
    hit = (sum(r["cached_tokens"] for r in cached) / max(1, sum(r["prompt_tokens"] for r in cached))
           if cached else None)
    summary = {
        "label": args.label, "concurrency": args.concurrency, "wall_s": wall,
        "requests": len(results), "failed": len(failed),
        "first_ttft_ms_p50": percentile(first, 50), "first_ttft_ms_p99": percentile(first, 99),
        "followup_ttft_ms_p50": percentile(fttft, 50), "followup_ttft_ms_p99": percentile(fttft, 99),
        "followups": len(follow),
        "stream_out_tok_s_p50": percentile(stream, 50),
        "total_out_tok_s": sum(r["out_tokens"] for r in ok) / wall if wall > 0 else None,
        "followup_cache_hit_rate": hit,
        "max_prompt_tokens": max((r["prompt_len"] for r in ok), default=0),
        "errors": sorted({r["error"] for r in failed})[:5],
    }
    if args.metrics:
        summary["server_metrics"] = server_metrics(args.host, args.port)
    fmt = lambda v, f="{:.0f}": "-" if v is None else f.format(v)
    print(f"{args.label} x{args.concurrency}: {len(results)} requests, {len(failed)} failed, "
          f"wall {wall:.1f} s | first TTFT p50 {fmt(summary['first_ttft_ms_p50'])} ms | "
          f"follow-up TTFT p50 {fmt(summary['followup_ttft_ms_p50'])} / p99 "
          f"{fmt(summary['followup_ttft_ms_p99'])} ms | stream {fmt(summary['stream_out_tok_s_p50'], '{:.1f}')} "
          f"tok/s | total {fmt(summary['total_out_tok_s'], '{:.1f}')} tok/s | follow-up cached "
          f"{fmt(None if hit is None else 100 * hit, '{:.1f}')}% | longest prompt "
          f"{summary['max_prompt_tokens']}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"summary": summary, "requests": sorted(results, key=lambda r: (r["conv"], r["turn"]))},
                      f, indent=1)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
