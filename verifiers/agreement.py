"""Cross-check our grader against Math-Verify on the same (gold, prediction) pairs.

    python cli.py eval verifier-agreement FILE.jsonl          # once wired into cli.py
    python -m verifiers.agreement FILE.jsonl [--limit N] [--show 50]

FILE.jsonl rows need a gold field (`gold`, `answer`, `ground_truth` or `expected`) and a
prediction field (`prediction`, `pred`, `solution`, `response`, `output` or `completion`);
full solutions are passed through `extract_answer` (ours) and `math_verify.parse` (theirs),
bare answers are wrapped in `$...$` for Math-Verify. Needs `pip install .[mathverify]`.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from .config import VerifyConfig
from .extract import extract_answer
from .grader import grade_many

__all__ = ["agreement_report", "AgreementReport", "math_verify_grader", "main"]

log = logging.getLogger(__name__)

GOLD_KEYS = ("gold", "answer", "ground_truth", "expected")
PRED_KEYS = ("prediction", "pred", "solution", "response", "output", "completion")
FULL_TEXT_KEYS = ("solution", "response", "output", "completion")  # extract_answer first


@dataclass
class AgreementReport:
    n: int
    agree: int
    ours_status: Counter = field(default_factory=Counter)
    disagreements: list[dict] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.agree / self.n if self.n else 1.0

    def format(self, show: int = 50) -> str:
        lines = [
            f"pairs: {self.n}  agree: {self.agree} ({100 * self.rate:.2f}%)  "
            f"disagree: {len(self.disagreements)}",
            "our statuses: " + ", ".join(f"{k}={v}" for k, v in sorted(self.ours_status.items())),
        ]
        for d in self.disagreements[:show]:
            lines.append(
                f"  line {d['line']}: gold={d['gold']!r} ours={d['ours_extracted']!r} "
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
        g = parse(gold if "$" in gold or "\\boxed" in gold else f"${gold}$")
        p = parse(pred if "$" in pred or "\\boxed" in pred or "\n" in pred else f"${pred}$")
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
    golds, preds, lines, answers = [], [], [], []
    with path.open() as f:
        for i, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            row = json.loads(raw)
            golds.append(_pick(row, GOLD_KEYS, "gold", path, i)[1])
            key, pred = _pick(row, PRED_KEYS, "prediction", path, i)
            preds.append(pred)
            answers.append((extract_answer(pred) or "") if key in FULL_TEXT_KEYS else pred)
            lines.append(i)
            if limit is not None and len(golds) >= limit:
                break
    gold_answers = [extract_answer(g) or g if ("\\boxed" in g or "####" in g) else g
                    for g in golds]
    ours = grade_many(gold_answers, answers, config=config, extract=False)
    rep = AgreementReport(n=len(ours), agree=0)
    for ln, g, p, v in zip(lines, gold_answers, preds, ours, strict=True):
        theirs = other(g, p)
        rep.ours_status[v.status] += 1
        if theirs is not None and theirs == v.correct:
            rep.agree += 1
        else:
            rep.disagreements.append({
                "line": ln, "gold": g, "prediction": p[-300:], "ours_extracted": v.extracted,
                "ours_status": v.status, "theirs": theirs,
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
            "disagreements": rep.disagreements}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
