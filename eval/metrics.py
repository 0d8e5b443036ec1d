"""Pure metric functions for replayed search records (no I/O, no models).

Per problem, a pool of m candidates each has an answer class (verifier-equivalent
answers share one; see `search.select.answer_classes`), a correctness flag (the
runner's verdict against the gold) and a value per aggregator (`search.common.value_of`:
`agg(step scores)`, the policy confidence when the run had no scorer, None when
the scorer gave no scores). From those:

- ``select_correct``: is the candidate chosen by rule "argmax" (RM@n),
  "weighted_vote" (weighted@n) or "majority" (maj@n) correct? The choice is made
  by `search.select.select` itself, on class labels, so ties and fallbacks are
  exactly the search's.
- ``expected_at_k``: the mean of that over size-k subsets of the pool (all of
  them when there are at most `max_subsets`, else `max_subsets` seeded random
  ones): accuracy-vs-n curves from one run.
- ``pass_at_k``: the unbiased estimator 1 - C(m-c, k) / C(m, k) (any of k correct).
- ``bootstrap_ci`` / ``paired_bootstrap``: percentile intervals over problems
  from a seeded numpy Generator; the same seed resamples the same problems in
  every cell, so cells compare paired.
- ``mean_sd``: mean and sample standard deviation over seeded runs.

Empty pools choose nothing and count as wrong; problems without a gold answer
are left out of every accuracy by the caller (they have no correctness).
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from itertools import combinations

import numpy as np

from rewards.flagging import (  # noqa: F401
    RATIOS,
    check_start,
    choose_rule,
    choose_threshold,
    cross_fitted_rules,
    cross_fitted_thresholds,
    drop_clause,
    earliest,
    first_drop,
    first_error,
    processbench_f1_curve,
    processbench_scores,
    scores_by_set,
    set_members,
)
from search.common import value_of
from search.select import CHECKED, answer_classes, rule_label, select
from search.select import check_rule as _check_search_rule
from search.types import Candidate

CONF_PREFIX = "conf:"  # value source "conf:NAME": search.confidence summary NAME of the token confidences
LEARNED_PREFIX = "learned:"  # value source "learned:PATH": the learned aggregator of eval/learned.py in PATH

__all__ = ["check_rule", "rule_label"]


def check_rule(rule: str) -> str:
    """A selection rule a replay can apply: search's rules, less "checked:" ones (replays
    read answer classes and values, not the candidates' steps)."""
    _check_search_rule(rule)
    if rule.startswith(CHECKED):
        raise ValueError(f"{rule!r}: replays of stored runs read answers and values, not steps; a 'checked:' rule "
                         "applies in `cli.py search --select`, or replay it with bench/arithmetic_filter.py")
    return rule


def check_value_source(name: str) -> str:
    """A value source: an aggregator name (rewards.aggregators), conf:NAME or learned:PATH;
    unknown names fail with the valid ones."""
    if name.startswith(CONF_PREFIX):
        from search.confidence import check

        check(name[len(CONF_PREFIX):])
    elif name.startswith(LEARNED_PREFIX):
        from eval.learned import check

        check(name)
    else:
        from rewards.aggregators import get

        get(name)
    return name


def candidate_values(cands: Sequence[dict], agg: str) -> list[float | None]:
    """Value of each candidate record under `agg`, exactly as the search computes it;
    "conf:NAME" is the token-confidence summary NAME (search.confidence) of the
    candidate's `token_conf` (None when it has none); "learned:PATH" the learned
    aggregator's P(correct) (eval/learned.py)."""
    if agg.startswith(CONF_PREFIX):
        from search.confidence import summary

        f = summary(agg[len(CONF_PREFIX):])
        return [f(c["token_conf"]) if c.get("token_conf") else None for c in cands]
    if agg.startswith(LEARNED_PREFIX):
        from eval.learned import values

        return values(cands, agg)
    return [
        value_of(c.get("scores"), agg, c.get("logprob"), int(c.get("generated_tokens") or 0))
        for c in cands
    ]


def answer_labels(answers: Sequence[str | None], equal=None) -> list[int | None]:
    """Class index per answer (None: no answer), by the search's own grouping rule."""
    labels, _reps, _calls = answer_classes(answers, equal)
    return labels


def select_index(
    values: Sequence[float | None],
    labels: Sequence[int | None],
    rule: str,
    subset: Sequence[int] | None = None,
) -> int | None:
    """Index (into the full pool) that `search.select.select` picks among `subset`.

    `subset` keeps pool order (ties go to the earlier candidate, as in a run that
    had sampled only those). Labels stand in for answers, compared by string
    equality, so the answer classes are the precomputed ones.
    """
    return _select_in(_pool(values, labels), rule, subset)


def _pool(values: Sequence[float | None], labels: Sequence[int | None]) -> list[Candidate]:
    """Stand-in candidates for `select`: the value, and the class label as the answer."""
    return [
        Candidate(steps=[], value=v, answer=None if lab is None else f"c{lab}")
        for v, lab in zip(values, labels, strict=True)
    ]


def _select_in(pool: list[Candidate], rule: str, subset: Sequence[int] | None) -> int | None:
    if rule.startswith(CHECKED):
        check_rule(rule)  # raises: the stand-ins carry no steps
    idx = list(range(len(pool))) if subset is None else list(subset)
    if not idx:
        return None
    if len(idx) == 1:  # one candidate: every rule returns it (select's fallbacks included)
        return idx[0]
    chosen, _answer, _votes, _calls = select([pool[i] for i in idx], rule, equal=operator.eq)
    return None if chosen is None else idx[chosen]


def select_correct(
    correct: Sequence[bool],
    values: Sequence[float | None],
    labels: Sequence[int | None],
    rule: str,
    subset: Sequence[int] | None = None,
) -> float:
    """1.0 if the chosen candidate is correct, else 0.0 (nothing chosen: 0.0)."""
    i = select_index(values, labels, rule, subset)
    return 0.0 if i is None else float(bool(correct[i]))


def subsets(m: int, k: int, max_subsets: int, rng: np.random.Generator) -> list[tuple[int, ...]]:
    """Size-k subsets of range(m), each sorted (pool order): every one when there
    are at most `max_subsets`, else `max_subsets` random ones from `rng`. k > m
    gives the whole pool once; m == 0 gives one empty subset."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}.")
    if m == 0:
        return [()]
    if k >= m:
        return [tuple(range(m))]
    if math.comb(m, k) <= max_subsets:
        return list(combinations(range(m), k))
    return [tuple(sorted(rng.choice(m, size=k, replace=False).tolist())) for _ in range(max_subsets)]


def expected_at_k(
    correct: Sequence[bool],
    values: Sequence[float | None],
    labels: Sequence[int | None],
    rule: str,
    subs: Sequence[Sequence[int]],
) -> float:
    """Mean of `select_correct` over the given subsets."""
    if not subs:
        return 0.0
    pool = _pool(values, labels)
    hits = 0
    for s in subs:
        i = _select_in(pool, rule, s)
        hits += i is not None and bool(correct[i])
    return hits / len(subs)


def pass_at_k(m: int, c: int, k: int) -> float:
    """P(at least one of k candidates drawn without replacement from m, c correct, is
    correct) = 1 - C(m-c, k) / C(m, k); k >= m gives 1 if c > 0. m == 0 gives 0."""
    if m == 0 or c == 0:
        return 0.0
    if k >= m:
        return 1.0
    return 1.0 - math.comb(m - c, k) / math.comb(m, k)


def k_values(n: int) -> list[int]:
    """1, 2, 4, ... up to n, and n itself."""
    if n < 1:
        return []
    ks = [1]
    while ks[-1] * 2 <= n:
        ks.append(ks[-1] * 2)
    if ks[-1] != n:
        ks.append(n)
    return ks


def bootstrap_ci(
    x: Sequence[float], *, n_boot: int = 2000, level: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of `x` (resampling problems).
    Empty input gives (nan, nan)."""
    a = np.asarray(x, dtype=float)
    if a.size == 0:
        return (math.nan, math.nan)
    rng = np.random.default_rng(seed)
    means = a[rng.integers(0, a.size, size=(n_boot, a.size))].mean(axis=1)
    lo, hi = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return (float(lo), float(hi))


def paired_bootstrap(
    x: Sequence[float], y: Sequence[float], *, n_boot: int = 2000, level: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Interval of mean(x - y) over the same resampled problems (x, y aligned)."""
    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired_bootstrap needs aligned arrays, got {a.shape} and {b.shape}.")
    return bootstrap_ci(a - b, n_boot=n_boot, level=level, seed=seed)


def mean_sd(xs: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1; nan for fewer than two values)."""
    a = np.asarray(xs, dtype=float)
    if a.size == 0:
        return (math.nan, math.nan)
    return (float(a.mean()), float(a.std(ddof=1)) if a.size > 1 else math.nan)


# ---------------------------------------------------------------- scorer benchmarks


def pair_outcome(chosen: float | None, rejected: float | None) -> float:
    """RewardBench-style pair score: 1 if chosen > rejected, 0.5 on a tie, else 0.
    A missing value (None) loses to any value; two missing values tie."""
    if chosen is None and rejected is None:
        return 0.5
    if chosen is None:
        return 0.0
    if rejected is None:
        return 1.0
    return 1.0 if chosen > rejected else (0.5 if chosen == rejected else 0.0)


def bootstrap_ratio_ci(
    num: Sequence[float], den: Sequence[float], *, n_boot: int = 2000, level: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Cluster bootstrap of sum(num) / sum(den), resampling clusters (problems):
    the interval of a pair accuracy when several pairs share a problem."""
    a, b = np.asarray(num, dtype=float), np.asarray(den, dtype=float)
    if a.size == 0 or b.sum() == 0:
        return (math.nan, math.nan)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, a.size, size=(n_boot, a.size))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = a[idx].sum(axis=1) / b[idx].sum(axis=1)
    lo, hi = np.nanquantile(r, [(1 - level) / 2, (1 + level) / 2])
    return (float(lo), float(hi))
