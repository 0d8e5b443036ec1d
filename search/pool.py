"""Generate a stored sample pool (format: policies/pool.py), resumably.

    summary = generate_pool(problems, policy, n=16, out="pools/gsm8k-heldout.jsonl", identity={...})

Problems go to the engine `batch_problems` at a time, batches formed from the
problem order alone, so a resumed seeded run sends the same batches as an
uninterrupted one. Each problem's record (every sample with its token statistics,
answer and verdict) is appended and fsynced as soon as its batch returns; a rerun
with the same identity skips the problems already in the file (search.runner.RunFile
checks the identity and repairs a torn last line).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

from policies.pool import FORMAT, sample_record
from search.runner import INVALID_GOLD, RunFile, check_golds, package_versions
from search.types import Problem, as_problems

log = logging.getLogger(__name__)


def grade_samples(gold: str | None, samples: list[dict]) -> None:
    """Answer and verdict of each sample (in place). An ungradable gold marks every
    sample `invalid_gold` instead of failing the batch."""
    if gold is None:
        return
    from verifiers import grade_many

    try:
        verdicts = grade_many(gold, [s["text"] for s in samples])
    except ValueError as e:
        log.warning("gold %r cannot be graded (%s); samples recorded as %s", gold, e, INVALID_GOLD)
        for s in samples:
            s["answer"], s["verdict"] = None, {"correct": None, "status": INVALID_GOLD}
        return
    for s, v in zip(samples, verdicts, strict=True):
        s["answer"] = v.extracted
        s["verdict"] = {"correct": v.correct, "status": v.status}


def pool_summary(records: Sequence[dict], **extra) -> dict:
    """pass@1 (mean sample accuracy), pass@n (any correct) and token totals."""
    graded = [r for r in records if r.get("gold") is not None and r["samples"]
              and all(s.get("verdict", {}).get("correct") is not None for s in r["samples"])]
    n_samples = sum(len(r["samples"]) for r in records)
    tokens = sum(s["generated_tokens"] for r in records for s in r["samples"])
    out = {
        "problems": len(records),
        "graded": len(graded),
        "samples": n_samples,
        "generated_tokens": tokens,
        "mean_generated_tokens": tokens / n_samples if n_samples else 0,
        "length_capped": sum(s["finish_reason"] == "length" for r in records for s in r["samples"]),
        "pass@1": (sum(sum(s["verdict"]["correct"] for s in r["samples"]) / len(r["samples"]) for r in graded)
                   / len(graded)) if graded else None,
        "pass@n": (sum(any(s["verdict"]["correct"] for s in r["samples"]) for r in graded) / len(graded))
        if graded else None,
    }
    out.update(extra)
    return out


def generate_pool(
    problems: Sequence[Problem | dict | str],
    policy,
    *,
    n: int,
    out,
    identity: dict,
    seed: int = 0,
    batch_problems: int = 16,
    sources: dict[str, str] | None = None,
    command: str | None = None,
    on_batch: Callable[[dict], None] | None = None,
) -> dict:
    """Sample n solutions per problem into the pool file `out`; returns the summary
    of the problems asked for (run now or found in the file)."""
    problems = as_problems(problems)
    run = RunFile(out, identity)
    run.load()
    done = run.done_ids()
    todo = [p for p in problems if p.id not in done]
    versions = package_versions()
    delim = policy.sampling.step_delimiter
    t_start, tokens_now = time.perf_counter(), 0
    log.info("pool %s: %d problems to sample (%d already in the file)", out, len(todo), len(problems) - len(todo))
    for b in range(0, len(todo), batch_problems):
        batch = todo[b : b + batch_problems]
        bad = check_golds(batch)  # {id: why} for golds the verifier cannot grade (warned once each)
        gradable = [p for p in batch if p.id not in bad]
        t0 = time.perf_counter()
        outs = policy.sample([p.text for p in gradable], n=n, seed=seed) if gradable else []
        wall = time.perf_counter() - t0
        if outs and "dtype" not in versions and getattr(policy, "compute_dtype", None):
            versions = {**versions, "dtype": policy.compute_dtype}  # samples' rounding differs between dtypes
        by_id = dict(zip((p.id for p in gradable), outs, strict=True))
        batch_tokens = 0
        for p in batch:
            comps = by_id.get(p.id)
            rec = {"format": FORMAT, "id": p.id, "problem": p.text, "gold": p.gold,
                   "source": (sources or {}).get(p.id), "config": identity}
            if comps is None:
                rec.update(samples=[], status=INVALID_GOLD, detail=bad[p.id])
            else:
                samples = [sample_record(c, delim) for c in comps]
                grade_samples(p.gold, samples)
                rec["samples"] = samples
                batch_tokens += sum(c.generated_tokens for c in comps)
            rec.update(seed=seed, command=command, versions=versions,
                       wall_s=round(wall * len(comps or ()) / max(1, n * len(gradable)), 3))
            run.append(rec)
        tokens_now += batch_tokens
        progress = {"done": len(problems) - len(todo) + b + len(batch), "total": len(problems),
                    "batch_tok_s": batch_tokens / wall if wall else 0.0,
                    "tok_s": tokens_now / (time.perf_counter() - t_start)}
        log.info("pool %s: %d/%d problems, %.1f generated tok/s (batch %.1f)", out, progress["done"],
                 progress["total"], progress["tok_s"], progress["batch_tok_s"])
        if on_batch:
            on_batch(progress)
    wanted = {p.id for p in problems}
    records = [r for r in run.records if r["id"] in wanted]
    elapsed = time.perf_counter() - t_start
    return pool_summary(records, generated_now=tokens_now, wall_s_now=elapsed,
                        tok_s_now=tokens_now / elapsed if todo and elapsed else None)
