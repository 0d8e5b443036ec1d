"""Aggregators: hand-computed tables, edge cases and invariants."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

import rewards
from rewards import AGGREGATORS, EmptyScoresError, aggregate, get_aggregator

S = [0.9, 0.5, 0.8, 0.2]

# (name, scores, expected) - computed by hand
TABLE = [
    ("min", S, 0.2),
    ("max", S, 0.9),
    ("prod", S, 0.072),  # 0.9*0.5=0.45, *0.8=0.36, *0.2=0.072
    ("mean", S, 0.6),  # 2.4/4
    ("sum", S, 2.4),
    ("last", S, 0.2),
    ("first", S, 0.9),
    ("geomean", [0.5, 0.125], 0.25),  # sqrt(1/16)
    ("geomean", [0.25, 1.0, 1.0, 1.0], math.sqrt(0.5)),  # 0.25^(1/4)
    ("geomean", [0.3, 0.0], 0.0),
    ("harmonic", [0.5, 0.25], 1 / 3),  # 2 / (2 + 4)
    ("harmonic", [1.0, 0.0], 0.0),
    ("window2", S, 0.5),  # (0.8+0.2)/2
    ("window3", S, 0.5),  # (0.5+0.8+0.2)/3
    ("window5", S, 0.6),  # fewer steps than the window: mean of all
    ("window1", S, 0.2),
    ("window4", S, 0.6),
    ("last3_mean", S, 0.5),
    ("last2_mean", [0.1, 0.3, 0.7], 0.5),
    ("softmin", [0.4, 0.4], 0.4),  # all equal: softmin == value
    # T=1, scores [0, 1]: -log((1 + e^-1)/2) = log 2 - log(1 + e^-1)
    ("softmin1", [0.0, 1.0], math.log(2) - math.log(1 + math.exp(-1))),
    ("softmin0.5", [0.0, 1.0], -0.5 * math.log((1 + math.exp(-2)) / 2)),
    ("min", [0.7], 0.7),
    ("prod", [0.7], 0.7),
]


@pytest.mark.parametrize("name,scores,expected", TABLE)
def test_table(name, scores, expected):
    assert aggregate(name, scores) == pytest.approx(expected, abs=1e-12)


def test_required_names_present():
    for n in ["min", "max", "prod", "mean", "last", "sum", "geomean", "harmonic", "first", "window3", "softmin"]:
        assert n in AGGREGATORS, n


@pytest.mark.parametrize("name", sorted(AGGREGATORS) + ["window7", "last4_mean", "softmin0.05"])
def test_empty_raises(name):
    with pytest.raises(EmptyScoresError, match="empty"):
        aggregate(name, [])


def test_empty_is_value_error():
    assert issubclass(EmptyScoresError, ValueError)


@pytest.mark.parametrize("bad", ["median", "window0", "window", "softmin0", "softmin-1", "last0_mean", "MIN"])
def test_unknown_names_list_valid(bad):
    with pytest.raises(ValueError) as e:
        aggregate(bad, [0.5])
    msg = str(e.value)
    assert repr(bad) in msg
    if bad in ("median", "window", "MIN", "softmin-1"):
        assert "min" in msg and "prod" in msg and "windowK" in msg and "softminT" in msg


def test_nan_rejected():
    with pytest.raises(ValueError, match="NaN"):
        aggregate("mean", [0.5, float("nan")])


def test_get_aggregator_names_parameterised():
    assert get_aggregator("window7").__name__ == "window7"
    assert get_aggregator("softmin0.25").__name__ == "softmin0.25"
    assert rewards.aggregators.names()[-3:] == ["windowK", "lastK_mean", "softminT"]


def test_pure_no_mutation():
    xs = [0.3, 0.2, 0.9]
    for n in AGGREGATORS:
        aggregate(n, xs)
    assert xs == [0.3, 0.2, 0.9]


def test_softmin_limits():
    xs = [0.9, 0.1, 0.6]
    assert aggregate("softmin0.001", xs) == pytest.approx(0.1, abs=1e-2)
    assert aggregate("softmin1000", xs) == pytest.approx(sum(xs) / 3, abs=1e-3)


scores_st = st.lists(st.floats(min_value=0.0, max_value=1.0), min_size=1, max_size=12)


@given(scores_st, st.floats(min_value=1e-3, max_value=100.0))
def test_softmin_between_min_and_mean(xs, t):
    v = rewards.aggregators.softmin(xs, t)
    assert min(xs) - 1e-12 <= v <= sum(xs) / len(xs) + 1e-12


@given(scores_st)
def test_order_relations(xs):
    # harmonic <= geomean <= mean, min <= each <= max, for scores in [0, 1]
    lo, hi = min(xs), max(xs)
    h, g, m = aggregate("harmonic", xs), aggregate("geomean", xs), aggregate("mean", xs)
    assert lo - 1e-9 <= h <= g + 1e-9 and g <= m + 1e-9 and m <= hi + 1e-9
    assert aggregate("prod", xs) <= lo + 1e-12
    for n in ("window3", "last", "first", "softmin"):
        assert lo - 1e-9 <= aggregate(n, xs) <= hi + 1e-9
