"""verify / grade / grade_many: extraction plus equivalence, with statuses that never lie.

Status values of a Verdict:
  "correct"    the answer equals the gold under the documented rules;
  "wrong"      it was judged and differs;
  "no_answer"  nothing could be extracted (or the answer is empty);
  "unparsable" the answer (or, rarely, the gold) is outside the parser's grammar, or an
               expression bomb was refused;
  "timeout"    the symbolic comparison ran past `VerifyConfig.timeout_s` (worker killed).
Only "correct" has `correct=True`; the last three mean "could not judge", not "wrong".
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from .config import VerifyConfig
from .extract import extract_answer, extract_gold
from .fastpath import fast_compare
from .lru import LRUCache
from .normalize import normalize

__all__ = ["Verdict", "STATUSES", "judge", "verify", "grade", "grade_many", "clear_cache"]

log = logging.getLogger(__name__)

STATUSES = ("correct", "wrong", "no_answer", "unparsable", "timeout")
_DEFAULT = VerifyConfig()
_CACHE_SIZE = 100_000


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome of grading one answer against one gold."""

    extracted: str | None
    """The answer that was compared (after extraction, before normalisation)."""
    correct: bool
    """True only when status == "correct"."""
    status: str
    """One of STATUSES; "no_answer"/"unparsable"/"timeout" mean "could not judge"."""
    detail: str = ""
    """Which rule decided, or why judging failed (human-readable)."""


_cache = LRUCache(_CACHE_SIZE)


def clear_cache() -> None:
    """Forget cached (gold, answer, config) verdicts."""
    _cache.clear()


def _check_str(name: str, value, fn: str) -> None:
    if not isinstance(value, str):
        raise TypeError(
            f"{fn}: {name} must be a str, got {type(value).__name__} {value!r:.60}. "
            f"Convert it with str() or pass the answer text."
        )


def _check_cfg(config) -> VerifyConfig:
    if config is None:
        return _DEFAULT
    if not isinstance(config, VerifyConfig):
        raise TypeError(
            f"config must be a verifiers.VerifyConfig, got {type(config).__name__}. "
            "Build one with VerifyConfig(rel_tol=..., timeout_s=...)."
        )
    return config


def _prepare(gold: str, answer: str | None, cfg: VerifyConfig):
    """Either a final (status, detail) or the normalised key for the slow path."""
    if answer is None or not answer.strip():
        return ("no_answer", "no answer found"), None
    if len(answer) > cfg.max_answer_chars:
        return ("unparsable", f"answer longer than max_answer_chars={cfg.max_answer_chars}"), None
    if len(gold) > cfg.max_solution_chars:
        return ("unparsable", f"gold longer than max_solution_chars={cfg.max_solution_chars}"), None
    gold = extract_gold(gold)  # a whole solution as gold: its marked answer
    if len(gold) > cfg.max_answer_chars:
        return ("unparsable", f"gold longer than max_answer_chars={cfg.max_answer_chars}"), None
    ng, na = normalize(gold), normalize(answer)
    if not ng:
        raise ValueError(f"gold answer {gold!r} is empty after normalisation; check the dataset.")
    key = (ng, na, cfg)
    hit = _cache.get(key)
    if hit is not None:
        return hit, None
    fast = fast_compare(ng, na, cfg)
    if fast is not None:
        _cache.put(key, fast)
        return fast, None
    return None, key


def _slow(key, deadline: float | None = None) -> tuple[str, str]:
    from .pool import get_pool

    ng, na, cfg = key
    result = get_pool().run((ng, na, cfg), cfg.timeout_s, deadline=deadline)
    if result[0] != "timeout":
        _cache.put(key, result)
    return result


def _verdict(answer: str | None, result: tuple[str, str]) -> Verdict:
    status, detail = result
    return Verdict(answer, status == "correct", status, detail)


def _too_long(solution: str, cfg: VerifyConfig) -> Verdict | None:
    if len(solution) <= cfg.max_solution_chars:
        return None
    return Verdict(None, False, "unparsable", f"solution of {len(solution):,} characters is "
                   f"longer than max_solution_chars={cfg.max_solution_chars:,}; not read")


def _judge(gold: str, answer: str | None, cfg: VerifyConfig, deadline: float) -> Verdict:
    result, key = _prepare(gold, answer, cfg)
    if result is None:
        result = _slow(key, deadline)
    return _verdict(answer, result)


def judge(gold: str, answer: str | None, *, config: VerifyConfig | None = None) -> Verdict:
    """Compare an already-extracted `answer` with `gold`; the Verdict carries the status.

    One deadline, `config.timeout_s` from the call, covers the whole call."""
    cfg = _check_cfg(config)
    deadline = time.monotonic() + cfg.timeout_s
    _check_str("gold", gold, "judge")
    if answer is not None:
        _check_str("answer", answer, "judge")
    return _judge(gold, answer, cfg, deadline)


def verify(gold: str, answer: str, *, config: VerifyConfig | None = None) -> bool:
    """Are `gold` and `answer` mathematically equal? Asymmetric: `gold` is trusted.

    Returns False when the pair cannot be judged (timeout, unparsable); use `judge` or
    `grade` to tell "wrong" from "could not judge".
    """
    v = judge(gold, answer, config=config)
    if v.status in ("timeout", "unparsable"):
        log.debug("verify(%r, %r): %s (%s), returning False", gold, answer, v.status, v.detail)
    return v.correct


def grade(gold: str, solution: str, *, config: VerifyConfig | None = None) -> Verdict:
    """Extract the final answer of `solution` and compare it with `gold`.

    One deadline, `config.timeout_s` from the call, covers extraction, the wait for a
    worker and the comparison. A solution longer than `config.max_solution_chars` is not
    read (status "unparsable")."""
    cfg = _check_cfg(config)
    deadline = time.monotonic() + cfg.timeout_s
    _check_str("gold", gold, "grade")
    _check_str("solution", solution, "grade")
    return _too_long(solution, cfg) or _judge(gold, extract_answer(solution), cfg, deadline)


def grade_many(
    golds: Sequence[str] | str,
    solutions: Sequence[str],
    *,
    config: VerifyConfig | None = None,
    max_workers: int | None = None,
    extract: bool = True,
) -> list[Verdict]:
    """Grade many (gold, solution) pairs: deduplicated, cached, symbolic ones in parallel.

    `golds` is one gold per solution, or a single str shared by all. With
    `extract=False` the solutions are taken as final answers. `max_workers` caps the
    number of worker processes (default: the pool size, `VERIFIERS_WORKERS` or
    min(4, cpus)). Each symbolic pair has its own deadline of `config.timeout_s`, from
    the moment a thread of this call takes it up.
    """
    cfg = _check_cfg(config)
    if isinstance(solutions, str):
        raise TypeError("grade_many: solutions must be a sequence of str, got one str. "
                        "Wrap it in a list or call grade().")
    solutions = list(solutions)
    golds = [golds] * len(solutions) if isinstance(golds, str) else list(golds)
    if len(golds) != len(solutions):
        raise ValueError(f"grade_many: got {len(golds)} golds and {len(solutions)} solutions; "
                         "pass one gold per solution or a single gold str.")
    for i, (g, s) in enumerate(zip(golds, solutions, strict=True)):
        _check_str(f"golds[{i}]", g, "grade_many")
        _check_str(f"solutions[{i}]", s, "grade_many")
    results: list = [None] * len(solutions)
    answers: list = []
    for i, s in enumerate(solutions):
        long = _too_long(s, cfg) if extract else None
        if long is not None:
            results[i] = (long.status, long.detail)
        answers.append(None if long is not None else extract_answer(s) if extract else s)
    pending: dict = {}
    for i, (g, a) in enumerate(zip(golds, answers, strict=True)):
        if results[i] is not None:
            continue
        res, key = _prepare(g, a, cfg)
        if res is not None:
            results[i] = res
        else:
            pending.setdefault(key, []).append(i)
    if pending:
        from .pool import get_pool

        pool = get_pool()
        if max_workers is not None:
            if not isinstance(max_workers, int) or max_workers < 1:
                raise ValueError(f"max_workers must be an int >= 1, got {max_workers!r}.")
            pool.resize(max_workers)
        n_threads = min(pool.max_workers, len(pending))
        keys = list(pending)
        if n_threads == 1:
            outs = [_slow(k) for k in keys]
        else:
            with ThreadPoolExecutor(n_threads, thread_name_prefix="verifiers") as ex:
                outs = list(ex.map(_slow, keys))
        for k, out in zip(keys, outs, strict=True):
            for i in pending[k]:
                results[i] = out
    return [_verdict(a, r) for a, r in zip(answers, results, strict=True)]
