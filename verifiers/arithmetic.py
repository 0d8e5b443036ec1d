"""Exact check of the arithmetic a solution step writes down.

A step that states `3 * 4 = 13` is wrong whatever a reward model thinks of it. This module
finds the equations in a step whose left side is a plain numeric expression with at least
one operator and whose right side is one number, evaluates the left side exactly
(fractions, no floats, no `eval`), and reports those that are false:

    from verifiers.arithmetic import false_equations
    false_equations("So she pays 3 * $4 = $13.")     # [Equation(lhs='3 * 4', rhs='13', value=12, stated=13)]
    false_equations("48/2 = <<48/2=24>>24 cookies")  # []

It is deliberately conservative: it only judges what it can read completely, so a step it
leaves alone is not claimed right. Skipped, among others: a side with a letter, unit or
variable inside it (`3 hours * 4 = 12`, `2x + 1 = 7`), a left side cut out of a longer
phrase (`half of 3 * 4 = 6`, `x^2 + 3 = 7`), a right side that goes on with an operator
(running totals such as `2 + 3 = 5 + 1 = 6`), `\\approx`, `<=` and `!=`. A left side that
only holds when read left to right, as a calculator does (`10 - 2 * 3 = 24`), is taken as
sloppy notation, not a wrong computation.

Equal means equal to the stated number as it is written: `10 / 3 = 3.33` and
`2 / 3 = 0.66` hold (rounded or truncated to the places shown), `1/4 = 25%` and
`1/4 * 100 = 25%` both hold. Thousands separators, `$`, LaTeX `\\times \\cdot \\div
\\frac{a}{b}`, the signs `× · ÷ −`, `3 x 4` and GSM8K's calculator annotations `<<a*b=c>>`
are read. Values past 10^18, exponents past 64, sides longer than 300 characters and
sides with more than 20 parentheses are skipped, so no input costs more than
microseconds per equation.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

__all__ = ["Equation", "false_equations", "check_equations", "first_false_step"]

# words that make a number before "=" part of a longer phrase ("half of 3 * 4 = 6")
_OPERATOR_WORDS = frozenset(
    "of times half twice double triple quarter third percent per by divided plus minus than over "
    "squared cubed square root sqrt log ln sin cos tan exp mod remainder multiplied add subtract".split()
)
_MAX_ABS = Fraction(10) ** 18
_MAX_CHARS = 300  # longest left side read
_MAX_DEPTH = 20  # most parentheses in it
_ALLOWED = set("0123456789. +-*/^()%")

_LATEX = [
    (re.compile(r"\\frac\s*\{([^{}]*)\}\s*\{([^{}]*)\}"), r"((\1)/(\2))"),
    (re.compile(r"\\d?frac\s*(\d)\s*(\d)"), r"(\1/\2)"),
    (re.compile(r"\\(?:times|cdot|ast)"), "*"),
    (re.compile(r"\\div"), "/"),
    (re.compile(r"\\left|\\right|\\,|\\!|\\;|\\ |\\quad|\\qquad"), " "),
    (re.compile(r"\\\$|\$"), " "),
    (re.compile(r"\\%"), "%"),
    (re.compile(r"\\approx|≈|~|\\sim|\\neq|≠|\\le|\\ge|≤|≥|\\pm|±"), " ≈ "),
    (re.compile(r"\\[\[\]()]"), " "),
    (re.compile(r"[{}]"), " "),
]
_SIGNS = str.maketrans({"×": "*", "·": "*", "∙": "*", "⋅": "*", "÷": "/", "−": "-", "–": "-", "—": " — "})
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
_TIMES_X = re.compile(r"(?<=[\d)])\s*[xX]\s*(?=[\d(])")
_CALC = re.compile(r"<<|>>")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:\s?%)?")


@dataclass(frozen=True)
class Equation:
    lhs: str  # the left side as read (normalised text)
    rhs: str  # the stated number as written
    value: Fraction  # the left side, exactly
    stated: Fraction  # the right side (percent signs as written: 25% -> 25)

    readings: tuple[Fraction, ...] = ()  # the left side's other readings (_READINGS), where they differ

    @property
    def holds(self) -> bool:
        """True as written, or under one of the loose readings writers use (`_READINGS`)."""
        return any(_agrees(v, self.rhs) for v in (self.value, *self.readings))


_BULLET = re.compile(r"(?m)^[ \t]*(?:[-*•+]|\d{1,2}[.)])[ \t]+")
_TIGHT_FRACTION = re.compile(r"(?<![\d.)/])(\d+(?:\.\d+)?/\d+(?:\.\d+)?)(?![\d./(^])")
# words after a stated number that change its scale or unit against the left side
_SCALE_WORDS = frozenset("cents cent thousand million billion hundred dozen dozens k percent halves thirds "
                         "quarters minutes seconds".split())


def _normalise(text: str) -> str:
    s = _CALC.sub(" ; ", text)
    for pat, rep in _LATEX:
        s = pat.sub(rep, s)
    s = s.translate(_SIGNS).replace("**", "^")
    s = _THOUSANDS.sub("", s)
    s = _BULLET.sub("", s)  # list bullets and numbering, not minus signs
    return _TIMES_X.sub("*", s)


# Loose readings of a left side that writers mean and graders accept: left to right, as a
# calculator (`10 - 2 * 3 = 24`); unspaced fractions bound first (`25 / 1/3 = 75`); percent
# signs as bare numbers (`7500/75% = 100`).
_READINGS = (
    lambda e: (e, True),
    lambda e: (_TIGHT_FRACTION.sub(r"(\1)", e), False),
    lambda e: (e.replace("%", ""), False),
)


# ---------------------------------------------------------------- exact evaluation


class _Unreadable(Exception):
    pass


def _tokens(expr: str) -> list[str]:
    out, i = [], 0
    while i < len(expr):
        c = expr[i]
        if c == " ":
            i += 1
        elif c.isdigit() or c == ".":
            m = re.match(r"\d*\.?\d+|\d+\.?", expr[i:])
            if not m or re.match(r"0\d", m.group()):
                raise _Unreadable  # 0900: a clock time or a code, not a quantity
            out.append(m.group())
            i += m.end()
        elif c in "+-*/^()%":
            out.append(c)
            i += 1
        else:
            raise _Unreadable
    return out


def _evaluate(expr: str, *, flat: bool = False) -> tuple[Fraction, int]:
    """(exact value, binary operators) of a plain numeric expression; _Unreadable otherwise.
    `flat`: + - * / applied left to right, as a calculator does (`10 - 2 * 3` = 24)."""
    if len(expr) > _MAX_CHARS or expr.count("(") > _MAX_DEPTH:
        raise _Unreadable
    toks = _tokens(expr)
    pos = 0
    ops = 0

    def peek() -> str | None:
        return toks[pos] if pos < len(toks) else None

    def take() -> str:
        nonlocal pos
        if pos >= len(toks):
            raise _Unreadable
        pos += 1
        return toks[pos - 1]

    def check(v: Fraction) -> Fraction:
        if abs(v) > _MAX_ABS or (v and abs(v) < 1 / _MAX_ABS):
            raise _Unreadable
        return v

    def atom() -> Fraction:
        t = peek()
        if t is None:
            raise _Unreadable
        if t == "(":
            take()
            v = add()
            if take() != ")":
                raise _Unreadable
        elif t[0].isdigit() or t[0] == ".":
            take()
            v = Fraction(t)
        else:
            raise _Unreadable
        if peek() == "%":
            take()
            v = v / 100
        return v

    def power() -> Fraction:
        nonlocal ops
        base = atom()
        if peek() == "^":
            take()
            ops += 1
            exp = unary()
            if exp.denominator != 1 or abs(exp) > 64:
                raise _Unreadable
            if base == 0 and exp < 0:
                raise _Unreadable
            base = check(base ** int(exp))
        return base

    def unary() -> Fraction:
        if peek() == "-":
            take()
            return -unary()
        if peek() == "+":
            take()
            return unary()
        return power()

    def mul() -> Fraction:
        nonlocal ops
        v = unary()
        while peek() in ("*", "/", "("):
            op = take() if peek() != "(" else "*"  # 2(3 + 4): implicit product
            ops += 1
            r = unary()
            if op == "/":
                if r == 0:
                    raise _Unreadable
                v = v / r
            else:
                v = v * r
            v = check(v)
        return v

    def add() -> Fraction:
        nonlocal ops
        if flat:
            v = unary()
            while peek() in ("+", "-", "*", "/", "("):
                op = take() if peek() != "(" else "*"
                ops += 1
                r = unary()
                if op == "/" and r == 0:
                    raise _Unreadable
                v = check({"+": v + r, "-": v - r, "*": v * r}[op] if op != "/" else v / r)
            return v
        v = mul()
        while peek() in ("+", "-"):
            op = take()
            ops += 1
            r = mul()
            v = check(v + r if op == "+" else v - r)
        return v

    value = add()
    if pos != len(toks):
        raise _Unreadable
    return value, ops


def _agrees(value: Fraction, stated: str) -> bool:
    """The exact value against a number as written: equal, or equal once rounded or
    truncated to its places; with a percent sign, as a share or as the percentage."""
    pct = stated.endswith("%")
    s = stated.rstrip("%")
    places = len(s.split(".")[1]) if "." in s else 0
    target = Fraction(s)
    for v in ((value, value * 100) if pct else (value,)):
        if v == target:
            return True
        unit = Fraction(1, 10**places)
        if abs(v - target) <= unit / 2:  # rounded to the places shown
            return True
        q = (abs(v) / unit).__floor__() * unit  # truncated
        if (q if v >= 0 else -q) == target:
            return True
    return False


# ---------------------------------------------------------------- finding equations


def _left_operand(left: str) -> str | None:
    """The numeric expression that ends `left` (the text before an "="), or None when it is
    not cleanly delimited."""
    if not left or left[-1] in "<>!:":
        return None
    i = len(left)
    while i > 0 and (left[i - 1] in _ALLOWED and left[i - 1] != "." or
                     left[i - 1] == "." and i < len(left) and left[i].isdigit()):
        i -= 1
    raw = left[i:]
    run = raw.strip()
    if not run or run[0] in "+*/^)%" or not any(ch.isdigit() for ch in run):
        return None
    before = left[:i]
    glued = not raw[:1].isspace()
    if before and glued and (before[-1].isalnum() or before[-1] in "_\\^)]'.:,"):
        return None  # glued to a word, variable or something unread: x^2+3, f(2), 1.5.2, 6:00, 3,5
    tail = before.rstrip()
    if run[0] == "-" and tail and (tail[-1].isalnum() or tail[-1] in ")]}"):
        return None  # the minus of a longer expression: 2X - 3*6 = 77
    if re.search(r"\d\s+and$", tail):
        return None  # a mixed number: 1 and 1/4
    word = re.search(r"([A-Za-z]+)$", before)
    if word and word.group(1).lower() in _OPERATOR_WORDS:
        return None  # half of 3 * 4 = 6
    return run


def _right_number(right: str) -> str | None:
    """The single number that starts `right` (the text after an "="), or None when the right
    side is an expression, goes on with an operator, or is glued to a letter."""
    s = right.lstrip()
    m = _NUMBER.match(s)
    if not m:
        return None
    rest = s[m.end():]
    if rest[:1].isalpha():  # 12x, 3a: algebra or a glued unit
        return None
    if rest[:1].isdigit() or rest[:1] in ("(", "^", "_"):
        return None
    nxt = rest.lstrip()
    if nxt[:1] in ("+", "-", "*", "/", "^", "(") or (nxt[:1] == "." and nxt[1:2].isdigit()):
        return None  # running total or a longer expression: 2 + 3 = 5 + 1 = 6
    if re.match(r"\s\d{3}\b", rest):
        return None  # 18 000: thousands written with a space
    word = re.match(r"[A-Za-z]+", nxt)
    if word and word.group().lower() in ("times", "plus", "minus", "divided", "multiplied", "over", "squared", "cubed"):
        return None
    if word and word.group().lower() in _SCALE_WORDS:
        return None  # $1 / 2 = 50 cents, 5 * 3 = 15 thousand
    return m.group().replace(" ", "")


def check_equations(step: str) -> list[Equation]:
    """Every equation of `step` this module can read completely, true or false."""
    s = _normalise(step)
    parts = s.split("=")
    out = []
    for k in range(len(parts) - 1):
        left, right = parts[k], parts[k + 1]
        if right[:1] in ("=", ">", "<") or left.endswith(("≈ ", "≈")):
            continue
        lhs = _left_operand(left)
        rhs = _right_number(right)
        if lhs is None or rhs is None:
            continue
        try:
            value, ops = _evaluate(lhs)
        except (_Unreadable, ValueError, ZeroDivisionError, OverflowError):
            continue
        if ops == 0:
            continue  # "x = 5", "= 12 = 12": nothing computed
        readings = []
        for read in _READINGS:
            expr, flat = read(lhs)
            try:
                v = _evaluate(expr, flat=flat)[0]
            except (_Unreadable, ValueError, ZeroDivisionError, OverflowError):
                continue
            if v != value and v not in readings:
                readings.append(v)
        out.append(Equation(lhs=lhs, rhs=rhs, value=value, stated=Fraction(rhs.rstrip("%").strip()),
                            readings=tuple(readings)))
    return out


def false_equations(step: str) -> list[Equation]:
    """The equations of `step` whose stated result is wrong (empty: none found false)."""
    return [e for e in check_equations(step) if not e.holds]


def first_false_step(steps: list[str]) -> int | None:
    """0-based index of the first step with a false equation, or None."""
    for i, st in enumerate(steps):
        if false_equations(st):
            return i
    return None
