"""Engine throughput at scale: a search over thousands of problems against one that fills
the engine once (128 sequences), on one engine in one run.

    python bench/scale.py --problems 2000 --n 16 --strategies beam,best_of_n --max-seconds 600

For each strategy, two runs through the product's runner (`search.runner.run_search`, the
records written as they go, as `cli.py search` does):
- reference: `--reference-problems` problems x N (8 x 16 = 128 sequences, the CPU
  engine's `max_num_seqs`), run to the end;
- scale: `--problems` problems x N, every problem handed to the runner at once (the
  pipelined driver for step-level strategies, lockstep batches of `--batch-problems` for
  the others), stopped after `--max-seconds` (the run file keeps what finished; a longer
  window resumes it with --keep).

Engine tokens/s is the engine's own count of generated tokens (vLLM's
`vllm:generation_tokens`, stat logging on for this bench, in both runs) over wall time, so
samples cut off at the window's end count too. The engine's preemption counter
(`vllm:num_preemptions`) shows KV-cache thrash: a preempted sequence is recomputed. The
problems are GSM8K train problems (2,000 is more than GSM8K test holds); accuracy is not
the point here, and no scorer runs (--reward none: beams ranked by the policy's
confidence). Prints a markdown table and writes the raw numbers to --out.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


class _Window(Exception):
    """The scale run's time window is over."""


def engine_counts(policy) -> dict:
    """The engine's cumulative generated / prompt tokens and preemptions (vLLM metrics)."""
    out = {"generation_tokens": 0.0, "prompt_tokens": 0.0, "num_preemptions": 0.0}
    for m in policy.llm.get_metrics():
        key = m.name.removeprefix("vllm:")
        if key in out and hasattr(m, "value"):
            out[key] += float(m.value)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--problems", type=int, default=2000)
    ap.add_argument("--reference-problems", type=int, default=8)
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--strategies", default="beam,best_of_n",
                    help="comma-separated: beam, dvts, particle_filter (pipelined) and best_of_n (lockstep batches)")
    ap.add_argument("--beam-width", type=int, default=4)
    ap.add_argument("--max-steps", type=int, default=6)
    ap.add_argument("--max-tokens", type=int, default=256)
    ap.add_argument("--max-step-tokens", type=int, default=64)
    ap.add_argument("--batch-problems", type=int, default=16, help="lockstep batches (best_of_n)")
    ap.add_argument("--max-seconds", type=float, default=600.0, help="the scale run's window, per strategy")
    ap.add_argument("--model", default=None)
    ap.add_argument("--kv-cache-gib", type=float, default=None)
    ap.add_argument("--max-num-seqs", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", default="runs/bench-scale", help="run files of the searches (emptied unless --keep)")
    ap.add_argument("--keep", action="store_true", help="keep --work's run files (a scale run resumes)")
    ap.add_argument("--out", default="runs/bench-scale.json")
    a = ap.parse_args()
    strategies = [x.strip() for x in a.strategies.split(",") if x.strip()]
    bad = [x for x in strategies if x not in ("beam", "dvts", "particle_filter", "best_of_n")]
    if bad:
        ap.error(f"unknown strategy {bad[0]!r}; choose from beam, dvts, particle_filter, best_of_n")
    for name in ("problems", "reference_problems", "n", "max_seconds"):
        if getattr(a, name) <= 0:
            ap.error(f"--{name.replace('_', '-')} must be > 0, got {getattr(a, name)}")

    from policies import EngineConfig, SamplingConfig, VLLMPolicy
    from policies.datasets import load_problems
    from policies.settings import machine_summary
    from search import SearchConfig
    from search.runner import run_search

    problems = load_problems("gsm8k-train", limit=a.problems)
    if len(problems) < a.problems:
        ap.error(f"--problems {a.problems}: GSM8K train holds {len(problems)}")
    policy = VLLMPolicy(
        a.model,
        engine=EngineConfig(kv_cache_gib=a.kv_cache_gib, max_num_seqs=a.max_num_seqs, seed=a.seed,
                            extra={"disable_log_stats": False}),
        sampling=SamplingConfig(temperature=0.8, max_tokens=a.max_tokens, max_step_tokens=a.max_step_tokens,
                                seed=a.seed),
    )
    t = time.perf_counter()
    policy.sample(["What is 1 + 1?"], 1, max_tokens=8)  # engine start and warm-up, not timed
    start_s = time.perf_counter() - t
    budget = policy.kv_budget()
    work = Path(a.work)
    if work.exists() and not a.keep:
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)

    def measure(strategy: str, probs: list, label: str, window: float | None) -> dict:
        cfg = SearchConfig(strategy=strategy, n=a.n, beam_width=a.beam_width, max_steps=a.max_steps, seed=a.seed)
        out = work / f"{strategy}-{label}.jsonl"
        done = []
        t0 = time.perf_counter()

        def on_record(rec: dict) -> None:
            done.append(rec)
            if window is not None and time.perf_counter() - t0 > window:
                raise _Window

        c0 = engine_counts(policy)
        stopped = False
        try:
            run_search(probs, policy, None, cfg, out=out, batch_problems=a.batch_problems, on_record=on_record)
        except _Window:
            stopped = True
        wall = time.perf_counter() - t0
        c1 = engine_counts(policy)
        gen = c1["generation_tokens"] - c0["generation_tokens"]
        row = {
            "strategy": strategy, "run": label, "problems_given": len(probs), "problems_finished": len(done),
            "stopped_by_window": stopped, "wall_s": round(wall, 2), "engine_generated_tokens": int(gen),
            "engine_prompt_tokens": int(c1["prompt_tokens"] - c0["prompt_tokens"]),
            "preemptions": int(c1["num_preemptions"] - c0["num_preemptions"]),
            "engine_tok_s": round(gen / wall, 1) if wall else None,
            "recorded_generated_tokens": sum(int(r.get("ledger", {}).get("generated_tokens", 0)) for r in done),
        }
        print(f"{strategy} {label}: {row}", file=sys.stderr, flush=True)
        return row

    rows = []
    for strategy in strategies:
        rows.append(measure(strategy, problems[: a.reference_problems], "reference", None))
        rows.append(measure(strategy, problems, "scale", a.max_seconds))
    machine = machine_summary()
    lines = [
        f"machine: {machine['cpu']}, {machine['cores']} cores, {' '.join(machine['isa']) or 'no AVX2'}",
        f"GSM8K train, N={a.n}, M={a.beam_width}, max_steps={a.max_steps}, max_step_tokens={a.max_step_tokens}, "
        f"max_tokens={a.max_tokens}, reward=none, seed={a.seed}; engine start {start_s:.0f} s (not included); "
        f"engine budget: {budget.max_seqs} sequences, {budget.kv_tokens} KV tokens, block {budget.block_size}; "
        f"scale window {a.max_seconds:.0f} s",
        "",
        "| strategy | run | problems given | finished | wall s | engine generated tokens | engine tok/s "
        "| vs reference | preemptions |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for strategy in strategies:
        ref, big = [r for r in rows if r["strategy"] == strategy]
        big["vs_reference"] = round(big["engine_tok_s"] / ref["engine_tok_s"], 3) if ref["engine_tok_s"] else None
        ref["vs_reference"] = 1.0
        for r in (ref, big):
            lines.append(f"| {strategy} | {r['run']} | {r['problems_given']:,} | {r['problems_finished']:,} "
                         f"| {r['wall_s']} | {r['engine_generated_tokens']:,} | {r['engine_tok_s']} "
                         f"| {r['vs_reference']}x | {r['preemptions']} |")
    print("\n".join(lines))
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps({"args": vars(a), "machine": machine, "rows": rows, "engine_start_s": round(start_s, 1),
                                       "budget": {"max_seqs": budget.max_seqs, "kv_tokens": budget.kv_tokens,
                                                  "block_size": budget.block_size}}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
