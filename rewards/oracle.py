"""The ``verifier`` scorer: an oracle ORM from gold answers (for upper bounds).

Score = 1.0 if ``verifiers.grade(gold, solution)`` says correct, else 0.0 (wrong,
no answer found, unparsable, timeout), one score per candidate. It cannot judge
intermediate steps, so it is outcome-level; a partial beam with no final answer
scores 0.
"""

from __future__ import annotations

from .base import Scorer
from .steps import join_steps


class VerifierScorer(Scorer):
    kind = "verifier"
    granularity = "outcome"
    needs_golds = True

    def __init__(self, max_workers: int | None = None) -> None:
        super().__init__()
        self.max_workers = max_workers

    def _score(self, problems, solutions, *, golds, references):
        from verifiers import grade_many  # lazy: another package, imports sympy on demand

        idx = [i for i, s in enumerate(solutions) if s]
        verdicts = grade_many(
            [golds[i] for i in idx], [join_steps(solutions[i]) for i in idx], max_workers=self.max_workers
        )
        out: list[list[float]] = [[] for _ in solutions]
        for i, v in zip(idx, verdicts, strict=True):
            out[i] = [1.0 if v.correct else 0.0]
        self.stats.forward_passes += len(idx)
        return out
