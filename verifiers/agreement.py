"""Cross-check our grader against Math-Verify on the same (gold, prediction) pairs.

    python cli.py eval verifier-agreement FILE.jsonl          # once wired into cli.py
    python -m verifiers.agreement FILE.jsonl [--limit N] [--show 50]

FILE.jsonl rows need a gold field (`gold`, `answer`, `ground_truth` or `expected`) and a
prediction field (`prediction`, `pred`, `solution`, `response`, `output` or `completion`);
full solutions are passed through `extract_answer` (ours) and, unchanged, through
`math_verify.parse` (theirs); a one-line gold without math delimiters, and a bare
prediction with letters or LaTeX, are wrapped in `$...$` for Math-Verify. An optional boolean `equal` field (the pair was made equal or unequal, as in
bench/verifier_corpus.py) adds each grader's errors against it, false "correct" verdicts
on unequal pairs counted apart; an optional `format` field breaks agreement down by format.
Needs `pip install .[mathverify]`.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from .config import VerifyConfig
from .extract import extract_answer, is_bare_answer
from .grader import grade_many

__all__ = ["agreement_report", "AgreementReport", "math_verify_grader", "main"]

log = logging.getLogger(__name__)

GOLD_KEYS = ("gold", "answer", "ground_truth", "expected")
PRED_KEYS = ("prediction", "pred", "solution", "response", "output", "completion")
_PLAIN_NUMBER_RE = re.compile(r"^[-+]?\d(?:[\d.]|,(?! )| (?=\d))*$")  # 1 000, 1,25, 3.5
FULL_TEXT_KEYS = ("solution", "response", "output", "completion")  # extract_answer first


@dataclass
class AgreementReport:
    n: int
    agree: int
    ours_status: Counter = field(default_factory=Counter)
    disagreements: list[dict] = field(default_factory=list)
    labelled: int = 0  # rows with an `equal` label
    unequal: int = 0  # rows labelled unequal
    false_correct: Counter = field(default_factory=Counter)  # "ours"/"theirs": correct on unequal
    label_errors: Counter = field(default_factory=Counter)  # "ours"/"theirs": verdict != label
    by_format: dict = field(default_factory=dict)  # format -> [pairs, agree]

    @property
    def rate(self) -> float:
        return self.agree / self.n if self.n else 1.0

    def format(self, show: int = 50) -> str:
        lines = [
            f"pairs: {self.n}  agree: {self.agree} ({100 * self.rate:.2f}%)  "
            f"disagree: {len(self.disagreements)}",
            "our statuses: " + ", ".join(f"{k}={v}" for k, v in sorted(self.ours_status.items())),
        ]
        if self.labelled:
            lines.append(
                f"against the labels ({self.labelled} pairs, {self.unequal} unequal): "
                f"errors ours={self.label_errors['ours']} math-verify={self.label_errors['theirs']}; "
                f"false correct on unequal pairs ours={self.false_correct['ours']} "
                f"math-verify={self.false_correct['theirs']}")
        if len(self.by_format) > 1:
            lines.append("by format: " + ", ".join(
                f"{k} {a}/{n}" for k, (n, a) in sorted(self.by_format.items())))
        for d in self.disagreements[:show]:
            label = "" if d.get("equal") is None else f" [made {'equal' if d['equal'] else 'unequal'}]"
            lines.append(
                f"  line {d['line']}{label}: gold={d['gold']!r:.80} ours={d['ours_extracted']!r:.80} "
                f"-> {d['ours_status']}; math-verify -> {d['theirs']}"
            )
        if len(self.disagreements) > show:
            lines.append(f"  ... {len(self.disagreements) - show} more")
        return "\n".join(lines)


def math_verify_grader() -> Callable[[str, str], bool | None]:
    """Math-Verify as a (gold, prediction) -> bool|None callable; clear error if missing."""
    try:
        from math_verify import parse, verify
    except ImportError:
        raise ImportError(
            "verifier-agreement needs Math-Verify: pip install '.[mathverify]' "
            "(or pip install math-verify)"
        ) from None

    def grade_mv(gold: str, pred: str) -> bool | None:
        plain = not any(d in gold for d in ("$", "\\(", "\\[", "\\boxed", "\n"))
        g = parse(f"${gold}$" if plain else gold)  # a one-line gold is an answer in math
        # the prediction as written; a bare answer other than a plain number (`3\\sqrt{13}`,
        # `p - q`, `(2,4)`) in `$...$`: Math-Verify's default parse reads those only in math
        bare = is_bare_answer(pred) and not any(d in pred for d in ("$", "\\(", "\\["))
        p = parse(f"${pred}$" if bare and not _PLAIN_NUMBER_RE.match(pred.strip()) else pred)
        if not g or not p:
            return None
        try:
            return bool(verify(g, p))
        except Exception as e:  # Math-Verify's own failures are reported, not fatal
            log.debug("math-verify failed on %r vs %r: %s", gold, pred, e)
            return None

    return grade_mv


def _pick(row: dict, keys: Iterable[str], what: str, path: Path, line: int) -> tuple[str, str]:
    for k in keys:
        if k in row and isinstance(row[k], str):
            return k, row[k]
    raise ValueError(
        f"{path}:{line}: no {what} field; expected one of {', '.join(keys)} (a string)."
    )


def agreement_report(
    path: str | Path,
    *,
    other: Callable[[str, str], bool | None] | None = None,
    config: VerifyConfig | None = None,
    limit: int | None = None,
) -> AgreementReport:
    """Grade every pair in `path` with ours and with `other` (default Math-Verify)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"verifier-agreement: {path} does not exist; pass a .jsonl file.")
    other = other or math_verify_grader()
    golds, preds, lines, answers, labels, formats = [], [], [], [], [], []
    with path.open() as f:
        for i, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            row = json.loads(raw)
            golds.append(_pick(row, GOLD_KEYS, "gold", path, i)[1])
            key, pred = _pick(row, PRED_KEYS, "prediction", path, i)
            preds.append(pred)
            answers.append(extract_answer(pred) if key in FULL_TEXT_KEYS else pred)
            labels.append(row.get("equal") if isinstance(row.get("equal"), bool) else None)
            formats.append(str(row.get("format", "")))
            lines.append(i)
            if limit is not None and len(golds) >= limit:
                break
    ours = grade_many(golds, answers, config=config, extract=False)
    rep = AgreementReport(n=len(ours), agree=0)
    for ln, g, p, v, lab, fmt in zip(lines, golds, preds, ours, labels, formats, strict=True):
        theirs = other(g, p)
        rep.ours_status[v.status] += 1
        counts = rep.by_format.setdefault(fmt, [0, 0])
        counts[0] += 1
        if lab is not None:
            rep.labelled += 1
            rep.unequal += not lab
            for who, said in (("ours", v.correct), ("theirs", bool(theirs))):
                rep.label_errors[who] += said != lab
                rep.false_correct[who] += said and not lab
        if theirs is not None and theirs == v.correct:
            rep.agree += 1
            counts[1] += 1
        else:
            rep.disagreements.append({
                "line": ln, "gold": g[-300:], "prediction": p[-300:],
                "ours_extracted": v.extracted, "ours_status": v.status, "ours_detail": v.detail,
                "theirs": theirs, "equal": lab, "format": fmt,
            })
    return rep


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="verifier-agreement",
        description="Grade JSONL (gold, prediction) pairs with ours and with Math-Verify; "
                    "print where they disagree.")
    ap.add_argument("file", help="JSONL with gold/answer and prediction/solution fields")
    ap.add_argument("--limit", type=int, default=None, help="first N rows only")
    ap.add_argument("--show", type=int, default=50, help="disagreements to print")
    ap.add_argument("--json", dest="json_out", default=None, help="write the full report here")
    args = ap.parse_args(argv)
    rep = agreement_report(args.file, limit=args.limit)
    sys.stdout.write(rep.format(args.show) + "\n")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps({
            "file": str(args.file), "config": repr(VerifyConfig()), "n": rep.n,
            "agree": rep.agree, "ours_status": dict(rep.ours_status),
            "labelled": rep.labelled, "unequal": rep.unequal,
            "false_correct": dict(rep.false_correct), "label_errors": dict(rep.label_errors),
            "by_format": rep.by_format, "disagreements": rep.disagreements}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
