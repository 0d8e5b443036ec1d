"""The probe scorer's prefix cache on beam-like scoring: cached vs uncached, side by side.

    python bench/probe_cache.py                      # 4 problems x 8 samples, depths 1..6, ~3 min
    python bench/probe_cache.py --problems 8 --samples 8 --depth 8 --probe rewards/defaults/probe
    python bench/probe_cache.py --whole --problems 8  # best-of-n: each problem's samples whole, one call

Candidates: the stored samples of the held-out GSM8K pool (the 0.5B policy's own steps).
Every round d scores the first d steps of every sample that has them, as a step-level
search scores its beams after each step. --whole: one round of every sample whole, as
best-of-n scoring and feature extraction (`cli.py train probe-features`) read them; there
the cache serves each problem's prompt to its other samples. The same rounds go through a probe scorer with
the prefix cache (`kv_cache_tokens`, the default) and one without (0), in one process,
one after the other. Prints tokens run, seconds, the ratios and the largest difference
between the two scorers' step scores; a JSON summary on the last line.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def rounds(pool: str, problems: int, samples: int, depth: int,
           whole: bool = False) -> list[tuple[list[str], list[list[str]]]]:
    from policies.pool import read_pool

    rows = read_pool(pool)[:problems]
    if whole:
        got = [(r["problem"], s["steps"]) for r in rows for s in r["samples"][:samples] if s.get("steps")]
        return [([p for p, _ in got], [s for _, s in got])]
    out = []
    for d in range(1, depth + 1):
        probs, sols = [], []
        for r in rows:
            for s in r["samples"][:samples]:
                if len(s["steps"]) >= d:
                    probs.append(r["problem"])
                    sols.append(s["steps"][:d])
        if sols:
            out.append((probs, sols))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pool", default="pools/gsm8k-heldout200-n16.jsonl.gz")
    ap.add_argument("--probe", default="rewards/defaults/probe-step")
    ap.add_argument("--problems", type=int, default=4)
    ap.add_argument("--samples", type=int, default=8)
    ap.add_argument("--depth", type=int, default=6)
    ap.add_argument("--whole", action="store_true", help="one round: every sample whole (best-of-n scoring)")
    args = ap.parse_args()
    for p in (args.pool, args.probe):
        if not Path(p).exists():
            raise SystemExit(f"probe_cache: {p} not found (the pool: docs/pools.md; the probe: `cli.py train probe`)")

    from rewards.probe import DEFAULT_KV_CACHE_TOKENS, ProbeScorer

    work = rounds(args.pool, args.problems, args.samples, args.depth, args.whole)
    res, scores = {}, {}
    for name, kv in (("uncached", 0), ("cached", DEFAULT_KV_CACHE_TOKENS)):
        sc = ProbeScorer(args.probe, kv_cache_tokens=kv)
        t0 = time.perf_counter()
        scores[name] = [sc.score(p, s) for p, s in work]
        dt = time.perf_counter() - t0
        res[name] = {"seconds": round(dt, 2), "tokens_run": sc.features.tokens_run,
                     "kv_reused_tokens": sc.features.kv_reused_tokens, "candidates": sum(len(s) for _, s in work)}
        print(f"{name:9s} {dt:7.1f} s  tokens run {sc.features.tokens_run:7d}  reused {sc.features.kv_reused_tokens:7d}",
              flush=True)
    diffs = [abs(a - b) for ra, rb in zip(scores["uncached"], scores["cached"], strict=True)
             for ca, cb in zip(ra, rb, strict=True) for a, b in zip(ca, cb, strict=True)]
    res["speedup"] = round(res["uncached"]["seconds"] / res["cached"]["seconds"], 3)
    res["tokens_ratio"] = round(res["uncached"]["tokens_run"] / max(res["cached"]["tokens_run"], 1), 3)
    res["max_abs_score_diff"] = round(max(diffs), 5)
    res["setting"] = vars(args)
    print(f"cached vs uncached: {res['speedup']}x faster, {res['tokens_ratio']}x fewer tokens run, "
          f"largest step-score difference {res['max_abs_score_diff']}")
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
