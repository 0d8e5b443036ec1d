"""A format-diverse (gold, solution) corpus for checking our grader against Math-Verify.

    .venv/bin/python bench/verifier_corpus.py --out /tmp/verifier_corpus.jsonl
    .venv/bin/python cli.py eval verifier-agreement /tmp/verifier_corpus.jsonl --show 100

Every MATH-500 answer and the first 400 GSM8K test answers are rendered in the formats
Math-Verify reads (boxed, inline/display math spans, "The final answer is", bare
expressions, assignments, `\\dfrac`/`\\tfrac`/shorthand, `\\left(`, thousands separators,
decimal commas, units in `\\text{}`, degrees, percent, GSM8K `####` / `A:` / prose), each
as an equal pair and as a perturbed unequal one (another number, a flipped bracket, a
changed digit), with junk text around them (numbers and math before the answer, a
sentence after it). Rows: {"gold", "solution", "equal", "format", "source"}; the
`equal` label is what the renderer intended, so false "correct" verdicts on unequal
pairs can be counted for both graders. Seeded: the same data gives the same file.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PREFIXES = [
    "Let's think step by step. First, 3 + 4 = 7 and $y = 2$ for now.\n",
    "We set up the problem: there are 12 cases to check, and $a_1 = 5$.\n\n",
    "Solution: the numbers 10 and 20 give $10 \\cdot 20 = 200$ at first.\n",
    "",
]
SUFFIXES = ["", " I hope it is correct.", "\nThat completes the solution.", " Done!"]

INT_RE = re.compile(r"^-?\d+$")
DEC_RE = re.compile(r"^-?\d+\.\d+$")
FRAC_RE = re.compile(r"^(-?)\\frac\{(\d+)\}\{(\d+)\}$")
DIGIT_RE = re.compile(r"\d+")


def data_dir() -> Path:
    from policies import settings

    d = settings.shared_data_dir()
    if d is None or not (d / "gsm8k").is_dir():
        sys.exit("shared/data not found: set TTS_MATH_DATA to the folder holding gsm8k/ and math/")
    return d


def perturb(a: str, rng: random.Random) -> str | None:
    """An answer that differs from `a` (None when no safe perturbation is known)."""
    if INT_RE.match(a):
        n = int(a)
        return str(rng.choice([n + 1, n - 1, n * 10, n + 10]) if n not in (0,) else 1)
    if DEC_RE.match(a):
        return a + "1"
    if a.startswith(("(", "[")) and a.endswith((")", "]")) and a.count(",") == 1:
        flip = {"(": "[", "[": "(", ")": "]", "]": ")"}
        if rng.random() < 0.5 and ("\\infty" not in a):
            return flip[a[0]] + a[1:-1] + flip[a[-1]] if a[-1] != a[0] else None
    # the first number of the answer: the value, not a base subscript or a unit's power
    # (52_8 -> 53_8, 15\mbox{ cm}^2 -> 16\mbox{ cm}^2)
    d = DIGIT_RE.search(a)
    if d is None:
        return None
    new = str(int(d.group(0)) + rng.choice([1, 2, 3]))
    return a[: d.start()] + new + a[d.end():]


def thousands(n: int, sep: str) -> str:
    s = f"{abs(n):,}".replace(",", sep)
    return ("-" if n < 0 else "") + s


def renderings(a: str, rng: random.Random, source: str) -> list[tuple[str, str]]:
    """(format, answer text) pairs for gold answer `a` (the answer, not yet in a solution)."""
    out = [("boxed", f"{rng.choice(PREFIXES)}So the answer is $\\boxed{{{a}}}$.{rng.choice(SUFFIXES)}"),
           ("inline-last", f"{rng.choice(PREFIXES)}Putting it together, we get ${a}$."
            f"{rng.choice(SUFFIXES)}"),
           ("display", f"{rng.choice(PREFIXES)}Therefore\n\\[\n{a}\n\\]\n"),
           ("paren-math", f"{rng.choice(PREFIXES)}The result is \\({a}\\)."),
           ("final-answer", f"{rng.choice(PREFIXES)}Final Answer: The final answer is ${a}$. "
            f"I hope it is correct."),
           ("bare", a)]
    if "\\frac" in a:
        out.append(("dfrac", "$" + a.replace("\\frac", "\\dfrac") + "$"))
        out.append(("tfrac-boxed", f"\\boxed{{{a.replace(chr(92) + 'frac', chr(92) + 'tfrac')}}}"))
        short = re.sub(r"\\frac\{(\d)\}\{(\d)\}", r"\\frac\1\2", a)
        if short != a:
            out.append(("frac-shorthand", f"${short}$"))
    if "\\sqrt{" in a:
        short = re.sub(r"\\sqrt\{(\d)\}", r"\\sqrt\1", a)
        if short != a:
            out.append(("sqrt-shorthand", f"The value is ${short}$."))
    if a[:1] in "([" and a[-1:] in ")]" and "\\left" not in a:
        out.append(("left-right", f"$\\left{a[0]}{a[1:-1]}\\right{a[-1]}$"))
    if INT_RE.match(a):
        n = int(a)
        out.append(("assignment", f"{rng.choice(PREFIXES)}Hence $x = {a}$."))
        out.append(("assignment-bare", f"x={a}"))
        out.append(("text-unit", f"$\\boxed{{{a}\\text{{ units}}}}$"))
        out.append(("thin-space", f"The total is $\\boxed{{{a}\\,}}$"))
        if abs(n) >= 1000:
            out.append(("thousands-comma", f"\\boxed{{{thousands(n, ',')}}}"))
            out.append(("thousands-space", thousands(n, " ")))
            out.append(("thousands-thin", f"$\\boxed{{{thousands(n, chr(92) + ',')}}}$"))
            out.append(("thousands-brace", f"$\\boxed{{{thousands(n, '{,}')}}}$"))
        if source.startswith("math") and 0 < n < 360:
            out.append(("degrees", f"$\\boxed{{{a}^\\circ}}$"))
        if 0 < n <= 100:
            out.append(("percent", f"\\boxed{{{a}\\%}}"))
    if DEC_RE.match(a):
        whole, frac = a.split(".")
        if len(frac) != 3 or whole.lstrip("-") == "0":
            out.append(("decimal-comma", f"{whole},{frac}"))
    if FRAC_RE.match(a):
        out.append(("frac-unit", f"$\\boxed{{{a}\\text{{ meters}}}}$"))
    return out


def gsm8k_renderings(a: str, rng: random.Random) -> list[tuple[str, str]]:
    n = int(a)
    out = [("gsm8k-hash", f"She has 3 bags with 4 apples each, 3 * 4 = <<3*4=12>>12.\n#### {a}"),
           ("gsm8k-A", f"They pay 2 * 5 = $<<2*5=10>>10 in all.\nA: {a}"),
           ("gsm8k-prose", f"{rng.choice(PREFIXES)}So the total number is {a}."),
           ("gsm8k-money", f"He spent $5 and $7, so the difference is ${a}.")]
    if abs(n) >= 1000:
        out.append(("gsm8k-thousands", f"So in total they raised {thousands(n, ',')} dollars."))
    return out


def build(d: Path, seed: int = 0, gsm8k_limit: int = 400) -> list[dict]:
    rng = random.Random(seed)
    rows: list[dict] = []

    def add(gold: str, fmt: str, text_for, answer: str, bad: str | None, source: str):
        rows.append({"gold": gold, "solution": text_for(answer), "equal": True, "format": fmt,
                     "source": source})
        if bad is not None:
            rows.append({"gold": gold, "solution": text_for(bad), "equal": False, "format": fmt,
                         "source": source})

    math = [json.loads(x) for x in (d / "math" / "math500_test.jsonl").open()]
    for i, r in enumerate(math):
        a = r["answer"].strip()
        src = f"math500:{i}"
        bad = perturb(a, rng)
        forms = renderings(a, rng, src)
        bad_forms = dict(renderings(bad, random.Random(i), src)) if bad else {}
        for fmt, text in rng.sample(forms, min(4, len(forms))):
            if fmt in bad_forms and bad_forms[fmt] != text:
                rows.append({"gold": a, "solution": text, "equal": True, "format": fmt, "source": src})
                rows.append({"gold": a, "solution": bad_forms[fmt], "equal": False, "format": fmt,
                             "source": src})
            else:
                rows.append({"gold": a, "solution": text, "equal": True, "format": fmt, "source": src})
        if i % 5 == 0:  # whole-solution golds: the reference solution as the gold
            rows.append({"gold": r["solution"], "solution": f"$\\boxed{{{a}}}$", "equal": True,
                         "format": "gold-solution", "source": src})
    gsm = [json.loads(x) for x in (d / "gsm8k" / "test.jsonl").open()][:gsm8k_limit]
    for i, r in enumerate(gsm):
        a = r["answer"].split("####")[-1].strip().replace(",", "")
        src = f"gsm8k:{i}"
        bad = perturb(a, rng)
        good_forms = gsm8k_renderings(a, rng) + [f for f in renderings(a, rng, src)
                                                 if f[0].startswith(("thousands", "assign"))]
        bad_forms = dict(gsm8k_renderings(bad, random.Random(i)) +
                         renderings(bad, random.Random(i), src))
        for fmt, text in rng.sample(good_forms, min(2, len(good_forms))):
            rows.append({"gold": a, "solution": text, "equal": True, "format": fmt, "source": src})
            if fmt in bad_forms:
                rows.append({"gold": a, "solution": bad_forms[fmt], "equal": False, "format": fmt,
                             "source": src})
        if i % 8 == 0:  # the whole GSM8K answer field as the gold
            rows.append({"gold": r["answer"], "solution": f"The answer is {a}.", "equal": True,
                         "format": "gold-solution", "source": src})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="/tmp/verifier_corpus.jsonl")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--gsm8k-limit", type=int, default=400)
    args = ap.parse_args()
    rows = build(data_dir(), args.seed, args.gsm8k_limit)
    with open(args.out, "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    n_eq = sum(r["equal"] for r in rows)
    print(f"{len(rows)} pairs ({n_eq} equal, {len(rows) - n_eq} unequal, "
          f"{len({r['format'] for r in rows})} formats) -> {args.out}")


if __name__ == "__main__":
    main()
