"""rewards.checked: the arithmetic check in front of a scorer, and `cli.py search --step-check`."""

from __future__ import annotations

import argparse
import pickle

import pytest

from rewards.checked import ArithmeticChecked, with_step_check
from search.testing import FakeScorer


def _fake(granularity="step"):
    sc = FakeScorer(lambda problem, steps: [0.8] * len(steps) if granularity == "step" else [0.8])
    sc.granularity = granularity
    sc.step_threshold = 0.3
    return sc


def test_step_scores_are_zero_from_the_first_false_equation_on():
    inner = _fake()
    sc = ArithmeticChecked(inner)
    sols = [["2 + 2 = 4", "4 * 3 = 13", "so 13"], ["2 + 2 = 4", "4 * 3 = 12"], [], ["no sums here"]]
    assert sc.score(["p"] * 4, sols) == [[0.8, 0.0, 0.0], [0.8, 0.8], [], [0.8]]
    # the wrapped scorer's own statistics and attributes, counted once
    assert sc.stats is inner.stats and inner.stats.calls == 1 and inner.stats.candidates == 4
    assert sc.step_threshold == 0.3 and sc.granularity == "step"
    assert sc.describe()["step_check"] == "arithmetic"


def test_an_outcome_score_becomes_zero():
    sc = ArithmeticChecked(_fake("outcome"))
    assert sc.score(["p", "p"], [["1 + 1 = 3", "so 3"], ["1 + 1 = 2"]]) == [[0.0], [0.8]]


def test_factory_pickles_and_refuses_unknown_checks():
    import functools

    make = functools.partial(with_step_check, functools.partial(_fake_factory), "arithmetic")
    sc = pickle.loads(pickle.dumps(make))()
    assert isinstance(sc, ArithmeticChecked) and sc.score(["p"], [["3 * 4 = 13"]]) == [[0.0]]
    with pytest.raises(ValueError, match="--step-check must be one of arithmetic"):
        with_step_check(_fake_factory, "sympy")


def _fake_factory():
    return _fake()


def test_search_identity_names_the_check_only_when_asked():
    from search import cli

    p = argparse.ArgumentParser()
    cli.add_arguments(p)
    plain = p.parse_args(["--reward", "probe"])
    assert cli.reward_identity(plain) == {"kind": "probe", "model": None}  # runs from before the option resume
    checked = p.parse_args(["--reward", "probe", "--step-check", "arithmetic"])
    assert cli.reward_identity(checked) == {"kind": "probe", "model": None, "step_check": "arithmetic"}


def test_best_of_n_through_the_checked_scorer_never_picks_the_false_sum():
    from search import SearchConfig, best_of_n
    from search.testing import FakePolicy, digit_scores
    from search.types import Problem

    def script(problem, steps, j, seed):  # sample 0 writes 3 * 4 = 19 and says 9 (the fake PRM likes 9s)
        if steps:
            return f"The answer is {9 if j == 0 else 12 - j % 2}.", "eos"
        return ("3 * 4 = 19" if j == 0 else f"3 * 4 = 12, step {j}"), "step"

    probs = [Problem("a", "What is 3 * 4?", "12")]
    cfg = SearchConfig(n=4, agg="min", select="argmax")
    plain = best_of_n(probs, FakePolicy(script), FakeScorer(digit_scores), cfg, equal=lambda a, b: a == b)[0]
    assert plain.chosen == 0 and plain.answer == "9"
    sc = ArithmeticChecked(FakeScorer(digit_scores))
    checked = best_of_n(probs, FakePolicy(script), sc, cfg, equal=lambda a, b: a == b)[0]
    assert checked.chosen != 0 and checked.candidates[0].scores == [0.0, 0.0]
    assert checked.ledger.scorer_calls == 1  # the wrapped scorer's counters feed the ledger
