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

from dataclasses import replace

from search import common
from search.config import SearchConfig
from search.stopping import stop_rule
from search.types import Candidate


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
    run = common.SearchRun(problems, policy, scorer, config, on_done=on_done, equal=equal)
    if not run.probs:
        return []
    cands: list[list[Candidate]] = [[] for _ in run.probs]
    have = 0
    for r, total in enumerate(schedule(config.first_round, config.round_size, config.n)):
        open_ = run.open()
        rows = run.sample_candidates(open_, total - have, run.seed("round", r))
        have = total
        for p, row in zip(open_, rows, strict=True):
            cands[p] += row
        for p in open_:
            row = cands[p]
            for c in row:
                c.answer = extract_answer(c.text(run.delim)) if c.steps else None
                c.value = common.value_of(c.scores, config.final_agg, c.logprob, c.generated_tokens)
            labels, _reps, calls = answer_classes([c.answer for c in row], equal)
            run.ledgers[p].verifier_calls += calls
            if total >= config.n or rule(labels, [c.value for c in row]):
                run.close(p, row)
        if not run.open():
            break
    return run.results
