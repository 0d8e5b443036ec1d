"""`python cli.py train ...`: build training data and train the project's scorers.

    # data from the policy's own samples (resumable, budgeted)
    python cli.py train data-outcome --dataset gsm8k-train --n 8 --max-seconds 3600 --out data/outcome.jsonl
    python cli.py train data-steps --dataset gsm8k-train --n 2 --k 8 --max-seconds 3600 --out data/steps.jsonl
    # Monte Carlo labels for the steps of a stored pool's samples (the rollouts are all that runs)
    python cli.py train data-steps --pool pools/gsm8k-train-n8.jsonl.gz --k 4 --mixed-only --out data/mc.jsonl
    # existing step-labelled / outcome-labelled data
    python cli.py train data-import prmbench --input ../shared/data/prm_step_labels/prmbench_train --out data/prmbench.jsonl
    python cli.py train data-import gsm8k-examples --input ../shared/data/gsm8k/example_model_solutions.jsonl --out data/ex.jsonl
    # trainers
    python cli.py train prm --data data/prmbench.jsonl --out runs/prm
    python cli.py train orm --data data/ex.jsonl --out runs/orm
    python cli.py train tinyrm --data data/ex.jsonl --out runs/tinyrm
    # ORM / TinyRM on the outcome labels of a stored pool (the policy's own graded samples)
    python cli.py train orm --pool pools/gsm8k-train256-n8.jsonl.gz --balance prior --out runs/orm-pool

Every TrainConfig field is an option (``--lora-r``, ``--freeze-layers``, ``--peft dora`` ...;
``cli.py train prm --help`` lists them with their help). Only argparse and the standard
library are imported at module top.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

LOG_BESIDE_OUTPUT = True  # run() sends engine and library warnings beside --out (OUT/train.log for a checkpoint)

_BUILDERS = ("data-outcome", "data-steps")
_PROBE = ("probe-features", "probe", "probe-threshold")  # features once, then heads (+ their threshold)


def _bool(s: str) -> bool:
    if s.lower() in ("1", "true", "yes", "on"):
        return True
    if s.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got {s!r}")


def _add_train_options(p: argparse.ArgumentParser) -> None:
    from dataclasses import MISSING, fields

    from rewards.train import TrainConfig, field_docs

    docs = field_docs()
    p.add_argument("--data", nargs="+", default=[], help="JSONL training files (records of docs/training.md)")
    p.add_argument("--pool", nargs="+", default=[],
                   help="sample pools written by `cli.py pool` (.jsonl or .jsonl.gz): every graded sample "
                        "is an outcome record (TinyRM: pairs of a correct and a wrong one; PRM: with "
                        "--outcome-targets true, every step labelled with the sample's verdict); problems of "
                        "the held-out slices are dropped. With --data, both are read")
    p.add_argument("--out", required=True,
                   help="checkpoint directory (adapter, head, card.json); when it holds resume/ from an "
                        "interrupted run with the same settings and data, training continues from there "
                        "(delete OUT/resume to start over)")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress (a bar on a terminal, plain lines every 10%% / 30 s otherwise)")
    g = p.add_argument_group("training config (TrainConfig)")
    for f in fields(TrainConfig):
        if f.name == "kind":
            continue
        default = f.default if f.default is not MISSING else None
        flag = "--" + f.name.replace("_", "-")
        help_ = docs.get(f.name, "") + f" (default: {default!r})"
        help_ = help_.replace("%", "%%")
        if isinstance(default, bool):
            g.add_argument(flag, type=_bool, default=default, metavar="BOOL", help=help_)
        elif isinstance(default, tuple):
            g.add_argument(flag, type=float, nargs=len(default), default=default, help=help_)
        elif f.name in ("max_steps", "max_train_examples", "max_eval_examples", "eval_every", "patience", "threads",
                        "save_every_steps"):
            g.add_argument(flag, type=lambda s: None if s.lower() == "none" else int(s), default=default, help=help_)
        elif f.name in ("max_seconds", "save_every_seconds"):
            g.add_argument(flag, type=lambda s: None if s.lower() == "none" else float(s), default=default, help=help_)
        elif isinstance(default, float):
            g.add_argument(flag, type=float, default=default, help=help_)
        elif isinstance(default, int):
            g.add_argument(flag, type=int, default=default, help=help_)
        else:
            g.add_argument(flag, default=default, help=help_)


def _add_policy_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("problems")
    g.add_argument("--dataset", default="gsm8k-train", help="gsm8k-train, math-train, ... or a JSONL path")
    g.add_argument("--data-dir", default=None, help="folder of the shared data (for *-train names)")
    g.add_argument("--limit", type=int, default=None, help="use the first LIMIT problems (after --offset)")
    g.add_argument("--offset", type=int, default=0)
    g = p.add_argument_group("policy")
    g.add_argument("--model", default=None, help="policy model (default: embedded SmolLM2-135M)")
    g.add_argument("--temperature", type=float, default=None, help="default 0.7 (with --pool: the pool's)")
    g.add_argument("--max-new-tokens", type=int, default=None,
                   help="cap on one solution / rollout (default 384; with --pool: the pool's)")
    g.add_argument("--prompt-style", default=None, help="gsm8k, math, plain or a template path (default: from the dataset)")
    g.add_argument("--kv-cache-gib", type=float, default=None, help="vLLM KV cache (CPU default 2 GiB)")
    g.add_argument("--max-num-seqs", type=int, default=None, help="sequences decoded together (CPU default 128)")
    g.add_argument("--seed", type=int, default=0)
    g = p.add_argument_group("budget (checked between chunks; the run resumes where it stopped)")
    g.add_argument("--max-problems", type=int, default=None)
    g.add_argument("--max-tokens", type=int, default=None, help="generated tokens in this run")
    g.add_argument("--max-seconds", type=float, default=None)
    g.add_argument("--chunk", type=int, default=16, help="problems sent to the policy together")
    p.add_argument("--out", required=True, help="output JSONL (appended; rerun to resume)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="train_command", metavar="WHAT")
    from rewards.kinds import SCORER_KINDS  # plain data
    from rewards.train import IMPORTERS  # no torch at import

    for kind, help_ in ((k, v.train) for k, v in SCORER_KINDS.items() if v.train):
        p = sub.add_parser(kind, help=help_, description=help_)
        _add_train_options(p)
    p = sub.add_parser("data-outcome", help="sample n solutions per problem with the policy and grade them")
    _add_policy_options(p)
    p.add_argument("--n", type=int, default=8, help="solutions per problem")
    p = sub.add_parser("data-steps", help="Monte Carlo step labels: k rollouts from every step prefix")
    _add_policy_options(p)
    p.add_argument("--n", type=int, default=2, help="solutions per problem to label")
    p.add_argument("--k", type=int, default=8, help="rollouts per step prefix")
    p.add_argument("--max-steps", type=int, default=12, help="skip solutions with more steps")
    p.add_argument("--pool", default=None,
                   help="label the samples of this stored pool (`cli.py pool`, .jsonl or .jsonl.gz) instead of "
                        "sampling new ones: only the rollouts run the policy (the pool's model, temperature, "
                        "token cap and prompt unless given); --dataset and --n are then not used")
    p.add_argument("--samples-per-problem", type=int, default=4,
                   help="--pool: samples labelled per problem, right and wrong answers alternating (default 4)")
    p.add_argument("--mixed-only", action="store_true",
                   help="--pool: only problems the pool holds both right and wrong samples of")
    p.add_argument("--skip-labelled", nargs="+", default=None, metavar="MC_LABELS",
                   help="--pool: Monte Carlo label files of the same pool whose samples are not labelled again "
                        "(they count toward --samples-per-problem: 4 after a run of 2 labels the next two); "
                        "pass both files to `cli.py train probe --step-labels`")
    p = sub.add_parser(_PROBE[0], help="the frozen policy's hidden states at the step ends of a pool's "
                                              "samples (resumable; held-out problems left out)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--pool", help="training pool written by `cli.py pool` (.jsonl or .jsonl.gz)")
    src.add_argument("--steps", help="step-labelled solutions (`cli.py train data-import`: PRMBench, PRM800K, "
                                     "Math-Shepherd); their step labels become the step targets (join the folder "
                                     "with a pool's in `cli.py train probe --features`)")
    p.add_argument("--model", default="qwen2.5-coder-0.5b", help="the policy that wrote the pool")
    p.add_argument("--prompt-style", default=None,
                   help="the prompt the states are read under (default: the pool's own; --steps: gsm8k, the "
                        "training pool's prompt, so the two feature sets join)")
    p.add_argument("--layers", default="8,16,24", help="decoder layers to read, 1-based (default 8,16,24)")
    p.add_argument("--out", required=True, help="features folder (rerun the same command to resume)")
    p.add_argument("--problems-per-shard", type=int, default=8, help="problems per stored shard (default 8)")
    p.add_argument("--token-budget", type=int, default=8192, help="padded tokens per forward (default 8192)")
    p.add_argument("--kv-cache-tokens", type=int, default=None,
                   help="prefix cache, in tokens: a problem's samples run its prompt once (default 65536, about "
                        "1 GiB for the 0.5B policy in float32; 0: every sample runs whole)")
    p.add_argument("--allow-heldout", action="store_true",
                   help="keep problems of the held-out slices (never for a probe you will report on them)")
    p = sub.add_parser(_PROBE[1], help="fit a probe head on extracted features (layer and L2 by grouped CV)")
    p.add_argument("--features", required=True, nargs="+",
                   help="folder(s) written by `cli.py train probe-features`; several pools' folders (e.g. GSM8K "
                        "and MATH training pools) are joined into one training set")
    p.add_argument("--granularity", choices=("step", "outcome"), default="step",
                   help="step: a score per step end (PRM); outcome: one at the answer (ORM)")
    p.add_argument("--out", required=True, help="probe directory (probe.json + head.npz)")
    p.add_argument("--step-labels", nargs="+", default=[],
                   help="--granularity step: Monte Carlo step labels of the same pool's samples (`cli.py train "
                        "data-steps --pool`); a labelled sample's step targets become (k x rollout share + "
                        "outcome) / (k + 1), the others keep their outcome")
    p.add_argument("--step-targets", choices=("value", "first-error"), default="value",
                   help="with --step-labels: 'value' (above) or 'first-error': a labelled sample's steps get 1 before "
                        "its first error (first prefix no rollout finished right) and 0 from it, and the pool's "
                        "unlabelled samples leave the fit, so a step's score says whether it is right rather than "
                        "whether the policy will end right (default value)")
    p.add_argument("--layers", default=None, help="layers to choose from (default: every extracted one)")
    p.add_argument("--l2", default="1e-4,1e-3,1e-2,1e-1,1", help="L2 strengths to choose from")
    p.add_argument("--folds", type=int, default=5, help="cross-validation folds, grouped by problem")
    p.add_argument("--seed", type=int, default=0, help="seed of the fold assignment")
    p = sub.add_parser(_PROBE[2], help="fix a trained probe's step-flagging threshold on its training features",
                       description="Out-of-fold step scores of the probe's training pool (heads refitted with the "
                                   "card's layer and L2, grouped by problem) choose the threshold that maximises "
                                   "the balanced F1 of 'some step below it' vs 'final answer wrong' (with "
                                   "step-labelled solutions among the features: ProcessBench's first-error F1 on "
                                   "them); written into probe.json as 'threshold' (the head is not touched). "
                                   "`cli.py train probe` does this itself; this command adds it to a probe trained "
                                   "before, or refits it with --relative.")
    p.add_argument("--probe", required=True, help="probe directory (probe.json + head.npz)")
    p.add_argument("--features", required=True, nargs="+",
                   help="the features the probe was trained on (its training pool(s), in the same order)")
    p.add_argument("--folds", type=int, default=None, help="folds (default: the card's cv_folds)")
    p.add_argument("--seed", type=int, default=None, help="fold seed (default: the card's, else 0)")
    p.add_argument("--relative", action="store_true",
                   help="fit a drop ratio with the threshold (a step scored below ratio x the previous step's score "
                        "is flagged too); needs step-labelled solutions among the features")
    p.add_argument("--step-labels", nargs="+", default=None, metavar="MC_LABELS",
                   help="the Monte Carlo step targets the probe was trained with (`cli.py train probe "
                        "--step-labels`), so the out-of-fold heads are fitted as it was")
    p.add_argument("--drop-start", type=int, choices=(0, 1), default=0,
                   help="with --relative: 0 compares the first step with 1 too, 1 looks for drops from the second "
                        "step on (the first step judged by the threshold alone)")
    p.add_argument("--first-errors", nargs="+", default=None, metavar="MC_LABELS",
                   help="Monte Carlo step labels of the probe's training pool (`cli.py train data-steps --pool`): "
                        "their samples' first errors (Math-Shepherd's hard estimate) are a second set; the rule "
                        "maximises the mean of the two sets' first-error F1s")
    p = sub.add_parser("data-import", help="convert PRM800K / Math-Shepherd / PRMBench / GSM8K-example files")
    p.add_argument("format", choices=tuple(IMPORTERS))
    p.add_argument("--input", required=True, help="input JSONL file (PRMBench: a file or a folder of them)")
    p.add_argument("--out", required=True, help="output JSONL")
    p.add_argument("--skip-first", type=int, default=None,
                   help="gsm8k-examples: skip the first N rows (GSM8K test problems kept for evaluation; default 500)")
    p.add_argument("--neutral", type=float, default=1.0, help="prm800k: label of a step rated 0 (default 1.0)")


def _command_line() -> str:
    return "python cli.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])


def run(args) -> int:
    cmd = getattr(args, "train_command", None)
    if cmd is None:
        from rewards.train import TRAIN_KINDS

        print(f"cli.py train: choose one of {', '.join((*TRAIN_KINDS, *_PROBE, *_BUILDERS, 'data-import'))} "
              "(cli.py train --help)", file=sys.stderr)
        return 2
    from policies.logs import beside, log_to

    # data commands write a JSONL (X.log beside it); training writes a checkpoint folder
    if cmd == _PROBE[2]:
        if Path(args.probe).is_dir():  # a wrong --probe gets its one-line error, not a new folder
            log_to(Path(args.probe) / "threshold.log")
        return _run_probe_threshold(args)
    log_to(beside(args.out) if cmd == "data-import" or cmd in _BUILDERS else Path(args.out) / "train.log")
    if cmd == "probe-features":
        return _run_probe_features(args)
    if cmd == "probe":
        return _run_probe(args)
    if cmd == "data-import":
        return _run_import(args)
    if cmd in _BUILDERS:
        return _run_builder(args)
    return _run_train(args)


def _int_list(flag: str, text: str) -> list[int]:
    try:
        out = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ValueError(f"{flag} {text!r}: give comma-separated integers, e.g. 8,16,24") from None
    if not out:
        raise ValueError(f"{flag}: give at least one value")
    return out


def _run_probe_features(args) -> int:
    from policies.datasets import is_heldout
    from policies.pool import read_pool
    from rewards.train import probe

    layers = _int_list("--layers", args.layers)
    for flag, v in (("--problems-per-shard", args.problems_per_shard), ("--token-budget", args.token_budget)):
        if v < 1:
            raise ValueError(f"{flag} must be >= 1, got {v}")
    if args.kv_cache_tokens is None:
        args.kv_cache_tokens = probe.KV_CACHE_TOKENS
    if args.kv_cache_tokens < 0:
        raise ValueError(f"--kv-cache-tokens must be >= 0 (0: no prefix cache), got {args.kv_cache_tokens}")

    def progress(m: dict) -> None:
        run, cached = m["tokens"], m.get("tokens_from_cache", 0)
        print(f"probe-features: {len(m['done'])} problems, {run / max(m['seconds'], 1e-9):.0f} tok/s run, "
              f"{(run + cached) / max(m['seconds'], 1e-9):.0f} tok/s read ({cached / max(run + cached, 1):.0%} "
              "from the prefix cache)", file=sys.stderr, flush=True)

    if args.steps is not None:
        if not Path(args.steps).is_file():
            raise FileNotFoundError(f"--steps {args.steps}: no such file; write one with `cli.py train data-import`")
        man = probe.extract_step_features(args.steps, args.out, model=args.model, layers=layers,
                                          prompt_style=args.prompt_style or "gsm8k",
                                          problems_per_shard=args.problems_per_shard, token_budget=args.token_budget,
                                          kv_cache_tokens=args.kv_cache_tokens,
                                          exclude_problem=None if args.allow_heldout else is_heldout,
                                          on_shard=progress)
        print(f"{args.out}: {len(man['done'])} questions, {man['tokens']} tokens in {man['seconds']:.0f} s")
        return 0
    if not Path(args.pool).is_file():
        raise FileNotFoundError(f"--pool {args.pool}: no such file; write one with `cli.py pool`")
    rows = read_pool(args.pool)
    exclude = [] if args.allow_heldout else [r["id"] for r in rows if is_heldout(r["problem"])]
    if exclude and len(exclude) == len(rows):
        raise ValueError(f"--pool {args.pool}: every problem is in a held-out slice; extract features from a "
                         "training pool (or pass --allow-heldout for analysis only)")
    if exclude:
        print(f"leaving out {len(exclude)} held-out problems", file=sys.stderr)
    man = probe.extract_pool_features(args.pool, args.out, model=args.model, layers=layers,
                                      problems_per_shard=args.problems_per_shard, token_budget=args.token_budget,
                                      kv_cache_tokens=args.kv_cache_tokens, exclude=exclude, prompt_style=args.prompt_style, on_shard=progress)
    print(f"{args.out}: {len(man['done'])} problems, {man['tokens']} tokens in {man['seconds']:.0f} s")
    return 0


def _run_probe(args) -> int:
    from rewards.train import probe

    l2 = [float(x) for x in args.l2.split(",") if x.strip()]
    if not l2 or any(x < 0 for x in l2):
        raise ValueError(f"--l2 {args.l2!r}: give comma-separated strengths >= 0")
    if args.folds < 2:
        raise ValueError(f"--folds must be >= 2, got {args.folds}")
    if args.step_labels and args.granularity != "step":
        raise ValueError("--step-labels: Monte Carlo labels are step targets; pass --granularity step")
    if args.step_targets != "value" and not args.step_labels:
        raise ValueError(f"--step-targets {args.step_targets}: pass the Monte Carlo labels with --step-labels")
    for path in args.step_labels:  # before the features are loaded
        if not Path(path).is_file():
            raise FileNotFoundError(f"--step-labels {path}: no such file; write it with `cli.py train data-steps "
                                    "--pool`")
    f = probe.load_features(args.features)
    if args.step_labels:
        from rewards.train import read_jsonl

        got = probe.attach_step_labels(f, [r for path in args.step_labels for r in read_jsonl(path)],
                                       source=list(args.step_labels), targets=args.step_targets)
        print(f"Monte Carlo step labels ({args.step_targets} targets) on {got['samples']} of {got['of_samples']} "
              f"samples ({got['problems']} problems, {got['prefixes']} prefixes, mean label "
              f"{got['mean_prefix_label']})", file=sys.stderr)
    layers = _int_list("--layers", args.layers) if args.layers else None
    fit = probe.select_and_fit(f, granularity=args.granularity, layers=layers, l2_grid=l2, folds=args.folds,
                               seed=args.seed)
    f.manifest["path"] = args.features[0] if len(args.features) == 1 else list(args.features)
    out = probe.save_probe(args.out, fit, granularity=args.granularity, features=f, command=_command_line())
    best = min(fit["cv"], key=lambda r: r["log_loss"])
    print(f"{out}: layer {fit['layer']}, l2 {fit['l2']:g}; CV log-loss {best['log_loss']:.4f}, outcome AUC "
          f"{best['auc_outcome']:.3f}, ECE {best['ece']:.3f} ({fit['samples']} samples, {fit['problems']} problems, "
          f"{fit['positive_share']:.1%} correct)")
    if fit["threshold"] is not None:
        print(_threshold_line(fit["threshold"]))
    return 0


def _threshold_line(th: dict) -> str:
    if "first_error_f1" in th:
        ratio = f" and drop ratio {th['ratio']:g}" if th.get("ratio") else ""
        ratio += " from the second step on" if th.get("ratio_start") else ""
        return (f"step-flagging threshold {th['value']:.4g}{ratio} (out-of-fold on {th['solutions']} step-labelled training "
                f"solutions: {th['error_acc']:.1%} of erroneous ones located, {th['correct_acc']:.1%} of error-free "
                f"ones not flagged; first-error F1 {th['first_error_f1']:.3f})")
    return (f"step-flagging threshold {th['value']:.4g} (out-of-fold on the training pool: "
            f"{th['wrong_flagged']:.1%} of wrong samples flagged, {th['right_unflagged']:.1%} of right ones not; "
            f"balanced F1 {th['balanced_f1']:.3f})")


def _run_probe_threshold(args) -> int:
    from rewards.train import probe

    if args.folds is not None and args.folds < 2:
        raise ValueError(f"--folds must be >= 2, got {args.folds}")
    if args.drop_start and not args.relative:
        raise ValueError("--drop-start applies with --relative (a drop ratio)")
    from rewards.train import read_jsonl

    for flag, paths in (("--first-errors", args.first_errors), ("--step-labels", args.step_labels)):
        for path in paths or []:
            if not Path(path).is_file():
                raise FileNotFoundError(f"{flag} {path}: no such file; write it with `cli.py train data-steps --pool`")
    records = [r for path in args.first_errors for r in read_jsonl(path)] if args.first_errors else None
    labels = [r for path in args.step_labels for r in read_jsonl(path)] if args.step_labels else None
    th = probe.write_threshold(args.probe, args.features, folds=args.folds, seed=args.seed, relative=args.relative,
                               start=args.drop_start, first_errors=records, command=_command_line(),
                               step_labels=labels, step_label_source=list(args.step_labels or []) or None)
    print(f"{args.probe}/probe.json: {_threshold_line(th)}")
    return 0


def _run_import(args) -> int:
    from rewards.train import GSM8K_TEST_RESERVED, IMPORTERS, write_jsonl

    kw = {}
    if args.format == "gsm8k-examples":
        kw["skip_first"] = GSM8K_TEST_RESERVED if args.skip_first is None else args.skip_first
    elif args.skip_first is not None:
        raise ValueError("--skip-first applies to gsm8k-examples only")
    if args.format == "prm800k":
        kw["neutral"] = args.neutral
    if not Path(args.input).exists():
        raise FileNotFoundError(f"--input {args.input}: no such file or folder")
    rows = IMPORTERS[args.format](args.input, **kw)
    n = write_jsonl(args.out, rows)
    kinds: dict[str, int] = {}
    for r in rows:
        kinds[r["kind"]] = kinds.get(r["kind"], 0) + 1
    print(f"wrote {n} records to {args.out} ({kinds}; {len({r['problem'] for r in rows})} problems)")
    return 0


def _run_builder(args) -> int:
    from policies import EngineConfig, SamplingConfig, VLLMPolicy
    from policies.datasets import check_options, load_problems, prompt_style
    from policies.paths import check_out_file
    from rewards.train import (
        Budget,
        build_outcome_data,
        build_step_labels,
        labelled_samples,
        step_labels_from_pool,
        summary_line,
    )

    # every option before the dataset or the engine: one line naming the option
    check_out_file("--out", args.out)
    pool_path = getattr(args, "pool", None)
    for flag, v, low in (("--limit", args.limit, 1), ("--offset", args.offset, 0), ("--chunk", args.chunk, 1),
                         ("--n", args.n, 1), ("--k", getattr(args, "k", 1), 1),
                         ("--samples-per-problem", getattr(args, "samples_per_problem", 1), 1)):
        if v is not None and v < low:
            raise ValueError(f"{flag} must be >= {low}, got {v}" + (" (omit --limit for every problem)"
                                                                    if flag == "--limit" else ""))
    skip = None
    if getattr(args, "skip_labelled", None) and not pool_path:
        raise ValueError("--skip-labelled applies to labelling a stored pool's samples (--pool)")
    if pool_path:
        from policies.pool import read_pool

        _check_pools([pool_path])
        pool = read_pool(pool_path)[args.offset:]
        pool = pool[: args.limit] if args.limit else pool
        if args.skip_labelled:
            skip = labelled_samples(args.skip_labelled, pool, pool_path)
        ident = (pool[0].get("config") or {}).get("policy") or {}
        if args.model and ident.get("model") and args.model != ident["model"]:
            raise ValueError(f"--model {args.model}: the pool {pool_path} was written by {ident['model']}; Monte "
                             "Carlo labels estimate P(correct) under the policy that wrote the samples (omit "
                             "--model to use it)")
        model = args.model or ident.get("model")
        temperature = args.temperature if args.temperature is not None else ident.get("temperature", 0.7)
        max_new = args.max_new_tokens or ident.get("max_tokens") or 384
        style = args.prompt_style or ident.get("prompt_style") or "gsm8k"
        source = {"pool": str(pool_path), "offset": args.offset, "limit": args.limit}
    else:
        check_options(args.dataset, data_dir=args.data_dir)
        problems = load_problems(args.dataset, limit=args.limit, offset=args.offset, data_dir=args.data_dir)
        model, style = args.model, args.prompt_style or prompt_style(args.dataset)
        temperature = 0.7 if args.temperature is None else args.temperature
        max_new = args.max_new_tokens or 384
        source = {"dataset": args.dataset, "offset": args.offset}
    policy = VLLMPolicy(
        model,
        engine=EngineConfig(kv_cache_gib=args.kv_cache_gib, max_num_seqs=args.max_num_seqs, seed=args.seed),
        sampling=SamplingConfig(temperature=temperature, max_tokens=max_new, seed=args.seed),
        prompt_style=style,
    )
    budget = Budget(max_problems=args.max_problems, max_tokens=args.max_tokens, max_seconds=args.max_seconds)
    meta = {**source, "model": model or "smollm2-135m", "temperature": temperature, "max_new_tokens": max_new,
            "prompt_style": str(style)}
    if args.train_command == "data-outcome":
        s = build_outcome_data(policy, problems, args.out, n=args.n, seed=args.seed, chunk=args.chunk,
                               budget=budget, meta=meta)
    elif pool_path:
        s = step_labels_from_pool(policy, pool, args.out, k=args.k, samples_per_problem=args.samples_per_problem,
                                  mixed_only=args.mixed_only, max_steps=args.max_steps, seed=args.seed,
                                  chunk=args.chunk, budget=budget, skip=skip, meta=meta)
    else:
        s = build_step_labels(policy, problems, args.out, n=args.n, k=args.k, max_steps=args.max_steps,
                              seed=args.seed, chunk=args.chunk, budget=budget, meta=meta)
    print(f"{args.out}: {summary_line(s)}")
    if s["problems_remaining"]:
        print("budget spent; rerun the same command to continue")
    return 0


def _check_pools(pools: list[str]) -> None:
    from policies.pool import is_pool

    for p in pools:
        if not Path(p).is_file():
            raise FileNotFoundError(f"--pool {p}: no such file; write one with `cli.py pool`")
        if not is_pool(p):
            raise ValueError(f"--pool {p}: not a sample pool (no 'tts-math-pool/1' records); pass training "
                             "records with --data")


def _run_train(args) -> int:
    from dataclasses import fields

    from rewards.train import TrainConfig, train

    kw = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if f.name != "kind"}
    config = TrainConfig(kind=args.train_command, **kw)
    pools = list(args.pool)
    if not args.data and not pools:
        raise ValueError(f"cli.py train {args.train_command}: give --data FILE ... or --pool POOL ...")
    _check_pools(pools)
    if pools and args.train_command == "prm" and not config.outcome_targets:
        raise ValueError(f"--pool {pools[0]}: a pool's samples carry outcomes, not step labels; add "
                         "--outcome-targets true (every step labelled with its sample's verdict), or give "
                         "Monte Carlo step labels of the pool with --data (`cli.py train data-steps --pool`)")
    card = train(config, [*args.data, *pools], args.out, progress=not args.no_progress,
                 command=_command_line())
    m, t = card["metrics"], card["training"]
    print(json.dumps({"out": args.out, "stopped": t["stopped"], "steps": t["steps_run"],
                      "samples_per_second": t["throughput"]["samples_per_second"],
                      "resumed_at_steps": [r["step"] for r in t["resumed"]],
                      "heldout_untrained": m["heldout_untrained"], "heldout_best": m["heldout_best"]}, indent=1))
    if t["stopped"] == "max_seconds":
        print(f"budget spent; rerun the same command to continue from {args.out}/resume")
    return 0
