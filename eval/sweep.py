"""Replay search records under many aggregators and selection rules.

    runs = load_runs(["runs/a-seed0.jsonl", "runs/a-seed1.jsonl"])
    result = sweep(runs, aggs=["min", "last", "prod"], rules=["argmax", "weighted_vote", "majority"])

A record (one JSONL line written by `search.runner`) holds every candidate's raw
per-step scores, answer, verdict and token counts, so a new final selection needs
no generation and no scoring. Records are grouped into *runs* by their `config`
with the search seed removed; records of one run with different seeds are its
seeded repeats.

For the sampling strategies (best_of_n, majority, weighted_majority) the pool of
n iid samples is also subsampled to n' = 1, 2, 4, ... < n (every subset when
there are at most `max_subsets`, else that many seeded random ones), which
draws accuracy-vs-n curves from one run. Step-level strategies (beam, DVTS,
MCTS) are replayed at their own n only: their aggregator also steered the
search, which a replay cannot change (use `cli.py sweep --search`).

Compute per problem comes from the record's ledger; at n' < n it is scaled by
n'/n (the samples are iid, so this is the expected cost of a run with n').

The result is a plain JSON-able dict (see `sweep`), read by `eval.report`.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from eval import metrics
from eval.registry import DEFAULT_AGGS
from search import strategies
from search.select import RULES

log = logging.getLogger(__name__)

SAMPLING = tuple(name for name, s in strategies.REGISTRY.items() if s.iid)  # replayed at every n' < n
COMPUTE_KEYS = ("generated_tokens", "computed_prompt_tokens", "scorer_tokens", "flops", "wall_s")


@dataclass
class Run:
    """Records of one configuration, by seed."""

    key: str
    config: dict  # the run identity with search.seed removed
    seeds: dict[int, list[dict]] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)

    @property
    def search(self) -> dict:
        return self.config.get("search") or {}

    @property
    def strategy(self) -> str:
        return str(self.search.get("strategy", "?"))

    @property
    def n(self) -> int:
        return int(self.search.get("n") or 0)

    @property
    def label(self) -> str:
        s = self.search
        reward = self.config.get("reward") or {}
        parts = [self.strategy]
        if reward.get("kind"):
            parts.append(str(reward["kind"]))
        if reward.get("model"):
            parts[-1] += f"({Path(str(reward['model'])).name})"
        if reward.get("step_check"):
            parts[-1] += f"+{reward['step_check']}"
        if self.strategy not in SAMPLING:
            parts.append(f"agg={s.get('agg')}")
        parts.append(f"n={self.n}")
        if strategies.uses(self.strategy, "beam_width"):
            parts.append(f"m={s.get('beam_width')}")
        policy = self.config.get("policy") or {}
        if policy.get("model") not in (None, "smollm2-135m"):
            parts.append(Path(str(policy["model"])).name)
        data = self.config.get("data") or {}
        if data.get("dataset"):
            parts.append(str(data["dataset"]))
        return " ".join(parts)


def _run_key(config: dict) -> tuple[str, dict]:
    c = copy.deepcopy(config)
    (c.get("search") or {}).pop("seed", None)
    return json.dumps(c, sort_keys=True), c


def pool_as_records(pool: Sequence[dict]) -> list[dict]:
    """Sample-pool records (policies/pool.py) in the shape of `cli.py search --strategy
    majority` records, so every replay (pass@n, maj@n, selection rules, rescoring)
    reads a pool as a sampling run of its n. Candidate values are the policy's
    confidence until a scorer fills `scores`."""
    out = []
    for r in pool:
        cfg = r["config"]
        cands = [{"steps": s["steps"], "scores": s.get("scores"), "value": None,
                  "finish_reason": s.get("finish_reason"), "generated_tokens": s.get("generated_tokens", 0),
                  "logprob": s.get("logprob"), "answer": s.get("answer"), "verdict": s.get("verdict"),
                  "token_conf": s.get("token_conf")}
                 for s in r["samples"]]
        prompt = sum(s.get("prompt_tokens", 0) for s in r["samples"])
        cached = sum(s.get("cached_tokens", 0) for s in r["samples"])
        config = {"search": {"strategy": "majority", "n": cfg["n"], "seed": cfg.get("seed", 0)},
                  "policy": cfg["policy"], "reward": r.get("reward") or {"kind": "none", "model": None},
                  "data": cfg.get("data"), "pool": True}
        out.append({
            "id": r["id"], "problem": r["problem"], "gold": r.get("gold"), "config": config,
            "seed": cfg.get("seed", 0), "candidates": cands, "answer": None, "chosen": None, "votes": [],
            "status": r.get("status"),
            "ledger": {"generated_tokens": sum(c["generated_tokens"] for c in cands),
                       "prompt_tokens": prompt, "cached_tokens": cached, "wall_s": r.get("wall_s", 0.0)},
        })
    return out


def read_records(path: str | Path) -> list[dict]:
    """The records of one search output file, or of a sample pool (plain or .gz,
    read as a majority run of its n); a torn last line is skipped."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file; pass JSONL files written by `cli.py search` or `cli.py pool`")
    from policies.pool import is_pool, read_pool

    if is_pool(path):
        return pool_as_records(read_pool(path))
    out = []
    # split at "\n" only: str.splitlines would also split at U+2028 inside a JSON string
    lines = path.read_text(encoding="utf-8").split("\n")
    lines = [ln + "\n" for ln in lines[:-1]] + ([lines[-1]] if lines[-1] else [])
    for ln, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            if ln == len(lines) and not line.endswith("\n"):
                log.warning("%s: skipping a torn last line (an interrupted run)", path)
                continue
            raise ValueError(f"{path}:{ln}: not JSON; pass JSONL files written by `cli.py search`") from None
        if not isinstance(rec, dict) or not isinstance(rec.get("candidates"), list) or "config" not in rec:
            raise ValueError(
                f"{path}:{ln}: not a search record (needs 'config' and 'candidates'); "
                "pass JSONL files written by `cli.py search`, not summaries or score files"
            )
        out.append(rec)
    if not out:
        raise ValueError(f"{path}: no records; the run has not finished any problem yet")
    return out


def load_runs(paths: Sequence[str | Path]) -> list[Run]:
    """Group the records of all files into runs (config minus seed), seeds apart."""
    if not paths:
        raise ValueError("no run files given; pass JSONL files written by `cli.py search` (e.g. runs/*.jsonl)")
    runs: dict[str, Run] = {}
    for p in paths:
        for rec in read_records(p):
            key, cfg = _run_key(rec["config"])
            run = runs.setdefault(key, Run(key=key, config=cfg))
            if str(p) not in run.files:
                run.files.append(str(p))
            seed = rec.get("seed", (rec["config"].get("search") or {}).get("seed", 0))
            recs = run.seeds.setdefault(int(seed), [])
            for i, r in enumerate(recs):  # the last record of an id wins, as in the run summary
                if str(r["id"]) == str(rec["id"]):
                    log.warning("%s: problem %s appears twice for seed %s; keeping the last", p, rec["id"], seed)
                    recs[i] = rec
                    break
            else:
                recs.append(rec)
    return list(runs.values())


def _correct(c: dict) -> bool:
    return bool((c.get("verdict") or {}).get("correct"))


def effective_aggs(records: Sequence[dict], aggs: Sequence[str]) -> tuple[list[tuple[str, str]], str | None]:
    """(display name, aggregator) pairs worth computing for these records, and a note.

    No scores anywhere (no scorer): one row, values are the policy confidence.
    At most one score per candidate (ORM, TinyRM, verifier): every aggregator gives
    the same value, so one row.
    """
    lengths = [len(c["scores"]) for r in records for c in r["candidates"] if c.get("scores") is not None]
    if not lengths:
        return [("confidence", "last")], "no scorer in this run: values are the policy's confidence, aggregators do not apply"
    if max(lengths) <= 1:
        return [("outcome", "last")], "one score per candidate (outcome scorer): every aggregator gives the same value"
    return [(a, a) for a in aggs], None


def _problem_rng(seed: int, k: int, pid: str) -> np.random.Generator:
    return np.random.default_rng([seed, k, zlib.crc32(str(pid).encode())])


def replay_problem(
    rec: dict,
    aggs: Sequence[tuple[str, str]],
    rules: Sequence[str],
    ks: Sequence[int],
    *,
    max_subsets: int,
    seed: int,
    equal: Callable[[str, str], bool] | None = None,
) -> dict:
    """Per-problem expected correctness: {(agg, rule, k): x, ("pass", k): x,
    ("maj", k): x}, for one record (graded or not; the caller filters)."""
    cands = rec["candidates"]
    m = len(cands)
    correct = [_correct(c) for c in cands]
    labels = metrics.answer_labels([c.get("answer") for c in cands], equal)
    values = {name: metrics.candidate_values(cands, agg) for name, agg in aggs}
    out: dict = {}
    for k in ks:
        subs = metrics.subsets(m, k, max_subsets, _problem_rng(seed, k, rec["id"]))
        out[("pass", k)] = metrics.pass_at_k(m, sum(correct), k)
        out[("maj", k)] = metrics.expected_at_k(correct, [None] * m, labels, "majority", subs)
        for name, _ in aggs:
            for rule in rules:
                out[(name, rule, k)] = metrics.expected_at_k(correct, values[name], labels, rule, subs)
    return out


def _compute(rec: dict, k: int, n: int) -> dict:
    from search.ledger import Ledger

    led = Ledger.from_dict(rec.get("ledger") or {})
    m = len(rec["candidates"]) or 1
    scale = min(k, m) / m if k < n else 1.0
    return {key: float(getattr(led, key)) * scale for key in COMPUTE_KEYS}


def sweep(
    runs: Sequence[Run],
    *,
    aggs: Sequence[str] = DEFAULT_AGGS,
    rules: Sequence[str] = tuple(RULES),
    ks: Sequence[int] | None = None,
    max_subsets: int = 100,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
    equal: Callable[[str, str], bool] | None = None,
    conf: Sequence[str] = (),
) -> dict:
    """Replay every run; return {"settings", "runs": [per-run result]}.

    `conf`: token-confidence summaries (search.confidence names, e.g. group32) replayed
    as extra value rows "conf:NAME" for runs whose candidates carry `token_conf` (pools).

    Per run: "cells" [{agg, rule, k, acc, ci, seed_mean, seed_sd, best, near_best}],
    "baselines" [{metric: pass@n|maj@n, k, acc, ci, ...}], "compute" [{k, per-problem
    means of COMPUTE_KEYS}], problem counts and notes. acc is the mean over graded
    problems (present in every seed) of the seed-averaged expected correctness; ci
    its bootstrap interval over problems; seed_mean/seed_sd the spread of the
    per-seed accuracies (sd is null with one seed).
    """
    for a in aggs:
        metrics.check_value_source(a)  # unknown names fail here with the valid list
    for r in rules:
        metrics.check_rule(r)  # unknown names fail with the valid list
    from search.confidence import check as check_conf

    for c in conf:
        check_conf(c)
    if max_subsets < 1:
        raise ValueError(f"max_subsets must be >= 1, got {max_subsets}.")
    settings = {
        "aggs": list(aggs), "rules": list(rules), "ks": list(ks) if ks else None,
        "max_subsets": max_subsets, "n_boot": n_boot, "level": level, "seed": seed, "conf": list(conf),
    }
    return {"settings": settings,
            "runs": [_sweep_run(r, aggs, rules, ks, max_subsets, n_boot, level, seed, equal, conf) for r in runs]}


def _sweep_run(run: Run, aggs, rules, ks, max_subsets, n_boot, level, seed, equal, conf=()) -> dict:
    all_recs = [r for recs in run.seeds.values() for r in recs]
    eff, note = effective_aggs(all_recs, aggs)
    if conf and all(c.get("token_conf") is not None for r in all_recs for c in r["candidates"]):
        eff = eff + [(metrics.CONF_PREFIX + c, metrics.CONF_PREFIX + c) for c in conf]
    elif conf:
        log.warning("%s: not every candidate carries token confidences; --conf rows skipped", run.label)
    n = run.n or max((len(r["candidates"]) for r in all_recs), default=1)
    sampling = run.strategy in SAMPLING
    if not sampling:
        run_ks = [n]
    elif ks:
        run_ks = sorted({k for k in ks if 1 <= k <= n})
    else:
        run_ks = metrics.k_values(n)
    notes = [note] if note else []
    if not sampling:
        notes.append(f"{run.strategy}: the search aggregator ({run.search.get('agg')}) also steered the search; "
                     "a replay changes only the final selection (cli.py sweep --search reruns the search)")
    if sampling and any(k < n for k in run_ks):
        notes.append(f"n' < {n}: subsets of the {n} samples (all of them up to {max_subsets}, else {max_subsets} "
                     f"seeded random ones); compute scaled by n'/{n}")

    graded_sets = []
    per_seed: dict[int, dict[str, dict]] = {}
    for s, recs in sorted(run.seeds.items()):
        graded = [r for r in recs if r.get("gold") is not None and r.get("status") != "invalid_gold"]
        graded_sets.append({str(r["id"]) for r in graded})
        per_seed[s] = {
            str(r["id"]): replay_problem(r, eff, rules, run_ks, max_subsets=max_subsets, seed=seed, equal=equal)
            for r in graded
        }
    common_ids = sorted(set.intersection(*graded_sets)) if graded_sets else []
    if any(len(g) != len(common_ids) for g in graded_sets):
        log.warning("%s: seeds cover different problems; using the %d graded in every seed", run.label, len(common_ids))
    seeds = sorted(per_seed)

    def stat(key) -> dict:
        mat = np.array([[per_seed[s][pid][key] for pid in common_ids] for s in seeds], dtype=float)
        if mat.size == 0:
            return {"acc": None, "ci": [None, None], "seed_mean": None, "seed_sd": None, "_x": np.zeros(0)}
        x = mat.mean(axis=0)
        lo, hi = metrics.bootstrap_ci(x, n_boot=n_boot, level=level, seed=seed)
        sm, ssd = metrics.mean_sd(mat.mean(axis=1))
        return {"acc": float(x.mean()), "ci": [lo, hi], "seed_mean": sm,
                "seed_sd": None if math.isnan(ssd) else ssd, "_x": x}

    cells = []
    for name, _ in eff:
        for rule in rules:
            for k in run_ks:
                cells.append({"agg": name, "rule": rule, "metric": metrics.rule_label(rule), "k": k,
                              **stat((name, rule, k))})
    baselines = []
    for k in run_ks:
        baselines.append({"metric": "pass@n", "k": k, **stat(("pass", k))})
        baselines.append({"metric": "maj@n", "k": k, **stat(("maj", k))})
    # best cell at the full n, and the cells a paired bootstrap cannot tell apart from it
    top = [c for c in cells if c["k"] == run_ks[-1] and c["acc"] is not None]
    if top:
        best = max(top, key=lambda c: c["acc"])  # the first of equals (table order)
        for c in top:
            c["best"] = c["acc"] == best["acc"]  # exact ties share the mark
            lo, hi = metrics.paired_bootstrap(best["_x"], c["_x"], n_boot=n_boot, level=level, seed=seed)
            c["near_best"] = bool(lo <= 0.0)
    for c in cells + baselines:
        c.pop("_x", None)
        c.setdefault("best", False)
        c.setdefault("near_best", False)

    compute = []
    recs0 = {s: {str(r["id"]): r for r in run.seeds[s]} for s in seeds}
    for k in run_ks:
        rows = [_compute(recs0[s][pid], k, n) for s in seeds for pid in common_ids]
        compute.append({"k": k, **{key: (float(np.mean([r[key] for r in rows])) if rows else 0.0)
                                   for key in COMPUTE_KEYS}})
    ungraded = sum(1 for recs in run.seeds.values() for r in recs
                   if r.get("gold") is None or r.get("status") == "invalid_gold")
    return {
        "label": run.label, "strategy": run.strategy, "n": n, "config": run.config, "files": run.files,
        "seeds": seeds, "problems": len(common_ids), "ungraded": ungraded,
        "aggs": [name for name, _ in eff], "rules": list(rules), "ks": run_ks,
        "cells": cells, "baselines": baselines, "compute": compute, "notes": notes,
    }


def best_cell(run_result: dict) -> dict | None:
    """The first cell marked best (several are marked when they tie exactly)."""
    return next((c for c in run_result["cells"] if c.get("best")), None)
