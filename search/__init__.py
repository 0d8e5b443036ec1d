"""search: test-time search strategies over any policy, scorer and aggregator.

    from search import STRATEGIES, SearchConfig
    cfg = SearchConfig(strategy="beam", n=8, beam_width=2, agg="min")
    results = STRATEGIES[cfg.strategy](problems, policy, scorer, cfg)

Every strategy is a plain function (problems, policy, scorer, config, *, on_done)
-> list[SearchResult]; all problems advance together (one policy call and one
scorer call per search step). `search.runner.run_search` adds datasets, JSONL
output, resume and grading; `python cli.py search` is its command line.
Importing this package imports neither vLLM nor torch.
"""

from search.adaptive import adaptive
from search.beam import beam
from search.best_of_n import best_of_n
from search.config import SELECT_RULES, STRATEGY_NAMES, SearchConfig
from search.dvts import dvts
from search.ledger import Ledger
from search.majority import majority, weighted_majority
from search.mcts import mcts
from search.particle_filter import particle_filter
from search.select import answer_classes, select
from search.types import Candidate, Node, Problem, SearchResult, Tree

STRATEGIES = {
    "best_of_n": best_of_n,
    "majority": majority,
    "weighted_majority": weighted_majority,
    "beam": beam,
    "dvts": dvts,
    "mcts": mcts,
    "particle_filter": particle_filter,
    "adaptive": adaptive,
}

__all__ = [
    "STRATEGIES",
    "STRATEGY_NAMES",
    "SELECT_RULES",
    "SearchConfig",
    "Ledger",
    "Problem",
    "Candidate",
    "Node",
    "Tree",
    "SearchResult",
    "answer_classes",
    "select",
    "best_of_n",
    "majority",
    "weighted_majority",
    "beam",
    "dvts",
    "mcts",
    "particle_filter",
    "adaptive",
]
