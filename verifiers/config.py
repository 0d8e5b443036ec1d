"""VerifyConfig: every knob of answer equivalence, frozen and hashable (it keys caches)."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class VerifyConfig:
    """How `verify`/`grade` decide equality. Frozen and hashable, so it can key caches."""

    rel_tol: float = 0.0
    """Relative part of the one tolerance rule, which applies only when a side is a
    decimal approximation (a decimal literal with places, like 0.333333 or 1.5e-4):
    |gold - answer| <= max(rel_tol * max(|gold|, |answer|), abs_tol'), where abs_tol' is
    `abs_tol` capped at half a unit in the last written place. 0 by default (decimals
    are judged by their places, as Math-Verify's rounding); e.g. 1e-4 accepts
    3.1416 for pi. Exact values
    (integers, fractions, surds, pi, e, factorials...) are never compared with a
    tolerance: 10^{30} != 10^{30}+1 and e^{60} != e^{60}+1."""

    abs_tol: float = 5e-7
    """Absolute part of the tolerance rule: half a unit in the sixth decimal place, so a
    decimal with 6 places agrees with a value it is the rounding of, as with Math-Verify's
    default float rounding (1/3 = 0.333333, != 0.33333; 2/3 = 0.666667, != 0.666666).
    A decimal with more places is held to all of them (1/3 = 0.3333333 != 0.3333334)."""

    timeout_s: float = 5.0
    """Deadline of one call, all included: extraction, the wait for a free worker
    process and the symbolic comparison. A worker that overruns is killed and
    replaced; the verdict is status "timeout"."""

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

    max_solution_chars: int = 200_000
    """Solutions (and golds) longer than this are not read at all: status "unparsable",
    the detail names this field. About 50k tokens, beyond any generation budget here;
    extraction is linear and runs in the caller, so this bounds its cost (~0.2 s on one
    busy core for the worst 200 KB text)."""

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
                         ("max_int_bits", 64), ("max_solution_chars", 1)):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < lo:
                raise bad(name, f"an int >= {lo}", "Leave it at its default.")
