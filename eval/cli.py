"""`python cli.py eval`: benchmarks of scorers and verifiers (no generation).

    python cli.py eval scorer --reward prm --bench processbench-gsm8k --limit 100
    python cli.py eval scorer --reward prm --bench processbench-math --calibration processbench-gsm8k
    python cli.py eval scorer --reward orm --bench gsm8k-pairs --limit 200
    python cli.py eval scorer --reward prm --agg min --bench bon-pool --data runs/x.jsonl
    python cli.py eval verifier-agreement FILE.jsonl [--limit N] [--show 50] [--json OUT]
    python cli.py eval score-pool --reward probe --pool pools/x.jsonl.gz --out runs/scored/x-probe.jsonl
    python cli.py eval pool-table runs/scored/x-probe.jsonl runs/scored/x-orm.jsonl --out reports/x-table
    python cli.py eval self-certainty --pool pools/x.jsonl.gz --out runs/x-sc.jsonl   # then sweep --conf
    python cli.py eval recommend-agg runs/scored/val200-prm.jsonl --card rewards/defaults/prm

`eval scorer` prints a table and writes the full result (data file, limit,
threshold and how it was chosen, scorer metadata, intervals) as JSON to --out.
See eval/scorer_bench.py for every bench's format. Only argparse is imported at
the top, so `--help` works without torch.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from policies.paths import write_json

LOG_BESIDE_OUTPUT = True  # `eval scorer` sends engine and library warnings beside its result JSON


def add_arguments(p: argparse.ArgumentParser) -> None:
    from eval.registry import BENCHES, DEFAULT_AGGS  # the registries: plain data
    from rewards.aggregators import names as agg_names
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
                   help="ProcessBench: bench name or JSONL to tune the threshold on (default: the scorer card's "
                        "threshold fixed on training data if it has one, else 2-fold by id)")
    s.add_argument("--calibration-limit", type=int, default=None,
                   help="ProcessBench: calibration rows to score (default: --limit; PRMBench files or their "
                        "folder, e.g. ../shared/data/prm_step_labels/prmbench_train, are read as first-error rows)")
    s.add_argument("--arithmetic-check", action="store_true",
                   help="ProcessBench: flag a step with a false equation too (verifiers.arithmetic); the prediction "
                        "is the earlier of the scorer's and the check's first wrong step")
    s.add_argument("--drop-ratio", type=float, default=None,
                   help="ProcessBench: also flag a step scored below this share of the previous step's score "
                        "(1 before the first step), in [0, 1); default: the scorer card's with its threshold, else 0")
    s.add_argument("--drop-start", type=int, choices=(0, 1), default=None,
                   help="ProcessBench, with a drop ratio: 0 compares the first step with 1 too, 1 looks for drops "
                        "from the second step on; default: the scorer card's with its ratio, else 0")
    s.add_argument("--no-card-threshold", action="store_true",
                   help="ProcessBench: ignore the scorer card's threshold (use 2-fold by id)")
    s.add_argument("--batch-size", type=int, default=16, help="solutions per score() call")
    s.add_argument("--max-length", type=int, default=None,
                   help="--reward prm/orm: the longest candidate scored, in tokens (default: the scorer's adapter's; "
                        "the model's positions bound it); a longer one stops the run before any scoring")
    s.add_argument("--bootstrap", type=int, default=2000, help="bootstrap resamples (default 2000)")
    s.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    s.add_argument("--out", default=None, help="result JSON (default reports/scorer-BENCH-REWARD.json)")
    sp = sub.add_parser("score-pool", help="score every sample of a stored pool once (resumable)",
                        description="Write the pool again with each sample's scores (eval/score_pool.py); "
                                    "`sweep` and `eval pool-table` then read them without any model.")
    sp.add_argument("--reward", choices=SCORER_KINDS, required=True, help="scorer kind")
    sp.add_argument("--scorer-model", default=None, help="scorer checkpoint (default: the kind's default)")
    sp.add_argument("--pool", required=True, help="pool file written by `cli.py pool` (.jsonl or .jsonl.gz)")
    sp.add_argument("--out", required=True, help="scored pool (.jsonl; rerun to resume)")
    sp.add_argument("--limit", type=int, default=None, help="first N problems")
    sp.add_argument("--batch-problems", type=int, default=2, help="problems per score() call (default 2)")
    sp.add_argument("--only-mixed", action="store_true",
                    help="score only the problems with both right and wrong samples (on the others every "
                         "selection rule gets the same result; the table's figures are then over these problems)")
    sp.add_argument("--max-length", type=int, default=None,
                    help="--reward prm/orm: the longest candidate scored, in tokens (default: the scorer's adapter's; "
                         "the model's positions bound it); a longer one stops the run, the problems written kept")
    sp.add_argument("--features", default=None,
                    help="--reward probe only: read the policy's states from this folder (`cli.py train "
                         "probe-features --allow-heldout` on the same pool) instead of running the policy")
    sc = sub.add_parser("self-certainty", help="a pool's per-token self-certainty, in place of its token confidence",
                        description="Write the pool again with each sample's token_conf holding its self-certainty "
                                    "(KL of uniform from the policy's full next-token distribution; "
                                    "policies/certainty.py), by one forward pass of the policy; resumable. "
                                    "`sweep --conf` and `python -m eval.budget` then read it as they read "
                                    "token confidence.")
    sc.add_argument("--pool", required=True, help="pool file written by `cli.py pool` (.jsonl or .jsonl.gz)")
    sc.add_argument("--out", required=True, help="output pool (.jsonl; rerun to resume)")
    sc.add_argument("--model", default=None, help="the policy that wrote the pool (default: the pool's own)")
    sc.add_argument("--limit", type=int, default=None, help="first N problems")
    sc.add_argument("--batch-problems", type=int, default=2, help="problems per forward batch (default 2)")
    pt = sub.add_parser("pool-table", help="scorers against pass@1 and maj@N on scored pools",
                        description="RM@N and weighted@N per scorer and aggregator, with paired bootstrap "
                                    "intervals against maj@N and pass@1, and each scorer's forward GFLOP per "
                                    "candidate (eval/score_pool.py).")
    pt.add_argument("pools", nargs="+", help="scored pools of the same problems")
    pt.add_argument("--agg", default=",".join(DEFAULT_AGGS),
                    help=f"aggregators for step scores, or learned:PATH (eval/learned.py; default "
                         f"{','.join(DEFAULT_AGGS)})")
    pt.add_argument("--bootstrap", type=int, default=2000, help="bootstrap resamples (default 2000)")
    pt.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    pt.add_argument("--versus-first", action="store_true",
                    help="also each row's RM@N and weighted@N minus the first row's, paired over problems "
                         "(pass the pool to compare against first, e.g. the ORM's before the PRM's)")
    pt.add_argument("--pool", default=None,
                    help="the pool the scored files were cut from (`score-pool --only-mixed`): its problems "
                         "with all samples right or all wrong enter every figure as that outcome, so the "
                         "table covers the whole pool (AUC and ECE stay over the scored problems)")
    pt.add_argument("--limit", type=int, default=None,
                    help="the first N problems only (of --pool when given, else of the first scored file): "
                         "the problems `score-pool --limit N` scored")
    pt.add_argument("--out", default=None, help="also write the table as JSON and Markdown (OUT.json, OUT.md)")
    ra = sub.add_parser("recommend-agg", help="the aggregator a step scorer's card recommends (--agg auto), "
                                              "from a validation pool",
                        description="Within-problem AUC of a scored validation pool under each candidate "
                                    "aggregator, the rule's pick (eval/recommend_agg.py), and with --card the "
                                    "pick written into the scorer's card. Held-out problems are refused.")
    ra.add_argument("scored", help="a validation pool scored by the scorer (`eval score-pool`, --only-mixed is enough)")
    ra.add_argument("--card", default=None,
                    help="the scorer's directory (card.json or probe.json): write the pick there as "
                         "recommended_agg; it must be the directory the pool was scored with")
    ra.add_argument("--out", default=None, help="also write the figures as JSON")
    ra.add_argument("--seed", type=int, default=0, help="bootstrap seed")
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
    if args.eval_command == "score-pool":
        return run_score_pool(args)
    if args.eval_command == "pool-table":
        return run_pool_table(args)
    if args.eval_command == "self-certainty":
        return run_self_certainty(args)
    if args.eval_command == "recommend-agg":
        return run_recommend_agg(args)
    return run_scorer(args)


def check_pool_rewrite(args: argparse.Namespace) -> None:
    """The options shared by the commands that write a pool again (score-pool, self-certainty)."""
    if not Path(args.pool).is_file():
        raise FileNotFoundError(f"--pool {args.pool}: no such file; write one with `cli.py pool`")
    for flag, v in (("--limit", args.limit), ("--batch-problems", args.batch_problems)):
        if v is not None and v < 1:
            raise ValueError(f"{flag} must be >= 1, got {v}")
    if Path(args.out).suffix == ".gz":
        raise ValueError(f"--out {args.out}: write plain .jsonl (gzip it when complete), so a rerun can resume")


def max_length_option(args: argparse.Namespace) -> dict:
    """``--max-length`` as a load_scorer option (prm and orm only), checked before any model loads."""
    if args.max_length is None:
        return {}
    if args.reward not in ("prm", "orm"):
        raise ValueError(f"--max-length applies to --reward prm or orm, not {args.reward}")
    if args.max_length < 8:
        raise ValueError(f"--max-length must be >= 8, got {args.max_length}")
    return {"max_length": args.max_length}


def run_score_pool(args: argparse.Namespace) -> int:
    import sys
    import time

    from eval.score_pool import score_pool
    from rewards import load_scorer
    from rewards.checkpoint import scorer_card_path, weights_sha256

    check_pool_rewrite(args)
    if args.features is not None and args.only_mixed:
        raise ValueError("--only-mixed applies to scoring with a model; --features scores the whole pool "
                         "without one (drop --only-mixed)")
    if args.features is not None:
        from eval.score_pool import FeatureProbe, score_pool_from_features

        if args.reward != "probe" or args.scorer_model is None:
            raise ValueError("--features applies to --reward probe with --scorer-model DIR")
        probe = FeatureProbe(args.scorer_model, args.features)
        n = score_pool_from_features(args.pool, probe, args.out,
                                     reward={**probe.describe(), "model": args.scorer_model,
                                             "flops_per_token": probe.flops_per_token,
                                             "weights_sha256": weights_sha256(args.scorer_model)})
        print(f"scored {n} problems into {args.out} from stored features ({args.features})")
        return 0
    options = {}
    if args.reward == "probe":  # the states the policy had: its pool's prompt
        from policies.pool import iter_pool

        first = next(iter_pool(args.pool), None)  # the first record says it; score_pool reads the rest
        options["prompt_style"] = first["config"]["policy"].get("prompt_style") if first else None
    options.update(max_length_option(args))
    scorer = load_scorer(args.reward, model=args.scorer_model, **options)
    reward = {**scorer.describe(), "model": args.scorer_model}
    card = scorer_card_path(args.reward, args.scorer_model)
    if card is not None:  # which weights scored the pool, whatever the directory holds later
        reward["weights_sha256"] = weights_sha256(card.parent)
    if scorer.forward_params:  # the pool table's cost column: 2 x params x scorer_tokens per candidate
        from rewards.cost import flops_per_token

        reward["flops_per_token"] = flops_per_token(scorer.forward_params)
    t0 = time.perf_counter()

    def show(done, total):
        el = time.perf_counter() - t0
        print(f"score-pool: {done}/{total} problems, {el:.0f} s", file=sys.stderr, flush=True)

    n = score_pool(args.pool, scorer, args.out, reward=reward, batch_problems=args.batch_problems,
                   limit=args.limit, only_mixed=args.only_mixed, on_batch=show)
    print(f"scored {n} problems into {args.out} ({time.perf_counter() - t0:.0f} s; "
          f"{scorer.stats.tokens_scored} tokens through the scorer)")
    return 0


def run_self_certainty(args: argparse.Namespace) -> int:
    import sys
    import time

    from eval.score_pool import certainty_pool
    from policies.pool import read_pool

    check_pool_rewrite(args)
    first = read_pool(args.pool)[:1]
    policy = (first[0].get("config") or {}).get("policy", {}) if first else {}
    model = args.model or policy.get("model")
    if not model:
        raise ValueError(f"--pool {args.pool}: its records name no policy model; pass --model")
    from policies.certainty import SelfCertainty

    sc = SelfCertainty(model, prompt_style=policy.get("prompt_style", "gsm8k"))
    t0 = time.perf_counter()

    def show(done, total):
        el = time.perf_counter() - t0
        print(f"self-certainty: {done}/{total} problems, {el:.0f} s, {sc.tokens_run / max(el, 1e-9):.0f} tok/s",
              file=sys.stderr, flush=True)

    n = certainty_pool(args.pool, sc, args.out, model=model, batch_problems=args.batch_problems,
                       limit=args.limit, on_batch=show)
    print(f"wrote {n} problems into {args.out} ({time.perf_counter() - t0:.0f} s; {sc.tokens_run} tokens "
          "through the policy)")
    return 0


def run_pool_table(args: argparse.Namespace) -> int:
    from eval.metrics import check_value_source
    from eval.score_pool import pool_table, table_markdown

    aggs = [a for a in args.agg.split(",") if a]
    for a in aggs:
        check_value_source(a)  # an aggregator, conf:NAME or learned:PATH (eval/learned.py)
    for p in args.pools:
        if not Path(p).is_file():
            raise FileNotFoundError(f"{p}: no such file; score a pool with `cli.py eval score-pool`")
    if args.pool is not None and not Path(args.pool).is_file():
        raise FileNotFoundError(f"--pool {args.pool}: no such file; pass the pool given to `eval score-pool`")
    t = pool_table(args.pools, aggs=aggs, n_boot=args.bootstrap, seed=args.seed, versus_first=args.versus_first,
                   whole=args.pool, limit=args.limit)
    import shlex
    import sys

    cmd = "python cli.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    md = table_markdown(t, cmd)
    print(md)
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        write_json(out.with_suffix(".json"), {**t, "command": cmd})
        out.with_suffix(".md").write_text(md)
    return 0


def run_recommend_agg(args: argparse.Namespace) -> int:
    import shlex
    import sys

    from eval.recommend_agg import card_entry, heldout_problems, recommend, same_scorer
    from eval.sweep import pool_as_records
    from policies.pool import read_pool
    from rewards.checkpoint import scorer_card_path, set_recommended_agg

    if not Path(args.scored).is_file():
        raise FileNotFoundError(f"{args.scored}: no such file; score the validation pool with `cli.py eval score-pool`")
    card = None
    if args.card is not None:
        card = scorer_card_path("?", args.card)
        if card is None:
            raise FileNotFoundError(f"--card {args.card}: no card.json or probe.json there; pass a scorer directory "
                                    "(rewards/defaults/KIND or what `cli.py train` wrote)")
    records = pool_as_records(read_pool(args.scored))
    held = heldout_problems(records)
    if held:
        raise ValueError(f"{args.scored}: {len(held)} problems are in a held-out slice (e.g. {held[0]}); the "
                         "aggregator is chosen on training-side data, e.g. a scored gsm8k-train-val200 pool")
    scored_by = records[0]["config"].get("reward") if records else None
    if card is not None and (why := same_scorer(scored_by, Path(args.card))) is not None:
        raise ValueError(f"{args.scored}: not scored by --card {args.card}'s weights: {why}")
    r = recommend(records, seed=args.seed)
    print(f"{args.scored}: {r['granularity']} scorer, {r['mixed_problems']} mixed problems")
    print("| aggregator | within-problem AUC [95% CI] | minus min, paired [95% CI] |")
    print("|---|---:|---:|")
    for a, (m, lo, hi) in r["within_problem_auc"].items():
        d = r["minus_default"].get(a)
        diff = f"{d['mean']:+.3f} [{d['ci'][0]:+.3f}, {d['ci'][1]:+.3f}]" if d else "-"
        print(f"| {a} | {m:.3f} [{lo:.3f}, {hi:.3f}] | {diff} |")
    print(f"recommended: {r['name']} ({r['reason']})")
    cmd = "python cli.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    entry = card_entry(r, pool=str(args.scored), scored_by=scored_by, command=cmd)
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        write_json(out, entry)
    if card is not None:
        set_recommended_agg(card, entry)
        print(f"written to {card} (recommended_agg)")
    return 0


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
    for flag, v in (("--limit", args.limit), ("--batch-size", args.batch_size),
                    ("--calibration-limit", args.calibration_limit)):
        if v is not None and v < 1:
            raise ValueError(f"{flag} must be >= 1, got {v}")
    if args.calibration_limit is not None and args.calibration is None:
        raise ValueError("--calibration-limit applies with --calibration")
    if args.drop_ratio is not None and not args.bench.startswith("processbench"):
        raise ValueError(f"--drop-ratio applies to the processbench benches, not --bench {args.bench}")
    if args.drop_ratio is not None and not 0.0 <= args.drop_ratio < 1.0:
        raise ValueError(f"--drop-ratio must be in [0, 1), got {args.drop_ratio}")
    if args.drop_start is not None and not args.bench.startswith("processbench"):
        raise ValueError(f"--drop-start applies to the processbench benches, not --bench {args.bench}")
    if args.arithmetic_check and not args.bench.startswith("processbench"):
        raise ValueError(f"--arithmetic-check applies to the processbench benches, not --bench {args.bench}")
    scorer = load_scorer(args.reward, model=args.scorer_model, **max_length_option(args))
    card_t = None if args.no_card_threshold else getattr(scorer, "step_threshold", None)
    if args.bench.startswith("processbench") and args.threshold is None and args.calibration is None:
        if card_t is not None:
            card_r = getattr(scorer, "step_ratio", 0.0)
            rule = f"threshold {card_t:.4g}" + (f" and drop ratio {card_r:g}" if card_r and args.drop_ratio is None
                                                else "")
            if card_r and args.drop_ratio is None and getattr(scorer, "step_ratio_start", 0):
                rule += " from the second step on"
            console.print(f"{rule} from the scorer's card (fixed on its training data, "
                          "not on ProcessBench); --threshold, --calibration or --no-card-threshold for another",
                          soft_wrap=True)
        else:
            console.print("threshold: 2-fold by id (each half scored with the threshold tuned on the other)",
                          soft_wrap=True)
    res = run_bench(
        args.bench, scorer, path=args.data, data_dir=args.data_dir, limit=args.limit, agg=args.agg,
        threshold=args.threshold, calibration=args.calibration, calibration_limit=args.calibration_limit,
        card_threshold=not args.no_card_threshold,
        batch_size=args.batch_size, n_boot=args.bootstrap, seed=args.seed, on_batch=_progress_line(scorer),
        arithmetic=args.arithmetic_check, ratio=args.drop_ratio, ratio_start=args.drop_start,
    )
    res["command"] = {k: v for k, v in vars(args).items() if not k.startswith("_") and k != "_run"}
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json(out, res, default=str)
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


def _progress_line(scorer):
    """on_batch for run_bench: one stderr line per scored batch, with the scorer's tokens/s."""
    import sys
    import time

    t0 = time.perf_counter()
    stats = getattr(scorer, "stats", None)
    tok0 = getattr(stats, "tokens_scored", 0)

    def show(done: int, total: int, what: str) -> None:
        el = time.perf_counter() - t0
        tok = getattr(stats, "tokens_scored", 0) - tok0
        rate = f", {tok} tokens, {tok / el:.0f} tok/s" if tok and el > 0 else ""
        print(f"eval scorer: {done}/{total} {what}, {el:.0f} s{rate}", file=sys.stderr, flush=True)

    return show
