"""Flagging rules for a step probe, fitted and checked on training first-error data only:
the threshold alone, a threshold with a drop ratio (a step scored below ratio x the
previous step's score is flagged too; `rewards.flagging.choose_rule`) and the drop ratio
alone, each cross-fitted over the probe's CV folds on the step-labelled solutions of its
training features (PRMBench), scored by out-of-fold heads. Then, report only, the rules
fitted on all those solutions applied to the policy's own training samples (how often
each flags a right one) and to stored ProcessBench results of the same probe (their
per-row step scores; no model runs). docs/training.md, "A relative drop rule".

    python bench/flagging_rules.py --features runs/probe-840/features-train runs/probe-840/features-prmbench \\
        --probe rewards/defaults/probe-step --save-scores docs/results/probe-step-prmbench-oof-scores.json.gz \\
        --processbench docs/results/processbench-gsm8k-probe840-prmbench-full.json \\
        --out docs/results/flagging-rules.json
    # later, without the features (the stored out-of-fold scores):
    python bench/flagging_rules.py --scores docs/results/probe-step-prmbench-oof-scores.json.gz ...

The ship rule (written before the scores existed): the threshold + ratio rule replaces the
card's threshold if its cross-fitted first-error F1 is above the threshold-only rule's,
cross-fitted on the same scores. ProcessBench only reports.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

RULES = {  # name: (fit a threshold, fit a drop ratio)
    "threshold": (True, False),
    "threshold + drop ratio": (True, True),
    "drop ratio alone": (False, True),
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--features", nargs="+", help="the probe's training features, in its training order")
    src.add_argument("--scores", help="out-of-fold scores written by --save-scores")
    ap.add_argument("--probe", default="rewards/defaults/probe-step", help="step probe (its layer, L2, folds, seed)")
    ap.add_argument("--save-scores", default=None, help="write the out-of-fold scores, labels and folds (.json.gz)")
    ap.add_argument("--processbench", nargs="*", default=[], help="stored `cli.py eval scorer` results of --probe")
    ap.add_argument("--boot", type=int, default=1000)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()

    from eval import metrics
    from eval.scorer_bench import f1_interval

    card = json.loads((Path(a.probe) / "probe.json").read_text())
    tr = card["training"]
    folds_n, seed = int(tr.get("cv_folds") or 5), int(tr.get("cv_seed") or 0)
    if a.features:
        import numpy as np

        from rewards.train import probe as tp

        f = tp.load_features(a.features)
        if f.step_target is None:
            ap.error("--features hold no step-labelled solutions; add a `cli.py train probe-features --steps` folder")
        rows, labels = tp.first_error_rows(f)
        scores = tp.oof_step_scores(f, layer=int(card["layer"]), l2=float(tr["l2"]), granularity="step",
                                    folds=folds_n, seed=seed)
        def rounded(idx):
            return [np.asarray(scores[r], dtype=float).round(6).tolist() for r in idx]

        per = rounded(rows)
        folds = tp.grouped_folds(f.pid, folds_n, seed)[rows].tolist()
        others = np.setdiff1d(np.arange(len(f.pid)), rows)  # the policy's own pool samples: outcome labels only
        stored = {"probe": a.probe, "features": a.features, "layer": card["layer"], "l2": tr["l2"], "folds_n": folds_n,
                  "seed": seed, "labels": labels, "folds": folds, "scores": per,
                  "pool": {"right": f.label[others].astype(int).tolist(), "scores": rounded(others)}}
        if a.save_scores:
            Path(a.save_scores).parent.mkdir(parents=True, exist_ok=True)
            with gzip.open(a.save_scores, "wt") as fh:
                json.dump(stored, fh)
    else:
        with gzip.open(a.scores, "rt") as fh:
            stored = json.load(fh)
        labels, folds, per = stored["labels"], stored["folds"], stored["scores"]

    out = {"probe": a.probe, "source": a.features or a.scores, "solutions": len(per),
           "erroneous": sum(y >= 0 for y in labels), "ratios": list(metrics.RATIOS), "rules": {}}
    print(f"{len(per)} step-labelled training solutions ({out['erroneous']} erroneous), out-of-fold scores of "
          f"{a.probe} (layer {stored['layer']}, L2 {stored['l2']}, {folds_n} folds, seed {seed})")
    for name, (thr, rat) in RULES.items():
        ratios = metrics.RATIOS if rat else (0.0,)
        t, r, f1_in = metrics.choose_rule(per, labels, ratios, threshold=thr)
        per_row, per_fold = metrics.cross_fitted_rules(per, labels, folds, ratios, threshold=thr)
        preds = [metrics.first_error(s, tk, rk) for s, (tk, rk) in zip(per, per_row, strict=True)]
        got = metrics.processbench_scores(labels, preds)
        got["f1_ci"] = f1_interval(labels, preds, a.boot, 0)
        out["rules"][name] = {"threshold": t, "ratio": r, "in_sample_f1": f1_in, "cross_fitted": got,
                              "fold_rules": {str(k): v for k, v in per_fold.items()}}
        print(f"  {name:24s} fitted on all: threshold {t:.4f}, ratio {r:.2f} (in-sample F1 {f1_in:.3f}); "
              f"cross-fitted F1 {got['f1']:.3f} [{got['f1_ci'][0]:.3f}, {got['f1_ci'][1]:.3f}] "
              f"(erroneous {got['error_acc']:.3f}, correct {got['correct_acc']:.3f})")
    pool = stored.get("pool")
    if pool:  # the policy's own training samples: how often each rule flags a right one, and where
        print(f"the policy's training pool ({len(pool['scores'])} samples, out-of-fold scores; outcome labels only):")
        for name, rule in out["rules"].items():
            preds = [metrics.first_error(s, rule["threshold"], rule["ratio"]) for s in pool["scores"]]
            right = [p for p, ok in zip(preds, pool["right"], strict=True) if ok]
            wrong = [p for p, ok in zip(preds, pool["right"], strict=True) if not ok]
            got = {"right_flagged": sum(p >= 0 for p in right) / len(right),
                   "right_flagged_at_step0": sum(p == 0 for p in right) / len(right),
                   "wrong_flagged": sum(p >= 0 for p in wrong) / len(wrong), "right": len(right), "wrong": len(wrong)}
            rule["training_pool"] = got
            print(f"  {name:24s} right samples flagged {got['right_flagged']:.3f} (at step 0: "
                  f"{got['right_flagged_at_step0']:.3f}); wrong samples flagged {got['wrong_flagged']:.3f}")
    base, cand = out["rules"]["threshold"]["cross_fitted"]["f1"], out["rules"]["threshold + drop ratio"]["cross_fitted"]["f1"]
    out["ship_threshold_plus_ratio"] = cand > base
    print(f"ship rule: threshold + drop ratio {cand:.3f} vs threshold alone {base:.3f} (cross-fitted): "
          f"{'ship' if cand > base else 'keep the threshold'}")

    for path in a.processbench:
        res = json.loads(Path(path).read_text())
        rows = res["per_row"]
        ys = [int(x["label"]) for x in rows]
        ss = [x["scores"] for x in rows]
        rep = {}
        print(f"report only, {path} ({len(rows)} rows; stored step scores, rules fitted on the training data):")
        for name, rule in out["rules"].items():
            preds = [metrics.first_error(s, rule["threshold"], rule["ratio"]) for s in ss]
            got = metrics.processbench_scores(ys, preds)
            got["f1_ci"] = f1_interval(ys, preds, a.boot, 0)
            rep[name] = got
            print(f"  {name:24s} F1 {got['f1']:.3f} [{got['f1_ci'][0]:.3f}, {got['f1_ci'][1]:.3f}] "
                  f"(erroneous {got['error_acc']:.3f}, correct {got['correct_acc']:.3f})")
        out.setdefault("processbench", {})[path] = rep
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
