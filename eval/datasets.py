"""Problem sets in one record shape: {"id", "problem", "answer", "source"}.

    load_problems("gsm8k")                        # bundled GSM8K test (1,319)
    load_problems("math500")                      # bundled MATH-500
    load_problems("gsm8k-train", data_dir=...)    # train splits read from a path
    load_problems("my.jsonl", problem_field="question", answer_field="gold")

Files are read through the `datasets` library (JSON builder, no network). GSM8K's
gold answer is the text after `####` (thousands separators removed); MATH's is its
`answer` field, or the last \\boxed{} of `solution` for the train split, which has
no answer field.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from policies import settings

log = logging.getLogger(__name__)

DATA_DIR = Path(__file__).resolve().parent / "data"

# name -> (file, relative to the bundled folder or to the shared data dir, style)
BUNDLED = {
    "gsm8k": ("gsm8k_test.jsonl", "gsm8k"),
    "math500": ("math500_test.jsonl", "math"),
}
FROM_DATA_DIR = {
    "gsm8k-train": ("gsm8k/train.jsonl", "gsm8k"),
    "gsm8k-test": ("gsm8k/test.jsonl", "gsm8k"),
    "math-train": ("math/math_train_7500.jsonl", "math"),
}
NAMES = sorted([*BUNDLED, *FROM_DATA_DIR])


class DatasetError(ValueError):
    pass


def prompt_style(name_or_path: str) -> str:
    """The prompt template style that suits a dataset ("gsm8k" or "math")."""
    if name_or_path in BUNDLED:
        return BUNDLED[name_or_path][1]
    if name_or_path in FROM_DATA_DIR:
        return FROM_DATA_DIR[name_or_path][1]
    return "math" if "math" in Path(name_or_path).name.lower() else "gsm8k"


def gsm8k_gold(answer_field: str) -> str:
    if "####" not in answer_field:
        raise DatasetError(f"GSM8K answer has no '####' marker: {answer_field[-80:]!r}")
    return answer_field.rsplit("####", 1)[1].strip().replace(",", "")


def last_boxed(text: str) -> str | None:
    """Content of the last \\boxed{...} or \\fbox{...}, nested braces kept."""
    for marker in ("\\boxed{", "\\fbox{"):
        i = text.rfind(marker)
        if i < 0:
            continue
        j = i + len(marker)
        depth, k = 1, j
        while k < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[k], 0)
            k += 1
        if depth == 0:
            return text[j : k - 1].strip()
    return None


def _read_jsonl(path: Path):
    import datasets

    bad = _first_bad_line(path)  # named by line number, before pyarrow reports a byte offset
    if bad is not None:
        raise DatasetError(bad)
    datasets.disable_progress_bars()
    try:
        return datasets.load_dataset("json", data_files=str(path), split="train")
    except Exception as e:
        raise DatasetError(f"cannot read {path} as JSONL: {type(e).__name__}: {str(e)[:200]}") from None


def _first_bad_line(path: Path) -> str | None:
    """`PATH:LINE: what is wrong` for the first line that is not a JSON object, or for a
    file without any (None: every line is one)."""
    import json

    rows = 0
    with open(path, "rb") as fh:
        for n, raw in enumerate(fh, 1):
            if not raw.strip():
                continue
            try:
                row = json.loads(raw.decode("utf-8"))
            except UnicodeDecodeError as e:
                return f"{path}:{n}: not UTF-8 text (bad byte at column {e.start + 1}); save the file as UTF-8"
            except json.JSONDecodeError as e:
                return f"{path}:{n}: not valid JSON ({e.msg} at column {e.colno}); each line must be one JSON object"
            except (RecursionError, ValueError) as e:
                return f"{path}:{n}: cannot be parsed ({type(e).__name__}); each line must be one JSON object"
            if not isinstance(row, dict):
                return f"{path}:{n}: a JSON {type(row).__name__}, not an object; each line must be one JSON object"
            rows += 1
    if not rows:
        return f"{path} is empty; a dataset is a JSONL file with one JSON object per problem"
    return None


def _check_range(limit: int | None, offset: int, total: int, what: str) -> None:
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise DatasetError(f"limit must be an int >= 1, got {limit!r} (omit --limit for every problem)")
    if not isinstance(offset, int) or offset < 0:
        raise DatasetError(f"offset must be an int >= 0, got {offset!r}")
    if offset >= total:
        raise DatasetError(f"offset {offset} is past the end of {what} ({total} problems); "
                           f"use an --offset below {total}")


def load_problems(
    name: str,
    *,
    limit: int | None = None,
    offset: int = 0,
    data_dir: str | os.PathLike | None = None,
    problem_field: str | None = None,
    answer_field: str | None = None,
    id_field: str | None = None,
) -> list[dict]:
    """Problems as a list of {"id", "problem", "answer", "source"} dicts.

    limit: at most this many (>= 1; None: all); offset: skip the first `offset` (it must
    leave at least one problem). problem_field / answer_field apply to JSONL files only.
    """
    if (name in BUNDLED or name in FROM_DATA_DIR) and (problem_field or answer_field or id_field):
        raise DatasetError(f"problem/answer/id fields apply to JSONL datasets only; {name}'s are built in")
    if name in BUNDLED:
        path, kind = DATA_DIR / BUNDLED[name][0], name
    elif name in FROM_DATA_DIR:
        root = Path(data_dir) if data_dir else settings.shared_data_dir()
        if root is None:
            raise DatasetError(
                f"dataset {name!r} is read from the shared data folder; pass --data-dir PATH "
                "(the folder holding gsm8k/ and math/) or set TTS_MATH_DATA"
            )
        path, kind = root / FROM_DATA_DIR[name][0], name
        if not path.is_file():
            raise DatasetError(f"dataset {name!r}: {path} does not exist; check --data-dir")
    else:
        path, kind = Path(name).expanduser(), "jsonl"
        if not path.is_file():
            raise DatasetError(
                f"dataset {name!r}: no such file, and not one of {NAMES}; pass a JSONL path "
                "with --problem-field/--answer-field"
            )
    rows = _read_jsonl(path)
    _check_range(limit, offset, len(rows), name)
    cols = set(rows.column_names)
    records = []
    end = len(rows) if limit is None else min(len(rows), offset + limit)
    for i, r in enumerate(rows.select(range(offset, end))):
        idx = offset + i
        if kind in ("gsm8k", "gsm8k-train", "gsm8k-test"):
            rec = {"id": f"{kind}-{idx}", "problem": r["question"], "answer": gsm8k_gold(r["answer"])}
        elif kind == "math500":
            rec = {"id": r.get("unique_id") or f"math500-{idx}", "problem": r["problem"], "answer": r["answer"]}
        elif kind == "math-train":
            gold = last_boxed(r["solution"])
            if gold is None:
                log.warning("math-train row %d has no \\boxed answer; skipped", idx)
                continue
            rec = {"id": f"math-train-{idx}", "problem": r["problem"], "answer": gold}
        else:
            pf = problem_field or next((f for f in ("problem", "question") if f in cols), None)
            af = answer_field or next((f for f in ("answer", "gold", "ground_truth") if f in cols), None)
            for flag, f in (("--problem-field", pf), ("--answer-field", af)):
                if f is None or f not in cols:
                    raise DatasetError(
                        f"{path}: field {f!r} not found (columns: {sorted(cols)}); pass {flag} NAME"
                    )
            gold = "" if r[af] is None else str(r[af])  # a null gold is blank: recorded as invalid_gold
            if "####" in gold:
                gold = gsm8k_gold(gold)
            rid = str(r[id_field]) if id_field else str(r.get("id", f"{path.stem}-{idx}"))
            rec = {"id": rid, "problem": r[pf], "answer": gold}
        rec["source"] = kind if kind != "jsonl" else str(path)
        for k in ("level", "subject", "type"):  # MATH metadata: held-out slices balance on level
            if kind in ("math500", "math-train") and k in cols:
                rec[k] = r[k]
        records.append(rec)
    return records
