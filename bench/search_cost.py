"""Search cost side by side: best-of-n, and beam, DVTS and particle filtering at the same
N, each run lockstep (all problems depth by depth, the reference) and pipelined (each
problem advancing on its own through the engine's add_request / step, search/drive.py),
and batched vs one-problem-at-a-time beam, on one engine in one run.

    python bench/search_cost.py --problems 32 --n 16 --beam-width 4 --max-steps 6 --skip-sequential

Prints, per run: wall time per problem, generated tokens/s and its ratio to best-of-n
(target >= 0.95x), wall time against best-of-n's (target for beam at N = 16: <= 1.3x),
the share of submitted prompt tokens served from the prefix cache (target >= 0.9 for
beam search), and per strategy the pipelined run's speed-up over the lockstep one and
how many chosen answers agree (seeded: the same samples up to CPU batch rounding).
Every run starts with an empty prefix cache, so no run is served prefixes an earlier
run (same problems, same seeds) left behind. "policy calls" are engine calls (lockstep)
or engine steps that finished requests (pipelined).

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
    ap.add_argument("--strategies", default="beam,dvts,particle_filter",
                    help="comma-separated step-level strategies to run (beam, dvts, particle_filter, mcts)")
    ap.add_argument("--runners", default="lockstep,pipelined", help="comma-separated: lockstep, pipelined")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="runs/bench-search-cost.json")
    a = ap.parse_args()
    strategies = [x.strip() for x in a.strategies.split(",") if x.strip()]
    runners = [x.strip() for x in a.runners.split(",") if x.strip()]
    bad = [x for x in strategies if x not in ("beam", "dvts", "particle_filter", "mcts")]
    bad += [x for x in runners if x not in ("lockstep", "pipelined")]
    if bad:
        ap.error(f"unknown strategy or runner {bad[0]!r}; see --help")

    from policies import EngineConfig, SamplingConfig, VLLMPolicy
    from policies.datasets import load_problems
    from policies.settings import machine_summary
    from search import STRATEGIES, SearchConfig, best_of_n
    from search.cli import load_scorer
    from search.runner import cold_batch, grade_result


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

    def measure(name, fn, cfg, chunks, **kw):
        cold_batch(policy, scorer)  # an empty prefix cache: nothing left by an earlier run
        calls0 = policy.usage.calls
        t0 = time.perf_counter()
        results = []
        for chunk in chunks:
            results += fn(chunk, policy, scorer, cfg, **kw)
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
            "answers": [r.answer for r in results], "strategy": cfg.strategy, "runner": "pipelined" if kw.get("pipeline") else "lockstep",
        }
        print(f"{name}: {row['wall_s']} s, {gen} generated tokens, {row['policy_calls']} policy calls", file=sys.stderr)
        return row

    budget = policy.kv_budget()
    bon = SearchConfig(strategy="best_of_n", n=a.n, seed=a.seed)
    rows = [measure("best-of-n, batched", best_of_n, bon, [problems])]
    names = {"beam": "beam", "dvts": "DVTS", "particle_filter": "particle filtering", "mcts": "MCTS"}
    configs = {}
    for strategy in strategies:
        cfg = SearchConfig(strategy=strategy, n=a.n, beam_width=a.beam_width, max_steps=a.max_steps, seed=a.seed)
        configs[strategy] = cfg
        for runner in runners:
            kw = {"pipeline": True} if runner == "pipelined" else {}
            label = "lockstep, batched across problems" if runner == "lockstep" else "pipelined"
            rows.append(measure(f"{names[strategy]}, {label}", STRATEGIES[strategy], cfg, [problems], **kw))
    if not a.skip_sequential and "beam" in configs:
        rows.append(measure("beam, one problem at a time", STRATEGIES["beam"], configs["beam"], [[p] for p in problems]))
    base = rows[0]
    for r in rows:
        r["tok_s_vs_best_of_n"] = round(r["tokens_per_s"] / (base["tokens_per_s"] or float("nan")), 3)
        r["wall_vs_best_of_n"] = round(r["wall_s"] / (base["wall_s"] or float("nan")), 3)
        r["prompt_cache_share"] = round(1 - r["computed_prompt_tokens"] / max(1, r["prompt_tokens"]), 3)
        # every token the engine computed (prefill not served by the prefix cache + decode) per second
        r["processed_tok_s"] = round((r["generated_tokens"] + r["computed_prompt_tokens"]) / (r["wall_s"] or float("nan")), 1)
    for r in rows:
        r["processed_vs_best_of_n"] = round(r["processed_tok_s"] / (base["processed_tok_s"] or float("nan")), 3)
    machine = machine_summary()
    lines = [
        f"machine: {machine['cpu']}, {machine['cores']} cores, {' '.join(machine['isa']) or 'no AVX2'}",
        f"GSM8K test[:{a.problems}], N={a.n}, M={a.beam_width}, max_steps={a.max_steps}, "
        f"max_step_tokens={a.max_step_tokens}, max_tokens={a.max_tokens}, reward={a.reward}, seed={a.seed}; "
        f"engine start {start_s:.0f} s (not included); engine budget: {budget.max_seqs} sequences, "
        f"{budget.kv_tokens} KV tokens, block {budget.block_size}",
        "",
        "| run | wall s | s / problem | wall vs best-of-n | generated tokens | gen tok/s | vs best-of-n "
        "| prompt cache share | computed / submitted prompt tokens | processed tok/s (prefill + decode) | vs best-of-n "
        "| policy calls | policy FLOPs | correct |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['run']} | {r['wall_s']} | {r['wall_s_per_problem']} | {r['wall_vs_best_of_n']}x "
            f"| {r['generated_tokens']:,} | {r['tokens_per_s']} | {r['tok_s_vs_best_of_n']}x | {r['prompt_cache_share']} "
            f"| {r['computed_prompt_tokens']:,} / {r['prompt_tokens']:,} "
            f"| {r['processed_tok_s']} | {r['processed_vs_best_of_n']}x "
            f"| {r['policy_calls']} | {r['policy_flops']:.3g} | {r['correct']}/{r['problems']} |"
        )
    ratios = {}
    lines.append("")
    for strategy in configs:
        pair = {r["runner"]: r for r in rows if r["strategy"] == strategy and r["run"] != "beam, one problem at a time"}
        if len(pair) == 2:
            lock, pipe = pair["lockstep"], pair["pipelined"]
            agree = sum(x == y for x, y in zip(lock["answers"], pipe["answers"], strict=True))
            ratios[strategy] = {"wall_speedup": round(lock["wall_s"] / (pipe["wall_s"] or float("nan")), 3),
                                "tok_s_ratio": round(pipe["tokens_per_s"] / (lock["tokens_per_s"] or float("nan")), 3),
                                "answers_agree": agree}
            lines.append(f"{names[strategy]}: pipelined {ratios[strategy]['wall_speedup']:.2f}x faster than lockstep "
                         f"(gen tok/s {ratios[strategy]['tok_s_ratio']:.2f}x; chosen answers agree on "
                         f"{agree}/{len(problems)} problems)")
    speedup = None
    seq = [r for r in rows if r["run"] == "beam, one problem at a time"]
    bat = [r for r in rows if r["strategy"] == "beam" and r["runner"] == "lockstep" and r not in seq]
    if seq and bat:
        speedup = seq[0]["wall_s"] / bat[0]["wall_s"]
        agree = sum(x == y for x, y in zip(seq[0]["answers"], bat[0]["answers"], strict=True))
        lines += ["", f"batched beam speedup over one-at-a-time: {speedup:.2f}x "
                  f"(chosen answers agree on {agree}/{len(problems)} problems)"]
    print("\n".join(lines))
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps({"args": vars(a), "machine": machine, "rows": rows, "speedup": speedup, "pipelined_vs_lockstep": ratios,
                                       "budget": {"max_seqs": budget.max_seqs, "kv_tokens": budget.kv_tokens,
                                                  "block_size": budget.block_size}}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
