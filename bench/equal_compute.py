"""Search at equal compute on the held-out GSM8K slice (issue 13): beam, DVTS and particle
filtering with the 0.5B policy and the shipped probe, against best-of-n and the weighted
vote replayed from the stored, scored pool.

    python bench/equal_compute.py --limit 100 --n 8,16 --run     # the searches (resumable), then the table
    python bench/equal_compute.py --limit 100 --n 8,16           # the table from what is there

`--run` runs, one engine at a time, each search into `--runs-dir` (a rerun resumes every
file where it stopped):

    python cli.py search --strategy S --reward probe --n N [--beam-width 4] --agg last \
        --dataset gsm8k-heldout200 --limit L --temperature 0.8 --max-tokens 512 --seed 0 \
        --out RUNS_DIR/S-nN.jsonl

(--beam-width for beam and DVTS only; `--scorer-model` when given) with the pool's sampling
settings, so the searches and the replayed samples come from the same policy distribution.
`--step-check arithmetic` runs the searches with the exact step check in front of the
probe (`cli.py search --step-check`: a step with a false equation scores 0) into
RUNS_DIR/S-arithmetic-nN.jsonl; `--with-plain` adds the plain runs of the same N to its table,
with each checked run's paired difference against its plain twin. The aggregator (`last`: the
value model's estimate at the last step), M = 4 and the selection rules are fixed here, before
any held-out result.
The table and plot (accuracy against generated tokens per problem) are written to --out.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scored-pool", default="pools/scored/gsm8k-heldout200-n16-probe-orm.jsonl.gz")
    ap.add_argument("--strategies", default="beam,dvts,particle_filter")
    ap.add_argument("--n", default="8,16", help="comma-separated N of the searches")
    ap.add_argument("--limit", type=int, default=100)
    ap.add_argument("--beam-width", type=int, default=4)
    ap.add_argument("--agg", default="last")
    ap.add_argument("--scorer-model", default=None,
                    help="the searches' probe checkpoint (default: the shipped `probe`); keep it the one "
                         "that scored --scored-pool, so searches and replayed votes use one value model")
    ap.add_argument("--step-check", choices=("arithmetic",), default=None,
                    help="search with this exact step check in front of the probe (files S-CHECK-nN.jsonl)")
    ap.add_argument("--with-plain", action="store_true",
                    help="with --step-check: the plain searches' files (S-nN.jsonl) in the table too")
    ap.add_argument("--runs-dir", type=Path, default=Path("runs/equal-compute"))
    ap.add_argument("--run", action="store_true", help="run (or resume) the searches first")
    ap.add_argument("--out", type=Path, default=Path("reports/equal-compute"))
    args = ap.parse_args()
    ns = [int(x) for x in args.n.split(",")]
    strategies = args.strategies.split(",")

    files = []
    versus = {}  # checked run -> its plain twin: paired difference in the table
    tag = f"-{args.step_check}" if args.step_check else ""
    for n in ns:
        for s in strategies:
            out = args.runs_dir / f"{s}{tag}-n{n}.jsonl"
            if args.step_check and args.with_plain:
                plain = args.runs_dir / f"{s}-n{n}.jsonl"
                files.append(plain)
                versus[str(out)] = str(plain)
            files.append(out)
            if args.run:
                args.runs_dir.mkdir(parents=True, exist_ok=True)
                width = ["--beam-width", str(args.beam_width)] if s in ("beam", "dvts", "mcts") else []
                cmd = [sys.executable, "cli.py", "search", "--strategy", s, "--reward", "probe", "--n", str(n),
                       *width, "--agg", args.agg, "--dataset", "gsm8k-heldout200",
                       "--limit", str(args.limit), "--temperature", "0.8", "--max-tokens", "512", "--seed", "0",
                       "--model", "qwen2.5-coder-0.5b", "--out", str(out)]
                if args.scorer_model:
                    cmd += ["--scorer-model", args.scorer_model]
                if args.step_check:
                    cmd += ["--step-check", args.step_check]
                print("+", " ".join(cmd), flush=True)
                subprocess.run(cmd, cwd=ROOT, check=True)
    def problems_in(f: Path) -> int:
        with open(f, encoding="utf-8") as fh:
            return len({json.loads(ln).get("id") for ln in fh if ln.strip()})

    # a search still running (or stopped) would shrink every row to the problems it has done:
    # only complete runs enter the table; the others are listed under it
    done = {f: problems_in(f) for f in files if f.exists()}
    present = [f for f, k in done.items() if k >= args.limit]
    if not present:
        raise SystemExit(f"no complete search output under {args.runs_dir}; run with --run first")
    missing = [str(f) if f not in done else f"{f} ({done[f]} of {args.limit} problems so far)"
               for f in files if f not in present]

    from eval.equal_compute import equal_compute, markdown, plot

    versus = {a: b for a, b in versus.items() if Path(a) in present and Path(b) in present}
    res = equal_compute(args.scored_pool, present, agg=args.agg, versus=versus)
    args.out.mkdir(parents=True, exist_ok=True)
    md = markdown(res)
    if missing:
        md += f"\nNot run yet: {', '.join(missing)}\n"
    (args.out / "table.md").write_text(md)
    (args.out / "summary.json").write_text(json.dumps(res, indent=1))
    plot(res, args.out / "accuracy-vs-tokens.png")
    print(md)
    print(f"written: {args.out}/table.md, summary.json, accuracy-vs-tokens.png")


if __name__ == "__main__":
    main()
