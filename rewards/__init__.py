"""Reward models for test-time search: one scorer interface, PRM adapters, aggregators.

Public API (``import rewards`` is cheap: torch / transformers load only when a
scorer is built)::

    from rewards import load_scorer, aggregate

    scorer = load_scorer("prm")                      # or "orm", "tinyrm", "verifier", "none"
    steps = [["2 + 3 = 5.", "So the answer is 5."], ["2 + 3 = 6.", "The answer is 6."]]
    raw = scorer.score(["What is 2 + 3?"] * 2, steps)  # list[list[float]], one per step, in [0, 1]
    best = max(range(2), key=lambda i: aggregate("min", raw[i]))

- :data:`AGGREGATORS` / :func:`aggregate` / :func:`get_aggregator`: pure functions
  ``list[float] -> float`` (see ``rewards.aggregators``).
- :func:`load_scorer` -> :class:`Scorer` with ``score(problems, solutions, *, golds=None)``,
  ``num_parameters`` and ``stats`` (see ``rewards.base``).
- :func:`as_reward_function`: scorer + aggregator -> TRL GRPO ``reward_funcs`` callable.
- :func:`load_adapter` / :func:`list_adapters`: declarative PRM formats (``rewards/adapters/*.json``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from .aggregators import AGGREGATORS, PATTERNS, EmptyScoresError, aggregate
from .aggregators import get as get_aggregator

if TYPE_CHECKING:  # pragma: no cover
    from .adapters import AdapterConfig, list_adapters, load_adapter
    from .base import Scorer, ScorerStats
    from .factory import load_scorer
    from .kinds import SCORER_KINDS
    from .trl import as_reward_function

__all__ = [
    "AGGREGATORS",
    "PATTERNS",
    "EmptyScoresError",
    "aggregate",
    "get_aggregator",
    "load_scorer",
    "SCORER_KINDS",
    "Scorer",
    "ScorerStats",
    "as_reward_function",
    "AdapterConfig",
    "load_adapter",
    "list_adapters",
]

# name -> submodule; resolved on first attribute access so that `import rewards`
# never pulls in torch (the submodules themselves import torch lazily as well).
_LAZY = {
    "load_scorer": ".factory",
    "SCORER_KINDS": ".kinds",
    "Scorer": ".base",
    "ScorerStats": ".base",
    "as_reward_function": ".trl",
    "AdapterConfig": ".adapters",
    "load_adapter": ".adapters",
    "list_adapters": ".adapters",
}


def __getattr__(name: str):
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module 'rewards' has no attribute {name!r}")
    value = getattr(importlib.import_module(mod, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
