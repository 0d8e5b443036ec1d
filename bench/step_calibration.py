"""Step-level calibration: does a step score of 0.5 mean a 50% chance? Replayed on stored
results, no model runs (seconds).

    python bench/step_calibration.py docs/results/processbench-gsm8k-prm-mc2.json \
        pools/scored/gsm8k-heldout200-n16-prm-mc2.jsonl.gz --out docs/results/step-calibration

A step score is read as P(still correct after this step) (docs/rewards.md). Two kinds of
held-out steps carry a label for it:
- a ProcessBench result (`cli.py eval scorer --bench processbench-*`, its `per_row` step scores):
  a step is labelled 1 before the solution's first erroneous step (every step of a correct
  solution), 0 from it on. This is the process reading: "no error so far".
- a scored pool (`cli.py eval score-pool`): every step of a graded sample is labelled with the
  sample's final verdict. This is the value reading: "this prefix ends in a right answer". A
  value model (the Monte Carlo and outcome-target PRMs, the step probe) is trained for it.

Per input: the step count and positive share, ECE over 10 equal-width bins [95% bootstrap over
solutions (ProcessBench) or problems (pools)], the Brier score, the step AUC, the reliability
table (per bin: steps, mean score, observed rate), and what a fixed 0.5 threshold does: the share
of label-1 and of label-0 steps scored below it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BINS = 10


def processbench_units(result: dict) -> list[tuple[list[float], list[int]]]:
    """(step scores, step labels) per ProcessBench row: label 1 before the first error."""
    if "per_row" not in result:
        raise ValueError("no per_row step scores: rerun `cli.py eval scorer --bench processbench-*` to store them")
    out = []
    for r in result["per_row"]:
        scores = [float(s) for s in r["scores"]]
        first = int(r["label"])
        out.append((scores, [int(first < 0 or i < first) for i in range(len(scores))]))
    return out


def pool_units(rows: list[dict]) -> list[tuple[list[float], list[int]]]:
    """(step scores, step labels) per problem of a scored pool: every step of a graded sample
    takes the sample's verdict; ungraded samples and samples without scores are left out."""
    from eval.score_pool import gradable

    out = []
    for r in rows:
        scores, labels = [], []
        for s in r.get("samples") or []:
            if not gradable(s) or not s.get("scores"):
                continue
            scores += [float(x) for x in s["scores"]]
            labels += [int(bool(s["verdict"]["correct"]))] * len(s["scores"])
        if scores:
            out.append((scores, labels))
    return out


def calibration(units: list[tuple[list[float], list[int]]], *, n_boot: int = 2000, seed: int = 0) -> dict:
    """The figures above over all steps of `units`; the interval resamples whole units."""
    import numpy as np

    from rewards.train.probe import auc

    if not units:
        raise ValueError("no scored step with a label; score the pool first (`cli.py eval score-pool`)")
    p = np.concatenate([np.asarray(s, float) for s, _ in units])
    y = np.concatenate([np.asarray(lab, float) for _, lab in units])
    if p.min() < 0 or p.max() > 1:
        raise ValueError(f"scores outside [0, 1] (min {p.min():.3g}, max {p.max():.3g}): not probabilities")
    # per unit and bin: steps, sum of scores, sum of labels; ECE of any resample is a sum of rows
    table = np.zeros((len(units), BINS, 3))
    for u, (s, lab) in enumerate(units):
        s, lab = np.asarray(s, float), np.asarray(lab, float)
        b = np.minimum((s * BINS).astype(int), BINS - 1)
        np.add.at(table[u], (b, 0), 1.0)
        np.add.at(table[u], (b, 1), s)
        np.add.at(table[u], (b, 2), lab)

    def ece(t):
        n = t[..., 0]
        gap = np.abs(t[..., 1] - t[..., 2])  # |sum p - sum y| per bin = n x |mean p - mean y|
        return gap.sum(axis=-1) / n.sum(axis=-1)

    total = table.sum(axis=0)
    rng = np.random.default_rng(seed)
    boots = ece(table[rng.integers(0, len(units), size=(n_boot, len(units)))].sum(axis=1))
    lo, hi = np.quantile(boots, [0.025, 0.975])
    reliability = [{"bin": [k / BINS, (k + 1) / BINS], "steps": int(total[k, 0]),
                    "mean_score": float(total[k, 1] / total[k, 0]) if total[k, 0] else None,
                    "observed": float(total[k, 2] / total[k, 0]) if total[k, 0] else None} for k in range(BINS)]
    below = p < 0.5
    return {"units": len(units), "steps": int(len(p)), "positive_share": float(y.mean()),
            "mean_score": float(p.mean()), "ece": float(ece(total)), "ece_ci": [float(lo), float(hi)],
            "brier": float(np.mean((p - y) ** 2)), "auc": auc(p, y),
            "below_half": {"label_1": float(below[y == 1].mean()) if (y == 1).any() else None,
                           "label_0": float(below[y == 0].mean()) if (y == 0).any() else None},
            "reliability": reliability}


def load_units(path: Path) -> tuple[str, list[tuple[list[float], list[int]]], str]:
    """(kind, units, scorer name) of a ProcessBench result JSON or a scored pool."""
    if path.suffix == ".json":
        try:
            result = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise ValueError(f"not valid JSON ({e}); pass `cli.py eval scorer --bench processbench-*` output") from None
        if result.get("bench", "").startswith("processbench"):
            return "process (ProcessBench first errors)", processbench_units(result), result.get("scorer", {}).get("name", "?")
        raise ValueError("a JSON file that is not a ProcessBench result; pass `cli.py eval scorer --bench processbench-*` output")
    from policies.pool import read_pool

    rows = read_pool(path)
    reward = (rows[0].get("reward") or {}) if rows else {}
    return "value (the sample's final verdict)", pool_units(rows), reward.get("name") or reward.get("kind") or "?"


def _f(x, fmt=".3f") -> str:
    return "-" if x is None else format(x, fmt)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("inputs", type=Path, nargs="+",
                    help="ProcessBench result JSONs (`cli.py eval scorer`) and/or scored pools (`eval score-pool`)")
    ap.add_argument("--bootstrap", type=int, default=2000, help="bootstrap resamples (default 2000)")
    ap.add_argument("--out", type=Path, default=None, help="also write OUT.json and OUT.md")
    a = ap.parse_args()

    res, lines = {}, ["| input | scorer | labels | units | steps | positive share | mean score | ECE [95% CI] "
                      "| Brier | step AUC | below 0.5: label 1 / label 0 |",
                      "|---|---|---|---:|---:|---:|---:|---|---:|---:|---|"]
    for path in a.inputs:
        if not path.is_file():
            raise SystemExit(f"{path}: no such file; pass a ProcessBench result JSON or a scored pool")
        try:
            kind, units, name = load_units(path)
            r = calibration(units, n_boot=a.bootstrap)
        except ValueError as e:
            raise SystemExit(f"{path}: {e}") from None
        r.update(labels=kind, scorer=name)
        res[str(path)] = r
        lo, hi = r["ece_ci"]
        lines.append(f"| {path.name} | {name} | {kind.split(' ')[0]} | {r['units']} | {r['steps']:,} "
                     f"| {r['positive_share']:.3f} | {r['mean_score']:.3f} | {r['ece']:.3f} [{lo:.3f}, {hi:.3f}] "
                     f"| {r['brier']:.3f} | {_f(r['auc'])} | {_f(r['below_half']['label_1'])} / "
                     f"{_f(r['below_half']['label_0'])} |")
    lines += ["", "Reliability (steps, mean score -> observed rate) per bin of 0.1:", ""]
    for path, r in res.items():
        cells = [f"{b['steps']}: {_f(b['mean_score'], '.2f')} -> {_f(b['observed'], '.2f')}"
                 for b in r["reliability"] if b["steps"]]
        lines.append(f"- {Path(path).name}: " + "; ".join(cells))
    text = "\n".join(lines)
    print(text)
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        cmd = "python bench/step_calibration.py " + " ".join(str(p) for p in a.inputs) + f" --out {a.out}"
        a.out.with_suffix(".json").write_text(json.dumps({"command": cmd, "bins": BINS, "inputs": res}, indent=1) + "\n")
        a.out.with_suffix(".md").write_text(text + f"\n\n`{cmd}`\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
