"""eval.metrics: pure functions against hand-computed values."""

from __future__ import annotations

import math
import operator

import numpy as np
import pytest

from eval import metrics as M


@pytest.mark.parametrize(
    "m,c,k,expected",
    [
        (4, 1, 2, 0.5),  # 1 - C(3,2)/C(4,2) = 1 - 3/6
        (5, 2, 2, 0.7),  # 1 - C(3,2)/C(5,2) = 1 - 3/10
        (4, 0, 2, 0.0),
        (4, 2, 4, 1.0),
        (4, 2, 9, 1.0),  # k > m: the whole pool
        (8, 1, 1, 0.125),
        (0, 0, 1, 0.0),  # empty pool
    ],
)
def test_pass_at_k(m, c, k, expected):
    assert M.pass_at_k(m, c, k) == pytest.approx(expected)


# (correct, values, labels, rule, expected correctness of the choice)
SELECT_TABLE = [
    # argmax tie (0.5, 0.5) goes to the first candidate, which is wrong
    ([False, True, True], [0.5, 0.5, 0.2], [0, 1, 1], "argmax", 0.0),
    # weighted: class 1 sums 0.7 > 0.5
    ([False, True, True], [0.5, 0.5, 0.2], [0, 1, 1], "weighted_vote", 1.0),
    ([False, True, True], [0.5, 0.5, 0.2], [0, 1, 1], "majority", 1.0),
    # majority tie 1-1 broken by summed values -> class 1
    ([False, True], [0.2, 0.9], [0, 1], "majority", 1.0),
    # plain vote (no values): tie goes to the first class
    ([False, True], [None, None], [0, 1], "majority", 0.0),
    # no values at all: argmax falls back to majority (class 1 has two votes)
    ([False, True, True], [None, None, None], [0, 1, 1], "argmax", 1.0),
    # a candidate with no value (empty scores) never wins argmax
    ([True, False], [None, 0.1], [0, 1], "argmax", 0.0),
    # no answers at all: the argmax candidate is returned (and graded)
    ([False, True], [0.1, 0.9], [None, None], "weighted_vote", 1.0),
    # weighted vote tie on weight broken by count, then first class
    ([True, False, False], [0.6, 0.3, 0.3], [0, 1, 1], "weighted_vote", 0.0),
    ([True, False], [0.4, 0.4], [0, 1], "weighted_vote", 1.0),
    # empty pool
    ([], [], [], "argmax", 0.0),
    ([], [], [], "majority", 0.0),
]


@pytest.mark.parametrize("correct,values,labels,rule,expected", SELECT_TABLE)
def test_select_correct_table(correct, values, labels, rule, expected):
    assert M.select_correct(correct, values, labels, rule) == expected


def test_select_index_subset_keeps_pool_indices():
    # among candidates 1 and 3 the tie 0.7/0.7 goes to the earlier one (1)
    assert M.select_index([0.9, 0.7, 0.1, 0.7], [0, 1, 2, 3], "argmax", subset=(1, 3)) == 1
    assert M.select_index([0.9, 0.7, 0.1, 0.7], [0, 1, 2, 3], "argmax", subset=()) is None


def test_expected_at_k_hand_computed():
    correct = [True, False, False, False]
    values = [0.9, 0.1, 0.2, 0.3]
    labels = [0, 1, 2, 3]
    rng = np.random.default_rng(0)
    # k=2: 6 subsets, the 3 that contain candidate 0 choose it
    subs2 = M.subsets(4, 2, 100, rng)
    assert len(subs2) == 6
    assert M.expected_at_k(correct, values, labels, "argmax", subs2) == pytest.approx(0.5)
    subs1 = M.subsets(4, 1, 100, rng)
    assert M.expected_at_k(correct, values, labels, "argmax", subs1) == pytest.approx(0.25)
    # plain majority over singletons = mean correctness = pass@1
    assert M.expected_at_k(correct, [None] * 4, labels, "majority", subs1) == pytest.approx(M.pass_at_k(4, 1, 1))
    assert M.expected_at_k(correct, values, labels, "argmax", M.subsets(4, 4, 100, rng)) == 1.0
    assert M.expected_at_k([], [], [], "argmax", M.subsets(0, 2, 100, rng)) == 0.0


def test_subsets_seeded_and_reproducible():
    a = M.subsets(20, 5, 50, np.random.default_rng([0, 5, 7]))
    b = M.subsets(20, 5, 50, np.random.default_rng([0, 5, 7]))
    c = M.subsets(20, 5, 50, np.random.default_rng([1, 5, 7]))
    assert a == b and a != c
    assert len(a) == 50 and all(len(s) == 5 and list(s) == sorted(set(s)) for s in a)
    assert M.subsets(4, 2, 6, np.random.default_rng(0)) == [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]
    with pytest.raises(ValueError, match="k must be >= 1"):
        M.subsets(4, 0, 6, np.random.default_rng(0))


def test_k_values():
    assert M.k_values(8) == [1, 2, 4, 8]
    assert M.k_values(6) == [1, 2, 4, 6]
    assert M.k_values(1) == [1]
    assert M.k_values(0) == []


def test_candidate_values_follow_search_rules():
    cands = [
        {"scores": [0.5, 0.2, 0.8], "logprob": -2.0, "generated_tokens": 4},
        {"scores": [], "logprob": -1.0, "generated_tokens": 2},  # scorer gave nothing: no value
        {"scores": None, "logprob": -2.0, "generated_tokens": 4},  # no scorer: confidence
        {"scores": None, "logprob": None, "generated_tokens": 0},
    ]
    assert M.candidate_values(cands, "min") == [pytest.approx(0.2), None, pytest.approx(math.exp(-0.5)), None]
    assert M.candidate_values(cands[:1], "last") == [pytest.approx(0.8)]
    assert M.candidate_values(cands[:1], "prod") == [pytest.approx(0.08)]
    assert M.candidate_values(cands[:1], "mean") == [pytest.approx(0.5)]


def test_answer_labels_exact_and_verifier():
    assert M.answer_labels(["1", "2", None, "1", " "], operator.eq) == [0, 1, None, 0, None]
    # the default is the verifier: 0.5 == 1/2
    assert M.answer_labels(["0.5", "\\frac{1}{2}", "3"]) == [0, 0, 1]


def test_bootstrap_ci():
    assert M.bootstrap_ci([0.5] * 10) == (0.5, 0.5)
    x = [1, 0, 1, 1, 0, 1, 0, 1, 1, 1]
    lo, hi = M.bootstrap_ci(x, seed=3)
    assert lo < 0.7 < hi and 0 <= lo and hi <= 1
    assert M.bootstrap_ci(x, seed=3) == (lo, hi)  # seeded
    assert all(math.isnan(v) for v in M.bootstrap_ci([]))
    # paired: identical columns differ by exactly 0
    assert M.paired_bootstrap(x, x) == (0.0, 0.0)
    with pytest.raises(ValueError, match="aligned"):
        M.paired_bootstrap([1, 0], [1])


def test_mean_sd():
    m, sd = M.mean_sd([0.5, 0.7])
    assert m == pytest.approx(0.6) and sd == pytest.approx(math.sqrt(0.02))
    m, sd = M.mean_sd([0.4])
    assert m == 0.4 and math.isnan(sd)
