"""`python cli.py search`: run a search strategy on a dataset.

    python cli.py search --dataset gsm8k --limit 4 --strategy weighted_majority --reward verifier --n 4
    python cli.py search --strategy beam --reward prm --agg min --n 8 --beam-width 2 --max-steps 6
    python cli.py search --dataset my.jsonl --problem-field question --answer-field gold --strategy best_of_n

Records go to --out (default runs/<dataset>-<strategy>-<reward>-<agg>-n<N>...-seed<S>.jsonl),
one line per problem as it finishes; rerunning the same command resumes. Only
argparse is imported at the top, so `--help` works without vLLM or torch.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

BACKENDS = ("inprocess", "openai", "ray")
LOG_BESIDE_OUTPUT = True  # run() sends engine and library warnings to runs/X.log beside runs/X.jsonl


def add_arguments(p: argparse.ArgumentParser) -> None:
    from policies.datasets import NAMES as DATASETS  # the registries: plain data, no heavy imports
    from rewards.aggregators import names as agg_names
    from rewards.kinds import SCORER_KINDS, kinds_help
    from search.select import PATTERNS, RULES
    from search.stopping import PATTERNS as STOP_PATTERNS
    from search.stopping import STOP_RULES
    from search.strategies import NAMES as STRATEGIES

    g = p.add_argument_group("search")
    g.add_argument("--strategy", choices=STRATEGIES, default="best_of_n")
    g.add_argument("--n", type=int, default=4, help="samples (best-of-n, voting), live beams (beam), total leaves (DVTS), particles (particle_filter)")
    g.add_argument("--beam-width", type=int, default=2, help="M: continuations per expanded beam / node")
    g.add_argument("--beam-rule", choices=("top_n_over_m", "expand_all"), default="top_n_over_m",
                   help="beam: N/M best beams get M each (search-and-learn), or every beam gets M and the best N stay")
    g.add_argument("--max-steps", type=int, default=8, help="step limit of beam/DVTS/MCTS; then a rollout to the end")
    g.add_argument("--node-budget", type=int, default=32, help="MCTS: nodes per problem")
    g.add_argument("--c-puct", type=float, default=1.0, help="MCTS exploration constant")
    g.add_argument("--rollouts", action="store_true", help="MCTS: value new nodes by a rollout to the end")
    g.add_argument("--agg", default="auto",
                   help="aggregator used during search: auto (default: the one the scorer's card recommends, "
                        "chosen on validation data, docs/training.md; min when it names none), or "
                        f"{', '.join(agg_names())}")
    g.add_argument("--final-agg", default=None, help="aggregator for the final selection (default: --agg; auto too)")
    g.add_argument("--select", type=_select_rule, default=None,
                   help=f"final selection: {', '.join(RULES)}, or {' / '.join(PATTERNS)} "
                        "(keep the top P%% by value, then vote); default: the strategy's own")
    g.add_argument("--stop", default="beta0.95",
                   help=f"adaptive: stop rule ({', '.join((*STOP_PATTERNS, *STOP_RULES))}; search/stopping.py); "
                        "--n is the cap")
    g.add_argument("--first-round", type=int, default=2, help="adaptive: samples per problem in the first round")
    g.add_argument("--round-size", type=_round_size, default=1,
                   help="adaptive: samples added per later round, or 'double' (double the total each round)")
    g.add_argument("--warmup", type=int, default=4,
                   help="deepconf: traces per problem run in full to set the early-stop threshold")
    g.add_argument("--keep", type=float, default=90.0,
                   help="deepconf: threshold = the (100 - keep)-th percentile of the warm-up traces' lowest-group "
                        "confidence (90: DeepConf-high, 10: DeepConf-low)")
    g.add_argument("--window", type=int, default=32,
                   help="deepconf: window in tokens of the group confidence and of the early stop")
    g.add_argument("--confidence", type=_confidence, default=None,
                   help="adaptive: token-confidence summary (search/confidence.py, e.g. group32) that weighs the "
                        "weighted stop rules and, without a scorer, is each sample's value; asks the policy for "
                        "token log-probs (top 5)")
    g.add_argument("--seed", type=int, default=0)
    g = p.add_argument_group("reward")
    g.add_argument("--reward", choices=SCORER_KINDS, default=None,
                   help=f"scorer (default none). {kinds_help()}. With --scorer-endpoint: the served kind "
                        "(checked against the server)")
    g.add_argument("--scorer-model", default=None, help="checkpoint of the scorer (default: the kind's default)")
    g.add_argument("--step-check", choices=("arithmetic",), default=None,
                   help="an exact check in front of the scorer: a step that writes a false equation "
                        "(3 * 4 = 13) scores 0 from there on (rewards/checked.py)")
    g = p.add_argument_group("data")
    g.add_argument("--dataset", default="gsm8k", help=f"{', '.join(DATASETS)} or a JSONL path")
    g.add_argument("--problem-field", default=None)
    g.add_argument("--answer-field", default=None)
    g.add_argument("--data-dir", default=None, help="folder of the shared data (for *-train names)")
    g.add_argument("--limit", type=int, default=None)
    g.add_argument("--offset", type=int, default=0)
    g = p.add_argument_group("policy")
    g.add_argument("--model", default=None, help="policy model (default: embedded SmolLM2-135M)")
    g.add_argument("--temperature", type=float, default=0.8)
    g.add_argument("--top-p", type=float, default=1.0)
    g.add_argument("--max-tokens", type=int, default=384, help="cap on one full solution")
    g.add_argument("--max-step-tokens", type=int, default=128, help="cap on one step (step-level strategies)")
    g.add_argument("--prompt-style", default=None, help="gsm8k, math, plain or a template path (default: from the dataset)")
    g.add_argument("--gpu-memory-utilization", type=float, default=None,
                   help="share of device memory vLLM reserves (GPU; on CPU prefer --kv-cache-gib)")
    g.add_argument("--kv-cache-gib", type=float, default=None,
                   help="KV cache size in GiB (CPU default 2)")
    g.add_argument("--tensor-parallel-size", type=int, default=1, help="vLLM tensor parallelism (GPUs)")
    g.add_argument("--data-parallel-size", type=int, default=1, help="vLLM data parallelism (GPUs)")
    g = p.add_argument_group("backend (docs/scale-out.md)")
    g.add_argument("--backend", choices=BACKENDS, default="inprocess",
                   help="in-process vLLM engine, OpenAI-compatible servers (--endpoint), or Ray actors")
    g.add_argument("--endpoint", action="append", default=None,
                   help="completions server base URL, e.g. http://127.0.0.1:8000/v1 (repeat for several); "
                        "with --backend ray each actor is a client of these servers instead of an engine")
    g.add_argument("--concurrency", type=int, default=64, help="open requests per endpoint (openai)")
    g.add_argument("--ray-address", default=None,
                   help="Ray cluster address: 'auto' (a cluster started with `ray start` here), HEAD_IP:6379 "
                        "(default: start a local one)")
    g.add_argument("--ray-actors", type=int, default=2, help="Ray actors, each owning an engine or endpoint client")
    g.add_argument("--ray-gpus-per-actor", type=float, default=0.0, help="GPUs reserved by each actor's engine")
    g.add_argument("--scorer-endpoint", default=None,
                   help="URL of a scorer server (python cli.py serve-scorer), e.g. http://127.0.0.1:8100, "
                        "used instead of a local scorer; its kind comes from the server")
    g = p.add_argument_group("run")
    g.add_argument("--out", default=None, help="output JSONL (default derived from the config, under runs/)")
    g.add_argument("--batch-problems", type=int, default=16,
                   help="problems that advance together in a lockstep run (not in a pipelined one)")
    g.add_argument("--pipeline", action=argparse.BooleanOptionalAction, default=None,
                   help="step-level strategies: each problem advances as soon as its own steps are back and "
                        "scored, problems starting as the engine's KV cache allows (default with the in-process "
                        "engine); --no-pipeline: all problems depth by depth in --batch-problems batches, the "
                        "reference (default with --backend openai / ray)")
    g.add_argument("--quiet", action="store_true", help="no per-problem lines")


def _select_rule(text: str) -> str:
    from search.select import check_rule  # pure Python

    try:
        return check_rule(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _confidence(text: str) -> str:
    from search.confidence import check  # numpy only

    try:
        return check(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _round_size(text: str) -> int | None:
    if text == "double":
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--round-size must be an int >= 1 or 'double', got {text!r}") from None


def resolve_aggs(args) -> None:
    """--agg / --final-agg auto become the aggregator the scorer's card recommends
    (`rewards.checkpoint.resolve_agg`; a served scorer's /info `recommended_agg`), min when
    it names none. The run's identity and file name carry the resolved name, so a run made
    with `auto` resumes under the name it resolved to."""
    from rewards.checkpoint import AUTO_AGG, FALLBACK_AGG  # no torch

    for name in ("agg", "final_agg"):
        if getattr(args, name, None) == AUTO_AGG:
            setattr(args, name, recommended_for(args, resolve_reward(args)) or FALLBACK_AGG)


def recommended_for(args, kind: str) -> str | None:
    """The aggregator the scorer of `kind` recommends under these options: --reward's own
    (its --scorer-model's card, or the scorer server's /info with --scorer-endpoint), or
    another kind's shipped default; None where none is named."""
    from rewards.checkpoint import recommended_agg  # no torch

    if kind == "none":
        return None
    if kind == args.reward and getattr(args, "scorer_endpoint", None):
        resolve_reward(args)  # asks the scorer server once; its /info is kept in args.scorer_info
        return (getattr(args, "scorer_info", None) or {}).get("recommended_agg")
    return recommended_agg(kind, args.scorer_model if kind == args.reward else None)


def _config(args):
    from search.config import SearchConfig

    resolve_aggs(args)
    return SearchConfig(
        strategy=args.strategy, n=args.n, beam_width=args.beam_width, max_steps=args.max_steps,
        agg=args.agg, final_agg=args.final_agg, select=args.select, beam_rule=args.beam_rule,
        node_budget=args.node_budget, c_puct=args.c_puct, rollouts=args.rollouts, seed=args.seed,
        stop=getattr(args, "stop", "beta0.95"), first_round=getattr(args, "first_round", 2),
        round_size=getattr(args, "round_size", 1), warmup=getattr(args, "warmup", 4),
        keep=getattr(args, "keep", 90.0), window=getattr(args, "window", 32),
        confidence=getattr(args, "confidence", None),
    )


def default_out(args, config) -> Path:
    ds = Path(args.dataset).stem if args.dataset.endswith(".jsonl") else args.dataset
    from search.strategies import uses

    parts = [ds, config.strategy, resolve_reward(args), config.agg]
    if config.final_agg != config.agg:
        parts.append(f"final-{config.final_agg}")
    parts.append(f"n{config.n}")
    if uses(config.strategy, "beam_width"):
        parts.append(f"m{config.beam_width}")
    if uses(config.strategy, "node_budget"):
        parts.append(f"b{config.node_budget}")
    if uses(config.strategy, "stop"):
        parts.append(f"{config.stop}-r{config.first_round}+{config.round_size or 'x2'}")
        if config.confidence:
            parts.append(f"conf-{config.confidence}")
    if uses(config.strategy, "warmup"):
        parts.append(f"w{config.warmup}-keep{config.keep:g}-win{config.window}")
    parts.append(f"seed{config.seed}")
    return Path("runs") / ("-".join(parts) + ".jsonl")


def identity(args, config) -> dict:
    """What makes a run: a resumed run must match it exactly. Not included:
    --limit/--offset (a resume may extend the problem range), --out, --batch-problems,
    --pipeline (seeded results are the same either way)."""
    return {
        "search": config.as_dict(),
        "policy": {
            "model": args.model or "smollm2-135m", "temperature": args.temperature, "top_p": args.top_p,
            "max_tokens": args.max_tokens, "max_step_tokens": args.max_step_tokens,
            "prompt_style": args.prompt_style,
        },
        "reward": reward_identity(args),
        "data": {"dataset": args.dataset, "problem_field": args.problem_field, "answer_field": args.answer_field},
    }


def resolve_reward(args) -> str:
    """The scorer kind of the run: --reward, or with --scorer-endpoint the kind the
    server serves (asked once from its /info; a --reward that disagrees is an error).
    Sets args.reward to it; the server's /info is kept in args.scorer_info."""
    if getattr(args, "scorer_info", None) is not None or not args.scorer_endpoint:
        args.reward = args.reward or "none"
        return args.reward
    if args.scorer_model:
        raise ValueError("--scorer-model does not apply with --scorer-endpoint: the server loads its model "
                         "(python cli.py serve-scorer --reward KIND --scorer-model PATH)")
    from rewards.server import RemoteScorer

    info = RemoteScorer(args.scorer_endpoint).info()
    kind = info.get("kind")
    if args.reward is not None and args.reward != kind:
        raise ValueError(f"--reward {args.reward}, but the scorer at {args.scorer_endpoint} serves {kind!r}; "
                         "drop --reward (the server's kind is used) or point --scorer-endpoint at the right server")
    args.reward, args.scorer_info = kind, info
    return kind


def reward_identity(args) -> dict:
    """The scorer part of the run identity. A served scorer is named by what the
    server reports (kind, name, trained, parameters), not by its URL, so a run can
    resume against the same scorer served elsewhere."""
    kind = resolve_reward(args)
    ident = {"kind": kind, "model": args.scorer_model}
    if getattr(args, "step_check", None):  # absent otherwise: runs made before the option resume
        ident["step_check"] = args.step_check
    info = getattr(args, "scorer_info", None)
    if info is not None:
        ident["served"] = {k: info.get(k) for k in ("name", "trained", "num_parameters")}
    return ident


def check_backend_args(args) -> None:
    """Backend options that do not fit together: one clear error before anything loads."""
    from policies.openai_backend import normalize_endpoint  # stdlib-only at import time

    if args.backend == "openai" and not args.endpoint:
        raise ValueError("--backend openai needs at least one --endpoint URL (e.g. http://127.0.0.1:8000/v1)")
    if args.endpoint and args.backend == "inprocess":
        raise ValueError("--endpoint is for --backend openai (or ray: actors as clients of the servers); "
                         "add --backend openai")
    if args.backend != "ray" and (args.ray_address or args.ray_gpus_per_actor):
        raise ValueError("--ray-address / --ray-gpus-per-actor need --backend ray")
    for url in args.endpoint or ():
        normalize_endpoint(url)
    if args.scorer_endpoint and not args.scorer_endpoint.startswith(("http://", "https://")):
        raise ValueError(f"--scorer-endpoint must be an http(s) URL such as http://127.0.0.1:8100, "
                         f"got {args.scorer_endpoint!r}")


def _defaults() -> dict:
    p = argparse.ArgumentParser(add_help=False)
    add_arguments(p)
    return vars(p.parse_args([]))


def check_strategy_options(args, defaults: dict) -> None:
    """Options that apply to some strategies only (search.strategies) are refused, with a
    value other than the default, for the others."""
    from search.strategies import option_strategies

    strategy = getattr(args, "strategy", "best_of_n")
    for name, strategies in option_strategies().items():
        flag = "--" + name.replace("_", "-")
        if strategy not in strategies and getattr(args, name, defaults[name]) != defaults[name]:
            raise ValueError(f"{flag} applies to --strategy {' / '.join(strategies)}, not {strategy}; drop {flag}")


def pipelined(args) -> bool:
    """Whether `search` runs pipelined: --pipeline, or by default a step-level strategy
    on the in-process engine (the one policy that steps its own engine)."""
    from search.strategies import get

    if not get(args.strategy).step_level:
        return False
    return args.pipeline if args.pipeline is not None else args.backend == "inprocess"


def check_pipeline_args(args, defaults: dict) -> None:
    from search.strategies import REGISTRY, get

    pipeline = getattr(args, "pipeline", None)
    if pipeline is not None and not get(args.strategy).step_level:
        step = " / ".join(n for n, s in REGISTRY.items() if s.step_level)
        raise ValueError(f"--pipeline / --no-pipeline apply to --strategy {step}, not {args.strategy}; drop it")
    if pipeline and args.backend == "ray":
        raise ValueError("--pipeline does not apply to --backend ray (each actor searches its chunks depth by "
                         "depth); drop it")
    if pipelined(args) and args.batch_problems != defaults["batch_problems"]:
        raise ValueError(f"--batch-problems sets the batches of a lockstep run, and --strategy {args.strategy} runs "
                         "pipelined here (problems start as the engine's KV cache allows); add --no-pipeline to "
                         "run in batches, or drop --batch-problems")


def check_streaming_args(args, defaults: dict) -> None:
    """A strategy that stops traces inside the engine (deepconf) runs on the in-process
    engine, gets every problem at once and votes by confidence, not by a scorer."""
    from search.strategies import get

    strategy = getattr(args, "strategy", "best_of_n")
    if not get(strategy).streams:
        return
    if args.backend == "openai":
        raise ValueError(f"--strategy {strategy} stops traces inside the engine, which a server cannot do here; "
                         "use --backend inprocess (or ray)")
    if args.batch_problems != defaults["batch_problems"]:
        raise ValueError(f"--batch-problems does not apply to --strategy {strategy}: every problem goes to the "
                         "engine as its KV cache allows; drop --batch-problems")
    if (args.reward or "none") != "none" or args.scorer_endpoint:
        raise ValueError(f"--strategy {strategy} votes by the policy's own token confidence and takes no scorer; "
                         "drop --reward / --scorer-endpoint")


def check_args(args) -> None:
    """Every search option checked before anything loads or starts (the run file, the
    dataset, the engine): one ValueError naming the option, the constraint and the fix.
    --out is checked by `check_out_file` once the default name is known."""
    check_backend_args(args)
    if getattr(args, "step_check", None) and args.reward in (None, "none") and not args.scorer_endpoint:
        raise ValueError(f"--step-check {args.step_check} checks a scorer's steps; add --reward KIND "
                         "(e.g. --reward probe)")
    defaults = _defaults()
    for name, low in (("limit", 1), ("offset", 0), ("batch_problems", 1), ("ray_actors", 1), ("concurrency", 1),
                      ("tensor_parallel_size", 1), ("data_parallel_size", 1)):
        v = getattr(args, name, None)
        if v is not None and v < low:
            flag = "--" + name.replace("_", "-")
            hint = " (omit --limit to run every problem)" if name == "limit" else ""
            raise ValueError(f"{flag} must be >= {low}, got {v}{hint}")
    check_strategy_options(args, defaults)
    check_pipeline_args(args, defaults)
    check_streaming_args(args, defaults)
    from policies.datasets import check_options
    from rewards.kinds import MODEL_KINDS

    check_options(args.dataset, args.problem_field, args.answer_field, args.data_dir)
    if args.scorer_model and not args.scorer_endpoint and (args.reward or "none") not in MODEL_KINDS:
        raise ValueError(f"--scorer-model does not apply to --reward {args.reward or 'none'} (no model to load); "
                         f"drop it, or pass --reward {' / '.join(MODEL_KINDS)}")
    if args.backend == "inprocess" and args.concurrency != defaults["concurrency"]:
        raise ValueError("--concurrency applies to --backend openai (requests per endpoint); drop it")
    if args.backend != "ray" and args.ray_actors != defaults["ray_actors"]:
        raise ValueError("--ray-actors needs --backend ray")
    if args.endpoint:
        for name in ("gpu_memory_utilization", "kv_cache_gib", "tensor_parallel_size", "data_parallel_size"):
            if getattr(args, name) != defaults[name]:
                flag = "--" + name.replace("_", "-")
                raise ValueError(f"{flag} does not apply with --endpoint: the server runs the engine "
                                 f"(pass it to `vllm serve`); drop {flag}")
    if args.prompt_style is not None:
        from policies.vllm_policy import load_prompt_template  # no vLLM import

        load_prompt_template(args.prompt_style)


def backends(args):
    """(make_policy, make_scorer): picklable zero-argument factories of the policy and
    the scorer the options ask for (make_scorer None: no scorer). Nothing is built
    here: `search` calls them in this process, or in every Ray actor."""
    import functools

    from policies import EngineConfig, SamplingConfig, VLLMPolicy
    from search.confidence import TOP_K
    from search.strategies import get

    check_backend_args(args)
    sampling = SamplingConfig(  # a strategy that stops traces by confidence needs the top-k log-probs
        temperature=args.temperature, top_p=args.top_p, max_tokens=args.max_tokens,
        max_step_tokens=args.max_step_tokens, seed=args.seed,
        logprobs=TOP_K if (get(getattr(args, "strategy", "best_of_n")).streams
                           or getattr(args, "confidence", None)) else 0,
    )
    if args.endpoint:
        from policies.openai_backend import OpenAIPolicy

        make_policy = functools.partial(
            OpenAIPolicy, args.model, endpoints=args.endpoint, sampling=sampling,
            prompt_style=args.prompt_style, concurrency=args.concurrency,
        )
    else:
        engine = EngineConfig(
            gpu_memory_utilization=args.gpu_memory_utilization, kv_cache_gib=args.kv_cache_gib,
            tensor_parallel_size=args.tensor_parallel_size,
            data_parallel_size=args.data_parallel_size, seed=args.seed,
        )
        make_policy = functools.partial(
            VLLMPolicy, args.model, engine=engine, sampling=sampling, prompt_style=args.prompt_style,
        )
    make_scorer = None
    if args.scorer_endpoint:
        from rewards.server import RemoteScorer

        make_scorer = functools.partial(RemoteScorer, args.scorer_endpoint)
    elif (kind := resolve_reward(args)) != "none":
        # a probe reads the policy's own states: under the prompt the policy samples with
        options = {"prompt_style": args.prompt_style} if kind == "probe" else {}
        make_scorer = functools.partial(load_scorer, args.reward, args.scorer_model, **options)
    if getattr(args, "step_check", None):
        from rewards.checked import with_step_check

        if make_scorer is None:
            raise ValueError(f"--step-check {args.step_check} checks a scorer's steps; add --reward KIND "
                             "(e.g. --reward probe)")
        make_scorer = functools.partial(with_step_check, make_scorer, args.step_check)
    return make_policy, make_scorer


def load_scorer(kind: str, model: str | None, **options):
    """The scorer for --reward (None for 'none': no scorer at all); options go to the
    scorer's constructor (a probe's prompt_style)."""
    if kind == "none":
        return None
    try:
        from rewards import load_scorer as _load
    except (ImportError, AttributeError):
        if kind == "verifier":
            from rewards.oracle import VerifierScorer

            return VerifierScorer()
        raise ValueError(f"--reward {kind}: rewards.load_scorer is not available in this build") from None
    return _load(kind, model=model, **options)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from policies.datasets import load_problems, prompt_style
    from policies.logs import beside, log_to
    from policies.paths import check_out_file
    from search.runner import RunFile, open_run, run_search

    console = Console(stderr=False, highlight=False)
    check_args(args)  # every option, before the run file, the dataset or an engine
    asked = args.agg
    config = _config(args)
    if asked == "auto" and (args.reward or "none") != "none":
        console.print(f"--agg auto: {config.agg} (the {args.reward} scorer's recommended aggregator, "
                      "or min where its card names none)")
    if args.prompt_style is None:
        args.prompt_style = prompt_style(args.dataset)
    ident = identity(args, config)
    out = Path(args.out) if args.out else default_out(args, config)
    check_out_file("--out", out)
    log_to(beside(out))
    rf = RunFile(out, ident)
    rf.load()  # validates a resumed file before anything heavy starts
    problems = load_problems(
        args.dataset, limit=args.limit, offset=args.offset, data_dir=args.data_dir,
        problem_field=args.problem_field, answer_field=args.answer_field,
    )
    resumed = bool(rf.records)
    # golds checked (an ungradable one is recorded as invalid_gold, with a warning) before any engine
    _, _, _, todo, searchable = open_run(problems, config, out, ident, rf)
    if resumed:
        console.print(f"resuming {out}: {len(searchable) - len(todo)} done, {len(todo)} to run")
    policy = scorer = None
    make_policy, make_scorer = backends(args)  # factories only: nothing loads or connects yet
    if todo and args.backend != "ray":
        policy = make_policy()
        scorer = make_scorer() if make_scorer else None

    import time

    from policies.progress import Progress

    # a bar on a terminal, plain lines every 30 s / 10 % elsewhere (CI logs, nohup)
    progress = Progress("search", len(todo), unit="problems", file=sys.stdout, enabled=not args.quiet)
    tally = {"tokens": 0, "graded": 0, "correct": 0, "t0": time.perf_counter()}

    def show(rec: dict) -> None:
        led = rec["ledger"]
        tally["tokens"] += led["generated_tokens"]
        if rec["correct"] is not None:
            tally["graded"] += 1
            tally["correct"] += bool(rec["correct"])
        rate = tally["tokens"] / max(1e-9, time.perf_counter() - tally["t0"])
        acc = f"{tally['correct']}/{tally['graded']}" if tally["graded"] else "-"
        mark = {True: "[green]correct[/]", False: "[red]wrong[/]", None: ""}[rec["correct"]]
        progress.print(  # nothing with --quiet; before the count, so a plain progress line follows it
            f"{rec['id']}: chosen {rec['answer']!r} gold {rec['gold']!r} {mark} "
            f"({len(rec['candidates'])} candidates, {led['generated_tokens']} tokens, {led['wall_s']:.1f}s)"
        )
        progress.advance(info=f"{rate:.0f} tok/s  acc {acc}")

    with progress:
        if args.backend == "ray":  # with nothing to do it starts no actor and connects to no cluster
            from search.ray_runner import run_search_ray

            # chunks no larger than an even share, so that every actor gets work, and no
            # more actors (each maybe an engine to load) than chunks; sized from the whole
            # problem list, not what is left, so that a resume forms the same chunks
            chunk = max(1, min(args.batch_problems, -(-len(searchable) // args.ray_actors)))
            actors = min(args.ray_actors, -(-len(todo) // chunk)) if todo else args.ray_actors
            summary = run_search_ray(
                problems, make_policy, make_scorer, config, out=out, identity=ident,
                num_actors=actors, address=args.ray_address, batch_problems=chunk,
                actor_options={"num_cpus": 1, "num_gpus": args.ray_gpus_per_actor},
                run_file=rf, on_record=show,
            )
        else:
            summary = run_search(
                problems, policy, scorer, config, out=out, identity=ident,
                batch_problems=args.batch_problems, on_record=show, run_file=rf, pipeline=pipelined(args),
            )
    print_summary(console, summary)
    return 0


def print_summary(console, s: dict) -> None:
    from rich.table import Table

    from search.runner import summary_path

    t = Table(title=f"search: {s['config']['search']['strategy']} on {s['config']['data']['dataset']}")
    t.add_column("metric")
    t.add_column("value", justify="right")
    acc = s["accuracy"]
    tot = s["totals"]
    rows = [
        ("problems", f"{s['problems']}"),
        ("accuracy", "n/a" if acc is None else f"{acc:.3f} ({s['correct']}/{s['graded']})"),
        ("generated tokens", f"{tot['generated_tokens']:,}"),
        ("prompt tokens (computed / submitted)", f"{tot['computed_prompt_tokens']:,} / {tot['prompt_tokens']:,}"),
        ("scorer tokens", f"{tot['scorer_tokens']:,.0f}"),
        ("verifier calls", f"{tot['verifier_calls']:,}"),
        ("policy + scorer FLOPs", f"{tot['policy_flops']:.3g} + {tot['scorer_flops']:.3g}"),
        ("wall time (this invocation)", f"{s['last_invocation']['wall_s']:.1f} s"),
    ]
    bad = s.get("invalid_gold") or []
    if bad:  # not searched: their gold cannot be graded (warned about above)
        rows.insert(2, ("invalid golds (not searched)", f"{len(bad)}: {', '.join(bad[:5])}{' ...' if len(bad) > 5 else ''}"))
    for r in rows:
        t.add_row(*r)
    console.print(t)
    console.print(f"records: {s['output']}\nsummary: {summary_path(s['output'])}")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(print("use: python cli.py search ...") or 2)
