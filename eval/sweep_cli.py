"""`python cli.py sweep`: replay search records under many aggregators; write a report.

    python cli.py sweep runs/*.jsonl --agg min,last,prod,mean --select argmax,weighted_vote,majority --out reports/x
    python cli.py sweep --search --strategy beam --agg min,last,prod --reward prm --n 8 --limit 20 --out reports/beam

Replay (the default) reads records written by `cli.py search` and recomputes the
final selection for every aggregator and rule without generating again; for the
sampling strategies it also subsamples n' = 1, 2, 4, ... <= n (accuracy-vs-n).
`--search` first runs the search once per aggregator (the aggregator steers beam,
DVTS and MCTS), all on one policy engine, each into its own resumable file under
--runs-dir, then reports them together with any positional files.

The report folder holds report.md, report.html, plots/*.png and summary.json;
the terminal shows the main table. Only argparse is imported at the top.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

_OWN = {"--agg", "--final-agg", "--select", "--out"}  # search options that sweep redefines
LOG_BESIDE_OUTPUT = True  # run() sends engine and library warnings to REPORT_FOLDER/sweep.log


class _Skipping:
    """Lets `search.cli.add_arguments` add its options to our parser, minus _OWN."""

    def __init__(self, parser: argparse.ArgumentParser) -> None:
        self._p = parser

    def add_argument_group(self, title=None, *a, **kw):
        return _Skipping(self._p.add_argument_group(f"--search: {title}", *a, **kw))

    def add_argument(self, *names, **kw):
        if any(n in _OWN for n in names):
            return None
        return self._p.add_argument(*names, **kw)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("runs", nargs="*", help="search output JSONL files (several seeds of one config pool)")
    g = p.add_argument_group("sweep")
    from eval.registry import DEFAULT_AGGS  # plain data
    from rewards.aggregators import names as agg_names
    from search.select import PATTERNS, RULES

    g.add_argument("--agg", default=",".join(DEFAULT_AGGS),
                   help=f"comma-separated aggregators to replay ({', '.join(agg_names())}, or learned:PATH, "
                        f"a learned aggregator of eval/learned.py; default: {','.join(DEFAULT_AGGS)})")
    g.add_argument("--select", default=",".join(RULES),
                   help=f"comma-separated selection rules: {', '.join(RULES)}, or {' / '.join(PATTERNS)} "
                        "(keep the top P%% by value, then vote; e.g. top10_weighted = DeepConf-low)")
    g.add_argument("--conf", default=None,
                   help="comma-separated token-confidence summaries (search.confidence: mean, groupW, tailK, "
                        "bottomP) replayed as extra value rows on pools, e.g. mean,group32,tail32,bottom10")
    g.add_argument("--n-values", default=None, help="comma-separated n' to report (default: 1, 2, 4, ... n)")
    g.add_argument("--subsets", type=int, default=100,
                   help="most random subsets per n' and problem (all subsets when fewer exist; default 100)")
    g.add_argument("--bootstrap", type=int, default=2000, help="bootstrap resamples over problems (default 2000)")
    g.add_argument("--replay-seed", type=int, default=0, help="seed of the subsets and the bootstrap (default 0)")
    g.add_argument("--out", default="reports/sweep", help="report folder (default reports/sweep)")
    g.add_argument("--title", default=None, help="report title")
    g.add_argument("--stops", default=None,
                   help="pools: also replay adaptive sampling with these stop rules (betaT, cbetaT, agreeT, "
                        "cagreeT), DeepConf early stop and allocation at maj@k's tokens (eval/budget.py); "
                        "report in OUT/budget")
    g.add_argument("--preset", action="append", default=[],
                   help="pools: with the budget replay, the rows of a declared setting (search.adaptive.PRESETS, "
                        "search.allocate.PRESETS, e.g. tuned-gsm8k-train); repeat for several")
    g.add_argument("--search", action="store_true",
                   help="run the search once per --agg first (beam, DVTS, MCTS: the aggregator steers the search)")
    g.add_argument("--runs-dir", default="runs/sweep", help="--search: folder for the per-aggregator run files")
    from search import cli as search_cli  # argparse-only module

    search_cli.add_arguments(_Skipping(p))


def _csv(text: str, what: str) -> list[str]:
    items = [x.strip() for x in text.split(",") if x.strip()]
    if not items:
        raise ValueError(f"--{what} is empty; give a comma-separated list")
    return items


def run_searches(args: argparse.Namespace, aggs: list[str], console) -> list[Path]:
    """One search per aggregator (agg = final_agg), one shared policy engine; each
    resumable in its own file. Returns the files."""
    from policies.datasets import load_problems, prompt_style
    from policies.paths import check_out_dir
    from search import cli as search_cli
    from search.runner import RunFile, open_run, run_search

    search_cli.check_args(args)  # every search option, before the dataset or an engine
    check_out_dir("--out", args.out)  # the report is written after the searches
    check_out_dir("--runs-dir", args.runs_dir)
    if args.backend == "ray":
        raise ValueError("sweep --search runs every search on one shared policy: --backend ray is not supported "
                         "(run `cli.py search --backend ray` per aggregator and pass the files to `cli.py sweep`)")
    if args.prompt_style is None:
        args.prompt_style = prompt_style(args.dataset)
    problems = load_problems(
        args.dataset, limit=args.limit, offset=args.offset, data_dir=args.data_dir,
        problem_field=args.problem_field, answer_field=args.answer_field,
    )
    plans = []
    for agg in aggs:
        ns = argparse.Namespace(**{**vars(args), "agg": agg, "final_agg": None, "select": None})
        config = search_cli._config(ns)
        ident = search_cli.identity(ns, config)
        out = Path(args.runs_dir) / search_cli.default_out(ns, config).name
        rf = RunFile(out, ident)
        rf.load()  # a mismatching file fails here, before the engine starts
        # golds checked here too (ungradable ones recorded as invalid_gold, with a warning)
        todo = open_run(problems, config, out, ident, rf)[3]
        plans.append((agg, config, ident, rf, todo))
    policy = scorer = None
    if any(todo for *_, todo in plans):
        # the same policy and scorer options as `cli.py search`, built once for every search
        make_policy, make_scorer = search_cli.backends(args)
        policy = make_policy()
        scorer = make_scorer() if make_scorer else None
        getattr(policy, "llm", None)  # start the engine now, so no search's wall time holds its start-up

    def show(rec: dict) -> None:
        mark = {True: "correct", False: "wrong", None: "ungraded"}[rec["correct"]]
        led = rec["ledger"]
        console.print(f"  {rec['id']}: chosen {rec['answer']!r} gold {rec['gold']!r} {mark} "
                      f"({len(rec['candidates'])} candidates, {led['generated_tokens']} tokens, {led['wall_s']:.1f}s)",
                      soft_wrap=True)

    files = []
    for agg, config, ident, rf, todo in plans:
        console.print(f"search {config.strategy} agg={agg}: {len(problems) - len(todo)} done, {len(todo)} to run -> {rf.path}",
                      soft_wrap=True)
        if todo:
            cold_start(policy, scorer)
        s = run_search(problems, policy, scorer, config, out=rf.path, identity=ident,
                       batch_problems=args.batch_problems, run_file=rf, on_record=None if args.quiet else show,
                       pipeline=search_cli.pipelined(args))
        acc = "n/a" if s["accuracy"] is None else f"{s['accuracy']:.3f}"
        console.print(f"  accuracy {acc} ({s['correct']}/{s['graded']}), {s['totals']['generated_tokens']:,} generated tokens, "
                      f"{s['last_invocation']['wall_s']:.1f} s")
        files.append(rf.path)
    return files


def cold_start(policy, scorer) -> None:
    """Empty the caches one search leaves behind (the scorer's step-score and KV caches,
    the in-process engine's prefix cache), so that each search computes, and its ledger
    records, what a `cli.py search` run of its own would: without this the second
    aggregator's search gets the first one's shared prefixes for free. A remote server's
    prefix cache (--backend openai) is out of reach and stays warm."""
    if scorer is not None and hasattr(scorer, "clear_cache"):
        scorer.clear_cache()
    llm = getattr(policy, "_llm", None)
    if llm is not None and hasattr(llm, "reset_prefix_cache"):
        llm.reset_prefix_cache()


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from eval.report import write_report
    from eval.sweep import load_runs, sweep
    from policies.logs import log_to

    console = Console(highlight=False)
    aggs = _csv(args.agg, "agg")
    rules = _csv(args.select, "select")
    from eval.metrics import check_value_source

    for a in aggs:
        try:
            check_value_source(a)
        except (ValueError, FileNotFoundError) as e:
            raise ValueError(f"--agg: {e}") from None
    from eval.metrics import check_rule
    from search.confidence import check as check_conf

    for r in rules:
        try:
            check_rule(r)
        except ValueError as e:
            raise ValueError(f"--select: {e}") from None
    conf = _csv(args.conf, "conf") if args.conf else []
    for c in conf:
        try:
            check_conf(c)
        except ValueError as e:
            raise ValueError(f"--conf: {e}") from None
    if args.stops or args.preset:  # checked before the sweep runs: the budget replay comes after it
        from search.adaptive import PRESETS as ADAPTIVE_PRESETS
        from search.allocate import PRESETS as ALLOC_PRESETS
        from search.stopping import stop_rule

        for rule in _csv(args.stops, "stops") if args.stops else []:
            try:
                stop_rule(rule)
            except ValueError as e:
                raise ValueError(f"--stops: {e}") from None
        known = sorted(set(ADAPTIVE_PRESETS) | set(ALLOC_PRESETS))
        for name in args.preset:
            if name not in known:
                raise ValueError(f"--preset: unknown preset {name!r}; valid: {', '.join(known)}")
    ks = [int(x) for x in _csv(args.n_values, "n-values")] if args.n_values else None
    log_to(Path(args.out) / "sweep.log")  # the options are valid: warnings go beside the report
    files = [Path(f) for f in args.runs]
    if args.search:
        files += run_searches(args, aggs, console)
    elif not files:
        raise ValueError("no run files given; pass JSONL files written by `cli.py search`, or --search to run them")
    runs = load_runs(files)
    result = sweep(runs, aggs=aggs, rules=rules, ks=ks, max_subsets=args.subsets,
                   n_boot=args.bootstrap, seed=args.replay_seed, conf=conf)
    command = "python cli.py " + " ".join(shlex.quote(a) for a in sys.argv[sys.argv.index("sweep"):]) \
        if "sweep" in sys.argv else None
    paths = write_report(result, args.out, command=command, title=args.title or "Sweep report")
    print_tables(console, result)
    console.print(f"report: {paths['md']}  {paths['html']}  ({len(paths['plots'])} plots)  summary: {paths['summary']}")
    if args.stops or args.preset:
        replay_budget(args, files, console)
    return 0


def replay_budget(args: argparse.Namespace, files: list[Path], console) -> None:
    """eval/budget.py on each pool among `files` (search run files are left out: their
    samples were not drawn one by one), into OUT/budget (OUT/budget-K for the K-th pool)."""
    import contextlib
    import io

    from eval import budget
    from policies.pool import is_pool

    pools = [f for f in files if is_pool(f)]
    if not pools:
        raise ValueError("--stops / --preset replay sample pools (`cli.py pool`); no pool among the files given")
    for k, f in enumerate(pools):
        out = Path(args.out) / ("budget" if len(pools) == 1 else f"budget-{k + 1}")
        argv = [str(f), "--out", str(out), "--seed", str(args.replay_seed), "--bootstrap", str(args.bootstrap)]
        if args.stops:
            argv += ["--stops", args.stops]
        for name in args.preset:
            argv += ["--preset", name]
        with contextlib.redirect_stdout(io.StringIO()):  # the tables go to the report, not the screen
            budget.main(argv)
        console.print(f"budget replay of {f}: {out / 'report.md'}")


def print_tables(console, result: dict) -> None:
    from rich.table import Table

    from eval.report import LEGEND, tables

    for run in result["runs"]:
        t0 = tables(run)[0]
        t = Table(title=f"{run['label']}: {t0['title']} ({run['problems']} problems)")
        for h in t0["header"]:
            t.add_column(h)
        bold = set(t0["bold"])
        for i, row in enumerate(t0["rows"]):
            t.add_row(*[f"[bold green]{c}[/]" if (i, j) in bold else c for j, c in enumerate(row)])
        console.print(t)
        for note in run["notes"]:
            console.print(f"  note: {note}")
    console.print(LEGEND)
