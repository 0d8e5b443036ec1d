"""`python cli.py eval`: benchmarks of scorers and verifiers (no generation).

    python cli.py eval scorer --reward prm --bench processbench-gsm8k --limit 100
    python cli.py eval scorer --reward prm --bench processbench-math --calibration processbench-gsm8k
    python cli.py eval scorer --reward orm --bench gsm8k-pairs --limit 200
    python cli.py eval scorer --reward prm --agg min --bench bon-pool --data runs/x.jsonl
    python cli.py eval verifier-agreement FILE.jsonl [--limit N] [--show 50] [--json OUT]

`eval scorer` prints a table and writes the full result (data file, limit,
threshold and how it was chosen, scorer metadata, intervals) as JSON to --out.
See eval/scorer_bench.py for every bench's format. Only argparse is imported at
the top, so `--help` works without torch.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

BENCHES = ("processbench-gsm8k", "processbench-math", "gsm8k-pairs", "bon-pool")
LOG_BESIDE_OUTPUT = True  # `eval scorer` sends engine and library warnings beside its result JSON


def add_arguments(p: argparse.ArgumentParser) -> None:
    from rewards.aggregators import names as agg_names  # the registries: plain data
    from rewards.kinds import SCORER_KINDS

    sub = p.add_subparsers(dest="eval_command", metavar="WHAT")
    s = sub.add_parser("scorer", help="a scorer on ProcessBench, GSM8K pairs or a best-of-n pool",
                       description="Benchmark a scorer without generation (see eval/scorer_bench.py).")
    s.add_argument("--reward", choices=SCORER_KINDS, required=True, help="scorer kind")
    s.add_argument("--scorer-model", default=None, help="scorer checkpoint (default: the kind's default)")
    s.add_argument("--bench", choices=BENCHES, required=True)
    s.add_argument("--data", default=None, help="JSONL in the bench's format (default: the shared data file)")
    s.add_argument("--data-dir", default=None, help="shared data folder (default ../shared/data)")
    s.add_argument("--limit", type=int, default=None, help="first N rows / problems (reported in the result)")
    s.add_argument("--agg", default="min", help=f"aggregator for pairs and bon-pool: {', '.join(agg_names())} "
                                                "(default min)")
    s.add_argument("--threshold", type=float, default=None, help="ProcessBench: fixed step threshold")
    s.add_argument("--calibration", default=None,
                   help="ProcessBench: bench name or JSONL to tune the threshold on (default: 2-fold by id)")
    s.add_argument("--batch-size", type=int, default=16, help="solutions per score() call")
    s.add_argument("--bootstrap", type=int, default=2000, help="bootstrap resamples (default 2000)")
    s.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    s.add_argument("--out", default=None, help="result JSON (default reports/scorer-BENCH-REWARD.json)")
    v = sub.add_parser("verifier-agreement", help="our grader vs Math-Verify on (gold, prediction) JSONL",
                       description="Grade JSONL (gold, prediction) pairs with ours and with Math-Verify.")
    v.add_argument("file", help="JSONL with gold/answer and prediction/solution fields")
    v.add_argument("--limit", type=int, default=None)
    v.add_argument("--show", type=int, default=50)
    v.add_argument("--json", dest="json_out", default=None)
    p.set_defaults(_eval_parser=p)


def run(args: argparse.Namespace) -> int:
    if args.eval_command is None:
        args._eval_parser.print_help()
        return 0
    if args.eval_command == "verifier-agreement":
        import sys

        from verifiers.agreement import main, math_verify_grader

        try:
            math_verify_grader()
        except ImportError as e:  # optional dependency: one line, no traceback
            print(f"cli.py eval verifier-agreement: {e}", file=sys.stderr)
            return 2
        argv = [args.file, "--show", str(args.show)]
        if args.limit is not None:
            argv += ["--limit", str(args.limit)]
        if args.json_out:
            argv += ["--json", args.json_out]
        return main(argv)
    return run_scorer(args)


def run_scorer(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from eval.scorer_bench import result_rows, run_bench
    from rewards import load_scorer

    console = Console(highlight=False)
    if args.data and not Path(args.data).is_file():
        raise FileNotFoundError(f"--data {args.data}: no such file")
    from policies.paths import check_out_file

    out = Path(args.out or f"reports/scorer-{args.bench}-{args.reward}.json")
    check_out_file("--out", out)  # before the scorer loads: the result is written at the end
    from policies.logs import beside, log_to

    log_to(beside(out))
    for flag, v in (("--limit", args.limit), ("--batch-size", args.batch_size)):
        if v is not None and v < 1:
            raise ValueError(f"{flag} must be >= 1, got {v}")
    scorer = load_scorer(args.reward, model=args.scorer_model)
    res = run_bench(
        args.bench, scorer, path=args.data, data_dir=args.data_dir, limit=args.limit, agg=args.agg,
        threshold=args.threshold, calibration=args.calibration, batch_size=args.batch_size,
        n_boot=args.bootstrap, seed=args.seed,
    )
    res["command"] = {k: v for k, v in vars(args).items() if not k.startswith("_") and k != "_run"}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1, default=str) + "\n")
    sc = res["scorer"]
    t = Table(title=f"{args.bench}: {sc.get('name', args.reward)} ({res['data']}, limit {res['limit']})")
    t.add_column("metric")
    t.add_column("value [95% CI]", justify="right")
    for k, v in result_rows(res):
        t.add_row(k, v)
    console.print(t)
    if sc.get("trained") is False:
        console.print("[yellow]note: this scorer is untrained (fresh head); expect chance-level numbers[/]")
    console.print(f"{res['seconds']:.0f} s; result: {out}")
    return 0
