"""A step scorer as an error flagger: the first step scored below a threshold is the
predicted first error (ProcessBench's rule), the benchmark's metric (accuracy on
erroneous and on correct solutions, their harmonic mean) and the threshold that
maximises it on labelled solutions.

A flagging rule may also have a drop ratio r: a step is flagged too when its score falls
below r times the previous step's (the score before the first step is 1, a solution
starts correct, so at the first step r acts as a threshold). Scores are P(still correct),
so a sharp fall says "this step broke it" whatever level the scores of a problem family
sit at; r = 0 is the plain threshold. With `start` = 1 the drop is looked for from the
second step on and the first step is judged by the threshold alone (a value model's
first score says how hard the problem is as much as whether the step is right).
`choose_rule` fits (threshold, ratio) together, on one set of labelled solutions or on
several at once (`sets`: the mean of their F1s, so a small set of one kind counts as
much as a large set of another).

It sits with the scorers, not in ``eval``, because training fixes a step probe's
flagging threshold with it (``rewards.train.probe.fit_threshold``); ``eval.metrics``
re-exports it for the benchmarks.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = ["first_error", "first_drop", "earliest", "processbench_scores", "scores_by_set", "set_members",
           "processbench_f1_curve",
           "choose_threshold", "choose_rule", "cross_fitted_thresholds", "cross_fitted_rules", "check_start",
           "drop_clause", "RATIOS"]

RATIOS = tuple(round(0.05 * k, 2) for k in range(20))  # 0 (threshold only), 0.05, ..., 0.95: `choose_rule`'s grid


def first_drop(scores: Sequence[float], ratio: float, start: int = 0) -> int:
    """Index of the first step from `start` on whose score is below `ratio` times the
    previous step's (1 before the first step), -1 when none is or ratio <= 0."""
    if ratio <= 0:
        return -1
    prev = 1.0
    for i, s in enumerate(scores):
        if i >= start and s < ratio * prev:
            return i
        prev = s
    return -1


def first_error(scores: Sequence[float], threshold: float, ratio: float = 0.0, start: int = 0) -> int:
    """ProcessBench prediction: index of the first step scored below `threshold` (or, with
    a drop `ratio`, below ratio x the previous step's score, from step `start` on), -1
    when none is (the solution is judged all right)."""
    below = next((i for i, s in enumerate(scores) if s < threshold), -1)
    return earliest(below, first_drop(scores, ratio, start)) if ratio > 0 else below


def drop_clause(ratio: str, start: int) -> str:
    """The words a rule's description adds for its drop ratio (``ratio`` as it should read)."""
    return (f" or < {ratio} x the previous step's score (1 before the first step)" if not start else
            f" or, from the second step on, < {ratio} x the previous step's score")


def check_start(start: int) -> int:
    """The drop rule's first step (0 or 1), or a ValueError naming the fix."""
    if isinstance(start, bool) or start not in (0, 1):
        raise ValueError(f"the drop ratio's first step must be 0 (the first step too, against 1) or 1 (from the "
                         f"second step on), got {start!r}")
    return int(start)


def earliest(*preds: int) -> int:
    """The earliest of several first-error predictions (-1 = none flagged): a solution is
    flagged where any of its checks flags it first."""
    flagged = [p for p in preds if p is not None and p >= 0]
    return min(flagged) if flagged else -1


def processbench_scores(labels: Sequence[int], preds: Sequence[int]) -> dict:
    """ProcessBench metric (Zheng et al. 2024): accuracy on erroneous solutions
    (label >= 0: the exact first wrong step must be found), accuracy on correct
    ones (label -1: nothing flagged), and their harmonic mean F1 (0 when both are 0;
    an accuracy over an empty group is None and F1 is then None)."""
    if len(labels) != len(preds):
        raise ValueError(f"got {len(labels)} labels and {len(preds)} predictions; they must align.")
    err = [p == y for y, p in zip(labels, preds, strict=True) if y >= 0]
    ok = [p == -1 for y, p in zip(labels, preds, strict=True) if y < 0]
    a = sum(err) / len(err) if err else None
    b = sum(ok) / len(ok) if ok else None
    f1 = None if a is None or b is None else (2 * a * b / (a + b) if a + b > 0 else 0.0)
    return {"error_acc": a, "correct_acc": b, "f1": f1, "n_error": len(err), "n_correct": len(ok)}


def set_members(sets: Sequence) -> dict:
    """Each set id's solution indices, the ids in order of first appearance."""
    members: dict = {}
    for i, g in enumerate(sets):
        members.setdefault(g, []).append(i)
    return members


def scores_by_set(labels: Sequence[int], preds: Sequence[int], sets: Sequence) -> dict:
    """`processbench_scores` of each set of solutions (``sets``: a set id per solution)."""
    if not len(sets) == len(labels) == len(preds):
        raise ValueError(f"got {len(sets)} set ids, {len(labels)} labels and {len(preds)} predictions; "
                         "they must align.")
    return {g: processbench_scores([labels[i] for i in idx], [preds[i] for i in idx])
            for g, idx in set_members(sets).items()}


def _ok_intervals(step_scores: Sequence[Sequence[float]], labels: Sequence[int],
                  ratio: float = 0.0, start: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Per solution, the thresholds t in (lo, hi] for which `first_error(t, ratio)` returns
    its label: with prefix minima pm, the threshold's flag is the first i with pm_i < t,
    so a label y >= 0 needs pm_y < t <= pm_{y-1} (pm_{-1} = +inf) and y = -1 needs
    t <= pm_last. The drop flag d (`first_drop`, independent of t) then rules out labels
    after it (empty), makes y = d right whenever the threshold flags nothing earlier
    (t <= pm_{y-1}), and a correct solution wrong. A label past the last step can never
    be matched (empty interval)."""
    lo = np.empty(len(labels))
    hi = np.empty(len(labels))
    for j, (s, y) in enumerate(zip(step_scores, labels, strict=True)):
        pm = np.minimum.accumulate(np.asarray(s, dtype=float)) if len(s) else np.zeros(0)
        d = first_drop(s, ratio, start)
        d = len(pm) if d < 0 else d
        if y < 0:
            lo[j], hi[j] = (-np.inf, (pm[-1] if len(pm) else np.inf)) if d == len(pm) else (np.inf, -np.inf)
        elif y >= len(pm) or y > d:
            lo[j], hi[j] = np.inf, -np.inf
        else:
            lo[j], hi[j] = (-np.inf if y == d else pm[y]), (pm[y - 1] if y > 0 else np.inf)
    return lo, hi


def processbench_f1_curve(
    step_scores: Sequence[Sequence[float]], labels: Sequence[int], thresholds: Sequence[float], ratio: float = 0.0,
    start: int = 0, sets: Sequence | None = None,
) -> np.ndarray:
    """F1 at every candidate threshold (vectorised `first_error` + `processbench_scores`),
    with a fixed drop `ratio` (0: none) from step `start` on:
    per threshold, the solutions whose interval (lo, hi] holds it are right, counted as
    #(lo < t) - #(hi < t) over the non-empty intervals by binary search, so time and memory
    stay O((solutions + thresholds) log) rather than solutions x thresholds.
    ``sets``: a set id per solution; the curve is then the mean of each set's F1 curve."""
    if sets is not None:
        if len(sets) != len(labels):
            raise ValueError(f"got {len(sets)} set ids for {len(labels)} solutions; they must align.")
        curves = []
        members = set_members(sets)
        for g in sorted(members, key=str):
            idx = members[g]
            curves.append(processbench_f1_curve([step_scores[i] for i in idx], [labels[i] for i in idx],
                                                thresholds, ratio, start))
        return np.mean(curves, axis=0)
    lo, hi = _ok_intervals(step_scores, labels, ratio, start)
    t = np.asarray(thresholds, dtype=float)
    y = np.asarray(labels)

    def share(group: np.ndarray) -> np.ndarray:
        if not group.any():
            return np.full(len(t), np.nan)
        keep = group & (lo < hi)
        a, b = np.sort(lo[keep]), np.sort(hi[keep])
        return (np.searchsorted(a, t, side="left") - np.searchsorted(b, t, side="left")) / int(group.sum())

    a, b = share(y >= 0), share(y < 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(a + b > 0, 2 * a * b / (a + b), 0.0)
    return f1


def choose_threshold(step_scores: Sequence[Sequence[float]], labels: Sequence[int],
                     ratio: float = 0.0, start: int = 0, sets: Sequence | None = None) -> tuple[float, float]:
    """(threshold, F1) maximising ProcessBench F1 on these (calibration) solutions, with
    a fixed drop `ratio` (0: none) from step `start` on; with ``sets``, the mean of the
    sets' F1s (`processbench_f1_curve`).

    Candidates are the distinct prefix-minimum scores and +inf (every interval of
    `_ok_intervals` is right-closed at one of them); ties go to the lowest. The
    threshold returned is the midpoint between the winner and the candidate below
    it, which gives the same F1 here and does not sit on a calibration score.
    """
    cands = sorted({float(x) for s in step_scores for x in np.minimum.accumulate(np.asarray(s, dtype=float))}
                   if any(len(s) for s in step_scores) else set())
    cands.append(math.inf)
    f1 = processbench_f1_curve(step_scores, labels, cands, ratio, start, sets)
    i = int(np.nanargmax(f1)) if not np.all(np.isnan(f1)) else 0
    t = cands[i]
    if 0 < i and math.isfinite(t):
        t = (cands[i - 1] + t) / 2
    return t, float(f1[i])


def choose_rule(step_scores: Sequence[Sequence[float]], labels: Sequence[int], ratios: Sequence[float] = RATIOS,
                threshold: bool = True, start: int = 0, sets: Sequence | None = None) -> tuple[float, float, float]:
    """(threshold, ratio, F1) maximising ProcessBench F1 on these (calibration) solutions
    (with ``sets``, the mean of the sets' F1s): per drop ratio of `ratios` (applied from
    step `start` on), the best threshold (`choose_threshold`); ties go to the lowest
    ratio. threshold=False fits the ratio alone (threshold 0: drops only)."""
    check_start(start)
    best = None
    for r in ratios:
        if threshold:
            t, f1 = choose_threshold(step_scores, labels, r, start, sets)
        else:
            t, f1 = 0.0, float(processbench_f1_curve(step_scores, labels, [0.0], r, start, sets)[0])
        if best is None or f1 > best[2]:
            best = (t, float(r), f1)
    if best is None:
        raise ValueError("choose_rule needs at least one ratio")
    return best


def _cross_fit(step_scores, labels, folds, fold_ids, fit, what: str) -> tuple[list, dict]:
    """Per solution, what `fit(scores, labels)` returns on the solutions of the other folds,
    and that of each fold id (`fold_ids`, default: the ids present). ValueError when a fold
    has no solutions outside it."""
    ids = sorted(set(folds)) if fold_ids is None else list(fold_ids)
    per_fold = {}
    for k in ids:
        cal = [i for i, g in enumerate(folds) if g != k]
        if not cal:
            raise ValueError(f"cross-fitting a {what} needs solutions outside fold {k!r}")
        per_fold[k] = fit([step_scores[i] for i in cal], [labels[i] for i in cal])
    return [per_fold[g] for g in folds], per_fold


def cross_fitted_thresholds(step_scores: Sequence[Sequence[float]], labels: Sequence[int], folds: Sequence,
                            fold_ids: Sequence | None = None, ratio: float = 0.0,
                            start: int = 0) -> tuple[list[float], dict]:
    """Per solution, the threshold `choose_threshold` picks (with a fixed drop `ratio` from
    step `start` on) on
    the solutions of the other folds (so no solution is flagged at a threshold chosen on
    itself), and the threshold of each fold id (`fold_ids`, default: the ids present).
    ValueError when a fold has no solutions outside it."""
    return _cross_fit(step_scores, labels, folds, fold_ids, lambda s, y: choose_threshold(s, y, ratio, start)[0],
                      "threshold")


def cross_fitted_rules(step_scores: Sequence[Sequence[float]], labels: Sequence[int], folds: Sequence,
                       ratios: Sequence[float] = RATIOS, threshold: bool = True, start: int = 0,
                       sets: Sequence | None = None) -> tuple[list[tuple[float, float]], dict]:
    """`cross_fitted_thresholds` for (threshold, ratio) rules: per solution, the rule
    `choose_rule` fits on the other folds' solutions (with their ``sets`` ids), and the
    rule of each fold."""
    if sets is None:
        def fit(s, y):
            return choose_rule(s, y, ratios, threshold, start)[:2]
        return _cross_fit(step_scores, labels, folds, None, fit, "rule")
    if len(sets) != len(labels):
        raise ValueError(f"got {len(sets)} set ids for {len(labels)} solutions; they must align.")
    keyed = list(zip(sets, step_scores, strict=True))  # the fit sees (set id, scores) pairs

    def fit_keyed(s, y):
        return choose_rule([x for _, x in s], y, ratios, threshold, start, [g for g, _ in s])[:2]
    return _cross_fit(keyed, labels, folds, None, fit_keyed, "rule")
