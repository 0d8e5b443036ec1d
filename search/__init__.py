"""search: test-time search strategies over any policy, scorer and aggregator.

    from search import STRATEGIES, SearchConfig
    cfg = SearchConfig(strategy="beam", n=8, beam_width=2, agg="min")
    results = STRATEGIES[cfg.strategy](problems, policy, scorer, cfg)

Every strategy is a plain function (problems, policy, scorer, config, *, on_done)
-> list[SearchResult]; all problems advance together (one policy call and one
scorer call per search step), or, for the step-level strategies with
`pipeline=True`, each problem on its own through the engine (search/drive.py).
`search.runner.run_search` adds datasets, JSONL output, resume and grading (and
pipelines the step-level strategies by default); `python cli.py search` is its
command line.

`STRATEGIES` (name -> function) is built from `search.strategies.REGISTRY`, the one
list of strategies; each function is also a name of this package (`from search import
beam`). Importing this package imports neither vLLM nor torch.
"""

from search.config import SearchConfig
from search.ledger import Ledger
from search.select import answer_classes, select
from search.strategies import NAMES as STRATEGY_NAMES
from search.strategies import load as _load
from search.types import Candidate, Node, Problem, SearchResult, Tree

STRATEGIES = {name: _load(name) for name in STRATEGY_NAMES}
globals().update(STRATEGIES)  # search.beam is the function, as `from search import beam` expects

__all__ = [
    "STRATEGIES",
    "STRATEGY_NAMES",
    "SearchConfig",
    "Ledger",
    "Problem",
    "Candidate",
    "Node",
    "Tree",
    "SearchResult",
    "answer_classes",
    "select",
    *STRATEGY_NAMES,
]
