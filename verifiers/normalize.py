"""String normalisation shared by the fast path and the worker parser (pure Python, no sympy).

`normalize` rewrites an extracted answer into a canonical LaTeX-ish string:
wrappers (`$`, `\\(`, `\\left`), spacing commands, `\\dfrac`/`\\tfrac`, `\\text{}`,
degrees, currency and trailing unit words are removed; `\\%` and "percent" become `%`.
"""

from __future__ import annotations

import re

__all__ = ["normalize", "strip_units", "KNOWN_WORDS"]

_TEXT_CMD_RE = re.compile(
    r"\\(?:text|textbf|textit|textrm|textsf|texttt|mathrm|mathbf|mathit|mathsf|mbox|hbox"
    r"|operatorname|boldsymbol|bm)\s*\{([^{}]*)\}"
)
_SPACING_RE = re.compile(r"(\\\\)|\\(?:[,;: ]|quad\b|qquad\b|enspace\b|thinspace\b)|~")
_NEGSPACE_RE = re.compile(r"\\!")
_LEFT_RIGHT_RE = re.compile(r"\\(?:left|right|bigl|bigr|Bigl|Bigr|big|Big|biggl|biggr)(?![a-zA-Z])")
_DEGREE_RE = re.compile(r"\^\s*\{?\s*\\circ\s*\}?|°|\\degree(?![a-zA-Z])|\\circ(?![a-zA-Z])")
_FRAC_ALIAS_RE = re.compile(r"\\[dtc]frac(?![a-zA-Z])")
_DISPLAY_RE = re.compile(r"\\(?:displaystyle|textstyle|scriptstyle|mathstrut)(?![a-zA-Z])")
_CURRENCY_RE = re.compile(r"\\\$|\$|€|£|¥|\\euro(?![a-zA-Z])|\\pounds(?![a-zA-Z])")
_PERCENT_RE = re.compile(r"\\%|\s*\bper\s*cent\b|\s*\bpercent(?:age)?\b", re.IGNORECASE)
_THOUSANDS_BRACE_RE = re.compile(r"(\d)\{,\}(\d)")
_WS_RE = re.compile(r"\s+")
# a unit in a text command after a value: 5\text{ cm}, \frac{1}{3}\mbox{ m}, 2\,\mathrm{kg}
_TEXT_UNIT_RE = re.compile(
    r"(?<=[\d}])\s*(?:\\[,;: ]\s*)*\\(?:text|mbox|textrm|mathrm)\s*\{\s*[a-zA-Z][a-zA-Z .]{0,30}\}"
    r"(?:\s*\^\s*\{?[23]\}?)?\s*$")
_THIN_THOUSANDS_RE = re.compile(r"(?<=\d)(?:\\,|,\\!\s*|\{,\}|\\!,)(?=\d{3}(?!\d))")
_UNIT_WORD_RE = re.compile(r"[a-zA-Z]{2,}\.?")
# digit groups split by spaces: "1 000", "12 345 678" (after \, ~ and \; became spaces)
_SPACE_THOUSANDS_RE = re.compile(r"(?<![\d.,])\d{1,3}(?: \d{3})+(?![\d,]| \d)")
_LEADING_WORDS_RE = re.compile(r"^(?:approximately|about|around|roughly|exactly)\s+", re.I)
# a number followed only by words (units, nouns): "18 eggs", "5 cm", "3 dollars per day"
_NUM_THEN_WORDS_RE = re.compile(
    r"^([-+]?(?:\d[\d,]*(?:\.\d*)?|\.\d+)(?:\s*/\s*\d+)?%?)"
    r"(?:\s+[a-zA-Z][a-zA-Z'\-]*\.?(?:\s*\^\s*\{?[23]\}?)?)+$"
)
_UNIT_GLUED = (
    "cm|mm|km|kg|mg|ml|mL|m|g|s|h|hr|hrs|min|mins|sec|secs|ft|in|yd|mi|mph|lb|lbs|oz|kmh|cm\\^2"
    "|m\\^2|cm\\^3|m\\^3|units?|sq"
)
_NUM_GLUED_UNIT_RE = re.compile(
    r"^([-+]?(?:\d[\d,]*(?:\.\d*)?|\.\d+))(?:" + _UNIT_GLUED + r")\^?[23]?\.?$"
)

KNOWN_WORDS = frozenset(
    "sqrt pi inf infty infinity oo sin cos tan sec csc cot arcsin arccos arctan sinh cosh tanh "
    "log ln exp abs frac dfrac tfrac cup cap in or and mod pmod choose binom".split()
)


def _unwrap(s: str) -> str:
    for _ in range(4):
        t = s.strip()
        if len(t) >= 2 and t[0] == "$" and t[-1] == "$":
            t = t.strip("$")
        if t.startswith("\\(") and t.endswith("\\)"):
            t = t[2:-2]
        if t.startswith("\\[") and t.endswith("\\]"):
            t = t[2:-2]
        if t == s:
            break
        s = t
    return s.strip()


def strip_units(s: str) -> str:
    """"18 eggs" -> "18", "5cm" -> "5"; anything that is not number-then-words is unchanged."""
    m = _NUM_THEN_WORDS_RE.match(s)
    if m:
        return m.group(1)
    m = _NUM_GLUED_UNIT_RE.match(s)
    if m:
        return m.group(1)
    # "\frac{270}7 degrees", "2\sqrt{3} cm": peel plain trailing words (a linear scan;
    # the regex this replaces backtracked exponentially on long letter runs)
    words = s.split(" ")
    k = len(words)
    while k > 1 and _UNIT_WORD_RE.fullmatch(words[k - 1]) \
            and words[k - 1].rstrip(".").lower() not in KNOWN_WORDS:
        k -= 1
    if k < len(words) and words[k - 1][-1:] in "0123456789})":
        return " ".join(words[:k])
    return s


_PLAIN_NUMBER_RE = re.compile(r"[-+]?\d{1,30}(?:\.\d{1,30})?")


def normalize(s: str) -> str:
    """Canonical form of one answer string (idempotent, linear time in practice)."""
    if _PLAIN_NUMBER_RE.fullmatch(s):
        return s  # most GSM8K answers: nothing to rewrite
    s = _unwrap(s)
    s = _DISPLAY_RE.sub("", s)
    s = _TEXT_UNIT_RE.sub("", s)
    for _ in range(3):  # \text{\textbf{x}} nests a little
        t = _TEXT_CMD_RE.sub(r" \1 ", s)
        if t == s:
            break
        s = t
    s = _LEFT_RIGHT_RE.sub("", s)
    s = _THIN_THOUSANDS_RE.sub(",", s)
    s = _SPACING_RE.sub(lambda m: m.group(1) or " ", s)
    s = _NEGSPACE_RE.sub("", s)  # keep \\\\ (matrix rows)
    s = _FRAC_ALIAS_RE.sub(r"\\frac", s)
    s = _DEGREE_RE.sub("", s)
    s = _CURRENCY_RE.sub("", s)
    s = _PERCENT_RE.sub("%", s)
    s = _THOUSANDS_BRACE_RE.sub(r"\1,\2", s)
    s = s.replace("−", "-").replace("–", "-").replace("\u2009", "").replace("\u00a0", " ")
    s = _WS_RE.sub(" ", s).strip()
    s = _SPACE_THOUSANDS_RE.sub(lambda m: m.group(0).replace(" ", ""), s)
    s = s.rstrip(".").strip()
    s = _LEADING_WORDS_RE.sub("", s)
    s = strip_units(s)
    return s
