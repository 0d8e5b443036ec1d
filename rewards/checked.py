"""A scorer with an exact step check in front: a step that writes a false equation
(`verifiers.arithmetic`: `3 * 4 = 13`) is wrong whatever the model behind says.

    from rewards.checked import ArithmeticChecked
    scorer = ArithmeticChecked(load_scorer("probe"))
    scorer.score(["..."], [["2 + 2 = 4", "4 * 3 = 13", "so 13"]])   # [[p1, 0.0, 0.0]]

A step score is P(the solution is still correct after step i), so from the first step with a
false equation on, every step scores 0; an outcome scorer's one score becomes 0. Everything
else (statistics, parameters, thresholds, caches) is the wrapped scorer's: its compute ledger
counts what it ran, and the check costs microseconds per step. Search uses it with
`cli.py search --step-check arithmetic`, so beam search, DVTS and particle filtering prune
such branches, and every selection rule sees the zeros.
"""

from __future__ import annotations

CHECKS = ("arithmetic",)

__all__ = ["ArithmeticChecked", "CHECKS", "with_step_check"]


class ArithmeticChecked:
    """`inner` with the arithmetic check applied to its scores (see module docstring)."""

    def __init__(self, inner) -> None:
        self.inner = inner

    def score(self, problems, solutions, **kwargs) -> list[list[float]]:
        """The wrapped scorer's scores (its keywords, golds or references, passed through),
        zeroed from each solution's first false equation on."""
        from verifiers.arithmetic import first_false_step

        out = self.inner.score(problems, solutions, **kwargs)
        step = getattr(self.inner, "granularity", "step") == "step"
        checked = []
        for steps, scores in zip(solutions, out, strict=True):
            bad = first_false_step([str(s) for s in steps]) if steps else None
            if bad is None or not scores:
                checked.append(list(scores))
            elif step:
                checked.append([*scores[:bad], *([0.0] * (len(scores) - bad))])
            else:
                checked.append([0.0])
        return checked

    def describe(self) -> dict:
        base = self.inner.describe() if hasattr(self.inner, "describe") else {"kind": getattr(self.inner, "kind", "?")}
        return {**base, "step_check": "arithmetic"}

    def __getattr__(self, name):  # stats, kind, granularity, thresholds, num_parameters, clear_cache, ...
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    def __repr__(self) -> str:
        return f"ArithmeticChecked({self.inner!r})"


def with_step_check(make_scorer, check: str):
    """The scorer `make_scorer()` builds, wrapped by `check` (one of CHECKS). A module-level
    function, so that a `functools.partial` of it pickles into Ray actors."""
    if check not in CHECKS:
        raise ValueError(f"--step-check must be one of {', '.join(CHECKS)}, got {check!r}")
    return ArithmeticChecked(make_scorer())
