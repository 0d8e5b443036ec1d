"""``cli.py score``: score the solutions in a JSONL file with a reward model.

    python cli.py score --reward prm --agg min FILE.jsonl [-o OUT.jsonl]

Input lines: ``{"problem": str, "steps": [str, ...]}`` or ``{"problem", "solution": str}``
(split on blank lines), optional ``"answer"`` (gold; needed by ``--reward verifier``) and
``"id"``. Output lines: the input fields plus ``step_scores`` (raw, per step for a
PRM, one for ORM/TinyRM/verifier), ``score`` (aggregated; null for an empty
solution), ``aggregator`` and ``scorer``. The first output line is a header with the
resolved configuration. Output is written as it goes; rerunning the same command
skips the lines already in the output (resume).

Only argparse and the standard library are imported at the top (``--help`` is cheap).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

log = logging.getLogger(__name__)
LOG_BESIDE_OUTPUT = True  # run() sends engine and library warnings to X.scored.log beside the output


def add_arguments(p: argparse.ArgumentParser) -> None:
    from rewards.aggregators import names as agg_names  # the registries: plain data
    from rewards.kinds import ADAPTER_KINDS, SCORER_KINDS, kinds_help

    p.add_argument("file", type=Path, help="input JSONL: problem + steps|solution [+ answer]")
    p.add_argument("--reward", choices=SCORER_KINDS, default="prm", help=f"scorer kind (default: prm). {kinds_help()}")
    p.add_argument("--agg", default="min",
                   help=f"aggregator: {', '.join(agg_names())} (default: min), or auto: the one the scorer's card "
                        "recommends (min when it names none)")
    p.add_argument("--model", default=None, help="checkpoint dir / hub id (default: the project default)")
    p.add_argument("--adapter", default=None,
                   help=f"input format of {' / '.join(ADAPTER_KINDS)}: shipped name or JSON file")
    p.add_argument("--peft", default=None, help="peft adapter directory")
    p.add_argument("-o", "--output", type=Path, default=None, help="output JSONL (default: FILE.scored.jsonl)")
    p.add_argument("--batch-size", type=int, default=16, help="candidates per score() call (default: 16)")
    p.add_argument("--token-budget", type=int, default=8192, help="padded tokens per forward batch")
    p.add_argument("--device", default="cpu", help="torch device (default: cpu)")


def _read(path: Path) -> list[dict]:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file; pass a JSONL file with one candidate per line")
    rows = []
    with open(path) as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{n}: not valid JSON ({e.msg}); each line must be one JSON object") from None
            if not isinstance(row, dict) or not isinstance(row.get("problem"), str):
                raise ValueError(f'{path}:{n}: needs a "problem" string; each line: '
                                 '{"problem": ..., "steps": [...]} or {"problem": ..., "solution": "..."}')
            steps = row.get("steps")
            if steps is None:
                if not isinstance(row.get("solution"), str):
                    raise ValueError(f'{path}:{n}: needs "steps" (list of str) or "solution" (str)')
            elif not (isinstance(steps, list) and all(isinstance(s, str) for s in steps)):
                raise ValueError(f'{path}:{n}: "steps" must be a list of strings')
            row["_line"] = n
            rows.append(row)
    return rows


def _done_lines(out: Path) -> set[int]:
    done: set[int] = set()
    if not out.exists():
        return done
    with open(out) as fh:
        for line in fh:
            try:
                r = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut by an interrupted run: it is redone
            if "input_line" in r:
                done.add(r["input_line"])
    return done


def run(args: argparse.Namespace) -> int:
    from rewards import get_aggregator, load_scorer
    from rewards.kinds import ADAPTER_KINDS
    from rewards.steps import split_steps

    from .checkpoint import resolve_agg  # no torch

    args.agg = resolve_agg(args.agg, args.reward, args.model)  # auto: the card's recommended aggregator
    agg = get_aggregator(args.agg)  # unknown names fail before any model loads
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")
    rows = _read(args.file)
    if args.reward == "verifier" and any("answer" not in r for r in rows):
        n = next(r["_line"] for r in rows if "answer" not in r)
        raise ValueError(f'{args.file}:{n}: --reward verifier needs an "answer" (gold) on every line')
    out = args.output or args.file.with_suffix(".scored.jsonl")
    from policies.paths import check_out_file

    check_out_file("--output", out)  # before the model loads
    from policies.logs import beside, log_to

    log_to(beside(out))
    done = _done_lines(out)
    todo = [r for r in rows if r["_line"] not in done]
    if done:
        log.info("resuming: %d of %d lines already in %s", len(done), len(rows), out)
    if not todo:
        print(f"{out}: all {len(rows)} lines already scored", file=sys.stderr)
        return 0
    options = {}
    if args.reward in ADAPTER_KINDS:
        options = {"adapter": args.adapter, "peft": args.peft, "device": args.device,
                   "token_budget": args.token_budget}
    elif args.reward == "tinyrm":
        options = {"peft": args.peft, "device": args.device}
    scorer = load_scorer(args.reward, args.model, **options)
    with open(out, "a") as fh:
        if not done:
            header = {"header": True, "input": str(args.file), "aggregator": args.agg, "scorer": scorer.describe(),
                      "model": args.model, "adapter": args.adapter, "peft": args.peft}
            fh.write(json.dumps(header) + "\n")
        for k in range(0, len(todo), args.batch_size):
            chunk = todo[k: k + args.batch_size]
            steps = [r["steps"] if r.get("steps") is not None else split_steps(r["solution"]) for r in chunk]
            golds = [str(r["answer"]) for r in chunk] if all("answer" in r for r in chunk) else None
            raw = scorer.score([r["problem"] for r in chunk], steps, golds=golds)
            for r, st, sc in zip(chunk, steps, raw, strict=True):
                rec = {k2: v for k2, v in r.items() if k2 != "_line"}
                rec.update(input_line=r["_line"], steps=st, step_scores=sc, score=agg(sc) if sc else None,
                           aggregator=args.agg, scorer=scorer.name)
                fh.write(json.dumps(rec) + "\n")
            fh.flush()
    s = scorer.stats
    print(f"scored {len(todo)} candidates -> {out} ({s.forward_passes} forward passes, "
          f"{s.tokens_scored} tokens, {s.seconds:.1f}s)", file=sys.stderr)
    return 0
