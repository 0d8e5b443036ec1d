"""First-error rows (the ProcessBench format: problem, steps, label = first wrong step or -1)
from Monte Carlo step labels of the policy's own samples (`cli.py train data-steps --pool`),
Math-Shepherd's hard estimate (`rewards.train.probe.mc_first_error`), for the problems of one
side of a trainer's split by problem (`--heldout-fraction`, `--split-seed`): a calibration set
on training data for `cli.py eval scorer --bench processbench-* --calibration FILE`.

    python bench/mc_first_error_rows.py --labels pools/labels/gsm8k-train-n8-mc-k4.jsonl.gz \\
        --heldout-fraction 0.2 --side heldout --out runs/pool/mc-first-errors-validation.jsonl

Several label files are read as one, as `cli.py train prm --data A B` reads them (the split is by
problem hash, so a problem falls on the same side whichever file holds it).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--labels", required=True, nargs="+",
                    help="Monte Carlo step labels (`cli.py train data-steps --pool`), one file or more")
    ap.add_argument("--heldout-fraction", type=float, required=True, help="the trainer's --heldout-fraction")
    ap.add_argument("--split-seed", type=int, default=0, help="the trainer's split seed (default 0)")
    ap.add_argument("--side", choices=("heldout", "train"), default="heldout",
                    help="which side of the split to write (default: the trainer's validation problems)")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()

    from rewards.train.data import read_jsonl, split_by_problem
    from rewards.train.probe import mc_first_error

    for path in a.labels:
        if not Path(path).is_file():
            sys.exit(f"--labels {path}: no such file; pass the Monte Carlo step labels written by "
                     "`cli.py train data-steps --pool` (pools/labels/*-mc-*.jsonl.gz)")
    need = ("problem_id", "sample", "problem", "steps", "hard_labels")
    records = []
    for path in a.labels:
        for i, r in enumerate(read_jsonl(path), 1):
            missing = [k for k in need if r.get(k) is None]
            if missing:
                sys.exit(f"{path}: record {i} has no {', '.join(repr(k) for k in missing)}; pass Monte Carlo step "
                         "labels (`cli.py train data-steps --pool`)")
            records.append(r)
    train, held = split_by_problem(records, a.heldout_fraction, seed=a.split_seed)
    rows = held if a.side == "heldout" else train
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    with open(a.out, "w") as fh:
        for r in rows:
            fh.write(json.dumps({"id": f"{r['problem_id']}-s{r['sample']}", "problem": r["problem"],
                                 "steps": r["steps"], "label": mc_first_error(r)}) + "\n")
    erroneous = sum(1 for r in rows if not r.get("correct"))
    print(f"{' + '.join(a.labels)}: {a.side} side of the split ({len({r['problem'] for r in rows})} problems): {len(rows)} "
          f"samples, {erroneous} with a first error, {len(rows) - erroneous} error-free: {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
