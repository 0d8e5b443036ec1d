"""The scorer interface shared by every reward model.

A scorer maps problems and candidate solutions (each a list of steps) to *raw*
per-candidate score lists in [0, 1]; it never aggregates (``rewards.aggregators``
does). What a list holds depends on ``scorer.granularity``:

- ``"step"`` (PRM, ``none``): one score per step, score i = P(the solution is still
  correct after step i); ``len(scores[c]) == len(solutions[c])``.
- ``"outcome"`` (ORM, TinyRM, ``verifier``): one score, for the last step;
  ``len(scores[c]) == 1``.

A candidate with no steps gets ``[]`` from every scorer, so that an aggregator
raises instead of ranking an empty candidate first.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass
from typing import ClassVar

log = logging.getLogger(__name__)

__all__ = ["Scorer", "ScorerStats", "NoneScorer", "check_inputs"]


@dataclass
class ScorerStats:
    """Counters for the search compute ledger (cumulative since load or ``reset()``)."""

    calls: int = 0  # score() calls
    candidates: int = 0  # candidates received
    steps: int = 0  # steps received
    forward_passes: int = 0  # model sequences run (one per candidate or pair order)
    batches: int = 0  # batched forward calls
    tokens_scored: int = 0  # non-pad tokens fed through the model
    tokens_padded: int = 0  # tokens including padding (batch x max length)
    cache_hits: int = 0  # step scores (PRM/ORM) or pair judgements (TinyRM) served from cache
    cache_misses: int = 0  # ... computed by the model
    kv_reused_tokens: int = 0  # prefix tokens not re-run thanks to the KV prefix cache
    comparisons: int = 0  # TinyRM: unordered pairs judged (each = 2 forward passes)
    seconds: float = 0.0  # wall time inside score()

    def reset(self) -> None:
        for k, v in asdict(ScorerStats()).items():
            setattr(self, k, v)

    def as_dict(self) -> dict:
        return asdict(self)


def check_inputs(
    problems: list[str],
    solutions: list[list[str]],
    golds: list[str] | None = None,
    references: list[str] | None = None,
) -> None:
    """Validate the shared score() arguments; errors name the argument and the fix."""
    if isinstance(problems, str) or not isinstance(problems, list | tuple):
        raise TypeError(f"problems must be a list of str, got {type(problems).__name__}")
    if isinstance(solutions, str) or not isinstance(solutions, list | tuple):
        raise TypeError(f"solutions must be a list of step lists, got {type(solutions).__name__}")
    if len(problems) != len(solutions):
        raise ValueError(
            f"got {len(problems)} problems and {len(solutions)} solutions; pass one problem "
            "per candidate (repeat the problem for each of its candidates)"
        )
    for i, (p, s) in enumerate(zip(problems, solutions, strict=True)):
        if not isinstance(p, str):
            raise TypeError(f"problems[{i}] must be a str, got {type(p).__name__}")
        if isinstance(s, str) or not isinstance(s, list | tuple):
            raise TypeError(
                f"solutions[{i}] must be a list of step strings, got {type(s).__name__}; "
                "split a solution string with rewards.steps.split_steps()"
            )
        for j, step in enumerate(s):
            if not isinstance(step, str):
                raise TypeError(f"solutions[{i}][{j}] must be a str, got {type(step).__name__}")
    for name, extra in (("golds", golds), ("references", references)):
        if extra is None:
            continue
        if isinstance(extra, str) or len(extra) != len(problems):
            n = "a str" if isinstance(extra, str) else len(extra)
            raise ValueError(f"{name} must be a list with one entry per candidate ({len(problems)}), got {n}")


class Scorer:
    """Base class. Subclasses implement ``_score`` and set the class attributes."""

    kind: ClassVar[str] = "?"
    granularity: ClassVar[str] = "step"  # "step" or "outcome"; see module docstring
    needs_golds: ClassVar[bool] = False
    step_threshold: float | None = None
    """A step-flagging threshold fixed at training time ("step score < it: an error"),
    with ``threshold_info`` saying how it was chosen; first-error benchmarks
    (eval.scorer_bench, ProcessBench) use it when the user gives none. None: no such
    threshold (the bench then tunes one without the scored rows)."""
    threshold_info: dict | None = None
    step_ratio: float = 0.0
    """A drop ratio fixed with the threshold (``rewards.flagging.first_drop``: a step scored
    below ratio x the previous step's score is flagged too); 0: the threshold alone."""
    step_ratio_start: int = 0
    """The first step the drop ratio applies to: 0 (the first step compared with 1) or 1."""
    recommended_agg: str | None = None
    """The aggregator the scorer's card recommends, chosen on validation data
    (``eval.recommend_agg``; ``load_scorer`` sets it); what ``--agg auto`` uses. None: none
    (``auto`` then gives min)."""

    def __init__(self) -> None:
        self.stats = ScorerStats()
        self.trained = True  # False: head/adapter freshly initialised, scores are not meaningful
        self.name = self.kind

    @property
    def num_parameters(self) -> int:
        """Parameters of the model(s) behind the scorer (0 for oracles)."""
        return 0

    @property
    def forward_params(self) -> int:
        """Parameters a scored token passes through (``rewards.cost``: no embedding tables, no
        head applied once per sequence, only the layers that run); 2 x this is the forward
        FLOPs per token in ``stats.tokens_scored``. 0: no model, or not known."""
        return 0

    def score(
        self,
        problems: list[str],
        solutions: list[list[str]],
        *,
        golds: list[str] | None = None,
        references: list[str] | None = None,
    ) -> list[list[float]]:
        """Raw scores in [0, 1]: one list per candidate (see module docstring).

        ``golds`` (gold final answers, one per candidate) are read only by scorers with
        ``needs_golds`` (the ``verifier`` oracle); ``references`` (a reference solution
        per candidate) only by TinyRM. Other scorers ignore both.
        """
        import time

        check_inputs(problems, solutions, golds, references)
        if self.needs_golds and golds is None:
            raise ValueError(
                f"the {self.kind!r} scorer needs gold answers: call score(problems, solutions, "
                "golds=[...]) with one gold answer per candidate"
            )
        t0 = time.perf_counter()
        self.stats.calls += 1
        self.stats.candidates += len(solutions)
        self.stats.steps += sum(len(s) for s in solutions)
        out = self._score(list(problems), [list(s) for s in solutions], golds=golds, references=references)
        self.stats.seconds += time.perf_counter() - t0
        for i, (s, sc) in enumerate(zip(solutions, out, strict=True)):
            expect = 0 if not s else (len(s) if self.granularity == "step" else 1)
            if len(sc) != expect or any(not (0.0 <= x <= 1.0) or math.isnan(x) for x in sc):
                raise RuntimeError(f"{type(self).__name__} returned {sc} for candidate {i} ({len(s)} steps)")
        return out

    def _score(self, problems, solutions, *, golds, references) -> list[list[float]]:
        raise NotImplementedError

    def length_error(self, problem: str, steps: list[str]) -> str | None:
        """Why this candidate cannot be scored for its length ("N tokens, over the limit of
        L (...)"), or None when it fits; scorers that never refuse a length return None.
        Benches check every row with it before any scoring, so a long row fails the run at
        once instead of after the rows before it."""
        return None

    def describe(self) -> dict:
        """Plain metadata for output files and the compute ledger."""
        return {
            "kind": self.kind,
            "name": self.name,
            "granularity": self.granularity,
            "num_parameters": self.num_parameters,
            "trained": self.trained,
        }

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, params={self.num_parameters}, trained={self.trained})"


class NoneScorer(Scorer):
    """No reward model: every step gets the same constant (default 0.5, "no information").

    With it, any aggregator ties every candidate of equal length, so a search falls
    back to its tie-break (order / voting). For baselines and plumbing tests.
    """

    kind = "none"
    granularity = "step"

    def __init__(self, value: float = 0.5) -> None:
        super().__init__()
        if not 0.0 <= float(value) <= 1.0:
            raise ValueError(f"none scorer: value must be in [0, 1], got {value}")
        self.value = float(value)

    def _score(self, problems, solutions, *, golds, references):
        return [[self.value] * len(s) for s in solutions]
