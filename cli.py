"""Command line: `python cli.py {search,pool,sweep,score,train,eval,serve,view,serve-scorer,models} ...`.

Each subcommand's arguments and handler live in the package that does the work
(`search/cli.py`, `eval/cli.py`, `rewards/cli.py`, `policies/cli.py`); those modules
import only argparse at the top, so `--help` works without vLLM or torch.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# subcommand -> (module holding add_arguments(parser) and run(args), one-line help)
COMMANDS = {
    "search": ("search.cli", "run a search strategy (best-of-n, voting, beam, DVTS, MCTS, particle filtering) on a dataset"),
    "pool": ("search.pool_cli", "sample a stored pool of N solutions per problem (replayed by sweep, eval, training)"),
    "sweep": ("eval.sweep_cli", "replay search records under many aggregators; accuracy-vs-compute report"),
    "score": ("rewards.cli", "score the solutions in a JSONL file with a reward model"),
    "train": ("rewards.train_cli", "train an ORM, PRM or TinyRM scorer from labelled data"),
    "eval": ("eval.cli", "benchmarks: scorers on ProcessBench / pairs, verifier agreement"),
    "serve": ("search.server", "serve test-time search as an OpenAI-compatible model (/v1/chat/completions)"),
    "view": ("eval.view", "write a self-contained HTML page of a run's search trees (scores, pruning, votes)"),
    "serve-scorer": ("rewards.server", "serve a scorer over HTTP (POST /score) for other agents and nodes"),
    "models": ("policies.cli", "prepare and inspect policy models (convert the embedded default)"),
}


class _CommandMissing(Exception):
    pass


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cli.py",
        description="Test-time search for math reasoning: policies, reward models, search, verifiers.",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv: debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_) in COMMANDS.items():
        p = sub.add_parser(name, help=help_, description=help_)
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as e:
            if e.name not in (module, module.rsplit(".", 1)[0]):
                raise
            p.set_defaults(_missing=module)
            continue
        mod.add_arguments(p)
        # LOG_BESIDE_OUTPUT: run() names its log file (policies.logs.log_to) once it knows its output
        p.set_defaults(_run=mod.run, _log_beside_output=getattr(mod, "LOG_BESIDE_OUTPUT", False))
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    from policies.logs import setup_logging
    from policies.settings import set_engine_log_level

    # our messages and library errors on the terminal (-v: all); library warnings in a log
    # file beside the command's output, or in runs/logs/COMMAND.log when it has none
    hidden = setup_logging(args.verbose, log_file=f"runs/logs/{args.command}.log",
                           wait=getattr(args, "_log_beside_output", False))
    set_engine_log_level(args.verbose)
    if getattr(args, "_missing", None):
        print(f"cli.py {args.command}: not available in this build ({args._missing} is missing)", file=sys.stderr)
        return 2
    try:
        return args._run(args) or 0
    except (ValueError, FileNotFoundError) as e:  # bad input: one clear line, no traceback
        if args.verbose >= 2:
            raise
        print(f"cli.py {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; results written so far are kept (rerun the same command to resume)", file=sys.stderr)
        return 130
    finally:
        hidden.report()


if __name__ == "__main__":
    sys.exit(main())
