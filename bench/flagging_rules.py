"""Flagging rules for a step probe, fitted and checked on training first-error data only:
the threshold alone, a threshold with a drop ratio (a step scored below ratio x the
previous step's score is flagged too; `rewards.flagging.choose_rule`), the drop ratio
alone and a threshold with a drop ratio from the second step on, each cross-fitted over
the probe's CV folds on the step-labelled solutions of its training features (PRMBench),
scored by out-of-fold heads. With `--first-errors`, the policy's own training samples
with Monte Carlo step labels are a second set of first-error solutions (Math-Shepherd's
hard estimate, `rewards.train.probe.mc_first_errors`) and each rule maximises the mean
of the two sets' F1s. Then, report only, the rules fitted on all those solutions applied
to the policy's own training samples (how often each flags a right one) and to stored
ProcessBench results of the same probe (their per-row step scores; no model runs).
docs/training.md, "A relative drop rule" and "First errors of the GSM8K kind".

    python bench/flagging_rules.py --features runs/probe-840/features-train runs/probe-840/features-prmbench \\
        --probe rewards/defaults/probe-step --save-scores docs/results/probe-step-prmbench-oof-scores.json.gz \\
        --processbench docs/results/processbench-gsm8k-probe840-prmbench-full.json \\
        --out docs/results/flagging-rules.json
    # later, without the features (the stored out-of-fold scores), with the Monte Carlo first errors:
    python bench/flagging_rules.py --scores docs/results/probe-step-prmbench-oof-scores.json.gz \\
        --first-errors pools/labels/gsm8k-train-n8-mc-k4.jsonl.gz ...

Ship rules (each written before its data was read). One set: the threshold + ratio rule
replaces the card's threshold if its cross-fitted first-error F1 is above the
threshold-only rule's. Two sets: of the threshold, threshold + ratio and threshold +
ratio from step 2 families, the one with the highest cross-fitted mean F1 replaces the
card's rule if that is above the card rule's mean F1 on the same rows and it flags at most
half of the policy's right training samples. ProcessBench only reports.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

RULES = {  # name: (fit a threshold, fit a drop ratio, the drop's first step)
    "threshold": (True, False, 0),
    "threshold + drop ratio": (True, True, 0),
    "drop ratio alone": (False, True, 0),
    "threshold + drop ratio from step 2": (True, True, 1),
}
TWO_SET_RULES = ("threshold", "threshold + drop ratio", "threshold + drop ratio from step 2")  # the rule's families
SETS = ("PRMBench", "policy samples (Monte Carlo)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--features", nargs="+", help="the probe's training features, in its training order")
    src.add_argument("--scores", help="out-of-fold scores written by --save-scores")
    ap.add_argument("--probe", default="rewards/defaults/probe-step", help="step probe (its layer, L2, folds, seed)")
    ap.add_argument("--save-scores", default=None, help="write the out-of-fold scores, labels and folds (.json.gz)")
    ap.add_argument("--first-errors", nargs="+", default=None, metavar="MC_LABELS",
                    help="Monte Carlo step labels of the probe's training pool (`cli.py train data-steps --pool`)")
    ap.add_argument("--step-labels", nargs="+", default=None, metavar="MC_LABELS",
                    help="with --features: the Monte Carlo step targets the probe was trained with (`cli.py train "
                         "probe --step-labels`), so the out-of-fold heads are fitted as it was")
    ap.add_argument("--processbench", nargs="*", default=[], help="stored `cli.py eval scorer` results of --probe")
    ap.add_argument("--boot", type=int, default=1000)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()

    from eval import metrics
    from eval.scorer_bench import f1_interval

    for path in a.first_errors or []:
        if not Path(path).is_file():
            ap.error(f"--first-errors {path}: no such file; write it with `cli.py train data-steps --pool`")
    card = json.loads((Path(a.probe) / "probe.json").read_text())
    tr = card["training"]
    folds_n, seed = int(tr.get("cv_folds") or 5), int(tr.get("cv_seed") or 0)
    stored = _features_scores(a, card, folds_n, seed) if a.features else _read(a.scores)
    labels, folds, per = list(stored["labels"]), list(stored["folds"]), list(stored["scores"])
    pool = stored.get("pool")
    sets = None
    if a.first_errors:
        from rewards.train import read_jsonl
        from rewards.train.probe import mc_first_errors

        if not pool or "pid" not in pool:
            ap.error(f"{a.scores}: stored before sample ids were kept; write it again with --features ... "
                     "--save-scores")
        records = [r for path in a.first_errors for r in read_jsonl(path)]
        rows, mc_labels = mc_first_errors(records, pool["pid"], pool["sample"], [len(x) for x in pool["scores"]],
                                          pool["right"])
        sets = [SETS[0]] * len(per) + [SETS[1]] * len(rows)
        per += [pool["scores"][r] for r in rows]
        labels += mc_labels
        folds += [pool["folds"][r] for r in rows]
    names = TWO_SET_RULES if sets else tuple(RULES)

    out = {"probe": a.probe, "source": a.features or a.scores, "solutions": len(per),
           "erroneous": sum(y >= 0 for y in labels), "ratios": list(metrics.RATIOS), "rules": {}}
    print(f"{len(per)} first-error training solutions ({out['erroneous']} erroneous), out-of-fold scores of "
          f"{a.probe} (layer {stored['layer']}, L2 {stored['l2']}, {folds_n} folds, seed {seed})")
    if sets:
        out["first_errors"] = {"files": a.first_errors, "sets": {g: _counts(labels, sets, g) for g in SETS}}
        print("  " + "; ".join(f"{g}: {c['solutions']} ({c['erroneous']} erroneous, {c['at_step0']} at step 0)"
                               for g, c in out["first_errors"]["sets"].items()))
    for name in names:
        thr, rat, start = RULES[name]
        ratios = metrics.RATIOS if rat else (0.0,)
        t, r, f1_in = metrics.choose_rule(per, labels, ratios, threshold=thr, start=start, sets=sets)
        per_row, per_fold = metrics.cross_fitted_rules(per, labels, folds, ratios, threshold=thr, start=start,
                                                       sets=sets)
        preds = [metrics.first_error(s, tk, rk, start) for s, (tk, rk) in zip(per, per_row, strict=True)]
        got = _scored(metrics, f1_interval, labels, preds, sets, a.boot)
        out["rules"][name] = {"threshold": t, "ratio": r, "ratio_start": start, "in_sample_f1": f1_in,
                              "cross_fitted": got, "fold_rules": {str(k): v for k, v in per_fold.items()}}
        print(f"  {name:34s} fitted on all: threshold {t:.4f}, ratio {r:.2f} (in-sample {f1_in:.3f}); "
              f"cross-fitted {_line(got)}")
    th = card.get("threshold") or {}
    card_rule = {"threshold": float(th.get("value", 0.0)), "ratio": float(th.get("ratio") or 0.0),
                 "ratio_start": int(th.get("ratio_start") or 0)}
    if sets:  # the card's rule as it stands, on the same rows
        preds = [metrics.first_error(s, card_rule["threshold"], card_rule["ratio"], card_rule["ratio_start"])
                 for s in per]
        card_rule["on_these_rows"] = _scored(metrics, f1_interval, labels, preds, sets, a.boot)
        print(f"  {'the card rule as it stands':34s} threshold {card_rule['threshold']:.4f}, ratio "
              f"{card_rule['ratio']:.2f}: {_line(card_rule['on_these_rows'])}")
    out["card_rule"] = card_rule
    all_rules = {**out["rules"], "the card rule as it stands": card_rule}
    if pool:  # the policy's own training samples: how often each rule flags a right one, and where
        print(f"the policy's training pool ({len(pool['scores'])} samples, out-of-fold scores; outcome labels only):")
        for name, rule in all_rules.items():
            preds = [metrics.first_error(s, rule["threshold"], rule["ratio"], rule["ratio_start"])
                     for s in pool["scores"]]
            right = [p for p, ok in zip(preds, pool["right"], strict=True) if ok]
            wrong = [p for p, ok in zip(preds, pool["right"], strict=True) if not ok]
            got = {"right_flagged": sum(p >= 0 for p in right) / len(right),
                   "right_flagged_at_step0": sum(p == 0 for p in right) / len(right),
                   "wrong_flagged": sum(p >= 0 for p in wrong) / len(wrong), "right": len(right), "wrong": len(wrong)}
            rule["training_pool"] = got
            print(f"  {name:34s} right samples flagged {got['right_flagged']:.3f} (at step 0: "
                  f"{got['right_flagged_at_step0']:.3f}); wrong samples flagged {got['wrong_flagged']:.3f}")
    if sets:
        out["ship"] = _two_set_ship(out["rules"], card_rule)
    else:
        base = out["rules"]["threshold"]["cross_fitted"]["f1"]
        cand = out["rules"]["threshold + drop ratio"]["cross_fitted"]["f1"]
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
        for name, rule in all_rules.items():
            preds = [metrics.first_error(s, rule["threshold"], rule["ratio"], rule["ratio_start"]) for s in ss]
            got = metrics.processbench_scores(ys, preds)
            got["f1_ci"] = f1_interval(ys, preds, a.boot, 0)
            rep[name] = got
            print(f"  {name:34s} F1 {got['f1']:.3f} [{got['f1_ci'][0]:.3f}, {got['f1_ci'][1]:.3f}] "
                  f"(erroneous {got['error_acc']:.3f}, correct {got['correct_acc']:.3f})")
        out.setdefault("processbench", {})[path] = rep
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(json.dumps(out, indent=1))
    return 0


def _features_scores(a, card, folds_n, seed) -> dict:
    """Out-of-fold scores of the step-labelled solutions and of the pool's samples (with
    their problem ids, sample indices and folds), from the probe's training features."""
    import numpy as np

    from rewards.train import probe as tp

    f = tp.load_features(a.features)
    if card["training"].get("step_labels") and not a.step_labels:
        raise SystemExit(f"{a.probe} was trained with Monte Carlo step targets; pass them with --step-labels")
    if a.step_labels:
        from rewards.train import read_jsonl

        tp.attach_step_labels(f, [r for path in a.step_labels for r in read_jsonl(path)], source=a.step_labels,
                              targets=tp.step_targets_of(card))
    if f.step_target is None:
        raise SystemExit("--features hold no step-labelled solutions; add a `cli.py train probe-features --steps` "
                         "folder")
    rows, labels = tp.first_error_rows(f)
    tr = card["training"]
    scores = tp.oof_step_scores(f, layer=int(card["layer"]), l2=float(tr["l2"]), granularity="step",
                                folds=folds_n, seed=seed)

    def rounded(idx):
        return [np.asarray(scores[r], dtype=float).round(6).tolist() for r in idx]

    fold = tp.grouped_folds(f.pid, folds_n, seed)
    others = np.setdiff1d(np.arange(len(f.pid)), rows)  # the policy's own pool samples: outcome labels only
    stored = {"probe": a.probe, "features": a.features, "step_labels": a.step_labels, "layer": card["layer"], "l2": tr["l2"], "folds_n": folds_n,
              "seed": seed, "labels": labels, "folds": fold[rows].tolist(), "scores": rounded(rows),
              "pool": {"right": f.label[others].astype(int).tolist(), "scores": rounded(others),
                       "pid": f.pid[others].astype(str).tolist(), "sample": f.sample[others].astype(int).tolist(),
                       "folds": fold[others].tolist()}}
    if a.save_scores:
        Path(a.save_scores).parent.mkdir(parents=True, exist_ok=True)
        with gzip.open(a.save_scores, "wt") as fh:
            json.dump(stored, fh)
    return stored


def _read(path) -> dict:
    with gzip.open(path, "rt") as fh:
        return json.load(fh)


def _counts(labels, sets, g) -> dict:
    ys = [y for y, x in zip(labels, sets, strict=True) if x == g]
    return {"solutions": len(ys), "erroneous": sum(y >= 0 for y in ys), "at_step0": sum(y == 0 for y in ys)}


def _scored(metrics, f1_interval, labels, preds, sets, boot) -> dict:
    """ProcessBench's scores of the predictions; with sets, per set and their mean F1
    (`objective`, with a bootstrap interval that resamples each set's rows)."""
    import numpy as np

    if sets is None:
        got = metrics.processbench_scores(labels, preds)
        got["f1_ci"] = f1_interval(labels, preds, boot, 0)
        return got
    members = {g: np.array(idx) for g, idx in metrics.set_members(sets).items()}
    got = metrics.scores_by_set(labels, preds, sets)
    by = {g: {**got[g], "f1_ci": f1_interval([labels[i] for i in members[g]], [preds[i] for i in members[g]], boot, 0)}
          for g in SETS}
    rng = np.random.default_rng(0)
    draws = []
    for _ in range(boot):
        f1s = []
        for g in SETS:
            pick = rng.choice(members[g], size=len(members[g]))
            f1s.append(metrics.processbench_scores([labels[i] for i in pick], [preds[i] for i in pick])["f1"] or 0.0)
        draws.append(float(np.mean(f1s)))
    lo, hi = np.quantile(draws, [0.025, 0.975]) if draws else (None, None)
    return {"objective": float(np.mean([by[g]["f1"] for g in SETS])), "objective_ci": [float(lo), float(hi)],
            "sets": by}


def _line(got: dict) -> str:
    if "objective" in got:
        return (f"mean F1 {got['objective']:.3f} [{got['objective_ci'][0]:.3f}, {got['objective_ci'][1]:.3f}] ("
                + "; ".join(f"{g} {v['f1']:.3f}: erroneous {v['error_acc']:.3f}, correct {v['correct_acc']:.3f}"
                            for g, v in got["sets"].items()) + ")")
    return (f"F1 {got['f1']:.3f} [{got['f1_ci'][0]:.3f}, {got['f1_ci'][1]:.3f}] (erroneous {got['error_acc']:.3f}, "
            f"correct {got['correct_acc']:.3f})")


def _two_set_ship(rules: dict, card_rule: dict) -> dict:
    """The rule written before the Monte Carlo first errors were read (docs/training.md)."""
    best = max(rules, key=lambda n: (rules[n]["cross_fitted"]["objective"], -list(rules).index(n)))
    obj, card_obj = rules[best]["cross_fitted"]["objective"], card_rule["on_these_rows"]["objective"]
    flags = rules[best]["training_pool"]["right_flagged"]
    ship = obj > card_obj and flags <= 0.5
    print(f"against this probe's own card rule (a rule written for a new head may name another baseline): best "
          f"family {best!r} (cross-fitted mean F1 {obj:.3f}) vs the card rule {card_obj:.3f}; it flags {flags:.1%} "
          f"of the right training samples (at most 50%): {'refit the card' if ship else 'keep the card rule'}")
    return {"best_family": best, "objective": obj, "card_objective": card_obj, "right_flagged": flags,
            "ship": ship}


if __name__ == "__main__":
    sys.exit(main())
