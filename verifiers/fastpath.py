"""Pure-Python fast path: plain numbers, multiple-choice letters and text answers.

No sympy here: GSM8K-style grading never leaves the calling process. `fast_compare`
returns a status ("correct"/"wrong"/"no_answer") when it can decide, else None, and
the caller sends the pair to a worker process for symbolic comparison.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

from .config import VerifyConfig
from .normalize import KNOWN_WORDS

__all__ = ["Num", "parse_number", "fast_compare", "numbers_equal", "within_tolerance",
           "decimal_comma"]

_INT = r"(?:[1-9]\d{0,2}(?:,\d{3})+|\d+)"  # 0,111 is a decimal comma, not a thousands group
_DEC = rf"(?:{_INT}(?:\.\d*)?|\.\d+)"
_SCI_RE = re.compile(
    rf"^({_DEC})\s*(?:[eE]([+-]?\d{{1,4}})|(?:\\times|\\cdot|\*|x|×)\s*10\s*\^\s*\{{?\s*([+-]?\d{{1,4}})\s*\}}?)$"
)
_DEC_RE = re.compile(rf"^{_DEC}$")
_SLASH_RE = re.compile(r"^(\d+)\s*/\s*(\d+)$")
_FRAC_RE = re.compile(r"^\\frac\s*(?:\{\s*(-?\d+)\s*\}|(\d))\s*(?:\{\s*(\d+)\s*\}|(\d))$")
_MIXED_RE = re.compile(
    r"^(\d+)\s*(?:\\frac\s*(?:\{\s*(\d+)\s*\}|(\d))\s*(?:\{\s*(\d+)\s*\}|(\d))|\s(\d+)\s*/\s*(\d+))$"
)
_BASE_RE = re.compile(r"^(\d+)_\{?(\d+)\}?$")
_MC_GOLD_RE = re.compile(r"^\(?\s*([A-J])\s*\)?$")
_MC_ANS_RE = re.compile(r"^(?:option\s+|choice\s+)?\(?\s*([A-Ja-j])\s*\)?(?:$|[\s.:)])", re.I)
_WORD_RE = re.compile(r"[A-Za-z]{3,}")
_TEXTY_RE = re.compile(r"^[A-Za-z][A-Za-z '\-]*$")
_MAX_DIGITS = 4000
# 1,22 / 0,111 / 3,14159: a comma that cannot be a thousands separator is a decimal comma
_DECIMAL_COMMA_RE = re.compile(r"^([-+]?)(\d+),(\d+)(%?)$")
_THOUSANDS_OK_RE = re.compile(r"^[-+]?[1-9]\d{0,2}(?:,\d{3})+%?$")


@dataclass(frozen=True, slots=True)
class Num:
    value: Fraction
    inexact: bool  # written with decimal places (a possibly rounded value)
    percent: bool  # written with a % sign
    places: int  # decimal places as written (0 for integers and fractions)
    decimal_literal: bool  # written as a plain decimal/integer literal


def _dec(text: str) -> tuple[Fraction, int]:
    t = text.replace(",", "")
    if t.endswith("."):
        t = t[:-1]
    places = len(t.split(".", 1)[1]) if "." in t else 0
    return Fraction(t), places


def parse_number(s: str) -> Num | None:
    """Parse a plain number: 1,234.50, .5, -3/4, \\frac{3}{4}, 2\\frac12, 1.5e3, 50%. Else None."""
    if not s or len(s) > _MAX_DIGITS:
        return None
    t = s.strip()
    percent = t.endswith("%")
    if percent:
        t = t[:-1].rstrip()
    neg = False
    if t[:1] and t[0] in "+-":
        neg = t[0] == "-"
        t = t[1:].lstrip()
    if t.startswith("{") and t.endswith("}") and t.count("{") == 1:  # {-}? rare: {5}
        t = t[1:-1].strip()
    if not t:
        return None
    inexact = False
    places = 0
    literal = False
    if _DEC_RE.match(t):
        v, places = _dec(t)
        inexact = places > 0
        literal = True
    elif m := _SLASH_RE.match(t):
        if int(m.group(2)) == 0:
            return None
        v = Fraction(int(m.group(1)), int(m.group(2)))
    elif m := _FRAC_RE.match(t):
        num = int(m.group(1) or m.group(2))
        den = int(m.group(3) or m.group(4))
        if den == 0:
            return None
        v = Fraction(num, den)
    elif m := _MIXED_RE.match(t):
        whole = int(m.group(1))
        num = int(m.group(2) or m.group(3) or m.group(6))
        den = int(m.group(4) or m.group(5) or m.group(7))
        if den == 0 or num >= den:
            return None  # "2 7/3" is not a mixed number
        v = whole + Fraction(num, den)
    elif m := _SCI_RE.match(t):
        mant, places = _dec(m.group(1))
        exp = int(m.group(2) or m.group(3))
        v = mant * Fraction(10) ** exp
        inexact = places > 0 or exp < 0
        places = max(0, places - exp)
    else:
        return None
    return Num(-v if neg else v, inexact, percent, places, literal)


def decimal_comma(s: str) -> str | None:
    """`1,22` -> `1.22`, `0,111` -> `0.111`; None when the comma may be a thousands
    separator (`1,000`, `12,345`) or `s` is not one number with one comma."""
    m = _DECIMAL_COMMA_RE.match(s)
    if m is None or _THOUSANDS_OK_RE.match(s):
        return None
    return f"{m.group(1)}{m.group(2)}.{m.group(3)}{m.group(4)}"


def decimal_abs_tol(cfg: VerifyConfig, places: int):
    """The absolute part of the tolerance rule for a decimal written with `places`
    places: `abs_tol`, but never more than half a unit in its last place, so a decimal
    with more than 6 places must be the value correctly rounded to all of them
    (.00006721 != .0000672, 0.3333333 == 1/3)."""
    atol = Fraction(str(cfg.abs_tol))
    return min(atol, Fraction(1, 2 * 10**places)) if places > 0 else atol


def within_tolerance(x, y, cfg: VerifyConfig, places: int = 0) -> bool:
    """The one tolerance rule, used only when a side is a decimal approximation:
    |x - y| <= max(rel_tol * max(|x|, |y|), decimal_abs_tol(cfg, places)), where
    `places` is the most decimal places written on either side. Exact Fractions."""
    rel = Fraction(str(cfg.rel_tol))
    return abs(x - y) <= max(rel * max(abs(x), abs(y)), decimal_abs_tol(cfg, places))


def numbers_equal(gold: Num, ans: Num, cfg: VerifyConfig) -> bool:
    """Equality of two parsed numbers under `cfg` (exact unless one side is inexact)."""
    g, a = gold.value, ans.value
    if cfg.percent == "value":
        if gold.percent:
            g /= 100
        if ans.percent:
            a /= 100
        candidates = [g]
    elif cfg.percent == "gold" and gold.percent:
        candidates = [g, g / 100]  # gold says percent: 50% admits 50 and 0.5
    else:
        candidates = [g]
    inexact = gold.inexact or ans.inexact
    places = max(gold.places if gold.inexact else 0, ans.places if ans.inexact else 0)
    for c in candidates:
        if c == a:
            return True
        if inexact and within_tolerance(c, a, cfg, places):
            return True
        if (
            cfg.round_to_gold
            and gold.decimal_literal
            and gold.places >= 2
            and not ans.decimal_literal
            and round(a, gold.places) == c
        ):
            return True
    return False


def _is_text(s: str) -> bool:
    if not _TEXTY_RE.match(s):
        return False
    words = [w.lower() for w in _WORD_RE.findall(s)]
    return any(w not in KNOWN_WORDS for w in words) or s.lower() in ("no",)


def _text_key(s: str) -> str:
    return " ".join(s.casefold().replace("-", " ").split())


def fast_compare(gold: str, ans: str, cfg: VerifyConfig) -> tuple[str, str] | None:
    """(status, detail) when decidable without sympy, else None. Inputs are normalised."""
    if not ans:
        return "no_answer", "empty answer after normalisation"
    if gold == ans:
        return "correct", "identical after normalisation"
    if m := _BASE_RE.match(gold):  # base-b numeral 52_8: same digits, base optional
        am = _BASE_RE.match(ans)
        same = (am.groups() == m.groups()) if am else ans == m.group(1)
        return ("correct" if same else "wrong"), "base-b numeral"
    g = parse_number(gold)
    if g is not None:
        a = parse_number(ans)
        if a is None and (dc := decimal_comma(ans)) is not None:  # gold is one number
            a = parse_number(dc)
        if a is None and cfg.strip_equation_lhs and "=" in ans:
            lhs, _, rhs = ans.rpartition("=")
            if re.fullmatch(r"\s*[A-Za-z](?:_\{?\w+\}?)?\s*", lhs):
                a = parse_number(rhs.strip())
        if a is not None:
            ok = numbers_equal(g, a, cfg)
            return ("correct" if ok else "wrong"), "numeric fast path"
        if _TEXTY_RE.match(ans) and not any(w.lower() in KNOWN_WORDS for w in _WORD_RE.findall(ans)):
            return "wrong", "gold is a number, answer is text"
        return None
    m = _MC_GOLD_RE.match(gold)
    if m:
        am = _MC_ANS_RE.match(ans)
        if am:
            same = am.group(1).upper() == m.group(1)
            return ("correct" if same else "wrong"), "multiple-choice letter"
        if _is_text(ans):
            return "wrong", "multiple-choice gold, text answer"
        return None
    if _is_text(gold):
        same = _text_key(gold) == _text_key(ans)
        return ("correct" if same else "wrong"), "text answer"
    return None
