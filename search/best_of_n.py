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

from collections.abc import Sequence

from search import common
from search.config import SearchConfig
from search.types import Problem, SearchResult


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
    run = common.SearchRun(problems, policy, scorer, config, on_done=on_done, equal=equal)
    if not run.probs:
        return []
    rows = run.sample_candidates(range(len(run.probs)), config.n, run.seed("sample"))
    for p, row in enumerate(rows):
        run.close(p, row)
    return run.results


def best_of_n(problems, policy, scorer, config: SearchConfig, *, on_done=None, equal=None):
    """n samples per problem, the one with the best `final_agg` value wins (`select`
    may turn it into a vote)."""
    return sample_and_select(problems, policy, scorer, config, on_done=on_done, equal=equal)
