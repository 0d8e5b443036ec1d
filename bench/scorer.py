"""PRM scoring throughput on CPU, and beam-extension scoring with vs without the caches.

    python bench/scorer.py                       # defaults below, ~2-4 min on 2 cores
    python bench/scorer.py --n 32 --reps 2 --beam-width 8 --threads 2

Candidates: GSM8K test reference solutions from policies/data/gsm8k_test.jsonl, one step
per line (the "#### x" line becomes "The answer is x."). Scorer: the default PRM
(`tts-prm` on the embedded SmolLM2-135M; untrained or not, the cost is the same).

1. Throughput: `scorer.score()` on n candidates (caches cleared before each rep) vs a
   bare forward pass of the same padded batches through the backbone (the transformer
   without any head) and through the full causal LM (backbone + LM head over all
   positions). Reports candidates/s, tokens/s and the ratio scorer / bare backbone.
2. Beam extension: each of `beam_width` candidates grows one step per round and all
   beams are re-scored every round (what a beam search does). With the caches, the
   step-score cache serves the old steps and the KV prefix cache runs only the new
   tokens; without them every round re-runs every prefix. Reports tokens run and time.
Prints a JSON summary on the last line.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def load_candidates(n: int) -> tuple[list[str], list[list[str]]]:
    problems, steps = [], []
    with open(ROOT / "policies" / "data" / "gsm8k_test.jsonl") as fh:
        for line in fh:
            r = json.loads(line)
            lines = [re.sub(r"<<[^>]*>>", "", x).strip() for x in r["answer"].split("\n") if x.strip()]
            if lines and lines[-1].startswith("####"):
                lines[-1] = f"The answer is {lines[-1][4:].strip()}."
            problems.append(r["question"])
            steps.append(lines)
            if len(problems) == n:
                break
    return problems, steps


def bare_forward(scorer, problems, steps, *, full_lm: bool) -> tuple[float, int]:
    """Same encodings, same batches, same padding as the scorer; no readout, no caches."""
    import torch

    from rewards.hf import _Item

    items = [_Item(i, scorer.encode(p, s), [], []) for i, (p, s) in enumerate(zip(problems, steps, strict=True))]
    t0 = time.perf_counter()
    tokens = 0
    for batch in scorer._batches(items, lambda it: len(it.enc.ids)):
        N = max(len(it.enc.ids) for it in batch)
        ids = torch.full((len(batch), N), scorer.pad_id, dtype=torch.long)
        attn = torch.zeros_like(ids)
        for b, it in enumerate(batch):
            ids[b, : len(it.enc.ids)] = torch.tensor(it.enc.ids)
            attn[b, : len(it.enc.ids)] = 1
        with torch.inference_mode():
            if full_lm:
                scorer.model(input_ids=ids, attention_mask=attn, use_cache=False)
            else:
                scorer.backbone(input_ids=ids, attention_mask=attn, use_cache=False)
        tokens += int(attn.sum())
    return time.perf_counter() - t0, tokens


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=32, help="candidates for the throughput test")
    ap.add_argument("--reps", type=int, default=2, help="repetitions (best time is kept)")
    ap.add_argument("--beam-width", type=int, default=8, help="beams in the extension test")
    ap.add_argument("--token-budget", type=int, default=8192)
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)

    import torch

    torch.set_num_threads(args.threads)
    from rewards import load_scorer

    scorer = load_scorer("prm", token_budget=args.token_budget)
    problems, steps = load_candidates(args.n)
    scorer.score(problems[:2], steps[:2])  # warm-up (thread pools, allocator)
    res: dict = {"n": args.n, "threads": args.threads, "token_budget": args.token_budget,
                 "scorer": scorer.describe()}

    best = {"scorer": 1e9, "backbone": 1e9, "full_lm": 1e9}
    tokens = 0
    for _ in range(args.reps):
        scorer.clear_cache()
        t0 = time.perf_counter()
        before = scorer.stats.tokens_scored
        scorer.score(problems, steps)
        best["scorer"] = min(best["scorer"], time.perf_counter() - t0)
        tokens = scorer.stats.tokens_scored - before
        t, _ = bare_forward(scorer, problems, steps, full_lm=False)
        best["backbone"] = min(best["backbone"], t)
        t, _ = bare_forward(scorer, problems, steps, full_lm=True)
        best["full_lm"] = min(best["full_lm"], t)
    res["throughput"] = {
        "tokens": tokens,
        "seconds": {k: round(v, 3) for k, v in best.items()},
        "candidates_per_s": round(args.n / best["scorer"], 2),
        "tokens_per_s": round(tokens / best["scorer"], 1),
        "bare_backbone_tokens_per_s": round(tokens / best["backbone"], 1),
        "ratio_scorer_over_backbone": round(best["scorer"] / best["backbone"], 3),
        "ratio_scorer_over_full_lm": round(best["scorer"] / best["full_lm"], 3),
    }

    # beam extension: beams grow one step per round, every round all beams are re-scored
    W = args.beam_width
    bp, bs = problems[:W], steps[:W]
    rounds = max(len(s) for s in bs)
    for label, opts in (("cached", {}), ("uncached", {"cache_size": 0, "kv_cache_tokens": 0})):
        s = load_scorer("prm", token_budget=args.token_budget, **opts)
        s.score(problems[:2], steps[:2])
        s.stats.reset()
        t0 = time.perf_counter()
        for r in range(1, rounds + 1):
            s.score(bp, [x[: min(r, len(x))] for x in bs])
        res[f"beam_{label}"] = {
            "rounds": rounds, "beams": W, "seconds": round(time.perf_counter() - t0, 3),
            "tokens_scored": s.stats.tokens_scored, "forward_passes": s.stats.forward_passes,
            "cache_hits": s.stats.cache_hits, "kv_reused_tokens": s.stats.kv_reused_tokens,
        }
        del s
    c, u = res["beam_cached"], res["beam_uncached"]
    res["beam_speedup"] = round(u["seconds"] / c["seconds"], 2)
    res["beam_token_ratio"] = round(c["tokens_scored"] / u["tokens_scored"], 3)
    t = res["throughput"]
    print(f"throughput: {t['candidates_per_s']} cand/s, {t['tokens_per_s']} tok/s; "
          f"scorer/bare backbone = {t['ratio_scorer_over_backbone']}, scorer/full LM = {t['ratio_scorer_over_full_lm']}")
    print(f"beam ({W} beams x {rounds} rounds): cached {c['tokens_scored']} tokens {c['seconds']}s, "
          f"uncached {u['tokens_scored']} tokens {u['seconds']}s (speedup {res['beam_speedup']}x)")
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
