"""extract_answer: the final answer of a solution text, in linear time, without sympy.

Order of precedence (the first rule that finds something wins):

1. the last `\\boxed{...}` / `\\fbox{...}` (nested braces matched; `\\boxed 5` too);
2. the last GSM8K `#### N`;
3. the last "the (final) answer is X" (X up to the end of its sentence or `$...$`);
4. the last line starting with "Final Answer:", "Answer:" or "A:";
5. the last bold `**X**`;
6. the last math span: `$...$`, `$$...$$`, `\\(...\\)`, `\\[...\\]` (a `$` pair around prose,
   as in "costs $5 and $7", is money, not math), or a number standing alone after it
   ("we get $x=3$, so 5 apples": 5), the last answer by position as in Math-Verify;
7. the whole text, when it is a bare answer rather than prose (`\\frac{10}{9}`, `x^2+1`,
   `1 000`, `(0, 1]`, `Evelyn`);
8. the last number standing alone in the text (calculator annotations `<<2*3=6>>` ignored;
   a digit inside a word or identifier, as in `AZYUK2A` or `x2`, is not a number).

Every rule is a left-to-right scan or a single regex without nested quantifiers, so a
text of n characters costs O(n); `grade` refuses solutions longer than
`VerifyConfig.max_solution_chars` before extracting.
"""

from __future__ import annotations

import re
from functools import lru_cache

from .normalize import normalize

__all__ = ["extract_answer", "extract_gold", "clean_extracted", "is_bare_answer"]

_BOX_RE = re.compile(r"\\(?:boxed|fbox)(?![a-zA-Z])")
_HASH_RE = re.compile(r"####[ \t]*([^\n]*)")
_ANSWER_IS_RE = re.compile(r"(?i)\banswer\s+is\s*[:\-]?\s*")
_ANSWER_LINE_RE = re.compile(
    r"(?im)^[ \t>*#]*(?:final\s+answer|answer|a)[ \t]*\**[ \t]*[:：][ \t]*\**[ \t]*([^\n]*)$"
)
_BOLD_RE = re.compile(r"\*\*([^*\n]{1,200})\*\*")
_CALC_RE = re.compile(r"<<[^<>\n]{0,300}>>")
# a number standing alone: not preceded by a letter, `_` or `\` (AZYUK2A, x_2, \2), with
# thousands separators 1,000 / 1{,}000 / 1\,000 / 1\!000, or a plain LaTeX fraction
_SEP = r"(?:,|\{,\}|\\,|\\!|\\;|\u2009|\u202f)"
_NUMBER_RE = re.compile(
    r"(?<![A-Za-z_\\])(?:-\s?)?\\[dtc]?frac\s*(?:\{\s*\d+\s*\}|\d)\s*(?:\{\s*\d+\s*\}|\d)"
    r"|(?<![A-Za-z_\\\d.])-?(?:\d{1,3}(?:" + _SEP + r"\d{3})+(?!\d)|\d+)(?:\.\d+)?(?:/\d+)?"
    r"|(?<![A-Za-z_\\\d.])-?\.\d+"
)
_MATH_DELIM_RE = re.compile(r"(?<!\\)\$\$|(?<!\\)\$|\\\(|\\\)|\\\[|\\\]")
_CLOSER = {"$$": "$$", "$": "$", "\\(": "\\)", "\\[": "\\]"}
# words that make a span or a text prose rather than math (LaTeX command names and the
# contents of \text{...} are removed first)
_CMD_RE = re.compile(r"\\(?:begin|end)\s*\{[a-zA-Z*]{0,20}\}|\\[a-zA-Z]+")
_TEXTARG_RE = re.compile(r"\\(?:text|textbf|textit|textrm|mbox|mathrm|operatorname)\s*\{[^{}]*\}")
_WORD_RE = re.compile(r"[A-Za-z]{2,}")
_MATH_WORDS = frozenset(
    "sqrt pi inf infty infinity oo sin cos tan sec csc cot arcsin arccos arctan sinh cosh tanh "
    "log ln exp abs or and mod in to".split()
)
_BARE_MAX_CHARS = 400


def _brace_closers(text: str) -> dict[int, int]:
    """Map each `{` position to its matching `}` position, in one pass (escapes skipped)."""
    match: dict[int, int] = {}
    stack: list[int] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "\\":
            i += 2  # \{ and \} are literal braces
            continue
        if c == "{":
            stack.append(i)
        elif c == "}" and stack:
            match[stack.pop()] = i
        i += 1
    return match


def _last_boxed(text: str) -> str | None:
    starts = [m.end() for m in _BOX_RE.finditer(text)]
    if not starts:
        return None
    closers: dict[int, int] | None = None
    for pos in reversed(starts):
        j = pos
        while j < len(text) and text[j] in " \t":
            j += 1
        if j < len(text) and text[j] == "{":
            if closers is None:
                closers = _brace_closers(text)
            end = closers.get(j, -1)
            if end != -1:
                return text[j + 1 : end]
            continue  # truncated box: try an earlier one
        m = re.compile(r"[^\s$]{1,100}").match(text, j)  # \boxed 5
        if m:
            return m.group(0)
    return None


def _prose_words(s: str) -> int:
    """How many plain words (2+ letters, not math names) `s` holds outside commands/\\text."""
    s = _CMD_RE.sub(" ", _TEXTARG_RE.sub(" ", s))
    return sum(1 for w in _WORD_RE.findall(s) if w.lower() not in _MATH_WORDS)


def _math_spans(text: str):
    """Yield the contents of complete math spans, left to right, in one pass.

    A single-`$` span holds no newline and no prose (two or more plain words, or one
    before a space-preceded closing `$`), and its closing `$` is not followed by a digit
    (Pandoc's rule); otherwise that closing `$`
    opens the next span, so "$5 and $7" yields nothing and "costs $5, so $x=3$" yields
    "x=3".
    """
    opener: tuple[str, int] | None = None
    for m in _MATH_DELIM_RE.finditer(text):
        d = m.group(0)
        if opener is None:
            if d in _CLOSER:
                opener = (d, m.end())
            continue
        kind, start = opener
        if kind == "$" and d == "$$":  # "$x$$y$": the first `$` closes, the second opens
            d, end, reopen = "$", m.start() + 1, m.end()
        elif d == _CLOSER[kind]:
            end, reopen = m.end(), None
        else:
            continue  # another delimiter inside a span is literal
        body = text[start : end - len(d)]
        if kind == "$" and ("\n" in body or text[end : end + 1].isdigit()
                            or _prose_words(body) > (0 if body[-1:].isspace() else 1)):
            opener = ("$", end)  # money, not math: this `$` may open a real span
            continue
        opener = ("$", reopen) if reopen is not None else None
        if body.strip():
            yield body, end


def _last_math_span(text: str) -> tuple[str, int] | None:
    """(contents, end position) of the last complete math span, or None."""
    last = None
    for span in _math_spans(text):
        last = span
    return last


def _last_number(text: str) -> str | None:
    last = None
    for m in _NUMBER_RE.finditer(_CALC_RE.sub(" ", text)):
        last = m
    return last.group(0).replace(" ", "") if last else None


def is_bare_answer(text: str) -> bool:
    """True when `text` is an answer by itself (an expression, a value, a short name),
    not a solution written in prose: one line (matrices may span lines), at most
    400 characters and at most one plain word."""
    s = text.strip()
    if not s or len(s) > _BARE_MAX_CHARS:
        return False
    if "\n" in s and "\\begin" not in s:
        return False
    if "$" in s.replace("\\$", ""):
        return False  # "$5 and $7": money in prose (a wrapped "$x$" is a math span)
    plain = _CMD_RE.sub(" ", _TEXTARG_RE.sub(" ", s)).rstrip(" .")
    words = [m for m in _WORD_RE.finditer(plain) if m.group(0).lower() not in _MATH_WORDS]
    # no plain word, or one that ends the text: a unit ("18 dollars") or a name ("Evelyn")
    return not words or (len(words) == 1 and words[0].end() == len(plain))


def _sentence(rest: str) -> str:
    """The answer at the start of `rest`: a `$...$` span or text up to end of sentence/line."""
    rest = rest.lstrip()
    if rest.startswith("$"):
        delim = "$$" if rest.startswith("$$") else "$"
        m = re.compile(r"(?<!\\)" + re.escape(delim)).search(rest, len(delim))
        if m:
            return rest[len(delim) : m.start()]
    if rest.startswith("\\(") or rest.startswith("\\["):
        end = rest.find("\\)" if rest[1] == "(" else "\\]")
        if end != -1:
            return rest[2:end]
    line = rest.split("\n", 1)[0]
    m = re.search(r"\.(?:\s|$)", line)  # sentence end, not a decimal point
    if m:
        line = line[: m.start()]
    return line


def clean_extracted(ans: str) -> str | None:
    """Trim whitespace, wrapping `$`/`\\(\\)`/bold and a trailing period; None if empty."""
    s = ans.strip()
    for _ in range(3):
        before = s
        if len(s) >= 2 and s.startswith("**") and s.endswith("**"):
            s = s[2:-2].strip()
        if s.startswith("$") and s.endswith("$") and len(s) >= 2:
            s = s.strip("$").strip()
        if s.startswith("\\(") and s.endswith("\\)"):
            s = s[2:-2].strip()
        if s.startswith("\\[") and s.endswith("\\]"):
            s = s[2:-2].strip()
        s = s.rstrip(" .;").strip()
        if s == before:
            break
    return s or None


def _marked(text: str) -> str | None:
    """Rules 1-6: an answer the text marks (box, ####, "answer is", answer line, bold,
    math span); "" for an empty box (final: no answer), None when nothing is marked."""
    found = _last_boxed(text)
    if found is not None:  # a box is final, even an empty one ("" = nothing to grade)
        return clean_extracted(found) or ""
    hashes = list(_HASH_RE.finditer(text))
    if hashes:
        got = clean_extracted(hashes[-1].group(1))
        if got is not None:
            return got
    ans_is = list(_ANSWER_IS_RE.finditer(text))
    if ans_is:
        got = clean_extracted(_sentence(text[ans_is[-1].end() :]))
        if got is not None:
            return got
    lines = list(_ANSWER_LINE_RE.finditer(text))
    if lines:
        got = clean_extracted(_sentence(lines[-1].group(1)))
        if got is not None:
            return got
    bolds = list(_BOLD_RE.finditer(text))
    if bolds:
        got = clean_extracted(bolds[-1].group(1))
        if got is not None:
            return got
    span = _last_math_span(text)
    if span is not None:  # unless a number stands alone after it: "$x=3$ ... so 5 apples"
        return _last_number(text[span[1]:]) or clean_extracted(span[0])
    return None


def extract_answer(text: str) -> str | None:
    """The final answer of `text` (see the module docstring for the rules), or None."""
    if not isinstance(text, str):
        raise TypeError(
            f"extract_answer expects the solution text as str, got {type(text).__name__}: "
            f"{text!r:.80}. Pass the model's output string."
        )
    got = _marked(text)
    if got is not None:
        return got or None
    if is_bare_answer(text):
        return clean_extracted(text)
    return _last_number(text)


@lru_cache(maxsize=8192)  # golds repeat across samples; pure function of a str
def extract_gold(gold: str) -> str:
    """The answer a gold field holds: the gold itself when it is a bare answer, else what
    it marks (a MATH `solution` with `\\boxed{}`, a GSM8K answer with `####`). A gold
    that is prose without any mark is returned unchanged (never its last number)."""
    if is_bare_answer(gold) and "\\boxed" not in gold and "\\fbox" not in gold:
        return gold
    got = _marked(gold)
    return got if got and normalize(got) else gold  # never a mark that reads as nothing
