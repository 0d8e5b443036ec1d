"""The arithmetic check (verifiers/arithmetic.py) as a step-error flagger: its precision on
training data, then ProcessBench replayed from a stored `cli.py eval scorer` result.

    python bench/arithmetic_check.py \
        --processbench docs/results/processbench-gsm8k-probe840-prmbench-full.json \
                       docs/results/processbench-math300-probe840-prmbench-full.json

Training data first (no ProcessBench row):
- GSM8K train's reference solutions (every line a step): all right, so every solution with
  a false equation is a false alarm;
- the policy's own training pool (`pools/gsm8k-train-n8.jsonl.gz`): how often right and wrong
  samples write a false equation;
- PRMBench (`prm_step_labels/prmbench_train`) as ProcessBench rows: the check's own
  first-error F1 there.
Then each stored ProcessBench result (its `per_row` step scores, the card threshold's
predictions) is replayed three ways on the same rows: the scorer alone, the check alone, and
both (the earlier first error: `cli.py eval scorer ... --arithmetic-check`, whose rule is
fixed in eval/scorer_bench.py). No model runs; a few seconds.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _f(x) -> str:
    return "-" if x is None else f"{x:.3f}"


def _row(name: str, labels: list[int], preds: list[int], n_boot: int) -> str:
    from eval import metrics
    from eval.scorer_bench import f1_interval

    r = metrics.processbench_scores(labels, preds)
    lo, hi = f1_interval(labels, preds, n_boot, 0)
    return (f"| {name} | {_f(r['error_acc'])} | {_f(r['correct_acc'])} | **{_f(r['f1'])}** [{_f(lo)}, {_f(hi)}] "
            f"| {sum(p >= 0 for p in preds)} |")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--pool", type=Path, default=ROOT / "pools" / "gsm8k-train-n8.jsonl.gz")
    ap.add_argument("--processbench", nargs="*", default=[], help="stored `cli.py eval scorer` ProcessBench results")
    ap.add_argument("--bootstrap", type=int, default=2000)
    ap.add_argument("--out", type=Path, default=None, help="also write the figures as JSON")
    a = ap.parse_args()

    from eval.scorer_bench import (
        arithmetic_first_errors,
        load_processbench,
        prmbench_rows,
        with_arithmetic,
    )
    from verifiers.arithmetic import check_equations, first_false_step

    t0 = time.perf_counter()
    out: dict = {}
    lines = ["## Training data", ""]

    gold = [json.loads(x) for x in (a.data_dir / "gsm8k" / "train.jsonl").read_text().splitlines() if x.strip()]
    n_eq = flagged = 0
    examples = []
    for r in gold:
        steps = [s for s in r["answer"].split("####")[0].split("\n") if s.strip()]
        n_eq += sum(len(check_equations(s)) for s in steps)
        i = first_false_step(steps)
        if i is not None:
            flagged += 1
            if len(examples) < 5:
                examples.append(steps[i])
    out["gsm8k_train_gold"] = {"solutions": len(gold), "equations_read": n_eq, "with_a_false_equation": flagged,
                               "examples": examples}
    lines.append(f"GSM8K train reference solutions: {len(gold):,}, {n_eq:,} equations read "
                 f"({n_eq / len(gold):.1f} per solution); **{flagged}** with a false equation "
                 f"({flagged / len(gold):.2%}: false alarms, or errors in the references)")

    if a.pool.is_file():
        counts = {True: [0, 0], False: [0, 0]}  # right / wrong samples: [samples, flagged]
        with gzip.open(a.pool, "rt") if a.pool.suffix == ".gz" else open(a.pool) as fh:
            for ln in fh:
                rec = json.loads(ln)
                for s in rec.get("samples", []):
                    ok = bool((s.get("verdict") or {}).get("correct"))
                    counts[ok][0] += 1
                    counts[ok][1] += first_false_step([str(x) for x in s.get("steps") or []]) is not None
        (nr, fr), (nw, fw) = counts[True], counts[False]
        prec = fw / (fr + fw) if fr + fw else None
        out["policy_pool"] = {"pool": str(a.pool.relative_to(ROOT)) if a.pool.is_relative_to(ROOT) else str(a.pool),
                              "right": nr, "right_flagged": fr, "wrong": nw, "wrong_flagged": fw,
                              "share_wrong_among_flagged": prec}
        lines.append(f"Policy training pool ({a.pool.name}): {fr} of {nr:,} right samples and {fw} of {nw:,} wrong "
                     f"ones write a false equation ({fr / max(1, nr):.2%} vs {fw / max(1, nw):.2%}); "
                     f"flagged samples are wrong {_f(prec)} of the time")

    pb_rows = prmbench_rows(a.data_dir / "prm_step_labels" / "prmbench_train")
    labels = [int(r["label"]) for r in pb_rows]
    arith = arithmetic_first_errors([r["steps"] for r in pb_rows])
    lines += ["", "PRMBench (training problems) as first-error rows: the check alone", "",
              "| flagger | accuracy on erroneous | accuracy on correct | F1 [95% CI] | flagged |", "|---|---:|---:|---:|---:|",
              _row(f"arithmetic check ({len(pb_rows):,} rows)", labels, arith, a.bootstrap)]
    out["prmbench"] = {"rows": len(pb_rows), "flagged": sum(x >= 0 for x in arith)}

    for path in a.processbench:
        res = json.loads(Path(path).read_text())
        data = Path(res["data"])
        if not data.is_absolute() and not data.exists():
            data = a.data_dir / "processbench" / data.name
        rows = {str(r["id"]): r for r in load_processbench(data, res.get("limit"))}
        per_row = res["per_row"]
        labels = [int(r["label"]) for r in per_row]
        preds = [int(r["pred"]) for r in per_row]
        arith = arithmetic_first_errors([rows[str(r["id"])]["steps"] for r in per_row])
        both = with_arithmetic(preds, arith)
        name = Path(path).name
        lines += ["", f"## {res['bench']}: {len(per_row)} rows, {res['scorer'].get('name', '?')} with its card "
                  f"threshold ({name})", "",
                  "| flagger | accuracy on erroneous | accuracy on correct | F1 [95% CI] | flagged |",
                  "|---|---:|---:|---:|---:|",
                  _row("the scorer alone (stored predictions)", labels, preds, a.bootstrap),
                  _row("the arithmetic check alone", labels, arith, a.bootstrap),
                  _row("both: the earlier first error (`--arithmetic-check`)", labels, both, a.bootstrap)]
        out[name] = {"rows": len(per_row), "arith_flagged": sum(x >= 0 for x in arith),
                     "changed": sum(p != b for p, b in zip(preds, both, strict=True))}
    lines += ["", f"{time.perf_counter() - t0:.1f} s"]
    print("\n".join(lines))
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
