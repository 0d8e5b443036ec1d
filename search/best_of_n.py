"""Best-of-n: n full samples per problem, pick by aggregated score.

    results = best_of_n(problems, policy, scorer, SearchConfig(n=8, agg="min"))

One policy call samples n solutions for every problem; one scorer call scores
all of them (each solution split into steps on the policy's step delimiter).
The final selection follows `config.select` (argmax by default) with values
`final_agg(step scores)`. With no scorer (`--reward none`) the value is the
policy's confidence exp(mean token log-probability), so argmax picks the most
confident sample; see search/select.py for ties and fallbacks.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from search import common
from search.config import SearchConfig
from search.types import Candidate, Problem, SearchResult, as_problems


def sample_and_select(
    problems: Sequence[Problem | dict | str],
    policy,
    scorer,
    config: SearchConfig,
    *,
    on_done: common.OnDone | None = None,
    equal=None,
) -> list[SearchResult]:
    """The shared body of best_of_n, majority and weighted_majority."""
    t0 = time.perf_counter()
    probs = as_problems(problems)
    if not probs:
        return []
    ledgers = common.new_ledgers(policy, scorer, len(probs))
    delim = common.delimiter(policy)
    outs = common.sample(policy, probs, config.n, common.call_seed(config, "sample"), ledgers)
    cands: list[list[Candidate]] = []
    items = []
    for p, comps in enumerate(outs):
        row = []
        for c in comps:
            reason = "eos" if c.finish_reason == "stop" else (c.finish_reason or "unknown")
            row.append(
                Candidate(
                    steps=common.split_steps(c.text, delim), finish_reason=reason,
                    generated_tokens=c.generated_tokens, logprob=c.cumulative_logprob,
                )
            )
            items.append((p, row[-1].steps))
        cands.append(row)
    scores = common.score(scorer, probs, items, ledgers)
    it = iter(scores)
    for row in cands:
        for c in row:
            c.scores = next(it)
    return [
        common.finalize(prob, cands[p], config, ledgers[p], delim=delim, equal=equal, t0=t0, on_done=on_done)
        for p, prob in enumerate(probs)
    ]


def best_of_n(problems, policy, scorer, config: SearchConfig, *, on_done=None, equal=None):
    """n samples per problem, the one with the best `final_agg` value wins (`select`
    may turn it into a vote)."""
    return sample_and_select(problems, policy, scorer, config, on_done=on_done, equal=equal)
