"""Stop rules of adaptive sampling: when is the leading answer safe?

    rule = stop_rule("beta0.95")
    rule(labels, weights)        # True: stop sampling this problem

Stop rules are pure functions ``(labels, weights) -> bool`` over the samples drawn so
far (labels: answer class per sample, None for no answer; weights: the samples'
values, None counting 0). Names resolve through :func:`stop_rule`:

===========  ==========================================================================
name         stop when
===========  ==========================================================================
``betaT``    Adaptive-Consistency (Aggarwal et al. 2023): with a = the leader's count and
             b = the runner-up's (0 if none), P(theta > 1/2) >= T for
             theta ~ Beta(a + 1, b + 1), the posterior share of the leader among the two
             (their Beta approximation of the Dirichlet rule). Unanimous samples stop at
             4 for T = 0.95 (P = 31/32).
``cbetaT``   the same with confidence-weighted counts: a and b are the leader's and
             runner-up's summed weights divided by the mean weight of the answered
             samples (equal weights give ``betaT`` exactly).
``agreeT``   the leader's share of all samples drawn (no-answer samples count against)
             >= T, with at least two samples.
``cagreeT``  the leader's share of the summed weights >= T (DeepConf's online consensus
             rule, tau = 0.95 there).
``never``    never stop early (fixed n).
===========  ==========================================================================

The leader is the class with the most samples (``beta``, ``agree``) or the most weight
(``cbeta``, ``cagree``); ties go to the class seen first. In a search run a sample's
weight is its value (`final_agg` of its step scores, or the policy confidence without a
scorer); the pool replay (eval/budget.py) uses a token-confidence summary.

These are plain data and pure functions, below `search.config` (which validates
`--stop` names here) and `search.adaptive` (which runs them).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence

StopRule = Callable[[Sequence[int | None], Sequence[float | None]], bool]


def beta_sf_half(a: float, b: float) -> float:
    """P(X > 1/2) for X ~ Beta(a, b), a, b > 0: 1 - I_{1/2}(a, b) (regularised incomplete
    beta by its continued fraction, Numerical Recipes 6.4; exact to ~1e-12). For integer
    a, b this equals P(Binomial(a + b - 1, 1/2) <= a - 1)."""
    if a <= 0 or b <= 0:
        raise ValueError(f"beta_sf_half needs a, b > 0, got a={a}, b={b}.")
    x = 0.5
    lbt = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log(1 - x)
    if x < (a + 1) / (a + b + 2):
        return 1.0 - math.exp(lbt) * _betacf(a, b, x) / a
    return math.exp(lbt) * _betacf(b, a, 1 - x) / b


def _betacf(a: float, b: float, x: float) -> float:
    tiny, qab, qap, qam = 1e-300, a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 1000):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        de = d * c
        h *= de
        if abs(de - 1.0) < 1e-15:
            break
    return h


def class_totals(labels: Sequence[int | None], weights: Sequence[float | None] | None = None) -> dict[int, float]:
    """Count (or summed weight) per answer class, in order of first appearance."""
    out: dict[int, float] = {}
    for i, lab in enumerate(labels):
        if lab is not None:
            w = 1.0 if weights is None else float(weights[i] or 0.0)
            out[lab] = out.get(lab, 0.0) + w
    return out


def top_two(totals: dict[int, float]) -> tuple[float, float]:
    """(leader's total, runner-up's total or 0)."""
    vals = sorted(totals.values(), reverse=True)
    return (vals[0] if vals else 0.0, vals[1] if len(vals) > 1 else 0.0)


def _beta(t: float, weighted: bool) -> StopRule:
    def rule(labels, weights):
        if weighted:
            ws = [float(weights[i] or 0.0) for i, lab in enumerate(labels) if lab is not None]
            mean = sum(ws) / len(ws) if ws else 0.0
            if mean <= 0:
                return False
            tot = class_totals(labels, [None if w is None else float(w) / mean for w in weights])
        else:
            tot = class_totals(labels)
        a, b = top_two(tot)
        return a > 0 and beta_sf_half(a + 1.0, b + 1.0) >= t
    return rule


def _agree(t: float, weighted: bool) -> StopRule:
    def rule(labels, weights):
        if len(labels) < 2:
            return False
        if weighted:
            tot = class_totals(labels, weights)
            total = sum(float(w or 0.0) for w in weights)
        else:
            tot = class_totals(labels)
            total = float(len(labels))
        a, _ = top_two(tot)
        return total > 0 and a / total >= t - 1e-12
    return rule


STOP_RULES: dict[str, StopRule] = {"never": lambda labels, weights: False}
PATTERNS = ("betaT", "cbetaT", "agreeT", "cagreeT (0 < T <= 1)")
_FAMILY = re.compile(r"^(beta|cbeta|agree|cagree)(\d*\.?\d+)$")


def stop_rule(name: str) -> StopRule:
    """The stop rule called `name`; unknown names list the valid ones."""
    if name in STOP_RULES:
        return STOP_RULES[name]
    m = _FAMILY.match(name or "") if isinstance(name, str) else None
    if m and 0 < float(m.group(2)) <= 1:
        fam, t = m.group(1), float(m.group(2))
        return (_beta if fam.endswith("beta") else _agree)(t, fam.startswith("c"))
    raise ValueError(f"unknown stop rule {name!r}; valid: {', '.join(STOP_RULES)}, or {', '.join(PATTERNS)}, "
                     "e.g. beta0.95")


def weighted(name: str) -> bool:
    """Whether the rule reads the samples' weights."""
    stop_rule(name)
    return name.startswith("c")
