"""First-error F1 on the step-labelled part of a probe's training features, out of fold,
against another probe on the same rows: the training-data check that decides whether a
step probe trained with step-labelled solutions (PRMBench) replaces the shipped one
(docs/training.md, "Step probe with first-error labels"). No benchmark row is read.

    python bench/probe_first_error.py \\
        --features runs/probe-840/features-train runs/probe-840/features-prmbench \\
        --candidate runs/probe-840/probe-prm-prmbench --baseline rewards/defaults/probe-step \\
        --out docs/results/probe-prmbench-first-error.json

The candidate's scores are out of fold: each step-labelled solution is scored by a head
refitted (the card's layer and L2, its folds and seed, grouped by question) without its
question's group. The baseline was never trained on these rows, so its scores on them are
held out by construction. Each probe flags at its own card threshold, except a candidate
whose card threshold was itself chosen on these rows (``FIRST_ERROR_CRITERION``): its
threshold is cross-fitted (each fold's rows flagged at the threshold chosen on the other
folds' rows), and the in-sample figure is printed beside it for reference. The metric is
ProcessBench's (accuracy on erroneous solutions, where the first step below the threshold
must be the first wrong step; accuracy on correct ones, where none may be below; their
harmonic mean), with a 95% bootstrap interval over solutions.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--features", nargs="+", required=True,
                    help="the candidate's training features, in its training order (a pool's and a --steps folder)")
    ap.add_argument("--candidate", required=True, help="probe trained on --features (scored out of fold)")
    ap.add_argument("--baseline", required=True, help="probe to compare on the same rows (its head as trained)")
    ap.add_argument("--boot", type=int, default=1000)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()

    import numpy as np

    from eval import metrics
    from eval.scorer_bench import f1_interval
    from rewards.probe import ProbeHead
    from rewards.train import probe as tp

    f = tp.load_features(a.features)
    if f.step_target is None:
        ap.error("--features hold no step-labelled solutions; add a `cli.py train probe-features --steps` folder")
    rows, labels = tp.first_error_rows(f)
    out = {"features": a.features, "solutions": len(rows), "erroneous": sum(y >= 0 for y in labels),
           "questions": len(set(f.pid[rows].tolist()))}
    for role in ("candidate", "baseline"):
        d = Path(getattr(a, role))
        card = json.loads((d / "probe.json").read_text())
        if card.get("granularity") != "step" or not card.get("threshold"):
            ap.error(f"--{role} {d}: a step probe with a card threshold is needed")
        layer, t = int(card["layer"]), float(card["threshold"]["value"])
        if role == "candidate":
            tr = card["training"]
            scores = tp.oof_step_scores(f, layer=layer, l2=float(tr["l2"]), granularity="step",
                                        folds=int(tr.get("cv_folds") or 5), seed=int(tr.get("cv_seed") or 0))
            per = [scores[r] for r in rows]
        else:
            p = ProbeHead.load(d / "head.npz").probs(f.layer(layer).astype(np.float64))
            split = np.split(p, f.first_step[1:])
            per = [split[r] for r in rows]
        preds = [metrics.first_error(s, t) for s in per]
        extra = {}
        if card["threshold"].get("criterion") == tp.FIRST_ERROR_CRITERION and role == "candidate":
            insample = metrics.processbench_scores(labels, preds)
            print(f"{role} {d}: in-sample at its card threshold {t:.4f} (chosen on these rows): F1 "
                  f"{insample['f1']:.3f}; the rule reads the cross-fitted figure below")
            fold = tp.grouped_folds(f.pid, int(tr.get("cv_folds") or 5), int(tr.get("cv_seed") or 0))[rows]
            per_row, per_fold = metrics.cross_fitted_thresholds(per, labels, fold.tolist())
            preds = [metrics.first_error(s, tk) for s, tk in zip(per, per_row, strict=True)]
            extra = {"threshold_method": "cross-fitted over the CV folds (the card threshold was chosen on these "
                                         "rows)", "fold_thresholds": per_fold, "in_sample": insample}
        got = metrics.processbench_scores(labels, preds)
        got["f1_ci"] = f1_interval(labels, preds, a.boot, 0)
        out[role] = {"probe": str(d), "layer": layer, "threshold": t, **got, **extra}
        how = "cross-fitted thresholds" if extra else f"threshold {t:.4f}"
        print(f"{role} {d}: F1 {got['f1']:.3f} [{got['f1_ci'][0]:.3f}, {got['f1_ci'][1]:.3f}] (error acc "
              f"{got['error_acc']:.3f}, correct acc {got['correct_acc']:.3f}; {how}, layer {layer})")
    out["candidate_beats_baseline"] = out["candidate"]["f1"] > out["baseline"]["f1"]
    print(f"{out['solutions']} step-labelled solutions ({out['erroneous']} erroneous, {out['questions']} questions); "
          f"candidate beats baseline: {out['candidate_beats_baseline']}")
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
