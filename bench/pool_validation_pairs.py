"""The chosen/rejected pairs of a training pool's validation problems, as `cli.py train
tinyrm|orm --pool POOL --heldout-fraction F` splits them (same problems, same pairs), in
the pairs format `cli.py eval scorer --bench gsm8k-pairs --data FILE` reads: a check on
training data only, to compare scorers that were trained on different data on the same
pairs (docs/training.md, the TinyRM ship rule).

    python bench/pool_validation_pairs.py --pool pools/gsm8k-train-n8.jsonl.gz --heldout-fraction 0.2 \\
        --out runs/pool/gsm8k-train-n8-validation-pairs.jsonl
    python cli.py eval scorer --reward tinyrm --scorer-model runs/pool/tinyrm840 --bench gsm8k-pairs \\
        --data runs/pool/gsm8k-train-n8-validation-pairs.jsonl --out runs/pool/pairs-tinyrm840.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pool", required=True, help="training pool (`cli.py pool`)")
    ap.add_argument("--heldout-fraction", type=float, required=True, help="the trainer's --heldout-fraction")
    ap.add_argument("--split-seed", type=int, default=0, help="the trainer's split seed (default 0)")
    ap.add_argument("--max-pairs-per-problem", type=int, default=8, help="the trainer's (default 8)")
    ap.add_argument("--seed", type=int, default=0, help="the trainer's --seed, which draws the pairs (default 0)")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()

    from policies.pool import read_pool
    from rewards.train.build import outcome_from_pool
    from rewards.train.data import make_pairs, split_by_problem

    rows, summary = outcome_from_pool(list(read_pool(a.pool)))
    # the trainer draws the pairs from the whole pool, then splits them by problem
    all_pairs = make_pairs(rows, max_pairs_per_problem=a.max_pairs_per_problem, seed=a.seed)
    _, pairs = split_by_problem(all_pairs, a.heldout_fraction, seed=a.split_seed)
    _, held = split_by_problem(rows, a.heldout_fraction, seed=a.split_seed)  # for the summary line
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    with open(a.out, "w") as fh:
        for p in pairs:
            fh.write(json.dumps({"id": p["problem_id"], "problem": p["problem"], "chosen": p["chosen"],
                                 "rejected": p["rejected"]}) + "\n")
    print(f"{a.pool}: {summary['problems']} problems; validation split {len({r['problem'] for r in held})} problems, "
          f"{len(held)} samples -> {len(pairs)} pairs of {len({p['problem'] for p in pairs})} problems: {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
