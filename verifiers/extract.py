"""extract_answer: the final answer of a solution text, in linear time, without sympy.

Order of precedence (the first rule that finds something wins):

1. the last `\\boxed{...}` / `\\fbox{...}` (nested braces matched; `\\boxed 5` too);
2. the last GSM8K `#### N`;
3. the last "the (final) answer is X" (X up to the end of its sentence or `$...$`);
4. the last line starting with "Final Answer:", "Answer:" or "A:";
5. the last bold `**X**`;
6. the last number in the text (calculator annotations `<<2*3=6>>` ignored).
"""

from __future__ import annotations

import re

__all__ = ["extract_answer", "clean_extracted"]

_BOX_RE = re.compile(r"\\(?:boxed|fbox)\b")
_HASH_RE = re.compile(r"####[ \t]*([^\n]*)")
_ANSWER_IS_RE = re.compile(r"(?i)\banswer\s+is\s*[:\-]?\s*")
_ANSWER_LINE_RE = re.compile(
    r"(?im)^[ \t>*#]*(?:final\s+answer|answer|a)[ \t]*\**[ \t]*[:：][ \t]*\**[ \t]*([^\n]*)$"
)
_BOLD_RE = re.compile(r"\*\*([^*\n]{1,200})\*\*")
_CALC_RE = re.compile(r"<<[^<>\n]{0,300}>>")
_NUMBER_RE = re.compile(r"-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:/\d+)?|-?\.\d+")


def _match_brace(text: str, start: int) -> int:
    """Index of the `}` closing the `{` at `start`, or -1 if unbalanced. Linear."""
    depth = 0
    i = start
    n = len(text)
    while i < n:
        c = text[i]
        if c == "\\":
            i += 2  # skip escaped char, e.g. \{ or \}
            continue
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return -1


def _last_boxed(text: str) -> str | None:
    starts = [m.end() for m in _BOX_RE.finditer(text)]
    for pos in reversed(starts):
        j = pos
        while j < len(text) and text[j] in " \t":
            j += 1
        if j < len(text) and text[j] == "{":
            end = _match_brace(text, j)
            if end != -1:
                return text[j + 1 : end]
            continue  # truncated box: try an earlier one
        m = re.match(r"[^\s$]+", text[j:])  # \boxed 5
        if m:
            return m.group(0)
    return None


def _sentence(rest: str) -> str:
    """The answer at the start of `rest`: a `$...$` span or text up to end of sentence/line."""
    rest = rest.lstrip()
    if rest.startswith("$"):
        delim = "$$" if rest.startswith("$$") else "$"
        m = re.compile(r"(?<!\\)" + re.escape(delim)).search(rest, len(delim))
        if m:
            return rest[len(delim) : m.start()]
    if rest.startswith("\\("):
        end = rest.find("\\)")
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


def extract_answer(text: str) -> str | None:
    """The final answer of `text` (see the module docstring for the rules), or None."""
    if not isinstance(text, str):
        raise TypeError(
            f"extract_answer expects the solution text as str, got {type(text).__name__}: "
            f"{text!r:.80}. Pass the model's output string."
        )
    found = _last_boxed(text)
    if found is not None:
        return clean_extracted(found)
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
    nums = list(_NUMBER_RE.finditer(_CALC_RE.sub(" ", text)))
    if nums:
        return nums[-1].group(0)
    return None
