"""verifiers.arithmetic: the equations of a step it reads, the ones it leaves alone, the
loose readings writers mean, and inputs that must not cost time or be evaluated."""

from __future__ import annotations

import time

import pytest

from verifiers.arithmetic import check_equations, false_equations, first_false_step


@pytest.mark.parametrize("text, lhs, rhs", [
    ("So she pays 3 * $4 = $13.", "3 *  4", "13"),
    ("He has 5 apples. 3 * 4 = 13", "3 * 4", "13"),
    ("So 12 * 3 = 38 dollars", "12 * 3", "38"),
    ("$$ 5 + 5 = 11 $$", "5 + 5", "11"),
    ("1. 3 * 4 = 13", "3 * 4", "13"),  # list numbering is not part of the sum
    ("2 * 3 = 6, and 6 + 1 = 8", "6 + 1", "8"),
    ("\\( \\frac{3}{4} \\times 8 = 5 \\)", "((3)/(4)) * 8", "5"),
    ("Total = 25 + 40 + 35 = 110", "25 + 40 + 35", "110"),
    ("The GSM8K way: 48/2 = <<48/2=25>>25 clips", "48/2", "25"),
])
def test_false_equations_are_found(text, lhs, rhs):
    got = false_equations(text)
    assert [(e.lhs, e.rhs) for e in got] == [(lhs, rhs)]
    assert not got[0].holds


@pytest.mark.parametrize("text", [
    "Natalia sold 48/2 = <<48/2=24>>24 clips in May.",
    "10 / 3 = 3.33",           # rounded to the places shown
    "2/3 = 0.66",              # truncated
    "1/4 * 100 = 25%", "1/4 = 25%", "100% - 80% = 20 % were children",
    "$1,200 / 4 = $300",
    "3 x 4 = 12", "2(3+4) = 14", "5 - 7 = -2", "2^10 = 1024", "-3 + 5 = 2",
    "10 - 2 * 3 = 24",         # read left to right, as a calculator
    "25 / 1/3 = 75",           # an unspaced fraction bound first
    "$7500/75% = $100",        # a percent sign as a bare number
    "   - \\( 72 - 48 = 24 \\)",  # a list bullet, not a minus sign
    "2 + 3 = 5 + 1 = 6",       # a running total: only 5 + 1 = 6 is read
])
def test_true_equations_hold(text):
    eqs = check_equations(text)
    assert eqs and all(e.holds for e in eqs), [(e.lhs, e.rhs) for e in eqs]


@pytest.mark.parametrize("text", [
    "half of 3 * 4 = 6",         # cut out of a longer phrase
    "50% of 80 = 45",
    "x^2+3 = 7", "2x + 1 = 9", "X*2 + 3*X - 3*6 = 77.",  # algebra
    "3 hours * 4 = 13 hours",    # a unit inside the left side
    "$1 / 2 = 50 cents",         # a scale word after the result
    "600 x 30 = 18 000 watts",   # thousands written with a space
    "12 x 1 and 1/4 = 15",       # a mixed number
    "0900-0130 = 0730 hours",    # clock times
    "6:00+48=6:48 PM",
    "3,5 * 2 = 7",               # a decimal comma: only "5 * 2" would be read
    "x = 5", "a == b", "3 * 4 \\approx 13", "3 * 4 <= 13", "3 * 4 != 13",
    "total = price * 3",         # code
    "2 + 3 = 5 + 2 = 7",         # running totals are not judged mid-chain
])
def test_what_it_cannot_read_completely_is_left_alone(text):
    assert false_equations(text) == []


def test_first_false_step():
    steps = ["We add 2 + 2 = 4 apples.", "Then 4 * 3 = 13.", "So 13 - 1 = 11."]
    assert first_false_step(steps) == 1
    assert first_false_step(steps[:1]) is None and first_false_step([]) is None


@pytest.mark.parametrize("text", [
    "2^1000000 = 1", "9^9^9^9 = 1", "(" * 5000 + "1 = 1", "1" * 5000 + " * 3 = 3",
    "1/0 = 5", "0^-1 = 1", "__import__('os').system('true') + 1 = 2", "((1 + 2) = 3",
])
def test_hostile_input_is_skipped_fast_and_never_evaluated(text):
    t0 = time.perf_counter()
    assert false_equations(text) == []
    assert time.perf_counter() - t0 < 0.5
