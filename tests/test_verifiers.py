"""Tables of (gold, prediction, expected) for every equivalence rule, plus real data.

Run: .venv/bin/python -m pytest -q tests/test_verifiers.py
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from verifiers import (
    STATUSES,
    Verdict,
    VerifyConfig,
    extract_answer,
    grade,
    grade_many,
    judge,
    verify,
)


def data_dir() -> Path | None:
    """The shared data folder ($TTS_MATH_DATA, else ../shared/data: policies.settings);
    None skips the data tests."""
    from policies import settings

    d = settings.shared_data_dir()
    return d if d is not None and (d / "gsm8k").is_dir() else None


# ------------------------------------------------------------------ extraction

EXTRACT = [
    ("so the answer is $\\boxed{\\frac{1}{2}}$.", "\\frac{1}{2}"),
    ("\\boxed{1} then \\boxed{\\frac{a}{\\sqrt{b^{2}}}}", "\\frac{a}{\\sqrt{b^{2}}}"),
    ("\\fbox{42}", "42"),
    ("answer \\boxed 7.", "7"),
    ("truncated \\boxed{3} and \\boxed{4", "3"),
    ("Natalia sold 48/2 = <<48/2=24>>24 clips in May.\n#### 72", "72"),
    ("She makes 9 * 2 = $<<9*2=18>>18 every day.\nA: 18", "18"),
    ("Therefore, the answer is 1,000 dollars.", "1,000 dollars"),
    ("The final answer is $x^2+1$. I hope it is correct.", "x^2+1"),
    ("Final Answer: The final answer is $\\frac{3}{4}$. I hope it is correct.", "\\frac{3}{4}"),
    ("Final Answer: (C)", "(C)"),
    ("Answer: 3.5", "3.5"),
    ("We get **12 apples** in total", "12 apples"),
    ("he paid 3 + 4 = <<3+4=7>>7 dollars so 7 * 2 = 14", "14"),
    ("It costs 2.50 now", "2.50"),
    ("no numbers here", None),
    ("", None),
    ("\\boxed{}", None),
    ("the answer is \\(\\sqrt{2}\\)", "\\sqrt{2}"),
    ("The answer is: 5", "5"),
]


@pytest.mark.parametrize(("text", "expected"), EXTRACT)
def test_extract_answer(text, expected):
    assert extract_answer(text) == expected


def test_extract_rejects_non_str():
    with pytest.raises(TypeError, match="extract_answer expects"):
        extract_answer(5)  # type: ignore[arg-type]


# ------------------------------------------------------------------ equivalence table

EQUIV = [
    # integers, decimals, thousands separators, trailing zeros, leading dot
    ("18", "18", True),
    ("18", "18.0", True),
    ("18", "18.00", True),
    ("1000", "1,000", True),
    ("1000", "1{,}000", True),
    ("1000000", "1\\,000\\,000", True),
    ("10080", "10,\\!080", True),
    ("0.5", ".5", True),
    ("2.50", "2.5", True),
    ("18", "19", False),
    ("18", "180", False),
    ("1000", "1,001", False),
    ("-3", "3", False),
    ("-3", "-3", True),
    # fractions, \frac / \dfrac / \tfrac, mixed numbers
    ("\\frac{1}{2}", "0.5", True),
    ("\\frac{1}{2}", "1/2", True),
    ("\\dfrac{3}{4}", "\\tfrac{3}{4}", True),
    ("\\frac12", "\\frac{1}{2}", True),
    ("\\frac{270}7", "\\frac{540}{14}", True),
    ("\\frac{1}{3}", "0.333", False),
    ("\\frac{1}{3}", "0.3333333", True),  # within rel_tol 1e-6
    ("2\\frac{1}{2}", "2.5", True),
    ("2\\frac{1}{2}", "5/2", True),
    ("2 1/2", "\\frac52", True),
    ("-\\frac{3}{4}", "\\frac{-3}{4}", True),
    ("-\\frac{3}{4}", "\\frac{3}{4}", False),
    # percentages: 50% vs 0.5 only where the gold says so
    ("50\\%", "50", True),
    ("50\\%", "50%", True),
    ("50\\%", "0.5", True),
    ("50", "50\\%", True),
    ("50", "50 percent", True),
    ("0.5", "50\\%", False),
    ("50\\%", "5", False),
    # currency, units, \text{}
    ("18", "\\$18", True),
    ("18", "$18.00", True),
    ("32348", "\\$32,\\!348", True),
    ("18", "18 dollars", True),
    ("5", "5 \\text{ cm}", True),
    ("5", "5\\text{cm}^2", True),
    ("5", "5cm", True),
    ("\\frac{270}7\\text{ degrees}", "\\frac{270}{7}", True),
    ("3", "\\text{3 eggs}", True),
    # degrees
    ("30", "30^\\circ", True),
    ("30", "30^{\\circ}", True),
    ("30", "30°", True),
    ("30^\\circ", "31^\\circ", False),
    # scientific notation
    ("1500", "1.5e3", True),
    ("1500", "1.5 \\times 10^{3}", True),
    ("0.00015", "1.5\\times10^{-4}", True),
    ("1500", "1.5e4", False),
    # \sqrt, \pi, e, \infty
    ("2\\sqrt{2}", "\\sqrt{8}", True),
    ("2\\sqrt{2}", "2^{3/2}", True),
    ("\\frac{\\sqrt{3}}{3}", "\\frac{1}{\\sqrt{3}}", True),
    ("\\frac{\\sqrt{2}}{2}", "0.7071068", True),
    ("\\frac{\\sqrt{2}}{2}", "0.7071", False),
    ("0.71", "\\frac{\\sqrt{2}}{2}", True),  # gold is rounded: exact answer rounds to it
    ("0.72", "\\frac{\\sqrt{2}}{2}", False),
    ("3\\sqrt{13}", "\\sqrt{117}", True),
    ("3\\sqrt{13}", "\\sqrt{118}", False),
    ("288 \\pi", "288\\pi", True),
    ("\\pi", "3.14159265", True),
    ("\\pi", "3.14", False),
    ("18+2\\pi", "2\\pi + 18", True),
    ("\\frac{20000}{\\pi}", "20000/\\pi", True),
    ("e^{2}", "\\exp(2)", True),
    ("e", "2.718281828", True),
    ("\\infty", "\\infty", True),
    ("\\infty", "-\\infty", False),
    ("\\infty", "oo", True),
    # symbolic expressions
    ("x^2+2x+1", "(x+1)^2", True),
    ("x^2+2x+1", "(x+1)^3", False),
    ("(a+5)(b+2)", "ab+2a+5b+10", True),
    ("(a+5)(b+2)", "ab+2a+5b+11", False),
    ("6r^2-4r-24", "2(3r^2-2r-12)", True),
    ("\\frac{11+9a}{20}", "\\frac{11}{20}+\\frac{9a}{20}", True),
    ("\\cot x", "\\frac{\\cos x}{\\sin x}", True),
    ("\\cot x", "\\tan x", False),
    ("\\sin^2 x + \\cos^2 x", "1", True),
    ("p - q", "-q+p", True),
    ("p - q", "q - p", False),
    ("2k+2", "2(k+1)", True),
    ("x^5 - x^4 + x^3 - x^2 + x - 1", "(x-1)(x^4+x^2+1)", True),
    ("\\log_2 8", "3", True),
    ("\\ln(e^3)", "3", True),
    ("5!", "120", True),
    ("\\binom{5}{2}", "10", True),
    ("sqrt(2)/2", "\\frac{\\sqrt{2}}{2}", True),
    ("2^10", "2**10", True),
    # equations vs values
    ("x=5", "5", True),
    ("5", "x = 5", True),
    ("x=5", "x=6", False),
    ("y = 2x + 3", "2x+3", True),
    ("y = 2x + 3", "y = 3 + 2x", True),
    ("y = -2x", "y=2x", False),
    ("5x - 7y + 11z + 4 = 0", "-5x + 7y - 11z - 4 = 0", True),
    ("5x - 7y + 11z + 4 = 0", "10x - 14y + 22z + 8 = 0", True),
    ("5x - 7y + 11z + 4 = 0", "5x - 7y + 11z - 4 = 0", False),
    ("x < 3", "3 > x", True),
    ("x < 3", "x > 3", False),
    ("x \\in [-2,7]", "[-2, 7]", True),
    # tuples and coordinates (ordered)
    ("\\left( 3, \\frac{\\pi}{2} \\right)", "(3, \\pi/2)", True),
    ("\\left( 3, \\frac{\\pi}{2} \\right)", "(\\pi/2, 3)", False),
    ("(6,31,-1)", "(6, 31, -1)", True),
    ("(6,31,-1)", "(6, 31)", False),
    ("(1,-16,-4,43)", "(1,-16,-4,43)", True),
    ("\\left( \\frac{3}{2}, -13 \\right)", "(1.5, -13)", True),
    # sets and unordered lists
    ("3, 5, 7", "7, 5, 3", True),
    ("3, 5, 7", "\\{3, 5, 7\\}", True),
    ("3, 5, 7", "3, 5", False),
    ("1,-2", "-2, 1", True),
    ("\\{1\\pm\\sqrt{5},-2\\}", "-2, 1+\\sqrt5, 1-\\sqrt{5}", True),
    ("1 \\pm \\sqrt{19}", "1+\\sqrt{19}, 1-\\sqrt{19}", True),
    ("1 \\pm \\sqrt{19}", "1+\\sqrt{19}", False),
    ("3 \\pm 2 \\sqrt{2}", "3-2\\sqrt2 \\text{ and } 3+2\\sqrt2", True),
    ("-2,1", "x=-2 \\text{ or } x=1", True),
    # intervals with open/closed ends
    ("(3,4]", "(3, 4]", True),
    ("(3,4]", "[3,4]", False),
    ("(3,4]", "(3,4)", False),
    ("(-\\infty, 0]", "(-\\infty,0]", True),
    ("(2,\\infty)", "(2, \\infty)", True),
    ("\\left(\\frac{3}{5},\\frac{8}{3}\\right]", "(0.6, 8/3]", True),
    ("(-\\infty, 2) \\cup (3, \\infty)", "(3, \\infty) \\cup (-\\infty, 2)", True),
    ("(-\\infty, 2) \\cup (3, \\infty)", "(-\\infty, 2] \\cup (3, \\infty)", False),
    ("(0,9) \\cup (9,36)", "(0,9)\\cup(9,36)", True),
    ("\\left[ \\frac{\\pi^2}{8}, \\frac{5 \\pi^2}{4} \\right]", "[\\pi^2/8, 5\\pi^2/4]", True),
    # matrices and vectors
    ("\\begin{pmatrix} -1/3 \\\\ 2/3 \\\\ 5/3 \\end{pmatrix}",
     "\\begin{pmatrix} -\\frac{1}{3} \\\\ \\frac{2}{3} \\\\ \\frac{5}{3} \\end{pmatrix}", True),
    ("\\begin{pmatrix} -1 & 0 \\\\ 0 & -1 \\end{pmatrix}",
     "\\begin{bmatrix} -1 & 0 \\\\ 0 & -1 \\end{bmatrix}", True),
    ("\\begin{pmatrix} -1 & 0 \\\\ 0 & -1 \\end{pmatrix}",
     "\\begin{pmatrix} -1 & 0 \\\\ 0 & 1 \\end{pmatrix}", False),
    ("\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}", "\\begin{pmatrix} 1 & 2 \\end{pmatrix}", False),
    # complex numbers
    ("6 - 5i", "-5i + 6", True),
    ("6 - 5i", "6 + 5i", False),
    ("1+2i", "(1+i)^2/i + 1", False),
    ("-2 + 7i", "i(7+2i)", True),
    # multiple-choice letters
    ("\\text{(C)}", "C", True),
    ("\\text{(C)}", "(C)", True),
    ("\\text{(C)}", "c", True),
    ("\\text{(C)}", "(C) 12", True),
    ("\\text{(C)}", "(B)", False),
    ("(E)", "\\text{(E)}", True),
    # plain text answers
    ("\\text{Evelyn}", "Evelyn", True),
    ("\\text{Evelyn}", "evelyn", True),
    ("\\text{east}", "East", True),
    ("\\text{even}", "odd", False),
    ("\\text{ellipse}", "\\text{Ellipse}", True),
    ("Monday", "monday ", True),
    ("18", "eighteen dollars", False),
    # base-b numerals (the question fixed the base)
    ("52_8", "52_8", True),
    ("52_8", "52", True),
    ("52_8", "42", False),
]


@pytest.mark.parametrize(("gold", "pred", "expected"), EQUIV)
def test_equivalence_table(gold, pred, expected):
    v = judge(gold, pred)
    assert v.status in ("correct", "wrong"), (gold, pred, v)
    assert v.correct is expected, (gold, pred, v)
    assert verify(gold, pred) is expected


def test_tolerance_configurable():
    assert not verify("100", "100.01")
    assert verify("100", "100.01", config=VerifyConfig(rel_tol=1e-3))
    assert verify("\\pi", "3.1416", config=VerifyConfig(rel_tol=1e-4))
    assert not verify("\\pi", "3.1416")


def test_exact_integers_never_use_tolerance():
    assert not verify("100000000000000000000", "100000000000000000001")
    assert not verify("10^{20}", "10^{20}+1")


def test_percent_modes():
    assert not verify("50", "0.5", config=VerifyConfig(percent="gold"))
    assert verify("0.5", "50\\%", config=VerifyConfig(percent="value"))
    assert not verify("50\\%", "0.5", config=VerifyConfig(percent="strip"))


def test_round_to_gold_can_be_disabled():
    assert not verify("0.33", "\\frac{1}{3}", config=VerifyConfig(round_to_gold=False))
    assert verify("0.33", "\\frac{1}{3}")
    assert not verify("0.33", "0.333")  # a decimal answer is not rounded for the model


# ------------------------------------------------------------------ statuses and API


def test_grade_statuses():
    assert grade("5", "I think it is \\boxed{5}").status == "correct"
    assert grade("5", "so \\boxed{6}").status == "wrong"
    assert grade("5", "I don't know").status == "no_answer"
    v = grade("5", "\\boxed{\\foo{3}}")
    assert v.status == "unparsable" and not v.correct
    assert grade("5", "\\boxed{}").status == "no_answer"
    assert set(STATUSES) == {"correct", "wrong", "no_answer", "unparsable", "timeout"}


def test_verdict_fields():
    v = grade("\\frac12", "The answer is $0.5$.")
    assert isinstance(v, Verdict)
    assert (v.extracted, v.correct, v.status) == ("0.5", True, "correct")


def test_unparsable_is_not_wrong():
    v = judge("x+1", "x + + * 1")
    assert v.status == "unparsable"
    assert judge("5", "9^{9^{9^9}}").status == "unparsable"


def test_grade_many_matches_grade_and_dedupes():
    golds = ["5", "\\frac{1}{2}", "x^2", "5", "(1,2)"]
    sols = ["\\boxed{5}", "\\boxed{0.5}", "\\boxed{x\\cdot x}", "A: 6", "\\boxed{(1, 2)}"]
    many = grade_many(golds, sols)
    assert [v.correct for v in many] == [True, True, True, False, True]
    assert many == [grade(g, s) for g, s in zip(golds, sols, strict=True)]
    same = grade_many("5", ["\\boxed{5}", "#### 5", "5.0", "6", "six", "it is not known"])
    assert [v.status for v in same] == ["correct", "correct", "correct", "wrong", "wrong",
                                        "no_answer"]  # a bare word is an answer, prose is not
    answers = grade_many(["x^2"] * 3, ["x^2", "x*x", "x^3"], extract=False, max_workers=2)
    assert [v.correct for v in answers] == [True, True, False]


def test_bad_input_errors_are_clear():
    with pytest.raises(TypeError, match="gold must be a str"):
        verify(5, "5")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="2 golds and 3 solutions"):
        grade_many(["1", "2"], ["1", "2", "3"])
    with pytest.raises(TypeError, match="sequence of str"):
        grade_many("1", "1")
    with pytest.raises(ValueError, match=r"rel_tol must be a float in \[0, 1\), got 2"):
        VerifyConfig(rel_tol=2)
    with pytest.raises(ValueError, match="percent must be one of"):
        VerifyConfig(percent="maybe")
    with pytest.raises(TypeError, match="VerifyConfig"):
        verify("1", "1", config={"rel_tol": 1e-3})  # type: ignore[arg-type]


def test_config_is_hashable_and_frozen():
    a, b = VerifyConfig(), VerifyConfig()
    assert hash(a) == hash(b) and a == b
    with pytest.raises(AttributeError):
        a.rel_tol = 0.1  # type: ignore[misc]


# ------------------------------------------------------------------ real data

DATA = data_dir()
needs_data = pytest.mark.skipif(DATA is None, reason="shared/data not found (set TTS_MATH_DATA)")
GSM_KEYS = ("6b_finetuning", "6b_verification", "175b_finetuning", "175b_verification")


@needs_data
def test_gsm8k_example_solutions_agree_with_labels():
    rows = [json.loads(x) for x in (DATA / "gsm8k" / "example_model_solutions.jsonl").open()]
    golds, sols, labels = [], [], []
    for r in rows:
        g = extract_answer(r["ground_truth"])
        for k in GSM_KEYS:
            golds.append(g)
            sols.append(r[k]["solution"])
            labels.append(r[k]["is_correct"])
    verdicts = grade_many(golds, sols)
    agree = sum(v.correct == lab for v, lab in zip(verdicts, labels, strict=True))
    assert len(verdicts) == 5276
    assert agree / len(verdicts) >= 0.99
    assert all(v.status != "timeout" for v in verdicts)


# real GSM8K model outputs (example_model_solutions.jsonl) with their is_correct labels
GSM_REAL = [
    ("18", "She sells her eggs for $2 per egg and has 9 available for sale so "
           "2 * 9 = $<<2*9=18>>18 per day\nA: 18", True),
    ("18", "She makes 13 * 2 = $<<13*2=26>>26\nA: 26", False),
    ("3", "So it takes 2 + 1 = <<2+1=3>>3.0 bolts of blue and white fiber altogether.\nA: 3",
     True),
    ("50", "John is 10+John's age\nA: 10+John's age", False),
]


@pytest.mark.parametrize(("gold", "solution", "label"), GSM_REAL)
def test_gsm8k_real_outputs(gold, solution, label):
    assert grade(gold, solution).correct is label


def _math500():
    return [json.loads(x) for x in (DATA / "math" / "math500_test.jsonl").open()]


@needs_data
def test_math500_gold_in_every_wrapper():
    rows = _math500()
    golds, sols = [], []
    for r in rows:
        a = r["answer"]
        for s in (f"so the answer is $\\boxed{{{a}}}$.", f"Final Answer: The final answer is "
                  f"${a}$. I hope it is correct.", r["solution"]):
            golds.append(a)
            sols.append(s)
    verdicts = grade_many(golds, sols)
    bad = [(g, v) for g, v in zip(golds, verdicts, strict=True) if not v.correct]
    assert not bad, bad[:5]


def _rewrite(a: str) -> str:
    """An equivalent rewrite of a MATH gold: spacing, \\dfrac, \\left/\\right, $...$."""
    b = re.sub(r"(?<=[^a-zA-Z]) | (?=[^a-zA-Z])", "", a.replace("\\frac", "\\dfrac"))
    if b.startswith("(") or b.startswith("["):
        b = "\\left" + b[0] + b[1:-1] + "\\right" + b[-1]
    return f"${b}$"


@needs_data
def test_math500_gold_vs_equivalent_rewrites():
    rows = _math500()
    golds = [r["answer"] for r in rows]
    verdicts = grade_many(golds, [_rewrite(a) for a in golds], extract=False)
    bad = [(g, v) for g, v in zip(golds, verdicts, strict=True) if not v.correct]
    assert not bad, bad[:5]


@needs_data
def test_math500_gold_vs_perturbed_is_wrong():
    rows = _math500()
    golds, preds = [], []
    for r in rows:
        a = r["answer"]
        v = judge(a, a)
        assert v.correct, (a, v)
        if extract_answer(a) and a.strip().lstrip("-").replace(".", "").isdigit():
            golds.append(a)
            preds.append(str(int(float(a)) + 1) if "." not in a else a + "1")
    verdicts = grade_many(golds, preds, extract=False)
    assert len(golds) > 250
    assert not any(v.correct for v in verdicts)


# ------------------------------------------------------------------ agreement cross-check


def test_agreement_report_with_injected_grader(tmp_path):
    from verifiers.agreement import agreement_report, main

    f = tmp_path / "pairs.jsonl"
    rows = [{"gold": "5", "solution": "\\boxed{5}"}, {"answer": "x^2", "prediction": "x*x"},
            {"gold": "1/2", "pred": "0.5"}, {"gold": "3", "response": "A: 4"}]
    f.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    rep = agreement_report(f, other=lambda g, p: True)
    assert rep.n == 4 and rep.agree == 3
    assert [d["line"] for d in rep.disagreements] == [4]
    assert "disagree: 1" in rep.format()
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "q"}\n')
    with pytest.raises(ValueError, match="no gold field"):
        agreement_report(bad, other=lambda g, p: True)
    try:
        import math_verify  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="pip install"):
            main([str(f)])


def test_lru_cache_bounds_by_count_or_weight_and_get_refreshes():
    from verifiers.lru import LRUCache

    c = LRUCache(2)
    c.put("a", 1)
    c.put("b", 2)
    assert c.get("a") == 1  # a is now the most recently used
    c.put("c", 3)  # drops b
    assert "b" not in c and c.peek("a") == 1 and len(c) == 2
    assert c.peek("b", "gone") == "gone"
    c.peek("c")  # peek does not refresh: a, c -> c is still the newest
    c.put("d", 4)  # drops a
    assert "a" not in c and [c.peek(k) for k in "cd"] == [3, 4]
    kv = LRUCache(10, weigh=len)  # bounded by total weight (e.g. tokens held)
    kv.put("x", "123456")
    kv.put("y", "1234")
    assert kv.weight == 10
    kv.put("z", "12")  # drops x, the oldest
    assert "x" not in kv and kv.weight == 6
    kv.put("huge", "x" * 11)  # heavier than the capacity: not kept, nothing dropped
    assert "huge" not in kv and kv.weight == 6
    kv.put("y", "1")  # replacing an entry re-weighs it
    assert kv.weight == 3
    kv.clear()
    assert len(kv) == 0 and kv.weight == 0
    with pytest.raises(ValueError, match="capacity must be an int >= 0"):
        LRUCache(-1)
