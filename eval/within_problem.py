"""How a scorer ranks the samples of one problem: within-problem AUC over the mixed
problems (those with both right and wrong samples), the part of a scorer's discrimination
that a best-of-n pick uses. Read from `eval.score_pool.problem_rows` rows; no model runs.

Used by `bench/within_problem.py` (the report) and `eval.recommend_agg` (the aggregator
rule of the shipped cards).
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from . import metrics

__all__ = ["problem_aucs", "versus", "within_problem"]


def problem_aucs(probs: list[dict]) -> dict[str, float]:
    """Each mixed problem's AUC over its samples, by problem id (a row's index where it has none)."""
    from rewards.train.probe import auc  # numpy only

    out = {}
    for i, p in enumerate(probs):
        # None where the problem's samples are all right or all wrong
        a = auc(np.asarray(p["values"], dtype=float), np.asarray(p["correct"], dtype=int))
        if a is not None:
            out[str(p.get("id", i))] = a
    return out


def versus(first: dict[str, float], other: dict[str, float], *, seed: int = 0) -> dict:
    """`other` minus `first`, paired over their common problems: mean and 95% bootstrap interval."""
    common = sorted(set(first) & set(other))
    if not common:
        raise ValueError("no mixed problem in common: pass pools of the same problems")
    d = [other[k] - first[k] for k in common]
    lo, hi = metrics.bootstrap_ci(d, seed=seed)
    return {"problems": len(common), "mean": sum(d) / len(d), "ci": [lo, hi]}


def within_problem(probs: list[dict], aucs: dict[str, float] | None = None) -> dict:
    """Within-problem AUC [95% CI], the top pick's answer share against the mean answer share,
    and the share of ties at the top, all over the mixed problems of `probs` (every value
    present); `aucs`: their `problem_aucs`, when the caller has them already."""
    if aucs is None:
        aucs = problem_aucs(probs)
    mixed = [p for i, p in enumerate(probs) if str(p.get("id", i)) in aucs]
    if not mixed:
        raise ValueError("no problem with both right and wrong samples: nothing to rank within a problem")
    top_share, mean_share, top_ties = [], [], 0
    for p in mixed:
        v, lab = np.asarray(p["values"], dtype=float), p["labels"]
        counts = Counter(lab)
        share = [counts[x] / len(lab) if x is not None else 1 / len(lab) for x in lab]
        top = int(np.argmax(v))
        top_ties += int((v == v[top]).sum() > 1)
        top_share.append(share[top])
        mean_share.append(float(np.mean(share)))
    values = list(aucs.values())
    lo, hi = metrics.bootstrap_ci(values)
    return {"problems": len(probs), "mixed_problems": len(mixed), "within_problem_auc": float(np.mean(values)),
            "within_problem_auc_ci": [lo, hi], "top_pick_answer_share": float(np.mean(top_share)),
            "mean_answer_share": float(np.mean(mean_share)), "top_ties": top_ties / len(mixed)}
