"""`python cli.py pool`: sample a stored pool of N solutions per problem (resumable).

    python cli.py pool --dataset gsm8k-heldout200 --n 16 --out pools/gsm8k-heldout200.jsonl
    python cli.py pool --dataset math500-heldout100 --n 16 --max-tokens 1024 --out pools/math500-heldout100.jsonl
    python cli.py pool --dataset gsm8k-train --limit 600 --n 8 --out pools/train-gsm8k.jsonl

The policy defaults to the embedded Qwen2.5-Coder-0.5B-Instruct. Every sample keeps
its text, steps, token counts, summed log-prob, per-token log-probs and DeepConf
confidences (top --logprobs), answer and verdict (format: policies/pool.py). Rerunning
the same command resumes; `gzip -k` the finished file to commit it. `sweep`, `eval`
and the scorer benches read pools (plain or .gz) without starting the engine.
Only argparse is imported at the top.
"""

from __future__ import annotations

import argparse
import shlex
import sys

from policies.paths import write_json

LOG_BESIDE_OUTPUT = True  # run() sends engine and library warnings to pools/X.log beside pools/X.jsonl


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("data")
    from policies.datasets import HELDOUT, NAMES  # the registry: plain data

    g.add_argument("--dataset", default="gsm8k-heldout200",
                   help=f"a dataset ({', '.join(NAMES)}; held-out slices: {', '.join(HELDOUT)}) or a JSONL path")
    g.add_argument("--data-dir", default=None, help="folder of the shared data (for *-train names)")
    g.add_argument("--limit", type=int, default=None)
    g.add_argument("--offset", type=int, default=0)
    g = p.add_argument_group("sampling")
    g.add_argument("--n", type=int, default=16, help="samples per problem")
    g.add_argument("--model", default=None, help="policy (default: the embedded qwen2.5-coder-0.5b)")
    g.add_argument("--temperature", type=float, default=0.8)
    g.add_argument("--top-p", type=float, default=1.0)
    g.add_argument("--max-tokens", type=int, default=512, help="cap on one solution")
    g.add_argument("--logprobs", type=int, default=5, help="top-k log-probs per token for token confidence (0: none)")
    g.add_argument("--prompt-style", default=None, help="gsm8k, math, plain or a template path (default: from the dataset)")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--kv-cache-gib", type=float, default=None, help="KV cache size in GiB (CPU default 2)")
    g.add_argument("--max-num-seqs", type=int, default=None, help="sequences decoded together (CPU default 128)")
    g = p.add_argument_group("run")
    g.add_argument("--out", required=True, help="pool file (.jsonl; rerun to resume)")
    g.add_argument("--batch-problems", type=int, default=16, help="problems sent to the engine together")


def check_args(args) -> None:
    from policies.paths import check_out_file

    for name, low in (("n", 1), ("batch_problems", 1), ("offset", 0), ("max_tokens", 1)):
        if getattr(args, name) < low:
            raise ValueError(f"--{name.replace('_', '-')} must be >= {low}, got {getattr(args, name)}")
    if args.limit is not None and args.limit < 1:
        raise ValueError(f"--limit must be >= 1, got {args.limit} (omit --limit for every problem)")
    if not 0 <= args.logprobs <= 20:
        raise ValueError(f"--logprobs must be in [0, 20], got {args.logprobs}")
    if args.out.endswith(".gz"):
        raise ValueError(f"--out {args.out}: pools are written plain (resumable); gzip the finished file")
    check_out_file("--out", args.out)


def load(args) -> tuple[list[dict], str]:
    """The problems and the prompt style of --dataset (a held-out slice, a dataset or a file)."""
    from policies import datasets

    datasets.check_options(args.dataset, data_dir=args.data_dir)
    rows = datasets.load_problems(args.dataset, limit=args.limit, offset=args.offset, data_dir=args.data_dir)
    return rows, datasets.prompt_style(args.dataset)


def identity(args, style: str) -> dict:
    """What makes a pool: a resumed pool must match it exactly (the problem range may grow)."""
    from policies.models import MAIN_POLICY, model_fingerprint

    model = args.model or MAIN_POLICY
    return {
        "policy": {"model": model, "model_sha256": model_fingerprint(model), "temperature": args.temperature,
                   "top_p": args.top_p, "max_tokens": args.max_tokens, "prompt_style": style,
                   "logprobs": args.logprobs},
        "n": args.n,
        "seed": args.seed,
        "data": {"dataset": args.dataset},
    }


def run(args: argparse.Namespace) -> int:
    check_args(args)
    from policies.logs import beside, log_to

    log_to(beside(args.out))
    rows, style = load(args)
    style = args.prompt_style or style
    ident = identity(args, style)
    from policies import EngineConfig, SamplingConfig, VLLMPolicy
    from policies.models import MAIN_POLICY
    from policies.progress import Progress
    from search.pool import generate_pool

    policy = VLLMPolicy(
        args.model or MAIN_POLICY,
        engine=EngineConfig(kv_cache_gib=args.kv_cache_gib, max_num_seqs=args.max_num_seqs, seed=args.seed),
        sampling=SamplingConfig(temperature=args.temperature, top_p=args.top_p, max_tokens=args.max_tokens,
                                logprobs=args.logprobs, seed=args.seed),
        prompt_style=style,
    )
    command = "python cli.py pool " + shlex.join(sys.argv[2:] if sys.argv[1:2] == ["pool"] else sys.argv[1:])

    # a bar on a terminal, plain lines every 30 s / 10 % elsewhere (CI logs, nohup)
    with Progress("pool", len(rows), unit="problems") as bar:
        summary = generate_pool(
            [{"id": r["id"], "problem": r["problem"], "answer": r["answer"]} for r in rows], policy,
            n=args.n, out=args.out, identity=ident, seed=args.seed, batch_problems=args.batch_problems,
            sources={r["id"]: r.get("source") for r in rows}, command=command,
            on_batch=lambda p: bar.update(p["done"], info=f"{p['tok_s']:.1f} generated tok/s"),
        )
    from pathlib import Path

    summary["identity"] = ident
    summary["command"] = command
    path = Path(args.out)
    write_json(path.with_name(path.name.removesuffix(".jsonl") + ".summary.json"), summary)
    p1, pn = summary["pass@1"], summary["pass@n"]
    print(f"{summary['problems']} problems x {args.n}: pass@1 {p1 if p1 is None else round(p1, 3)}, "
          f"pass@{args.n} {pn if pn is None else round(pn, 3)}, mean {summary['mean_generated_tokens']:.0f} "
          f"generated tokens, {summary['length_capped']} samples hit --max-tokens -> {args.out}")
    return 0
