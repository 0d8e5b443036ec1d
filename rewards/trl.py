"""Adapt a scorer + aggregator to TRL's GRPO ``reward_funcs`` signature.

TRL calls ``reward_func(prompts=..., completions=..., **dataset_columns)`` and expects a
list with one float per completion, ``None`` meaning "cannot judge" (TRL then ignores
that reward for that sample). Completions may be plain strings or conversational
(a list of ``{"role", "content"}`` messages; the last message's content is used).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from .aggregators import get as get_aggregator
from .steps import split_steps

log = logging.getLogger(__name__)

__all__ = ["as_reward_function"]


def _text(x) -> str:
    if isinstance(x, str):
        return x
    if isinstance(x, list) and x and isinstance(x[-1], dict):
        return str(x[-1].get("content", ""))
    raise TypeError(f"expected a str or a list of chat messages, got {type(x).__name__}")


def as_reward_function(
    scorer,
    aggregator: str = "min",
    *,
    splitter: Callable[[str], list[str]] = split_steps,
    gold_column: str = "answer",
    problem_column: str | None = None,
    name: str | None = None,
) -> Callable[..., list[float | None]]:
    """A function ``(prompts, completions, **kwargs) -> list[float | None]`` for GRPO.

    scorer: any scorer from ``load_scorer``. aggregator: an aggregator name (validated
    now). splitter: completion text -> steps (blank lines by default). gold_column:
    dataset column with gold answers, passed as ``golds`` (needed by the verifier).
    problem_column: dataset column with the bare problem text; default: the prompt
    (for chat prompts, the last user message). Empty completions get ``None``.
    """
    agg = get_aggregator(aggregator)  # fail now, with the list of valid names

    def reward_func(prompts, completions, **kwargs) -> list[float | None]:
        problems = [_text(p) for p in (kwargs[problem_column] if problem_column else prompts)]
        steps = [splitter(_text(c)) for c in completions]
        golds = kwargs.get(gold_column)
        golds = [str(g) for g in golds] if golds is not None else None
        idx = [i for i, s in enumerate(steps) if s]
        out: list[float | None] = [None] * len(steps)
        if not idx:
            return out
        raw = scorer.score(
            [problems[i] for i in idx], [steps[i] for i in idx],
            golds=[golds[i] for i in idx] if golds is not None else None,
        )
        for i, r in zip(idx, raw, strict=True):
            out[i] = agg(r)
        return out

    reward_func.__name__ = name or f"{scorer.name}_{aggregator}".replace(":", "_").replace("-", "_")
    return reward_func
