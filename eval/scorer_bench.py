"""Scorer benchmarks without generation: ProcessBench, GSM8K pairs, best-of-n pools.

    result = run_bench("processbench-gsm8k", scorer, limit=100)
    result = run_bench("gsm8k-pairs", scorer, agg="min", limit=200)
    result = run_bench("bon-pool", scorer, path="runs/x.jsonl")   # any search output

Benches (default files in the shared data folder; `path` takes any JSONL in the
bench's format, so users bring their own):

- processbench-gsm8k / processbench-math (`processbench/{gsm8k,math}.jsonl`; rows
  {"id", "problem", "steps", "label"}): a step is flagged wrong when its score is
  below a threshold; the prediction is the first flagged step (-1: none). Reported:
  accuracy on erroneous solutions (exact first wrong step), on correct ones, and
  their harmonic mean F1 (ProcessBench's metric). The threshold is never tuned on
  the rows it scores: by default rows are split in two folds by a hash of their
  id, each fold is scored with the threshold that maximises F1 on the other fold
  ("2-fold"); or `calibration` names another bench or file to tune on (PRMBench
  files or their folder are read as ProcessBench rows; `calibration_limit` rows); or
  `threshold` fixes it. A scorer whose card carries a threshold fixed on its
  training data (`scorer.step_threshold`: the probe's, see rewards/train/probe.py)
  is scored with that one when neither is given (`card_threshold=False`: 2-fold);
  the 2-fold F1 is then reported beside it for reference. Outcome scorers (ORM)
  score every prefix of a solution.
- gsm8k-pairs (`gsm8k/example_model_solutions.jsonl`: per problem, GPT-3 solutions
  with is_correct labels): every (correct, incorrect) pair of one problem is a
  chosen/rejected pair; pair accuracy counts ties as half (RewardBench). Own files:
  rows {"problem"|"prompt", "chosen", "rejected"} (strings or step lists).
- bon-pool (default: the same example solutions, 4 per problem; or any search
  output, or rows {"problem", "gold", "candidates": [{"steps"|"text", "correct"}]}):
  accuracy of the scorer's argmax and weighted vote over a fixed pool, against
  random choice (mean correctness), plain majority vote and the oracle (any correct).

Intervals are bootstrap 95% over problems. `limit` takes the first N problems;
for ProcessBench, whose files are sorted (erroneous solutions first), N rows in a
fixed pseudo-random order (a hash of the id). The result records the limit.
"""

from __future__ import annotations

import json
import logging
import math
import time
import zlib
from pathlib import Path

from eval import metrics
from eval.registry import BENCHES  # bench -> default file

log = logging.getLogger(__name__)
_EXAMPLE_KEYS = ("6b_finetuning", "6b_verification", "175b_finetuning", "175b_verification")


def default_path(bench: str, data_dir: str | Path | None = None) -> Path:
    if bench not in BENCHES:
        raise ValueError(f"unknown bench {bench!r}; valid: {', '.join(BENCHES)}")
    if data_dir is None:
        from policies import settings

        data_dir = settings.shared_data_dir()
        if data_dir is None:
            raise FileNotFoundError(
                f"--bench {bench}: the shared data folder (../shared/data) is missing; "
                "pass --data-dir DIR or --data FILE.jsonl")
    return Path(data_dir) / BENCHES[bench]


def read_jsonl(path: str | Path, what: str) -> list[dict]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file; pass a {what} JSONL file")
    rows = []
    for ln, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            raise ValueError(f"{path}:{ln}: not JSON; a {what} file has one JSON object per line") from None
        if not isinstance(row, dict):
            raise ValueError(f"{path}:{ln}: not a JSON object; a {what} file has one object per line")
        rows.append(row)
    return rows


def to_steps(text) -> list[str]:
    """A solution as steps: a list is kept; a string splits on blank lines, or on
    lines when it has none (GSM8K-style one-step-per-line solutions)."""
    if isinstance(text, list):
        return [str(s) for s in text if str(s).strip()]
    text = str(text)
    sep = "\n\n" if "\n\n" in text else "\n"
    return [s.strip() for s in text.split(sep) if s.strip()]


def gsm8k_final(text: str) -> str | None:
    """The final answer of a GSM8K reference or example solution (after '####' or 'A:')."""
    for marker in ("####", "\nA:"):
        if marker in text:
            return text.rsplit(marker, 1)[1].strip().replace(",", "")
    return None


def _fold(row_id) -> int:
    return zlib.crc32(str(row_id).encode()) % 2


# ---------------------------------------------------------------- scoring


def check_lengths(scorer, problems: list[str], solutions: list[list[str]], *, what: str = "solutions",
                  names: list | None = None) -> None:
    """Raise one ValueError for the first solution the scorer refuses for its length
    (``scorer.length_error``), before anything is scored; ``names`` (row ids) name it."""
    check = getattr(scorer, "length_error", None)
    if check is None:
        return
    for i, (p, s) in enumerate(zip(problems, solutions, strict=True)):
        msg = check(p, s)
        if msg is not None:
            row = f"row {names[i]!r}" if names is not None else f"item {i} (0-based)"
            raise ValueError(f"{row} of {len(solutions)} {what} is {msg}")


def score_all(scorer, problems: list[str], solutions: list[list[str]], *, golds=None, batch_size: int = 16,
              what: str = "solutions", on_batch=None, checked: bool = False) -> list[list[float]]:
    """scorer.score in batches (empty solutions get [] without a call); after each batch
    ``on_batch(done, total, what)`` when given (a progress line). Lengths are checked first
    (``check_lengths``) unless ``checked`` says the caller has done it."""
    needs_golds = bool(getattr(scorer, "needs_golds", False))
    if needs_golds and (golds is None or any(g is None for g in golds)):
        raise ValueError(f"the {getattr(scorer, 'kind', '?')} scorer needs a gold answer per solution; "
                         "this bench has none: use --reward prm, orm, tinyrm or none")
    if not checked:
        check_lengths(scorer, problems, solutions, what=what)
    out: list[list[float]] = [[] for _ in solutions]
    idx = [i for i, s in enumerate(solutions) if s]
    t0 = time.perf_counter()
    for start in range(0, len(idx), batch_size):
        chunk = idx[start : start + batch_size]
        kw = {"golds": [golds[i] for i in chunk]} if needs_golds else {}
        res = scorer.score([problems[i] for i in chunk], [solutions[i] for i in chunk], **kw)
        for i, s in zip(chunk, res, strict=True):
            out[i] = [float(x) for x in s]
        log.info("scored %d/%d %s (%.0f s)", min(start + batch_size, len(idx)), len(idx), what,
                 time.perf_counter() - t0)
        if on_batch is not None:
            on_batch(min(start + batch_size, len(idx)), len(idx), what)
    return out


def step_scores(scorer, problems: list[str], solutions: list[list[str]], *, checked: bool = False,
                **kw) -> list[list[float]]:
    """One score per step: a step-level scorer directly; an outcome scorer scores
    every prefix of every solution (one score each). The whole solutions' lengths are
    checked first (``check_lengths``; a prefix is never longer) unless ``checked``."""
    if not checked:
        check_lengths(scorer, problems, solutions)
    kw["checked"] = True
    if getattr(scorer, "granularity", "step") == "step":
        return score_all(scorer, problems, solutions, **kw)
    flat_p, flat_s, owner = [], [], []
    for j, (p, s) in enumerate(zip(problems, solutions, strict=True)):
        for k in range(1, len(s) + 1):
            flat_p.append(p)
            flat_s.append(s[:k])
            owner.append(j)
    flat = score_all(scorer, flat_p, flat_s, what="prefixes", **kw)
    out: list[list[float]] = [[] for _ in solutions]
    for j, sc in zip(owner, flat, strict=True):
        out[j].append(sc[-1] if sc else math.nan)
    return out


def _value(scores: list[float], agg: str) -> float | None:
    if not scores:
        return None
    from rewards.aggregators import get

    return float(get(agg)(scores))


def _ci(x, n_boot, seed):
    lo, hi = metrics.bootstrap_ci(x, n_boot=n_boot, seed=seed)
    return [lo, hi]


# ---------------------------------------------------------------- ProcessBench


def is_prmbench(path: str | Path) -> bool:
    """A PRMBench file, or a folder of them (rows with original_process, modified_process,
    error_steps), e.g. ../shared/data/prm_step_labels/prmbench_train."""
    path = Path(path)
    files = sorted(path.glob("*.jsonl")) if path.is_dir() else [path]
    if not files or not files[0].is_file():
        return False
    with files[0].open(encoding="utf-8") as fh:
        first = fh.readline()
    try:
        row = json.loads(first)
    except json.JSONDecodeError:
        return False
    return isinstance(row, dict) and {"original_process", "modified_process", "error_steps"} <= set(row)


def prmbench_rows(path: str | Path) -> list[dict]:
    """PRMBench as ProcessBench rows: each original process once (label -1: all right)
    and each error-injected copy (label = its first error step, 0-based), read through
    the training importer (rewards.train.data.import_prmbench). Training-type data (PRM800K
    train problems), so a calibration set that shares nothing with ProcessBench."""
    from rewards.train.data import import_prmbench

    out = []
    for r in import_prmbench(path):
        wrong = [i for i, x in enumerate(r["labels"]) if x < 0.5]
        if r["source"] != "prmbench" and not wrong:
            continue  # an injected error past the last step: no first-error label
        out.append({"id": r["problem_id"], "problem": r["problem"], "steps": r["steps"],
                    "label": wrong[0] if wrong else -1})
    return out


def load_processbench(path: str | Path, limit: int | None = None) -> list[dict]:
    """ProcessBench rows (a JSONL file); PRMBench files or a folder of them are converted
    (``prmbench_rows``) so that they can serve as a calibration set."""
    if is_prmbench(path):
        rows = prmbench_rows(path)
    else:
        rows = read_jsonl(path, "ProcessBench")
        for ln, r in enumerate(rows, 1):
            if not isinstance(r.get("steps"), list) or not isinstance(r.get("label"), int) or "problem" not in r:
                raise ValueError(f"{path}: row {ln} needs 'problem', 'steps' (list) and 'label' (int, -1 = all "
                                 "right); see processbench/gsm8k.jsonl for the format")
            r.setdefault("id", str(ln - 1))
    if limit:
        # the official files are sorted (erroneous first): take a fixed pseudo-random
        # subset (order of a hash of the id) so that both groups are represented
        rows = sorted(rows, key=lambda r: (zlib.crc32(f"limit:{r['id']}".encode()), str(r["id"])))[:limit]
    return rows


TWO_FOLD = "2-fold by id hash: each fold uses the threshold tuned on the other"


def _two_fold(rows: list[dict], scores: list[list[float]], labels: list[int],
              ratio: float = 0.0, start: int = 0) -> tuple[list[float], dict]:
    """Per-row thresholds: each id-hash fold gets the one tuned on the other fold (with a
    fixed drop ratio)."""
    folds = [_fold(r["id"]) for r in rows]
    if len(set(folds)) < 2:
        raise ValueError("ProcessBench 2-fold thresholding needs rows in both folds; "
                         "raise --limit or pass --threshold / --calibration")
    per_row, per_fold = metrics.cross_fitted_thresholds(scores, labels, folds, fold_ids=(0, 1), ratio=ratio,
                                                             start=start)
    return per_row, {f"fold{f}": t for f, t in per_fold.items()}


def card_threshold_method(info: dict | None) -> str:
    """Where a scorer's card threshold came from, in one line (the card's entry, with
    its criterion, goes into the result as ``threshold_card``)."""
    data = (info or {}).get("pool") or "its training data"
    return f"scorer card: fixed on training data ({data}), not on this bench"


def processbench(
    scorer,
    rows: list[dict],
    *,
    threshold: float | None = None,
    calibration_rows: list[dict] | None = None,
    card_threshold: bool = True,
    batch_size: int = 16,
    n_boot: int = 2000,
    seed: int = 0,
    on_batch=None,
    arithmetic: bool = False,
    ratio: float | None = None,
    ratio_start: int | None = None,
) -> dict:
    """ProcessBench error_acc / correct_acc / F1 with an honestly chosen threshold:
    ``threshold`` if given, else tuned on ``calibration_rows``, else the scorer's card
    threshold (``scorer.step_threshold``, unless ``card_threshold`` is False), else 2-fold.
    ``ratio``: a drop ratio (``rewards.flagging.first_drop``: a step below ratio x the
    previous step's score is flagged too), fixed whichever way the threshold is chosen;
    None takes the card's with the card's threshold and none otherwise; ``ratio_start``
    (0 or 1, the first step the drop applies to) likewise.
    ``arithmetic``: a step with a false equation (``verifiers.arithmetic``) is flagged too,
    whatever its score; the prediction is the earlier of the two (``with_arithmetic``)."""
    carded = getattr(scorer, "step_threshold", None) if card_threshold else None
    use_card = threshold is None and calibration_rows is None and carded is not None
    drop = float(ratio) if ratio is not None else (float(getattr(scorer, "step_ratio", 0.0) or 0.0) if use_card else 0.0)
    if not 0.0 <= drop < 1.0:  # before any scoring
        raise ValueError(f"--drop-ratio must be in [0, 1), got {drop}")
    start = metrics.check_start(ratio_start if ratio_start is not None else (
        int(getattr(scorer, "step_ratio_start", 0) or 0) if use_card and ratio is None else 0))
    problems = [r["problem"] for r in rows]
    sols = [[str(s) for s in r["steps"]] for r in rows]
    labels = [int(r["label"]) for r in rows]
    check_lengths(scorer, problems, sols, names=[r.get("id", i) for i, r in enumerate(rows)])
    if calibration_rows is not None:  # before any scoring too
        cal_problems = [r["problem"] for r in calibration_rows]
        cal_sols = [[str(s) for s in r["steps"]] for r in calibration_rows]
        check_lengths(scorer, cal_problems, cal_sols, what="calibration rows",
                      names=[r.get("id", i) for i, r in enumerate(calibration_rows)])
    scores = step_scores(scorer, problems, sols, batch_size=batch_size, on_batch=on_batch, checked=True)
    thresholds: dict[str, float] = {}
    reference = None
    if threshold is not None:
        method = "fixed"
        per_row = [threshold] * len(rows)
        thresholds["all"] = threshold
    elif calibration_rows is not None:
        method = "calibration file"
        cal_scores = step_scores(scorer, cal_problems, cal_sols, batch_size=batch_size, on_batch=on_batch,
                                 checked=True)
        t, f1 = metrics.choose_threshold(cal_scores, [int(row["label"]) for row in calibration_rows], drop,
                                         start)
        thresholds["all"] = t
        thresholds["calibration_f1"] = f1
        per_row = [t] * len(rows)
    elif carded is not None:
        info = getattr(scorer, "threshold_info", None)
        method = card_threshold_method(info)
        per_row = [float(carded)] * len(rows)
        thresholds["all"] = float(carded)
        reference = {"two_fold_reference": _two_fold_reference(rows, scores, labels, drop, start), "threshold_card": info}
    else:
        method = TWO_FOLD
        per_row, thresholds = _two_fold(rows, scores, labels, drop, start)
    if drop > 0:
        thresholds["drop_ratio"] = drop
        if start:
            thresholds["drop_ratio_start"] = start
    preds = [metrics.first_error(s, t, drop, start) for s, t in zip(scores, per_row, strict=True)]
    arith = None
    if arithmetic:
        arith = arithmetic_first_errors(sols)
        scorer_only = metrics.processbench_scores(labels, preds)
        preds = with_arithmetic(preds, arith)
        if reference is not None and reference.get("two_fold_reference"):
            ref = reference["two_fold_reference"]
            ref_preds = with_arithmetic(ref.pop("preds"), arith)
            ref.update(metrics.processbench_scores(labels, ref_preds))
    elif reference is not None and reference.get("two_fold_reference"):
        reference["two_fold_reference"].pop("preds")
    res = metrics.processbench_scores(labels, preds)
    if reference is not None:
        res.update({k: v for k, v in reference.items() if v is not None})
    if arith is not None:
        res["arithmetic"] = {"rule": ARITHMETIC_RULE, "scorer_only": scorer_only,
                             "arithmetic_only": metrics.processbench_scores(labels, arith),
                             "solutions_with_a_false_equation": sum(a >= 0 for a in arith)}
    err_hits = [float(p == y) for p, y in zip(preds, labels, strict=True) if y >= 0]
    ok_hits = [float(p == -1) for p, y in zip(preds, labels, strict=True) if y < 0]
    return {
        **res,
        "error_acc_ci": _ci(err_hits, n_boot, seed),
        "correct_acc_ci": _ci(ok_hits, n_boot, seed),
        "f1_ci": f1_interval(labels, preds, n_boot, seed),
        "threshold_method": method,
        "thresholds": thresholds,
        "rule": "a step is wrong when its score < threshold" + (
            metrics.drop_clause(f"{drop:g}", start) if drop > 0 else "")
            + "; prediction = first wrong step, -1 if none",
        "solutions": len(rows),
        "steps_scored": sum(len(s) for s in sols),
        "per_row": [{"id": r["id"], "label": y, "pred": p, "scores": [round(x, 5) for x in s]}
                    for r, y, p, s in zip(rows, labels, preds, scores, strict=True)],
    }


def _two_fold_reference(rows: list[dict], scores: list[list[float]], labels: list[int],
                        ratio: float = 0.0, start: int = 0) -> dict | None:
    """The 2-fold result on the same scores (same drop ratio), for reference beside a card
    threshold (None when a fold is empty, e.g. a tiny --limit)."""
    try:
        per_row, thresholds = _two_fold(rows, scores, labels, ratio, start)
    except ValueError:
        return None
    preds = [metrics.first_error(s, t, ratio, start) for s, t in zip(scores, per_row, strict=True)]
    return {**metrics.processbench_scores(labels, preds), "thresholds": thresholds, "threshold_method": TWO_FOLD,
            "preds": preds}


ARITHMETIC_RULE = ("a step is also wrong when it writes a false equation (verifiers.arithmetic); "
                   "prediction = the earlier of the scorer's and the arithmetic check's first wrong step")


def arithmetic_first_errors(solutions: list[list[str]]) -> list[int]:
    """Per solution, the first step with a false equation (-1: none found)."""
    from verifiers.arithmetic import first_false_step

    out = []
    for steps in solutions:
        i = first_false_step([str(s) for s in steps])
        out.append(-1 if i is None else i)
    return out


def with_arithmetic(preds: list[int], arith: list[int]) -> list[int]:
    """The scorer's first-error predictions combined with the arithmetic check's."""
    return [metrics.earliest(p, a) for p, a in zip(preds, arith, strict=True)]


def f1_interval(labels, preds, n_boot, seed):
    import numpy as np

    y, p = np.asarray(labels), np.asarray(preds)
    if y.size == 0:
        return [None, None]
    rng = np.random.default_rng(seed)
    f1s = []
    for idx in rng.integers(0, y.size, size=(n_boot, y.size)):
        f1 = metrics.processbench_scores(y[idx].tolist(), p[idx].tolist())["f1"]
        if f1 is not None:
            f1s.append(f1)
    if not f1s:
        return [None, None]
    lo, hi = np.quantile(f1s, [0.025, 0.975])
    return [float(lo), float(hi)]


# ---------------------------------------------------------------- pairs and pools


def load_pairs(path: str | Path, limit: int | None = None) -> list[dict]:
    """Problems with their chosen/rejected pairs: [{"id", "problem", "gold", "solutions", "pairs": [(c, r)]}]."""
    rows = read_jsonl(path, "pairs")
    if rows and "question" in rows[0] and any(k in rows[0] for k in _EXAMPLE_KEYS):
        out = []
        for i, r in enumerate(rows):
            sols = [r[k] for k in _EXAMPLE_KEYS if isinstance(r.get(k), dict)]
            good = [j for j, s in enumerate(sols) if s.get("is_correct")]
            bad = [j for j, s in enumerate(sols) if not s.get("is_correct")]
            out.append({"id": str(i), "problem": r["question"], "gold": gsm8k_final(r.get("ground_truth", "")),
                        "solutions": [to_steps(s["solution"]) for s in sols],
                        "pairs": [(g, b) for g in good for b in bad]})
        out = [p for p in out if p["pairs"]] if not limit else [p for p in out[:limit] if p["pairs"]]
        return out
    out = {}
    for ln, r in enumerate(rows, 1):
        prob = r.get("problem", r.get("prompt"))
        if not isinstance(prob, str) or "chosen" not in r or "rejected" not in r:
            raise ValueError(f"{path}: row {ln} needs 'problem' (or 'prompt'), 'chosen' and 'rejected'; "
                             "or pass a GSM8K example_model_solutions file")
        key = str(r.get("id", prob))
        p = out.setdefault(key, {"id": key, "problem": prob, "gold": r.get("gold"), "solutions": [], "pairs": []})
        p["solutions"] += [to_steps(r["chosen"]), to_steps(r["rejected"])]
        p["pairs"].append((len(p["solutions"]) - 2, len(p["solutions"]) - 1))
    probs = list(out.values())
    return probs[:limit] if limit else probs


def pairs_bench(scorer, probs: list[dict], *, agg: str = "min", batch_size: int = 16, n_boot: int = 2000,
                seed: int = 0) -> dict:
    """Pairwise accuracy (ties half); a problem's solutions are scored together."""
    flat_p, flat_s, flat_g, owner = [], [], [], []
    for j, p in enumerate(probs):
        for s in p["solutions"]:
            flat_p.append(p["problem"])
            flat_s.append(s)
            flat_g.append(p.get("gold"))
            owner.append(j)
    scores = score_all(scorer, flat_p, flat_s, golds=flat_g, batch_size=batch_size)
    values: list[list[float | None]] = [[] for _ in probs]
    for j, s in zip(owner, scores, strict=True):
        values[j].append(_value(s, agg))
    num, den, short = [], [], []
    ties = 0
    for p, v in zip(probs, values, strict=True):
        outs = [metrics.pair_outcome(v[c], v[r]) for c, r in p["pairs"]]
        ties += sum(o == 0.5 for o in outs)
        num.append(sum(outs))
        den.append(len(outs))
        # a scorer-free reference: the solution with fewer steps wins
        sol = p["solutions"]
        short.append(sum(metrics.pair_outcome(-len(sol[c]), -len(sol[r])) for c, r in p["pairs"]))
    total = sum(den)
    lo, hi = metrics.bootstrap_ratio_ci(num, den, n_boot=n_boot, seed=seed)
    return {"pair_acc": sum(num) / total if total else None, "pair_acc_ci": [lo, hi], "pairs": total,
            "ties": ties, "problems": len(probs), "solutions": len(flat_s), "agg": agg,
            "shorter_wins_acc": sum(short) / total if total else None}


def load_pool(path: str | Path, limit: int | None = None) -> list[dict]:
    """Problems with a fixed candidate pool: [{"id", "problem", "gold", "candidates":
    [{"steps", "correct", "answer"}]}]. Reads search outputs, GSM8K example
    solutions, or rows {"problem", "gold", "candidates": [{"steps"|"text", "correct"?}]}."""
    from verifiers import extract_answer

    rows = read_jsonl(path, "candidate pool")
    if limit:
        rows = rows[:limit]
    out = []
    for ln, r in enumerate(rows, 1):
        if "question" in r and any(k in r for k in _EXAMPLE_KEYS):
            cands = [{"steps": to_steps(r[k]["solution"]), "correct": bool(r[k].get("is_correct"))}
                     for k in _EXAMPLE_KEYS if isinstance(r.get(k), dict)]
            out.append({"id": str(ln - 1), "problem": r["question"], "gold": gsm8k_final(r.get("ground_truth", "")),
                        "candidates": cands})
            continue
        prob = r.get("problem", r.get("question"))
        if not isinstance(prob, str) or not isinstance(r.get("candidates"), list):
            raise ValueError(f"{path}: row {ln} needs 'problem' and 'candidates' (a list); pass a search output, "
                             "a GSM8K example_model_solutions file, or rows {problem, gold, candidates}")
        cands = []
        for c in r["candidates"]:
            c = c if isinstance(c, dict) else {"text": c}
            steps = to_steps(c["steps"]) if "steps" in c else to_steps(c.get("text", c.get("solution", "")))
            correct = c.get("correct", (c.get("verdict") or {}).get("correct"))
            cands.append({"steps": steps, "correct": correct, "answer": c.get("answer")})
        out.append({"id": str(r.get("id", ln - 1)), "problem": prob, "gold": r.get("gold", r.get("answer")),
                    "candidates": cands})
    # answers and missing verdicts
    from verifiers import grade_many

    for p in out:
        for c in p["candidates"]:
            if c.get("answer") is None and c["steps"]:
                c["answer"] = extract_answer("\n\n".join(c["steps"]))
        missing = [c for c in p["candidates"] if c["correct"] is None]
        if missing and p["gold"] is not None:
            for c, v in zip(missing, grade_many(str(p["gold"]), ["\n\n".join(c["steps"]) for c in missing]), strict=True):
                c["correct"] = bool(v.correct)
    return out


def pool_bench(scorer, probs: list[dict], *, agg: str = "min", batch_size: int = 16, n_boot: int = 2000,
               seed: int = 0) -> dict:
    """Best-of-n over a fixed pool: scorer argmax and weighted vote vs random,
    plain majority and the oracle. Problems without any verdict are left out."""
    probs = [p for p in probs if all(c["correct"] is not None for c in p["candidates"]) and p["candidates"]]
    flat_p, flat_s, flat_g = [], [], []
    for p in probs:
        for c in p["candidates"]:
            flat_p.append(p["problem"])
            flat_s.append(c["steps"])
            flat_g.append(None if p["gold"] is None else str(p["gold"]))
    scores = iter(score_all(scorer, flat_p, flat_s, golds=flat_g, batch_size=batch_size))
    rows = {"scorer argmax (RM@n)": [], "scorer weighted vote": [], "random choice": [],
            "majority vote": [], "oracle (any correct)": []}
    for p in probs:
        cands = p["candidates"]
        correct = [bool(c["correct"]) for c in cands]
        vals = [_value(next(scores), agg) for _ in cands]
        labels = metrics.answer_labels([c.get("answer") for c in cands])
        rows["scorer argmax (RM@n)"].append(metrics.select_correct(correct, vals, labels, "argmax"))
        rows["scorer weighted vote"].append(metrics.select_correct(correct, vals, labels, "weighted_vote"))
        rows["random choice"].append(sum(correct) / len(correct))
        rows["majority vote"].append(metrics.select_correct(correct, [None] * len(cands), labels, "majority"))
        rows["oracle (any correct)"].append(float(any(correct)))
    table = {k: {"acc": (sum(v) / len(v)) if v else None, "ci": _ci(v, n_boot, seed)} for k, v in rows.items()}
    return {"methods": table, "problems": len(probs), "candidates": len(flat_s),
            "pool_size": sorted({len(p["candidates"]) for p in probs}), "agg": agg}


# ---------------------------------------------------------------- entry


def run_bench(
    bench: str,
    scorer,
    *,
    path: str | Path | None = None,
    data_dir: str | Path | None = None,
    limit: int | None = None,
    agg: str = "min",
    threshold: float | None = None,
    calibration: str | None = None,
    calibration_limit: int | None = None,
    card_threshold: bool = True,
    batch_size: int = 16,
    n_boot: int = 2000,
    seed: int = 0,
    on_batch=None,
    arithmetic: bool = False,
    ratio: float | None = None,
    ratio_start: int | None = None,
) -> dict:
    """Run one bench; the result carries the data path, the limit and the scorer.
    on_batch(done, total, what): called after each scored batch (a progress line)."""
    if bench not in BENCHES:
        raise ValueError(f"unknown bench {bench!r}; valid: {', '.join(BENCHES)}")
    if limit is not None and limit < 1:
        raise ValueError(f"--limit must be >= 1, got {limit}.")
    from rewards.aggregators import get

    get(agg)
    path = Path(path) if path else default_path(bench, data_dir)
    t0 = time.perf_counter()
    if bench.startswith("processbench"):
        rows = load_processbench(path, limit)
        cal_rows = None
        if calibration is not None:
            cpath = default_path(calibration, data_dir) if calibration in BENCHES else Path(calibration)
            if cpath.resolve() == path.resolve():
                raise ValueError(f"--calibration {calibration} is the file being scored; the threshold must come "
                                 "from another split (omit --calibration for 2-fold by id)")
            cal_rows = load_processbench(cpath, calibration_limit if calibration_limit is not None else limit)
        res = processbench(scorer, rows, threshold=threshold, calibration_rows=cal_rows,
                           card_threshold=card_threshold, batch_size=batch_size, n_boot=n_boot, seed=seed,
                           on_batch=on_batch, arithmetic=arithmetic, ratio=ratio,
                           ratio_start=ratio_start)
        if calibration is not None:
            res["calibration"] = str(calibration)
            res["calibration_rows"] = len(cal_rows)
    elif bench == "gsm8k-pairs":
        res = pairs_bench(scorer, load_pairs(path, limit), agg=agg, batch_size=batch_size, n_boot=n_boot, seed=seed)
    else:
        res = pool_bench(scorer, load_pool(path, limit), agg=agg, batch_size=batch_size, n_boot=n_boot, seed=seed)
    describe = scorer.describe() if hasattr(scorer, "describe") else {"kind": getattr(scorer, "kind", "?")}
    stats = getattr(scorer, "stats", None)
    return {
        "bench": bench, "data": str(path), "limit": limit, "scorer": describe,
        "seconds": round(time.perf_counter() - t0, 1),
        "scorer_stats": stats.as_dict() if hasattr(stats, "as_dict") else None,
        "bootstrap": {"n_boot": n_boot, "seed": seed, "level": 0.95},
        **res,
    }


def result_rows(res: dict) -> list[tuple[str, str]]:
    """(metric, value) rows for printing."""
    def f(x):
        return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3f}"

    def ci(c):
        return f"[{f(c[0])}, {f(c[1])}]"

    b = res["bench"]
    if b.startswith("processbench"):
        th = ", ".join(f"{k} {v:.4g}" for k, v in res["thresholds"].items())
        rows = [
            ("solutions (erroneous / correct)", f"{res['solutions']} ({res['n_error']} / {res['n_correct']})"),
            ("accuracy on erroneous", f"{f(res['error_acc'])} {ci(res['error_acc_ci'])}"),
            ("accuracy on correct", f"{f(res['correct_acc'])} {ci(res['correct_acc_ci'])}"),
            ("F1", f"{f(res['f1'])} {ci(res['f1_ci'])}"),
            ("threshold", f"{th} ({res['threshold_method']})"),
        ]
        ref = res.get("two_fold_reference")
        if ref is not None:
            rows.append(("reference: F1 with 2-fold thresholds", f"{f(ref['f1'])} (error {f(ref['error_acc'])}, "
                         f"correct {f(ref['correct_acc'])}; tuned on ProcessBench rows)"))
        ar = res.get("arithmetic")
        if ar is not None:
            for label, key in (("scorer alone", "scorer_only"), ("arithmetic check alone", "arithmetic_only")):
                r = ar[key]
                rows.append((f"{label}: F1", f"{f(r['f1'])} (error {f(r['error_acc'])}, correct {f(r['correct_acc'])})"))
            rows.append(("solutions with a false equation", str(ar["solutions_with_a_false_equation"])))
        return rows
    if b == "gsm8k-pairs":
        return [
            ("problems / pairs", f"{res['problems']} / {res['pairs']}"),
            ("pair accuracy (ties = 1/2)", f"{f(res['pair_acc'])} {ci(res['pair_acc_ci'])}"),
            ("ties", str(res["ties"])),
            ("reference: fewer steps wins", f(res.get("shorter_wins_acc"))),
            ("aggregator", res["agg"]),
        ]
    rows = [("problems / candidates", f"{res['problems']} / {res['candidates']} (pool {res['pool_size']})"),
            ("aggregator", res["agg"])]
    rows += [(k, f"{f(v['acc'])} {ci(v['ci'])}") for k, v in res["methods"].items()]
    return rows
