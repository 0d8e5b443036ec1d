"""Aggregation functions: per-step scores of one candidate -> one value.

Every aggregator is a pure function ``list[float] -> float``. Scorers never
aggregate (see ``rewards.base``); a search strategy or the ``score`` command picks
an aggregator by name and applies it. Names resolve through :func:`get`:

- fixed names are the keys of :data:`AGGREGATORS`;
- parameterised families are parsed from the name (``window3``, ``last3_mean``,
  ``softmin0.5``); :func:`get` validates them and unknown names fail with the
  list of valid names and patterns.

Empty input raises :class:`EmptyScoresError` (a ``ValueError``) everywhere: an
empty candidate must never silently become the best one (``prod([]) == 1``).

Formulas, for step scores ``s_1..s_k`` (k >= 1):

=================  =========================================================
name               value
=================  =========================================================
``min``            min_i s_i
``max``            max_i s_i
``prod``           prod_i s_i
``mean``           (1/k) sum_i s_i
``sum``            sum_i s_i
``last``           s_k
``first``          s_1
``geomean``        (prod_i s_i)^(1/k)   (0 if any s_i == 0)
``harmonic``       k / sum_i (1/s_i)    (0 if any s_i == 0)
``windowK``        mean of the last K steps: (1/m) sum_{i>k-m} s_i, m=min(K,k)
``lastK_mean``     same as ``windowK`` (alias)
``softminT``       -T * log((1/k) sum_i exp(-s_i / T)), T > 0
=================  =========================================================

``softminT`` is a temperature-softened minimum (a log-mean-exp of the negated
scores): it lies in ``[min, mean]``, tends to ``min`` as T -> 0 and to ``mean``
as T -> inf; ``softmin`` without a number means T = 0.1.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence

__all__ = [
    "AGGREGATORS",
    "PATTERNS",
    "EmptyScoresError",
    "aggregate",
    "get",
    "names",
    "softmin",
    "window_mean",
]

Aggregator = Callable[[Sequence[float]], float]


class EmptyScoresError(ValueError):
    """An aggregator got no step scores (an empty candidate cannot be ranked)."""


def _check(scores: Sequence[float], name: str) -> list[float]:
    xs = [float(s) for s in scores]
    if not xs:
        raise EmptyScoresError(
            f"aggregator {name!r} got an empty score list; an empty candidate has no steps "
            "to judge (drop it or give it an explicit score)"
        )
    for x in xs:
        if math.isnan(x):
            raise ValueError(f"aggregator {name!r} got NaN in {xs}")
    return xs


def agg_min(scores: Sequence[float]) -> float:
    """min_i s_i"""
    return min(_check(scores, "min"))


def agg_max(scores: Sequence[float]) -> float:
    """max_i s_i"""
    return max(_check(scores, "max"))


def agg_prod(scores: Sequence[float]) -> float:
    """prod_i s_i (penalises long solutions)"""
    return math.prod(_check(scores, "prod"))


def agg_mean(scores: Sequence[float]) -> float:
    """(1/k) sum_i s_i"""
    xs = _check(scores, "mean")
    return math.fsum(xs) / len(xs)


def agg_sum(scores: Sequence[float]) -> float:
    """sum_i s_i"""
    return math.fsum(_check(scores, "sum"))


def agg_last(scores: Sequence[float]) -> float:
    """s_k (the ORM reading)"""
    return _check(scores, "last")[-1]


def agg_first(scores: Sequence[float]) -> float:
    """s_1"""
    return _check(scores, "first")[0]


def agg_geomean(scores: Sequence[float]) -> float:
    """(prod_i s_i)^(1/k); 0 if any step scores 0. Needs s_i >= 0."""
    xs = _check(scores, "geomean")
    if any(x < 0 for x in xs):
        raise ValueError(f"aggregator 'geomean' needs scores >= 0, got {xs}")
    if any(x == 0 for x in xs):
        return 0.0
    return math.exp(math.fsum(math.log(x) for x in xs) / len(xs))


def agg_harmonic(scores: Sequence[float]) -> float:
    """k / sum_i (1/s_i); 0 if any step scores 0. Needs s_i >= 0."""
    xs = _check(scores, "harmonic")
    if any(x < 0 for x in xs):
        raise ValueError(f"aggregator 'harmonic' needs scores >= 0, got {xs}")
    if any(x == 0 for x in xs):
        return 0.0
    m = min(xs)  # scale by the minimum so that 1/x cannot overflow for tiny scores
    return m * len(xs) / math.fsum(m / x for x in xs)


def window_mean(scores: Sequence[float], k: int) -> float:
    """Mean of the last k steps (all steps if there are fewer than k)."""
    if k < 1:
        raise ValueError(f"window size k must be >= 1, got {k}")
    xs = _check(scores, f"window{k}")
    tail = xs[-k:]
    return math.fsum(tail) / len(tail)


def softmin(scores: Sequence[float], temperature: float = 0.1) -> float:
    """-T log((1/k) sum_i exp(-s_i/T)): in [min, mean]; -> min as T -> 0."""
    if not temperature > 0 or math.isinf(temperature):
        raise ValueError(f"softmin temperature must be a finite number > 0, got {temperature}")
    xs = _check(scores, f"softmin{temperature:g}")
    m = min(xs)
    # shift by the minimum for stability: exp(-(s_i - m)/T) <= 1
    lme = math.log(math.fsum(math.exp(-(x - m) / temperature) for x in xs) / len(xs))
    value = m - temperature * lme
    # clamp rounding noise so that min <= value <= mean holds exactly
    return min(max(value, m), math.fsum(xs) / len(xs))


def _window(k: int) -> Aggregator:
    def fn(scores: Sequence[float]) -> float:
        return window_mean(scores, k)

    fn.__name__ = fn.__qualname__ = f"window{k}"
    fn.__doc__ = f"mean of the last {k} steps (all steps if fewer)"
    return fn


def _softmin(t: float) -> Aggregator:
    def fn(scores: Sequence[float]) -> float:
        return softmin(scores, t)

    fn.__name__ = fn.__qualname__ = f"softmin{t:g}"
    fn.__doc__ = f"-T log((1/k) sum_i exp(-s_i/T)) with T={t:g}"
    return fn


AGGREGATORS: dict[str, Aggregator] = {
    "min": agg_min,
    "max": agg_max,
    "prod": agg_prod,
    "mean": agg_mean,
    "sum": agg_sum,
    "last": agg_last,
    "first": agg_first,
    "geomean": agg_geomean,
    "harmonic": agg_harmonic,
    "window2": _window(2),
    "window3": _window(3),
    "window5": _window(5),
    "softmin": _softmin(0.1),
}
"""Fixed-name aggregators. Parameterised names (``window7``, ``last4_mean``,
``softmin0.05``) are accepted by :func:`get` / :func:`aggregate` as well."""

# parameterised families accepted by get(): pattern -> description
PATTERNS: dict[str, str] = {
    "windowK": "mean of the last K steps, K >= 1 (e.g. window4)",
    "lastK_mean": "alias of windowK (e.g. last3_mean)",
    "softminT": "temperature-softened min, T > 0 (e.g. softmin0.5)",
}


def names() -> list[str]:
    """Fixed names plus the parameterised patterns, for error messages and --help."""
    return sorted(AGGREGATORS) + list(PATTERNS)


def get(name: str) -> Aggregator:
    """Resolve an aggregator name (fixed or parameterised) to a function.

    Raises ValueError naming the bad value and listing valid names and patterns.
    """
    if not isinstance(name, str):
        raise TypeError(f"aggregator name must be a str, got {type(name).__name__}")
    key = name.strip()
    if key in AGGREGATORS:
        return AGGREGATORS[key]
    m = re.fullmatch(r"window(\d+)", key) or re.fullmatch(r"last(\d+)_mean", key)
    if m:
        k = int(m.group(1))
        if k < 1:
            raise ValueError(f"aggregator {name!r}: window size must be >= 1, got {k}")
        return _window(k)
    m = re.fullmatch(r"softmin(\d+(?:\.\d*)?(?:e-?\d+)?)", key)
    if m:
        t = float(m.group(1))
        if not t > 0:
            raise ValueError(f"aggregator {name!r}: temperature must be > 0, got {t:g}")
        return _softmin(t)
    raise ValueError(
        f"unknown aggregator {name!r}; valid: {', '.join(sorted(AGGREGATORS))}; "
        "patterns: windowK / lastK_mean (mean of last K steps, e.g. window4), "
        "softminT (T > 0, e.g. softmin0.5)"
    )


def aggregate(name: str, scores: Sequence[float]) -> float:
    """Apply the aggregator called ``name`` to one candidate's step scores."""
    return get(name)(scores)
