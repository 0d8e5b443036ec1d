"""Problem sets in one record shape: {"id", "problem", "answer", "source"}.

    load_problems("gsm8k")                        # bundled GSM8K test (1,319)
    load_problems("math500")                      # bundled MATH-500
    load_problems("gsm8k-train", data_dir=...)    # train splits read from the shared data folder
    load_problems("gsm8k-heldout200")             # a fixed held-out slice of GSM8K test
    load_problems("my.jsonl", problem_field="question", answer_field="gold")

`REGISTRY` is the one list of named sets: a `Dataset` (a JSONL file and how its rows
become records) or a `Slice` (a fixed part of another entry). A new problem set is one
entry there; search, training, pools and eval all load through `load_problems`.

Files are read through the `datasets` library (JSON builder, no network). GSM8K's
gold answer is the text after `####` (thousands separators removed); MATH's is its
`answer` field, or the last \\boxed{} of `solution` for the train split, which has
no answer field.

Held-out slices are what reports are measured on and no training may use: nothing is
tuned on them (thresholds, hyper-parameters and checkpoints are chosen on training pools
or other test problems). `is_heldout(text)` lets a data builder drop them from anything
it reads (GSM8K's example-solution file, for one, covers the whole test set).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from policies import settings

log = logging.getLogger(__name__)

DATA_DIR = Path(__file__).resolve().parent / "data"
MATH_META = ("level", "subject", "type")  # MATH metadata kept on records: held-out slices balance on level


class DatasetError(ValueError):
    pass


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


# ---- row -> record, one function per file format: (row, entry name, row index) -> {"id",
# "problem", "answer"}, or None to skip the row

def gsm8k_record(r: dict, name: str, idx: int) -> dict:
    return {"id": f"{name}-{idx}", "problem": r["question"], "answer": gsm8k_gold(r["answer"])}


def _meta_value(key: str, value):
    """MATH train writes levels as "Level 3" (MATH-500: 3); both become the int. "Level ?" stays."""
    if key == "level" and isinstance(value, str) and value.removeprefix("Level ").isdigit():
        return int(value.removeprefix("Level "))
    return value


def math500_record(r: dict, name: str, idx: int) -> dict:
    return {"id": r.get("unique_id") or f"{name}-{idx}", "problem": r["problem"], "answer": r["answer"]}


def math_solution_record(r: dict, name: str, idx: int) -> dict | None:
    """MATH rows with a worked `solution` and no answer field: the gold is its last \\boxed{}."""
    gold = last_boxed(r["solution"])
    if gold is None:
        log.warning("%s row %d has no \\boxed answer; skipped", name, idx)
        return None
    return {"id": f"{name}-{idx}", "problem": r["problem"], "answer": gold}


@dataclass(frozen=True)
class Dataset:
    """A named JSONL problem file."""

    file: str
    """Path of the file, relative to policies/data (bundled) or to the shared data folder."""
    style: str
    """Prompt style that suits it ("gsm8k" or "math"; policies/prompts)."""
    record: Callable[[dict, str, int], dict | None]
    """Row -> record (see `gsm8k_record`); None skips the row."""
    shared: bool = False
    """Read from the shared data folder (--data-dir, or TTS_MATH_DATA, or ../shared/data)."""
    meta: tuple[str, ...] = ()
    """Columns copied onto every record after "source" (MATH: level, subject, type)."""

    def path(self, name: str, data_dir: str | os.PathLike | None) -> Path:
        if not self.shared:
            return DATA_DIR / self.file
        root = Path(data_dir) if data_dir else settings.shared_data_dir()
        if root is None:
            raise DatasetError(
                f"dataset {name!r} is read from the shared data folder; pass --data-dir PATH "
                "(the folder holding gsm8k/ and math/) or set TTS_MATH_DATA"
            )
        path = root / self.file
        if not path.is_file():
            raise DatasetError(f"dataset {name!r}: {path} does not exist; check --data-dir")
        return path

    def load(self, name: str, *, limit: int | None, offset: int, data_dir) -> list[dict]:
        rows = _read_jsonl(self.path(name, data_dir))
        _check_range(limit, offset, len(rows), name)
        end = len(rows) if limit is None else min(len(rows), offset + limit)
        out = []
        for i, r in enumerate(rows.select(range(offset, end))):
            rec = self.record(r, name, offset + i)
            if rec is not None:
                out.append({**rec, "source": name, **{k: _meta_value(k, r[k]) for k in self.meta if k in r}})
        return out


@dataclass(frozen=True)
class Slice:
    """A fixed part of another entry, in that entry's order and with its ids."""

    of: str
    """The entry it is cut from."""
    offset: int = 0
    limit: int | None = None
    """Problems offset..offset+limit-1 of `of` (limit None: to the end)."""
    stride: int = 1
    """Every stride-th problem of `of` from `offset` (then the first `limit` of those): a
    spread over a file that is ordered by subject."""
    per_level: int | None = None
    """Instead: the first `per_level` problems of each MATH level."""
    heldout: bool = True
    """Reports are measured on it and no training may use it."""

    def __post_init__(self) -> None:
        if self.per_level is not None and (self.offset or self.limit is not None or self.stride != 1):
            raise ValueError(f"Slice of {self.of!r}: per_level or offset/limit/stride, not both")
        for name, v, low in (("offset", self.offset, 0), ("limit", self.limit, 1), ("stride", self.stride, 1),
                             ("per_level", self.per_level, 1)):
            if v is not None and (not isinstance(v, int) or v < low):
                raise ValueError(f"Slice of {self.of!r}: {name} must be an int >= {low}, got {v!r}")

    @property
    def dataset(self) -> Dataset:
        return _dataset(self.of)

    @property
    def style(self) -> str:
        return self.dataset.style

    @property
    def shared(self) -> bool:
        return self.dataset.shared

    def load(self, name: str, *, limit: int | None, offset: int, data_dir) -> list[dict]:
        rows = self.rows(data_dir)
        _check_range(limit, offset, len(rows), name)
        return rows[offset:None if limit is None else offset + limit]

    def rows(self, data_dir=None) -> list[dict]:
        if self.per_level is None and self.stride == 1:
            return load_problems(self.of, offset=self.offset, limit=self.limit, data_dir=data_dir)
        if self.per_level is None:
            spread = load_problems(self.of, data_dir=data_dir)[self.offset::self.stride]
            return spread if self.limit is None else spread[:self.limit]
        out, seen = [], {}
        for r in load_problems(self.of, data_dir=data_dir):  # dataset order within each level
            lvl = r.get("level")
            if seen.get(lvl, 0) < self.per_level:
                seen[lvl] = seen.get(lvl, 0) + 1
                out.append(r)
        return out


# the one registry of named problem sets
REGISTRY: dict[str, Dataset | Slice] = {
    "gsm8k": Dataset("gsm8k_test.jsonl", "gsm8k", gsm8k_record),
    "math500": Dataset("math500_test.jsonl", "math", math500_record, meta=MATH_META),
    "gsm8k-train": Dataset("gsm8k/train.jsonl", "gsm8k", gsm8k_record, shared=True),
    "gsm8k-test": Dataset("gsm8k/test.jsonl", "gsm8k", gsm8k_record, shared=True),
    "math-train": Dataset("math/math_train_7500.jsonl", "math", math_solution_record, shared=True, meta=MATH_META),
    "gsm8k-heldout200": Slice("gsm8k", offset=1000, limit=200),  # GSM8K test problems 1000..1199
    "math500-heldout100": Slice("math500", per_level=20),  # MATH-500: the first 20 of each level 1..5
    # a second GSM8K held-out slice, test problems 300..499: no scorer, threshold or search setting
    # was chosen on them (example solutions of test 0..499 are never imported for training; the
    # search benches read test 0..31, the pair benches example rows 0..127)
    "gsm8k-heldout200b": Slice("gsm8k", offset=300, limit=200),
    # training: every 18th problem of MATH train (ordered by subject: all seven subjects, levels as they come)
    "math-train-spread": Slice("math-train", stride=18, heldout=False),
    # validation: GSM8K train problems 840..1039, past every pool, label file and training set made so
    # far (they used train 0..839); it chooses between scorers (docs/training.md) and reports nothing.
    # Not in HELDOUT (that would make every training run read the shared data folder): a training set
    # drawn from GSM8K train past 839 must leave it out itself.
    "gsm8k-train-val200": Slice("gsm8k-train", offset=840, limit=200, heldout=False),
}


def _dataset(name: str) -> Dataset:
    entry = REGISTRY[name]
    return entry if isinstance(entry, Dataset) else entry.dataset


NAMES = sorted(REGISTRY)
HELDOUT = tuple(name for name, e in REGISTRY.items() if isinstance(e, Slice) and e.heldout)
SHARED = tuple(name for name, e in REGISTRY.items() if e.shared)


def prompt_style(name_or_path: str) -> str:
    """The prompt template style that suits a dataset ("gsm8k" or "math")."""
    if name_or_path in REGISTRY:
        return REGISTRY[name_or_path].style
    return "math" if "math" in Path(name_or_path).name.lower() else "gsm8k"


def check_options(dataset: str, problem_field=None, answer_field=None, data_dir=None) -> None:
    """Dataset options that do not apply to the dataset asked for are refused (ValueError
    naming the flag), before anything is read."""
    if dataset in REGISTRY:
        for flag, v in (("--problem-field", problem_field), ("--answer-field", answer_field)):
            if v is not None:
                raise ValueError(f"{flag} applies to JSONL datasets only; {dataset}'s fields are built in (drop {flag})")
    if data_dir is not None and dataset not in SHARED:
        entry = REGISTRY.get(dataset)
        what = ("is a file path" if entry is None else "is a held-out slice of bundled data"
                if isinstance(entry, Slice) else "is bundled")
        raise ValueError(f"--data-dir applies to {', '.join(sorted(SHARED))} (read from the shared data folder); "
                         f"{dataset} {what}: drop --data-dir")


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

    name: a `REGISTRY` entry or a JSONL path. limit: at most this many (>= 1; None: all);
    offset: skip the first `offset` (it must leave at least one problem). problem_field /
    answer_field / id_field apply to JSONL files only.
    """
    if name in REGISTRY:
        if problem_field or answer_field or id_field:
            raise DatasetError(f"problem/answer/id fields apply to JSONL datasets only; {name}'s are built in")
        return REGISTRY[name].load(name, limit=limit, offset=offset, data_dir=data_dir)
    return _load_jsonl(name, limit=limit, offset=offset, problem_field=problem_field,
                       answer_field=answer_field, id_field=id_field)


def _load_jsonl(name: str, *, limit, offset, problem_field, answer_field, id_field) -> list[dict]:
    """Any JSONL file: the problem and gold fields named, or guessed from common names."""
    path = Path(name).expanduser()
    if not path.is_file():
        raise DatasetError(
            f"dataset {name!r}: no such file, and not one of {NAMES}; pass a JSONL path "
            "with --problem-field/--answer-field"
        )
    rows = _read_jsonl(path)
    _check_range(limit, offset, len(rows), name)
    cols = set(rows.column_names)
    pf = problem_field or next((f for f in ("problem", "question") if f in cols), None)
    af = answer_field or next((f for f in ("answer", "gold", "ground_truth") if f in cols), None)
    for flag, f in (("--problem-field", pf), ("--answer-field", af)):
        if f is None or f not in cols:
            raise DatasetError(f"{path}: field {f!r} not found (columns: {sorted(cols)}); pass {flag} NAME")
    end = len(rows) if limit is None else min(len(rows), offset + limit)
    records = []
    for i, r in enumerate(rows.select(range(offset, end))):
        gold = "" if r[af] is None else str(r[af])  # a null gold is blank: recorded as invalid_gold
        if "####" in gold:
            gold = gsm8k_gold(gold)
        rid = str(r[id_field]) if id_field else str(r.get("id", f"{path.stem}-{offset + i}"))
        records.append({"id": rid, "problem": r[pf], "answer": gold, "source": str(path)})
    return records


@lru_cache(maxsize=1)
def heldout_texts() -> frozenset[str]:
    """Problem texts of every held-out slice (whitespace-normalised)."""
    return frozenset(normalize(p["problem"]) for name in HELDOUT for p in load_problems(name))


def normalize(text: str) -> str:
    return " ".join(text.split())


def is_heldout(problem_text: str) -> bool:
    return normalize(problem_text) in heldout_texts()
