"""Training records, resumable JSONL files, problem-level splits and importers (pure Python).

Three record shapes, one JSON object per line (``kind`` says which):

- ``outcome``: ``{"kind", "problem_id", "problem", "answer", "steps", "correct", "source"}``
  one solution with its graded outcome (ORM data; pairs for TinyRM are built from these);
- ``steps``: ``{"kind", "problem_id", "problem", "steps", "labels", "source"}`` with
  ``labels[i]`` = P(the solution is still correct after step i) in [0, 1] (PRM data).
  Monte Carlo records also carry ``hard_labels`` (1 if any rollout reached the gold
  answer) and ``rollouts`` (k);
- ``pair``: ``{"kind", "problem_id", "problem", "chosen", "rejected", "source"}``, both
  solutions as step lists (TinyRM data).

Steps are the blank-line-separated parts of a solution (``rewards.steps``), the
same split the policy and the scorers use.

Splits are by problem, never by row: a problem's key is a hash of its normalised
text (whitespace collapsed, case folded), so the same problem reached through two
sources or ids still lands on one side.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import re
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator
from pathlib import Path

from policies.paths import write_json

from ..steps import split_steps

log = logging.getLogger(__name__)

__all__ = [
    "RECORD_KINDS",
    "read_jsonl",
    "write_jsonl",
    "JsonlWriter",
    "problem_key",
    "record_key",
    "split_by_problem",
    "make_pairs",
    "outcome_step_records",
    "check_record",
    "import_prm800k",
    "import_math_shepherd",
    "import_prmbench",
    "import_gsm8k_examples",
    "IMPORTERS",
    "GSM8K_TEST_RESERVED",
]

RECORD_KINDS = ("outcome", "steps", "pair")

GSM8K_TEST_RESERVED = 500
"""GSM8K test problems 0..499 are kept out of every shipped scorer's training data:
the search comparisons and the pairwise bench are run on them (see docs/training.md)."""


# ----------------------------------------------------------------------------- files
def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """All records of a JSONL file (gzipped when its name ends in .gz); a torn last line
    (killed writer) is skipped with a warning."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no such data file")
    out = []
    if p.suffix == ".gz":
        import gzip

        with gzip.open(p, "rt", encoding="utf-8") as fh:
            lines = fh.readlines()
    else:
        with open(p, encoding="utf-8") as fh:
            lines = fh.readlines()
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            if i == len(lines) - 1 and not line.endswith("\n"):
                log.warning("%s: torn last line skipped (a writer was killed); rerun to resume", p)
                continue
            raise ValueError(f"{p}:{i + 1}: invalid JSON; fix or delete the line") from None
    return out


class JsonlWriter:
    """Append-only JSONL with resume: torn tail repaired, finished keys known, config checked.

    The resolved config is kept beside the data in ``<path>.meta.json``; reopening
    with a different config for the same file is an error (it would mix two datasets).
    ``provenance`` (what may differ between the sessions of one file without changing what
    it means, e.g. the engine's dtype and the CPU) is appended to the meta's ``runs`` list
    at every opening, with the time and the number of rows already there.
    """

    def __init__(self, path: str | os.PathLike, config: dict, *, key_field: str = "problem_id",
                 provenance: dict | None = None) -> None:
        self.path = Path(path)
        self.meta_path = self.path.with_name(self.path.name + ".meta.json")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fresh = not self.meta_path.is_file()
        meta = {"config": config} if fresh else json.loads(self.meta_path.read_text())
        if meta.get("config") != config:
            diff = sorted(k for k in set(meta.get("config", {})) | set(config)
                          if meta.get("config", {}).get(k) != config.get(k))
            raise ValueError(
                f"{self.path} was built with other settings (differs in {diff}); "
                "rerun with the same settings to resume, or write to a new --out"
            )
        self.done: set[str] = set()
        self.rows = 0
        if self.path.is_file():
            self._repair()
            rows = read_jsonl(self.path)
            # a key is done only when all its rows are there (rows carry "of": rows per key)
            count: dict[str, int] = defaultdict(int)
            for r in rows:
                count[str(r.get(key_field))] += 1
            partial = {str(r.get(key_field)) for r in rows if count[str(r.get(key_field))] < r.get("of", 0)}
            if partial:
                log.warning("%s: %d partly written problem(s) dropped; they are redone", self.path, len(partial))
                rows = [r for r in rows if str(r.get(key_field)) not in partial]
                write_jsonl(self.path, rows)
            self.done = set(count) - partial
            self.rows = len(rows)
        if provenance is not None:
            opened = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            meta.setdefault("runs", []).append({"opened": opened, "rows_before": self.rows, **provenance})
        if fresh or provenance is not None:  # one write, renamed into place
            write_json(self.meta_path, meta)
        self._fh = open(self.path, "a", encoding="utf-8")

    def _repair(self) -> None:
        data = self.path.read_bytes()
        if data and not data.endswith(b"\n"):
            cut = data.rfind(b"\n") + 1
            log.warning("%s: dropping a torn last line (%d bytes) before resuming", self.path, len(data) - cut)
            with open(self.path, "r+b") as fh:
                fh.truncate(cut)

    def write(self, records: Iterable[dict]) -> None:
        for r in records:
            self._fh.write(json.dumps(r, ensure_ascii=False) + "\n")
            self.rows += 1
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> JsonlWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def write_jsonl(path: str | os.PathLike, records: Iterable[dict]) -> int:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with open(p, "w", encoding="utf-8") as fh:
        for r in records:
            fh.write(json.dumps(r, ensure_ascii=False) + "\n")
            n += 1
    return n


def check_record(r: dict, i: int = 0) -> str:
    """Validate one record; return its kind. Errors name the row, the field and the fix."""
    kind = r.get("kind")
    if kind == "skipped":
        return kind
    if kind is None:  # infer, so hand-written files need not say
        kind = "pair" if "chosen" in r else "steps" if "labels" in r else "outcome" if "correct" in r else None
    if kind not in RECORD_KINDS:
        raise ValueError(f"row {i}: cannot tell the record kind (need 'kind' in {RECORD_KINDS}, "
                         "or fields labels / correct / chosen+rejected)")
    if not isinstance(r.get("problem"), str):
        raise ValueError(f"row {i}: 'problem' must be a string")
    if kind == "steps":
        steps, labels = r.get("steps"), r.get("labels")
        if not isinstance(steps, list) or not isinstance(labels, list) or len(steps) != len(labels) or not steps:
            raise ValueError(f"row {i}: 'steps' and 'labels' must be non-empty lists of equal length")
        if any(not 0.0 <= float(x) <= 1.0 for x in labels):
            raise ValueError(f"row {i}: labels must be in [0, 1], got {labels}")
    elif kind == "outcome":
        # an empty solution is a real (wrong) outcome; trainers skip it, it has nothing to read
        if not isinstance(r.get("steps"), list) or not isinstance(r.get("correct"), bool | int):
            raise ValueError(f"row {i}: outcome rows need 'steps' (a list) and a boolean 'correct'")
    else:
        for f in ("chosen", "rejected"):
            if not isinstance(r.get(f), list) or not r[f]:
                raise ValueError(f"row {i}: pair rows need '{f}' as a non-empty list of steps")
    return kind


# ---------------------------------------------------------------------------- splits
_WS = re.compile(r"\s+")


def problem_key(problem: str) -> str:
    """Identity of a problem for splitting: hash of its whitespace-collapsed, case-folded text."""
    norm = _WS.sub(" ", problem).strip().casefold()
    return hashlib.blake2b(norm.encode(), digest_size=8).hexdigest()


def record_key(r: dict) -> str:
    """A record's split identity: its ``split_key`` (e.g. the original question of a PRMBench
    row whose question was rewritten) or else its problem text."""
    return problem_key(r.get("split_key") or r["problem"])


def _unit(key: str, seed: int) -> float:
    h = hashlib.blake2b(f"{seed}:{key}".encode(), digest_size=8).digest()
    return int.from_bytes(h, "little") / 2**64


def split_by_problem(records: list[dict], heldout_fraction: float, *, seed: int = 0) -> tuple[list[dict], list[dict]]:
    """(train, held_out) with every problem wholly on one side (pure, deterministic).

    A problem is held out when hash(seed, problem_key) / 2**64 < heldout_fraction, so the
    split of a problem does not depend on what else is in the file.
    """
    if not 0.0 <= heldout_fraction < 1.0:
        raise ValueError(f"heldout_fraction must be in [0, 1), got {heldout_fraction}")
    train, held = [], []
    for r in records:
        (held if _unit(record_key(r), seed) < heldout_fraction else train).append(r)
    if heldout_fraction > 0 and records and not held:  # tiny files: hold out at least one problem
        keys = sorted({record_key(r) for r in records}, key=lambda k: _unit(k, seed))
        if len(keys) > 1:
            train = [r for r in records if record_key(r) != keys[0]]
            held = [r for r in records if record_key(r) == keys[0]]
    return train, held


def outcome_step_records(outcome: list[dict], labelled: list[dict] = ()) -> list[dict]:
    """``steps`` records with outcome value targets: every step of an ``outcome`` record labelled
    with the solution's verdict (1.0 right, 0.0 wrong), so a PRM learns P(this solution ends right)
    at each step. Empty solutions, and samples that have a record in ``labelled`` (the same problem
    and steps, e.g. Monte Carlo labels of the same pool), are left out: a sample counts once."""
    seen = {(problem_key(r["problem"]), tuple(r["steps"])) for r in labelled}
    out = []
    for r in outcome:
        steps = list(r["steps"])
        if not steps or (problem_key(r["problem"]), tuple(steps)) in seen:
            continue
        y = [1.0 if r["correct"] else 0.0] * len(steps)
        out.append({**r, "kind": "steps", "steps": steps, "labels": y, "hard_labels": list(y), "targets": "outcome"})
    return out


def make_pairs(records: list[dict], *, max_pairs_per_problem: int = 8, seed: int = 0) -> list[dict]:
    """chosen/rejected pairs from outcome records: a correct and a wrong solution of one problem.

    Identical texts are deduplicated first; up to ``max_pairs_per_problem`` pairs are drawn
    (seeded) from all correct x wrong combinations. Pair records pass through unchanged.
    """
    rng = random.Random(seed)
    by_problem: dict[str, dict[str, dict]] = defaultdict(lambda: {"+": {}, "-": {}})
    out = [r for r in records if check_record(r) == "pair"]
    for r in records:
        if check_record(r) != "outcome" or not r["steps"]:
            continue
        side = "+" if r["correct"] else "-"
        by_problem[r["problem"]][side].setdefault("\n\n".join(r["steps"]), r)
    for problem, sides in by_problem.items():
        combos = [(a, b) for a in sides["+"].values() for b in sides["-"].values()]
        rng.shuffle(combos)
        for a, b in combos[:max_pairs_per_problem]:
            out.append({"kind": "pair", "problem_id": a.get("problem_id"), "problem": problem,
                        "chosen": a["steps"], "rejected": b["steps"], "source": a.get("source", ""),
                        **({"split_key": a["split_key"]} if a.get("split_key") else {})})
    return out


# ------------------------------------------------------------------------- importers
def _read_rows(path: str | os.PathLike) -> Iterator[tuple[int, dict]]:
    yield from enumerate(read_jsonl(path))


def import_prm800k(path, *, neutral: float = 1.0, branches: bool = True) -> list[dict]:
    """PRM800K rows (``question``, ``label.steps[].completions[].rating``) -> step records.

    The trajectory follows each step's chosen completion (or the human completion);
    ratings +1 -> 1, 0 -> ``neutral``, -1 -> 0, and the trajectory stops at the first -1
    (labels are prefix correctness). With ``branches`` every alternative completion rated
    -1 or +1 at a step also gives a record (the trajectory so far + that completion).
    """
    out = []
    for i, r in _read_rows(path):
        q = r.get("question") or {}
        problem = q.get("problem")
        steps_in = ((r.get("label") or {}).get("steps")) or []
        if not problem or not steps_in:
            continue
        value = {1: 1.0, 0: neutral, -1: 0.0}
        steps: list[str] = []
        labels: list[float] = []
        base = {"kind": "steps", "problem_id": f"prm800k-{i}", "problem": problem,
                "answer": q.get("ground_truth_answer"), "source": "prm800k"}
        for j, s in enumerate(steps_in):
            comps = s.get("completions") or []
            chosen = s.get("chosen_completion")
            if branches:
                for k, c in enumerate(comps):
                    if k != chosen and c.get("rating") in (-1, 1) and c.get("text"):
                        out.append({**base, "problem_id": f"prm800k-{i}-s{j}-c{k}",
                                    "steps": [*steps, c["text"].strip()],
                                    "labels": [*labels, min(labels[-1] if labels else 1.0, value[c["rating"]])]})
            if chosen is not None and 0 <= chosen < len(comps):
                c = comps[chosen]
            elif s.get("human_completion"):
                c = {**s["human_completion"], "rating": s["human_completion"].get("rating") or 1}
            else:  # no continuation chosen: the trajectory ends with its first rated-wrong completion
                c = next((x for x in comps if x.get("rating") == -1), None)
                if c is None:
                    break
            if not c.get("text"):
                break
            rating = c.get("rating") if c.get("rating") is not None else 0
            steps.append(c["text"].strip())
            labels.append(min(labels[-1] if labels else 1.0, value[rating]))
            if rating == -1:
                break
        if steps:
            out.append({**base, "steps": steps, "labels": labels})
    return out


_STEP_PREFIX = re.compile(r"^\s*Step\s*\d+\s*:\s*")


def import_math_shepherd(path, *, tag: str = "ки") -> list[dict]:
    """Math-Shepherd rows (``input`` with 'ки' after each step, ``label`` with '+'/'-' there).

    The question is the text before "Step 1:"; "Step k:" prefixes are removed from steps.
    Math-Shepherd labels are already prefix labels (hard, from MC rollouts).
    """
    out = []
    for i, r in _read_rows(path):
        inp, lab = r.get("input", ""), r.get("label", "")
        parts = inp.split(tag)
        if len(parts) < 2:
            continue
        labels, offset = [], 0
        for j in range(len(parts) - 1):
            offset += len(parts[j])
            ch = lab[offset] if offset < len(lab) else "?"
            if ch not in "+-":
                raise ValueError(f"{path}: row {i}: expected '+' or '-' in label at char {offset}, got {ch!r}")
            labels.append(1.0 if ch == "+" else 0.0)
            offset += 1
        first = parts[0]
        m = re.search(r"Step\s*1\s*:", first)
        problem = first[: m.start()].strip() if m else ""
        parts[0] = first[m.start():] if m else first
        steps = [_STEP_PREFIX.sub("", p).strip() for p in parts[:-1]]
        if not problem or any(not s for s in steps):
            continue
        out.append({"kind": "steps", "problem_id": f"math-shepherd-{i}", "problem": problem,
                    "steps": steps, "labels": labels, "source": f"math-shepherd:{r.get('task', '')}"})
    return out


def import_prmbench(path, *, originals: bool = True) -> list[dict]:
    """PRMBench rows -> step records: the original process all correct; the modified one wrong
    from its first error step on (``error_steps`` counts from 1; prefix-correctness labels)."""
    paths = sorted(Path(path).glob("*.jsonl")) if Path(path).is_dir() else [Path(path)]
    out, seen = [], set()
    for p in paths:
        for i, r in _read_rows(p):
            rid = r.get("idx") or f"{p.stem}-{i}"
            orig, mod = r.get("original_process") or [], r.get("modified_process") or []
            err = [int(e) for e in (r.get("error_steps") or [])]
            if originals and orig and rid not in seen:
                seen.add(rid)
                out.append({"kind": "steps", "problem_id": f"prmbench-{rid}", "problem": r["original_question"],
                            "steps": [s.strip() for s in orig], "labels": [1.0] * len(orig), "source": "prmbench"})
            if mod and err:
                first = min(err)
                labels = [1.0 if j + 1 < first else 0.0 for j in range(len(mod))]
                out.append({"kind": "steps", "problem_id": f"prmbench-{rid}-{r.get('classification', p.stem)}",
                            "problem": r.get("modified_question") or r["original_question"],
                            "split_key": r["original_question"],
                            "steps": [s.strip() for s in mod], "labels": labels,
                            "source": f"prmbench:{r.get('classification', '')}"})
    return [r for r in out if r["steps"] and all(r["steps"])]


_CALC = re.compile(r"<<[^<>]*(?:>>|$)")
_FINAL = re.compile(r"^\s*A:\s*(.*)$")


def gsm8k_example_steps(solution: str) -> list[str]:
    """A GSM8K example solution as policy-style steps: one step per line, calculator
    annotations <<...>> removed, the final "A: x" line written as "The answer is \\boxed{x}."."""
    steps = []
    for line in solution.splitlines():
        line = _CALC.sub("", line).strip()
        if not line:
            continue
        m = _FINAL.match(line)
        steps.append(f"The answer is \\boxed{{{m.group(1).strip()}}}." if m else line)
    return steps


def import_gsm8k_examples(path, *, skip_first: int = GSM8K_TEST_RESERVED, include_reference: bool = True) -> list[dict]:
    """GSM8K example model solutions (4 graded GPT-3 solutions per GSM8K *test* question)
    -> outcome records. Rows ``< skip_first`` are skipped: those test problems stay unseen
    for evaluation. ``include_reference`` adds the reference solution as a correct one."""
    out = []
    for i, r in _read_rows(path):
        if i < skip_first:
            continue
        gold = _FINAL.match(r["ground_truth"].strip().splitlines()[-1])
        answer = gold.group(1).strip() if gold else None
        sols = [(k, v["solution"], bool(v["is_correct"])) for k, v in r.items() if isinstance(v, dict) and "solution" in v]
        if include_reference:
            sols.append(("reference", r["ground_truth"], True))
        for k, text, ok in sols:
            steps = gsm8k_example_steps(text)
            if steps:
                out.append({"kind": "outcome", "problem_id": f"gsm8k-test-{i}", "problem": r["question"],
                            "answer": answer, "steps": steps, "correct": ok, "source": f"gsm8k-examples:{k}"})
    return out


IMPORTERS = {
    "prm800k": import_prm800k,
    "math-shepherd": import_math_shepherd,
    "prmbench": import_prmbench,
    "gsm8k-examples": import_gsm8k_examples,
}


def solution_steps(text: str) -> list[str]:
    return split_steps(text)
