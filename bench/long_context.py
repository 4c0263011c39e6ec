#!/usr/bin/env python3
"""One long conversation's follow-up: from the pool, from the host tier, cold
(issue 17: "a single conversation at 120k tokens of history, a follow-up
adding 500 tokens").

Against a reprise server started with --prompt-cache-size 1 and a host tier
(--prompt-cache-host-bytes) large enough for the history:
  1. cold:  the history (--history token ids) is prefilled from nothing;
  2. pool:  history + --new tokens: the history is in the KV pool (the GPU
            tier on a GPU) and only the new tokens are computed;
  3. a short unrelated prompt takes the one cache entry: the conversation
     is demoted to the tier below the pool;
  4. lower: history + --new + --new more tokens: read back from the host tier
            (or the disk tier, whichever holds it), then the new tokens.
Each step is one streamed /v1/completions request with 1 output token; its
TTFT is reported with the server's cached-token counts. --rounds repeats 2-4
(each round extends the conversation) and reports medians.

Only the Python standard library.

  python3 bench/long_context.py --port 8080 --history 120000 --new 500
"""
import argparse
import json
import random
import statistics
import sys

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from promotion_overlap import post  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8080)
    ap.add_argument("--label", default="reprise")
    ap.add_argument("--history", type=int, default=120000)
    ap.add_argument("--new", type=int, default=500)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--id-min", type=int, default=300)
    ap.add_argument("--id-max", type=int, default=30000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=3600)
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args()

    rng = random.Random(args.seed)
    ids = lambda n: [rng.randrange(args.id_min, args.id_max) for _ in range(n)]

    def ask(prompt, what):
        ttft, usage = post(args.host, args.port, {"prompt": prompt, "max_tokens": 1}, args.timeout)
        d = usage.get("prompt_tokens_details") or {}
        row = {"step": what, "prompt_tokens": usage.get("prompt_tokens", len(prompt)),
               "ttft_ms": ttft * 1000, "cached_tokens": d.get("cached_tokens"),
               "from_host": d.get("cached_tokens_from_host"),
               "from_disk": d.get("cached_tokens_from_disk")}
        print(f"{args.label} {what}: TTFT {row['ttft_ms']:.0f} ms, prompt {row['prompt_tokens']}, "
              f"cached {row['cached_tokens']} (host {row['from_host']}, disk {row['from_disk']})",
              flush=True)
        return row

    conversation = ids(args.history)
    rows = [ask(conversation, "cold")]
    for r in range(args.rounds):
        conversation = conversation + ids(args.new)
        rows.append(ask(conversation, "pool"))
        ask(ids(64), "push")  # takes the one cache entry: the conversation is demoted
        conversation = conversation + ids(args.new)
        rows.append(ask(conversation, "lower"))

    med = lambda step: statistics.median([x["ttft_ms"] for x in rows if x["step"] == step])
    cold, pool, lower = med("cold"), med("pool"), med("lower")
    summary = {"label": args.label, "history": args.history, "new": args.new,
               "cold_ttft_ms": cold, "pool_ttft_ms_p50": pool, "lower_ttft_ms_p50": lower,
               "cold_over_pool": cold / pool if pool else None,
               "cold_over_lower": cold / lower if lower else None}
    print(f"{args.label}: {args.history}-token history, +{args.new} tokens: cold {cold:.0f} ms, "
          f"from the pool {pool:.0f} ms ({summary['cold_over_pool']:.1f}x), from the tier below "
          f"{lower:.0f} ms ({summary['cold_over_lower']:.1f}x)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"summary": summary, "requests": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
