"""How a scorer ranks the samples of one problem: the part of its discrimination that a
best-of-n pick uses, replayed on stored scored pools (no model runs).

    python bench/within_problem.py pools/scored/gsm8k-heldout200-n16-tinyrm-default.jsonl.gz \
        pools/scored/gsm8k-heldout200-n16-tinyrm-pool840.jsonl.gz pools/scored/gsm8k-heldout200-n16-prm-ovm.jsonl.gz

A pool-wide AUC mixes two things: telling right from wrong samples of one problem (what
RM@n needs) and telling easy problems from hard ones (what it does not). Per scored pool,
under `--agg`:
- within-problem AUC: over the problems with both right and wrong samples, the share of
  (right, wrong) sample pairs of one problem the scorer orders right (ties count 1/2),
  averaged over those problems [95% bootstrap over problems];
- the top pick's answer share: the share of the problem's n samples that give the answer of
  the sample the scorer ranks first, against the mean over all samples (a scorer that favours
  minority answers picks below the mean, and below a random sample's accuracy);
- ties at the top: the share of problems where the first place is shared (a pick by pool
  order there; a tournament's win shares tie often).

Every column reads the same problems, the mixed ones (where the pick can be right or wrong), so
a pool scored whole and one scored `--only-mixed` give the same figures for the same scores.

`--versus-first`: each later pool's within-problem AUC minus the first pool's, paired over
the mixed problems they share [95% bootstrap over problems] (pools of the same problems
scored by different scorers).
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
    ap.add_argument("pools", type=Path, nargs="+", help="scored pools (`cli.py eval score-pool`)")
    ap.add_argument("--agg", default="min", help="aggregator for step scores (default min)")
    ap.add_argument("--versus-first", action="store_true",
                    help="also each later pool's within-problem AUC minus the first's, paired over problems")
    ap.add_argument("--out", type=Path, default=None, help="also write the figures as JSON")
    a = ap.parse_args()

    from eval.score_pool import problem_rows
    from eval.sweep import pool_as_records
    from eval.within_problem import problem_aucs, versus, within_problem
    from policies.pool import read_pool

    head = ("| scored pool | mixed problems | within-problem AUC [95% CI] | top pick's answer share "
            "| mean answer share | ties at the top |" + (" minus the first pool, paired |" if a.versus_first else ""))
    res, lines, first = {}, [f"aggregator {a.agg}", "", head, "|---|---:|---:|---:|---:|---:|"
                             + ("---|" if a.versus_first else "")], None
    for path in a.pools:
        if not path.is_file():
            raise SystemExit(f"{path}: no such pool file; pass pools written by `cli.py eval score-pool`")
        probs = problem_rows(pool_as_records(read_pool(path)), a.agg)
        if not probs or any(x is None for p in probs for x in p["values"]):
            raise SystemExit(f"{path}: not a scored pool (samples without scores); score it with `cli.py eval score-pool`")
        aucs = problem_aucs(probs)
        try:
            r = res[str(path)] = within_problem(probs, aucs)
        except ValueError as e:
            raise SystemExit(f"{path}: {e}; pass a pool with mixed problems") from None
        lo, hi = r["within_problem_auc_ci"]
        line = (f"| {path.name} | {r['mixed_problems']} of {r['problems']} | {r['within_problem_auc']:.3f} "
                f"[{lo:.3f}, {hi:.3f}] | {r['top_pick_answer_share']:.3f} | {r['mean_answer_share']:.3f} "
                f"| {r['top_ties']:.3f} |")
        if a.versus_first:
            if first is None:
                first, line = aucs, line + " - |"
            else:
                try:
                    v = r["minus_first"] = versus(first, aucs)
                except ValueError as e:
                    raise SystemExit(f"{path}: {e}") from None
                line += f" {v['mean']:+.3f} [{v['ci'][0]:+.3f}, {v['ci'][1]:+.3f}] ({v['problems']} problems) |"
        lines.append(line)
    print("\n".join(lines))
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps({"agg": a.agg, "pools": res}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
