"""VerifyConfig: every knob of answer equivalence, frozen and hashable (it keys caches)."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class VerifyConfig:
    """How `verify`/`grade` decide equality. Frozen and hashable, so it can key caches."""

    rel_tol: float = 1e-6
    """Relative tolerance for comparing numbers when at least one side is inexact
    (a decimal with a fractional part, or a float evaluation). Two exact values
    (integers, fractions, surds) are compared exactly, so 10**20 != 10**20 + 1."""

    abs_tol: float = 1e-9
    """Absolute tolerance used next to `rel_tol`, so that 0 vs 1e-12 compares equal."""

    timeout_s: float = 5.0
    """Wall-clock limit for one symbolic comparison in a worker process. A worker
    that overruns is killed and replaced; the verdict is status "timeout"."""

    percent: str = "gold"
    """Percent handling. "gold": a `%` on the gold admits both 50 and 0.5 for 50%;
    a `%` on the prediction only is a unit and is stripped (gold 50 == "50%",
    gold 0.5 != "50%"). "strip": `%` is always just a unit. "value": `%` always
    means /100 on both sides."""

    round_to_gold: bool = True
    """If the gold is a decimal with d places and the prediction is an exact value
    that is not itself a decimal literal (1/3, \\sqrt{2}), accept the prediction
    when it rounds to the gold at d places. The gold is trusted to be rounded."""

    strip_equation_lhs: bool = True
    """`x = 5` vs `5`: compare the right-hand side when one side is an equation
    with a single-symbol left side and the other side is not an equation."""

    numeric_points: int = 6
    """Random points tried in the numeric fallback for symbolic expressions."""

    max_answer_chars: int = 2000
    """Extracted answers longer than this are not parsed: status "unparsable"."""

    max_depth: int = 100
    """Maximum bracket nesting depth accepted by the parser."""

    max_int_bits: int = 100_000
    """Largest exact integer (in bits) the parser lets sympy build; `9^{9^{9^9}}`
    or `100000!` is refused before it is computed (status "unparsable")."""

    def __post_init__(self) -> None:
        def bad(name: str, constraint: str, fix: str) -> ValueError:
            return ValueError(
                f"VerifyConfig.{name} must be {constraint}, got {getattr(self, name)!r}. {fix}"
            )

        for name in ("rel_tol", "abs_tol"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or not math.isfinite(v) or not 0 <= v < 1:
                raise bad(name, "a float in [0, 1)", "Use e.g. 1e-6.")
        if not isinstance(self.timeout_s, (int, float)) or not 0 < self.timeout_s <= 3600:
            raise bad("timeout_s", "in (0, 3600] seconds", "Use e.g. 5.0.")
        if self.percent not in ("gold", "strip", "value"):
            raise bad("percent", 'one of "gold", "strip", "value"', 'Use "gold" (default).')
        for name, lo in (("numeric_points", 1), ("max_answer_chars", 1), ("max_depth", 1),
                         ("max_int_bits", 64)):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < lo:
                raise bad(name, f"an int >= {lo}", "Leave it at its default.")
