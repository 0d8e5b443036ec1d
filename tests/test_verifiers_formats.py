"""Answer formats (issue: read every format Math-Verify reads), exact values compared
exactly, linear-time extraction and the input-length bound. One table per format class.

Run: .venv/bin/python -m pytest -q tests/test_verifiers_formats.py
"""

from __future__ import annotations

import time

import pytest

from verifiers import VerifyConfig, extract_answer, grade, judge

# ------------------------------------------------------------------ the issue's table

ISSUE = [
    ("10/9", "\\frac{10}{9}", True),       # was: extracted 9
    ("1/3", "$\\frac13 $", True),         # was: extracted 13
    ("1000", "1 000", True),              # was: extracted 000
    ("2", "AZYUK2A", False),              # was: a digit inside a word counted
]


@pytest.mark.parametrize(("gold", "pred", "expected"), ISSUE)
def test_issue_table(gold, pred, expected):
    assert grade(gold, pred).correct is expected


# ------------------------------------------------------------------ extraction per class

SPANS = [  # the last math span before any bare-number fallback
    ("We get $x = 3$ and then $\\frac{1}{2}$ remains.", "\\frac{1}{2}"),
    ("so \\(y=2\\) holds", "y=2"),
    ("Thus \\[\\frac{7}{8}\\] is the ratio", "\\frac{7}{8}"),
    ("Display: $$\\sqrt{2}$$ and that is all", "\\sqrt{2}"),
    ("She paid $5 for apples and $3 for pears, 8 in all", "8"),   # money, not math
    ("$5 and $7 make 12", "12"),
    ("costs $5, so $x=3$", "x=3"),
    ("\\$5 then $\\pi$", "\\pi"),
]
BARE = [  # a prediction that is only an expression
    ("\\frac{10}{9}", "\\frac{10}{9}"),
    ("-\\frac{10}{9}", "-\\frac{10}{9}"),
    ("x^2+1", "x^2+1"),
    ("k = \\frac{1}{3}", "k = \\frac{1}{3}"),
    ("(0,1]", "(0,1]"),
    ("1 000", "1 000"),
    ("Evelyn", "Evelyn"),
]
NUMBERS = [  # the last-number fallback: only a number standing alone
    ("AZYUK2A", None),  # a digit inside a word is no answer
    ("the code x2 means H2O, so nothing", None),
    ("there are 2,000 apples and then 3,000", "3,000"),
    ("total 1\\,000\\,000 items in 5{,}000 boxes", "5{,}000"),
    ("it is \\frac{3}{4} of the cake", "\\frac{3}{4}"),
    ("he walked 5 km then 12 km more", "12"),
]


@pytest.mark.parametrize(("text", "expected"), SPANS + BARE + NUMBERS)
def test_extraction_classes(text, expected):
    assert extract_answer(text) == expected


# ------------------------------------------------------------------ equivalence per class

LATEX = [
    ("\\frac{1}{3}", "\\dfrac{1}{3}", True),
    ("\\frac{1}{3}", "\\tfrac13", True),
    ("\\frac{1}{3}", "\\cfrac{1}{3}", True),
    ("\\frac{1}{2}", "\\frac{1}2", True),
    ("\\sqrt{3}", "\\sqrt3", True),
    ("(1,2)", "\\left( 1, 2 \\right)", True),
    ("1000", "1\\!000", True),
    ("12", "1\\,2", False),  # a thin space inside digits is not a thousands group
    ("\\frac{1}{3}", "\\frac{1}{3}\\text{ meters}", True),
    ("\\frac{1}{3}", "\\frac{1}{3}\\mbox{ m}", True),
    ("5", "\\textbf{5}", True),
    ("30", "30^{\\circ}", True),
    ("30", "30°", True),
    ("45\\%", "45%", True),
    ("45\\%", "45 percent", True),
    ("1", "1~", True),
]
ASSIGN = [
    ("\\frac{1}{3}", "k = \\frac{1}{3}", True),
    ("5", "x=5", True),
    ("18", "9 \\times 2 = 18", True),    # a computation's result
    ("18", "a = 9 \\times 2 = 18", True),
    ("5", "x + 1 = 6", False),           # an equation states no value
    ("6", "x + 1 = 6", False),
    ("x=5", "x = 5", True),
]
NUMBER_FORMATS = [
    ("1000", "1,000", True),
    ("1000", "1 000", True),
    ("1000", "1\\,000", True),
    ("1000", "1{,}000", True),
    ("1000000", "1 000 000", True),
    ("1.22", "1,22", True),     # a decimal comma: ,22 cannot be a thousands group
    ("0.111", "0,111", True),   # 0,111 cannot be a thousand
    ("1000", "1,22", False),
    ("1.000", "1,000", False),  # 1,000 is a thousand
    ("3.14159", "3,14159", True),
]
STRUCTURES = [
    ("[0,1)", "[0, 1)", True),
    ("[0,1)", "[0,1]", False),
    ("\\{1,2,3\\}", "\\{3,2,1\\}", True),
    ("(1,2)", "(2,1)", False),
    ("\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}", "\\begin{bmatrix}\n1 \\\\\n2\n\\end{bmatrix}", True),
    ("x \\ge 2", "2 \\le x", True),
    ("1, 2", "x = 1, 2", True),
    ("1, 2", "x = 1, 3", False),
]


@pytest.mark.parametrize(("gold", "pred", "expected"), LATEX + ASSIGN + NUMBER_FORMATS + STRUCTURES)
def test_format_classes(gold, pred, expected):
    v = judge(gold, pred)
    assert v.correct is expected, (gold, pred, v)


def test_matrix_in_box_with_newlines_and_text_after():
    sol = "So\n\\boxed{\\begin{pmatrix}\n-1 & 0 \\\\\n0 & -1\n\\end{pmatrix}}\nwhich is a rotation."
    assert grade("\\begin{pmatrix} -1 & 0 \\\\ 0 & -1 \\end{pmatrix}", sol).correct


WHOLE_SOLUTION_GOLDS = [  # golds that are whole solutions: their marked answer is the gold
    ("The sum is $1+2$, which is $\\boxed{3}$.", "3", True),
    ("The sum is $1+2$, which is $\\boxed{3}$.", "2", False),
    ("Natalia sold 48/2 = 24 clips.\n#### 72", "\\boxed{72}", True),
]


def test_gold_whose_mark_reads_as_nothing_stays_whole():
    """Fuzz case: a gold marking only `\\$` extracted to a blank gold, and grade raised."""
    gold = "991\\[$+\\right)y^\\circ\\frac&\\{^\\circ\\infty\\,~y.5%\\]\\right)x"
    assert grade(gold, "The answer is $\\boxed{(1,2]}$.").status in ("wrong", "unparsable")
    assert grade("The answer is \\fbox{\\$} and 5", "5").status in ("correct", "wrong",
                                                                    "unparsable")


def test_unmarked_prose_gold_stays_whole():
    from verifiers.extract import extract_gold

    assert extract_gold("north and south") == "north and south"
    assert extract_gold("5 apples and 3 pears") == "5 apples and 3 pears"  # never its last number
    assert extract_gold("\\text{Evelyn}") == "\\text{Evelyn}"


@pytest.mark.parametrize(("gold", "pred", "expected"), WHOLE_SOLUTION_GOLDS)
def test_whole_solution_golds(gold, pred, expected):
    assert grade(gold, pred).correct is expected


# ------------------------------------------------------------------ exact where exact

UNEQUAL_EXACT = [  # each was graded correct with a relative tolerance
    ("10^{30}", "10^{30}+1"),
    ("2^{200}", "2^{200}+2^{100}"),
    ("50!", "50!+1"),
    ("\\binom{60}{30}", "\\binom{60}{30}+1"),
    ("e^{60}", "e^{60}+1"),
    ("\\pi^{20}", "\\pi^{20}+1"),
    ("\\pi^{40}", "\\pi^{40}+10^{-10}"),
    ("1000000000000000000000000000000", "1000000000000000000000000000001"),
    ("2^{100}", "1267650600228229401496703205377"),
    ("\\frac{10^{40}}{3}", "\\frac{10^{40}+1}{3}"),
    ("\\sqrt{10^{40}+1}", "10^{20}"),
    ("e^{100}", "e^{100}+e^{-100}"),
    ("100!", "100!-1"),
    ("\\binom{100}{50}", "\\binom{100}{50}-1"),
    ("e^{\\pi\\sqrt{163}}", "640320^3+744"),  # 7.5e-13 apart, almost an integer
]
EQUAL_EXACT = [
    ("2^{10}", "1024"),
    ("10^{30}", "1000000000000000000000000000000"),
    ("5!", "120"),
    ("\\binom{60}{30}", "118264581564861424"),
    ("e^{60}", "e^{30}\\cdot e^{30}"),
    ("\\pi^{3}", "\\pi\\cdot\\pi^{2}"),
    ("\\cos(\\pi/5)", "\\frac{1+\\sqrt{5}}{4}"),
    ("\\sqrt{3+2\\sqrt{2}}", "1+\\sqrt{2}"),
    ("2^{200}+2^{100}", "2^{100}(2^{100}+1)"),
]


@pytest.mark.parametrize(("gold", "pred"), UNEQUAL_EXACT)
def test_exact_values_unequal(gold, pred):
    assert judge(gold, pred).status == "wrong"
    assert judge(pred, gold).status == "wrong"


@pytest.mark.parametrize(("gold", "pred"), EQUAL_EXACT)
def test_exact_values_equal(gold, pred):
    assert judge(gold, pred).status == "correct"


DECIMALS = [  # the one tolerance rule (a decimal side; 6 places, as Math-Verify's rounding)
    ("\\frac{1}{3}", "0.333333", True),
    ("\\frac{1}{3}", "0.33333", False),
    ("\\frac{1}{7}", "0.142857", True),
    ("\\frac{1}{17}", "0.058824", True),
    ("\\frac{2}{3}", "0.666667", True),
    ("\\frac{2}{3}", "0.666666", False),  # not the rounding of 2/3
    ("\\frac{1}{3}", "0.3333333", True),
    ("\\frac{1}{3}", "0.3333334", False),  # 7 places: held to all of them
    ("\\sqrt{2}", "1.414214", True),
    ("\\pi", "3.14159", False),
    ("\\pi", "3.141593", True),
    ("1", "1.0000004", False),
    ("123456789", "123456789.5", False),
    (".0000672", ".00006721", False),
    ("e^{60}", "1.1420073898156842e26", False),
]


@pytest.mark.parametrize(("gold", "pred", "expected"), DECIMALS)
def test_decimal_tolerance_rule(gold, pred, expected):
    v = judge(gold, pred)
    assert v.correct is expected, (gold, pred, v)


# ------------------------------------------------------------------ linear time, bounded input

ADVERSARIAL_TEXTS = {
    "open boxes": "\\boxed{" * 6000,
    "dollars": "$" * 40_000,
    "answer is": "answer is " * 4000,
    "bold": "**a" * 13_000,
    "numbers": "1," * 20_000,
    "letters then digit": "a" * 40_000 + "1",
    "spans": "$x$ " * 10_000,
    "brackets": "\\(" * 20_000,
}


@pytest.mark.parametrize("name", list(ADVERSARIAL_TEXTS))
def test_extraction_is_linear(name):
    text = ADVERSARIAL_TEXTS[name]
    t0 = time.monotonic()
    extract_answer(text)
    small = time.monotonic() - t0
    t0 = time.monotonic()
    extract_answer(text * 10)  # 10x the text: ~10x the time, not 100x
    big = time.monotonic() - t0
    assert small < 0.5, (name, small)  # 40 KB of open boxes took 8 s
    assert big < 2.0, (name, big)


def test_unit_words_do_not_backtrack():
    t0 = time.monotonic()
    judge("1", "1 " + "ab" * 900 + "1")
    judge("1", "1 " + "abc " * 400 + "!")
    assert time.monotonic() - t0 < 2.0


def test_solution_longer_than_the_bound_is_refused():
    cfg = VerifyConfig(max_solution_chars=10_000)
    v = grade("1", "x" * 10_001 + "\\boxed{1}", config=cfg)
    assert v.status == "unparsable" and "max_solution_chars" in v.detail
    assert grade("1", "x" * 9_000 + "\\boxed{1}", config=cfg).correct
    with pytest.raises(ValueError, match="max_solution_chars"):
        VerifyConfig(max_solution_chars=0)
