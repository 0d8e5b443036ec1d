"""Voting without the samples that write a false equation: the arithmetic check
(verifiers/arithmetic.py) as a filter before majority vote, best-of-n and the weighted vote,
replayed on stored pools (no model runs).

    python bench/arithmetic_filter.py pools/gsm8k-train-n8.jsonl.gz            # training pool first
    python bench/arithmetic_filter.py pools/scored/gsm8k-heldout200-n16-probe840-orm.jsonl.gz

The rule, fixed before any held-out pool was read through it: a sample any of whose steps
writes a false equation is dropped from the vote; where every sample of a problem is dropped,
all are kept. Everything else is the table's usual selection (`eval.metrics.select_correct`
on the remaining subset, pool order kept). Each filtered figure is paired with the unfiltered
one over problems [95% bootstrap]. Scores, when the pool has them, are read under `--agg`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("pool", type=Path, help="a stored pool (scored or not)")
    ap.add_argument("--agg", default="last", help="aggregator for step scores (default last)")
    ap.add_argument("--bootstrap", type=int, default=2000)
    ap.add_argument("--out", type=Path, default=None, help="also write the figures as JSON")
    a = ap.parse_args()
    if not a.pool.is_file():
        raise SystemExit(f"{a.pool}: no such pool file; pass a pool written by `cli.py pool` or `eval score-pool`")

    import numpy as np

    from eval import metrics
    from eval.score_pool import problem_rows
    from eval.sweep import pool_as_records
    from policies.pool import read_pool
    from verifiers.arithmetic import first_false_step

    records = pool_as_records(read_pool(a.pool))
    flags = {str(r["id"]): [first_false_step([str(s) for s in c.get("steps") or []]) is not None
                            for c in r["candidates"]] for r in records}
    probs = problem_rows(records, a.agg)
    scored = all(v is not None for p in probs for v in p["values"])
    n = len(probs[0]["correct"])
    rules = [("majority", f"maj@{n}")] + ([("argmax", f"RM@{n}"), ("weighted_vote", f"weighted@{n}")] if scored else [])
    res = {"pool": str(a.pool), "problems": len(probs), "n": n, "agg": a.agg if scored else None,
           "samples": sum(len(f) for f in flags.values()),
           "flagged": sum(sum(f) for f in flags.values()),
           "flagged_right": sum(fl and c for p in probs for fl, c in zip(flags[p["id"]], p["correct"], strict=True)),
           "problems_all_flagged": sum(all(flags[p["id"]]) for p in probs), "rules": {}}
    lines = [f"{a.pool}: {len(probs)} problems x {n}; {res['flagged']} of {res['samples']} samples write a false "
             f"equation ({res['flagged_right']} of them right); {res['problems_all_flagged']} problems have every "
             "sample flagged (kept whole)", "",
             "| rule | unfiltered | arithmetic-filtered | difference [95% CI] | filtered minus plain majority |",
             "|---|---:|---:|---:|---:|"]
    maj_plain = None
    for rule, name in rules:
        plain, filt = [], []
        for p in probs:
            keep = [i for i, fl in enumerate(flags[p["id"]]) if not fl] or None
            plain.append(metrics.select_correct(p["correct"], p["values"] if rule != "majority" else [None] * n,
                                                p["labels"], rule))
            filt.append(metrics.select_correct(p["correct"], p["values"] if rule != "majority" else [None] * n,
                                               p["labels"], rule, subset=keep))
        maj_plain = plain if maj_plain is None else maj_plain  # majority comes first
        d = float(np.mean(filt) - np.mean(plain))
        lo, hi = metrics.paired_bootstrap(filt, plain, n_boot=a.bootstrap)
        dm = float(np.mean(filt) - np.mean(maj_plain))
        mlo, mhi = metrics.paired_bootstrap(filt, maj_plain, n_boot=a.bootstrap)
        res["rules"][name] = {"plain": float(np.mean(plain)), "filtered": float(np.mean(filt)), "diff": d,
                              "ci": [lo, hi], "filtered_minus_plain_maj": dm, "filtered_minus_plain_maj_ci": [mlo, mhi]}
        lines.append(f"| {name} | {np.mean(plain):.3f} | {np.mean(filt):.3f} | {d:+.3f} [{lo:+.3f}, {hi:+.3f}] "
                     f"| {dm:+.3f} [{mlo:+.3f}, {mhi:+.3f}] |")
    print("\n".join(lines))
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(res, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
