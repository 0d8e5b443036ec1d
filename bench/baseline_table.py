"""The README's baseline table from a sweep of a stored pool: one row per n, accuracy with
its 95% bootstrap interval for pass@n, maj@n and each selection cell of the sweep.

    python cli.py sweep pools/gsm8k-heldout200-n16.jsonl.gz --n-values 1,2,...,16 \\
        --select argmax,weighted_vote,majority --out reports/baseline-gsm8k
    python bench/baseline_table.py reports/baseline-gsm8k/summary.json [--rows 1,2,4,8,12,16]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def fmt(c: dict | None) -> str:
    if not c or c.get("acc") is None:
        return "-"
    lo, hi = c["ci"]
    return f"{c['acc']:.3f} [{lo:.2f}, {hi:.2f}]"


def table(run: dict, rows: list[int] | None) -> str:
    ks = [k for k in run["ks"] if rows is None or k in rows]
    base = {(b["metric"], b["k"]): b for b in run["baselines"]}
    cells = {(c["agg"], c["rule"], c["k"]): c for c in run["cells"]}
    cols = sorted({(c["agg"], c["rule"]) for c in run["cells"] if c["rule"] != "majority"})
    comp = {c["k"]: c for c in run["compute"]}
    head = ["n", "generated tok/problem", "pass@n (oracle)", "maj@n"] + [f"{a} {r}" for a, r in cols]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for k in ks:
        row = [str(k), f"{comp[k]['generated_tokens']:,.0f}", fmt(base.get(("pass@n", k))), fmt(base.get(("maj@n", k)))]
        row += [fmt(cells.get((a, r, k))) for a, r in cols]
        out.append("| " + " | ".join(row) + " |")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("summary", help="summary.json of a `cli.py sweep` report")
    ap.add_argument("--rows", default=None, help="comma-separated n to show (default: all)")
    args = ap.parse_args()
    res = json.loads(Path(args.summary).read_text())
    rows = [int(x) for x in args.rows.split(",")] if args.rows else None
    for run in res["runs"]:
        print(f"{run['label']}: {run['problems']} problems\n")
        print(table(run, rows))
        print()


if __name__ == "__main__":
    main()
