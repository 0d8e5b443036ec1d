"""Voting over n full samples: majority (self-consistency) and weighted majority.

    majority(problems, policy, None, SearchConfig(strategy="majority", n=8))
    weighted_majority(problems, policy, prm, SearchConfig(strategy="weighted_majority", agg="min"))

Answers are grouped into verifier-equivalent classes (search/select.py).
`majority` picks the largest class; `weighted_majority` the class with the
largest sum of `final_agg` values. `majority` still scores the samples when a
scorer is given (so the record can be replayed under other rules); pass no
scorer (`--reward none`) for pure self-consistency at no scorer cost.
"""

from __future__ import annotations

from dataclasses import replace

from search.best_of_n import sample_and_select
from search.config import SearchConfig


def majority(problems, policy, scorer, config: SearchConfig, *, on_done=None, equal=None):
    """Self-consistency: the most frequent verifier-equivalent answer wins."""
    if config.select != "majority":
        config = replace(config, strategy="majority", select="majority")
    return sample_and_select(problems, policy, scorer, config, on_done=on_done, equal=equal)


def weighted_majority(problems, policy, scorer, config: SearchConfig, *, on_done=None, equal=None):
    """The answer with the largest sum of aggregated scores over its samples wins."""
    if config.select != "weighted_vote":
        config = replace(config, strategy="weighted_majority", select="weighted_vote")
    return sample_and_select(problems, policy, scorer, config, on_done=on_done, equal=equal)
