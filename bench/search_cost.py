"""Search cost side by side: best-of-n, beam and DVTS at the same N, and batched vs
one-problem-at-a-time beam, on one engine in one run.

    python bench/search_cost.py --problems 16 --n 8 --beam-width 4 --max-steps 6

Prints, per strategy: wall time per problem, generated tokens/s and its ratio to
best-of-n (target >= 0.8x), and the share of submitted prompt tokens served from the
prefix cache (target >= 0.9 for beam search).

One engine (embedded SmolLM2-135M on CPU unless --model), GSM8K test problems, no
scorer by default (beams ranked by policy confidence) so that the timings measure
the search and the policy, not a reward model; --reward verifier uses the oracle.
Prints a markdown table (the one in docs/search.md) and writes the raw numbers
to runs/bench-search.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--problems", type=int, default=8)
    ap.add_argument("--n", type=int, default=4)
    ap.add_argument("--beam-width", type=int, default=2)
    ap.add_argument("--max-steps", type=int, default=4)
    ap.add_argument("--max-tokens", type=int, default=256)
    ap.add_argument("--max-step-tokens", type=int, default=64)
    ap.add_argument("--reward", default="none", choices=("none", "verifier"))
    ap.add_argument("--model", default=None)
    ap.add_argument("--kv-cache-gib", type=float, default=None, help="KV cache size (default: the CPU default)")
    ap.add_argument("--block-size", type=int, default=None, help="KV block size (prefix-cache granularity)")
    ap.add_argument("--skip-sequential", action="store_true", help="skip the one-problem-at-a-time beam run")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="runs/bench-search-cost.json")
    a = ap.parse_args()

    from policies import EngineConfig, SamplingConfig, VLLMPolicy
    from policies.datasets import load_problems
    from search import SearchConfig, beam, best_of_n, dvts
    from search.cli import load_scorer
    from search.runner import grade_result

    problems = load_problems("gsm8k", limit=a.problems)
    policy = VLLMPolicy(
        a.model,
        engine=EngineConfig(kv_cache_gib=a.kv_cache_gib, block_size=a.block_size, seed=a.seed),
        sampling=SamplingConfig(temperature=0.8, max_tokens=a.max_tokens, max_step_tokens=a.max_step_tokens, seed=a.seed),
    )
    scorer = load_scorer(a.reward, None)
    t = time.perf_counter()
    policy.sample(["What is 1 + 1?"], 1, max_tokens=8)  # engine start and warm-up, not timed
    start_s = time.perf_counter() - t
    delim = policy.sampling.step_delimiter

    def measure(name, fn, cfg, chunks):
        calls0 = policy.usage.calls
        t0 = time.perf_counter()
        results = []
        for chunk in chunks:
            results += fn(chunk, policy, scorer, cfg)
        wall = time.perf_counter() - t0
        for r in results:
            grade_result(r, delim)
        gen = sum(r.ledger.generated_tokens for r in results)
        correct = sum(bool(r.chosen is not None and (r.candidates[r.chosen].verdict or {}).get("correct")) for r in results)
        row = {
            "run": name, "wall_s": round(wall, 2), "generated_tokens": gen,
            "computed_prompt_tokens": sum(r.ledger.computed_prompt_tokens for r in results),
            "prompt_tokens": sum(r.ledger.prompt_tokens for r in results),
            "policy_calls": policy.usage.calls - calls0, "tokens_per_s": round(gen / wall, 1),
            "wall_s_per_problem": round(wall / len(results), 2),
            "policy_flops": sum(r.ledger.policy_flops for r in results),
            "correct": correct, "problems": len(results),
            "answers": [r.answer for r in results],
        }
        print(f"{name}: {row['wall_s']} s, {gen} generated tokens, {row['policy_calls']} policy calls", file=sys.stderr)
        return row

    bon = SearchConfig(strategy="best_of_n", n=a.n, seed=a.seed)
    bm = SearchConfig(strategy="beam", n=a.n, beam_width=a.beam_width, max_steps=a.max_steps, seed=a.seed)
    dv = SearchConfig(strategy="dvts", n=a.n, beam_width=a.beam_width, max_steps=a.max_steps, seed=a.seed)
    rows = [
        measure("best-of-n, batched", best_of_n, bon, [problems]),
        measure("beam, batched across problems", beam, bm, [problems]),
        measure("DVTS, batched across problems", dvts, dv, [problems]),
    ]
    if not a.skip_sequential:
        rows.append(measure("beam, one problem at a time", beam, bm, [[p] for p in problems]))
    base = rows[0]["tokens_per_s"] or float("nan")
    for r in rows:
        r["tok_s_vs_best_of_n"] = round(r["tokens_per_s"] / base, 3)
        r["prompt_cache_share"] = round(1 - r["computed_prompt_tokens"] / max(1, r["prompt_tokens"]), 3)
    lines = [
        f"GSM8K test[:{a.problems}], N={a.n}, M={a.beam_width}, max_steps={a.max_steps}, "
        f"max_step_tokens={a.max_step_tokens}, max_tokens={a.max_tokens}, reward={a.reward}, seed={a.seed}; "
        f"engine start {start_s:.0f} s (not included)",
        "",
        "| run | wall s | s / problem | generated tokens | gen tok/s | vs best-of-n | prompt cache share "
        "| computed / submitted prompt tokens | policy calls | policy FLOPs | correct |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['run']} | {r['wall_s']} | {r['wall_s_per_problem']} | {r['generated_tokens']:,} | {r['tokens_per_s']} "
            f"| {r['tok_s_vs_best_of_n']}x | {r['prompt_cache_share']} "
            f"| {r['computed_prompt_tokens']:,} / {r['prompt_tokens']:,} "
            f"| {r['policy_calls']} | {r['policy_flops']:.3g} | {r['correct']}/{r['problems']} |"
        )
    speedup = None
    if not a.skip_sequential:
        seq, bat = rows[3], rows[1]
        speedup = seq["wall_s"] / bat["wall_s"]
        agree = sum(x == y for x, y in zip(seq["answers"], bat["answers"], strict=True))
        lines += ["", f"batched beam speedup over one-at-a-time: {speedup:.2f}x "
                  f"(chosen answers agree on {agree}/{len(problems)} problems)"]
    print("\n".join(lines))
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps({"args": vars(a), "rows": rows, "speedup": speedup}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
