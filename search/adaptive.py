"""Adaptive sampling per problem: sample in rounds, stop when the leading answer is safe.

    adaptive(problems, policy, None, SearchConfig(strategy="adaptive", n=16, stop="beta0.95"))

Each round samples more solutions for every problem still open (one policy call for all
of them), groups the answers into verifier-equivalent classes and asks the stop rule
whether the leader is safe; a problem stops at the first round its rule says so, or at
`n` samples. The final answer is `config.select` over everything drawn (majority by
default). The ledger counts every sample of every round.

Schedule (`schedule`): `first_round` samples, then `round_size` more per round, or, with
round_size None, double the total each round (2, 4, 8, 16), capped at `n`.

The stop rule (`config.stop`) is one of `search.stopping`'s rules (betaT, cbetaT, agreeT,
cagreeT, never): Adaptive-Consistency's Beta rule and DeepConf's consensus rule.
"""

from __future__ import annotations

import time
from dataclasses import replace

from search import common
from search.config import SearchConfig
from search.stopping import stop_rule
from search.types import Candidate, as_problems


def schedule(first: int, step: int | None, n_max: int) -> list[int]:
    """Cumulative sample counts after each round: first, first+step, ... (step None:
    doubling), capped at n_max (always ending there)."""
    if first < 1 or n_max < 1 or (step is not None and step < 1):
        raise ValueError(f"schedule needs first >= 1, step >= 1 or None, n_max >= 1; got {first}, {step}, {n_max}.")
    out = [min(first, n_max)]
    while out[-1] < n_max:
        out.append(min(n_max, out[-1] * 2 if step is None else out[-1] + step))
    return out


def adaptive(problems, policy, scorer, config: SearchConfig, *, on_done=None, equal=None):
    """Rounds of samples per problem until `config.stop` says the leader is safe or `n`
    samples are drawn; every round is one policy call for all open problems."""
    from search.select import answer_classes
    from verifiers import extract_answer

    if config.strategy != "adaptive":
        config = replace(config, strategy="adaptive")
    rule = stop_rule(config.stop)
    t0 = time.perf_counter()
    probs = as_problems(problems)
    if not probs:
        return []
    ledgers = common.new_ledgers(policy, scorer, len(probs))
    delim = common.delimiter(policy)
    cands: list[list[Candidate]] = [[] for _ in probs]
    results: list = [None] * len(probs)
    open_ = list(range(len(probs)))
    have = 0
    for r, total in enumerate(schedule(config.first_round, config.round_size, config.n)):
        m = total - have
        have = total
        sub = [probs[p] for p in open_]
        outs = common.sample(policy, sub, m, common.call_seed(config, "round", r), [ledgers[p] for p in open_])
        items = []
        for p, comps in zip(open_, outs, strict=True):
            for c in comps:
                reason = "eos" if c.finish_reason == "stop" else (c.finish_reason or "unknown")
                cand = Candidate(steps=common.split_steps(c.text, delim), finish_reason=reason,
                                 generated_tokens=c.generated_tokens, logprob=c.cumulative_logprob)
                cands[p].append(cand)
                items.append((p, cand))
        scores = common.score(scorer, probs, [(p, c.steps) for p, c in items], ledgers)
        for (_, c), s in zip(items, scores, strict=True):
            c.scores = s
        still = []
        for p in open_:
            row = cands[p]
            for c in row:
                c.answer = extract_answer(c.text(delim)) if c.steps else None
                c.value = common.value_of(c.scores, config.final_agg, c.logprob, c.generated_tokens)
            labels, _reps, calls = answer_classes([c.answer for c in row], equal)
            ledgers[p].verifier_calls += calls
            if total >= config.n or rule(labels, [c.value for c in row]):
                results[p] = common.finalize(probs[p], row, config, ledgers[p], delim=delim, equal=equal,
                                             t0=t0, on_done=on_done)
            else:
                still.append(p)
        open_ = still
        if not open_:
            break
    return results
