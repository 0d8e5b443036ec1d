"""Symbolic equivalence of two normalised answers. Runs inside worker processes only.

`compare(gold, answer, cfg)` parses both sides with the whitelisting parser and returns
(status, detail) with status in {"correct", "wrong", "unparsable"}.

Rules, in order:
- structures must match: sets / bare lists unordered, tuples and intervals ordered
  with the same bracket kinds, unions of intervals unordered, matrices elementwise;
- `x = 5` vs `5` compares the right-hand side (single-symbol left side, or a left side
  without unknowns: `9 \\times 2 = 18`);
  two equations are equal if their sides are, or if lhs - rhs of one is a nonzero
  constant multiple of the other's; inequalities need the same (or flipped) direction;
- numbers: exact values (no decimal literal on either side) are compared exactly
  (`_exact_equal`: sympy's exact arithmetic, then the difference's own digits); with a
  decimal on either side the tolerance rule |g - a| <= max(rel_tol * scale, abs_tol)
  applies; a rounded decimal gold admits an exact answer that rounds to it
  (`cfg.round_to_gold`);
- expressions with free symbols: equal when they agree at `cfg.numeric_points`
  random points, or (when no point evaluates) when `simplify(gold - answer) == 0`.
"""

from __future__ import annotations

import logging
import math
import random
from decimal import Decimal
from fractions import Fraction

import sympy
from sympy import Float, oo, zoo
from sympy.core.evalf import PrecisionExhausted

from .config import VerifyConfig
from .errors import ParseError
from .fastpath import decimal_abs_tol, parse_number
from .parser import Expr, Rel, Seq, Text, Union, parse_answer

__all__ = ["compare", "nodes_equal"]

log = logging.getLogger(__name__)

_PREC = 40


def compare(gold: str, answer: str, cfg: VerifyConfig) -> tuple[str, str]:
    try:
        g = parse_answer(gold, cfg)
    except (ParseError, RecursionError, ValueError, TypeError, ZeroDivisionError) as e:
        return "unparsable", f"gold: {e}"
    try:
        a = parse_answer(answer, cfg)
    except (ParseError, RecursionError, ValueError, TypeError, ZeroDivisionError) as e:
        return "unparsable", f"answer: {e}"
    ctx = _Ctx(cfg, parse_number(gold))
    try:
        ok = nodes_equal(g, a, ctx)
    except (ParseError, RecursionError) as e:
        return "unparsable", str(e)
    except (ArithmeticError, ValueError) as e:  # OverflowError from mpmath on towers
        return "unparsable", f"numeric overflow: {type(e).__name__}"
    return ("correct" if ok else "wrong"), "symbolic"


class _Ctx:
    def __init__(self, cfg: VerifyConfig, gold_num):
        self.cfg = cfg
        self.gold_num = gold_num  # fastpath.Num if the whole gold is a plain number


def _is_symbol_lhs(node) -> bool:
    return isinstance(node, Expr) and isinstance(node.value, sympy.Symbol)


def _value_side(rel: Rel):
    """The value an equation states, compared with a gold that is a bare value: the
    right-hand side of an assignment (`k = 1/3`, `x \\in [0, 1]`) or of a computation
    whose left side has no unknowns (`9 \\times 2 = 18`, `a = 2 + 3 = 5`); else None
    (`x + 1 = 6` states no value)."""
    lhs = rel.lhs
    if rel.op == "in":
        return rel.rhs if _is_symbol_lhs(lhs) else None
    if rel.op != "=":
        return None
    if _is_symbol_lhs(lhs):
        return rel.rhs
    if isinstance(lhs, Expr) and not lhs.value.free_symbols:
        return rel.rhs
    if isinstance(lhs, Rel) and _value_side(lhs) is not None:
        return rel.rhs
    return None


_FLIP = {"<": ">", ">": "<", "<=": ">=", ">=": "<=", "=": "=", "!=": "!="}


def nodes_equal(g, a, ctx: _Ctx) -> bool:
    cfg = ctx.cfg
    # equation vs value: compare right-hand sides
    if isinstance(g, Rel) != isinstance(a, Rel) and cfg.strip_equation_lhs:
        if isinstance(g, Rel) and g.op in ("=", "in") and _is_symbol_lhs(g.lhs):
            return nodes_equal(g.rhs, a, ctx)
        if isinstance(a, Rel) and (v := _value_side(a)) is not None:
            return nodes_equal(g, v, ctx)
        return False
    if isinstance(g, Rel):
        return _rels_equal(g, a, ctx)
    if isinstance(g, Text) or isinstance(a, Text):
        return (isinstance(g, Text) and isinstance(a, Text)
                and " ".join(g.text.casefold().split()) == " ".join(a.text.casefold().split()))
    if isinstance(g, Union) or isinstance(a, Union):
        if not (isinstance(g, Union) and isinstance(a, Union)):
            return False
        return _unordered(g.items, a.items, ctx)
    if isinstance(g, Seq) or isinstance(a, Seq):
        if not (isinstance(g, Seq) and isinstance(a, Seq)):
            return False
        return _seqs_equal(g, a, ctx)
    return _exprs_equal(g, a, ctx)


def _seqs_equal(g: Seq, a: Seq, ctx: _Ctx) -> bool:
    if g.kind == "bracket":
        if (a.kind == "bracket" and (g.open, g.close) != (a.open, a.close)
                and len(g.items) == 2):
            return False  # (1, 2] vs (1, 2): different intervals; (1,2,3) = [1,2,3]
        if a.kind == "set":
            return False
        return len(g.items) == len(a.items) and all(
            nodes_equal(x, y, ctx) for x, y in zip(g.items, a.items, strict=True))
    # gold is a set or a bare list: order does not matter
    if g.kind == "set" and a.kind == "bracket" and len(a.items) == 2 and a.open != a.close:
        pass  # {1, 2} vs (1, 2): accepted as a listing
    return _unordered(g.items, a.items, ctx)


def _unordered(gs: list, as_: list, ctx: _Ctx) -> bool:
    if len(gs) != len(as_):
        return False
    used = [False] * len(as_)
    for x in gs:
        for j, y in enumerate(as_):
            if not used[j] and nodes_equal(x, y, ctx):
                used[j] = True
                break
        else:
            return False
    return True


def _rels_equal(g: Rel, a, ctx: _Ctx) -> bool:
    if not isinstance(a, Rel):
        return False
    if g.op == "in" or a.op == "in":
        return g.op == a.op and nodes_equal(g.lhs, a.lhs, ctx) and nodes_equal(g.rhs, a.rhs, ctx)
    same = g.op == a.op and nodes_equal(g.lhs, a.lhs, ctx) and nodes_equal(g.rhs, a.rhs, ctx)
    if same:
        return True
    flipped = _FLIP[g.op] == a.op and nodes_equal(g.lhs, a.rhs, ctx) and nodes_equal(
        g.rhs, a.lhs, ctx)
    if flipped:
        return True
    if not all(isinstance(n, Expr) for n in (g.lhs, g.rhs, a.lhs, a.rhs)):
        return False
    # lhs - rhs proportional: x + y = 1 vs 2x + 2y - 2 = 0
    dg = g.lhs.value - g.rhs.value
    da = a.lhs.value - a.rhs.value
    if da == 0 or dg == 0:
        return False
    ratio = sympy.simplify(dg / da)
    if not (ratio.is_number and ratio != 0 and ratio.is_finite):
        return False
    if g.op in ("=", "!="):
        return g.op == a.op
    if ratio.is_positive:
        return g.op == a.op
    if ratio.is_negative:
        return _FLIP[g.op] == a.op
    return False


def _bad(v) -> bool:
    return v.has(sympy.nan) or v.has(zoo)


def _exprs_equal(g: Expr, a: Expr, ctx: _Ctx) -> bool:
    gv, av = g.value, a.value
    gm, am = isinstance(gv, sympy.MatrixBase), isinstance(av, sympy.MatrixBase)
    if gm or am:
        if not (gm and am) or gv.shape != av.shape:
            return False
        return all(_values_equal(Expr(x, g.inexact, places=g.places),
                                 Expr(y, a.inexact, places=a.places), ctx)
                   for x, y in zip(gv, av, strict=True))
    cfg = ctx.cfg
    candidates = [g]
    if cfg.percent == "gold" and g.percent:
        candidates.append(Expr(gv / 100, g.inexact, places=g.places + 2))
    return any(_values_equal(c, a, ctx) for c in candidates)


def _values_equal(g: Expr, a: Expr, ctx: _Ctx) -> bool:
    gv, av = g.value, a.value
    if gv == av:
        return True
    if _bad(gv):
        raise ParseError("gold is undefined (division by zero?)")
    if _bad(av):
        return False
    cfg = ctx.cfg
    inexact = g.inexact or a.inexact
    free = gv.free_symbols | av.free_symbols
    if not free:
        if gv.is_infinite or av.is_infinite or gv.has(oo) or av.has(oo):
            return False  # infinities are equal only structurally (handled above)
        if not inexact:
            return _exact_equal(gv, av)
        x, y = _num(gv), _num(av)
        if x is None or y is None:
            return _simplifies_to_zero(gv - av)
        places = max(g.places if g.inexact else 0, a.places if a.inexact else 0)
        if _close(x, y, cfg.rel_tol, decimal_abs_tol(cfg, places)):
            return True
        gn = ctx.gold_num
        if (cfg.round_to_gold and gn is not None and gn.decimal_literal and gn.places >= 2
                and not a.inexact and abs(y.imag) < 1e-30):
            rounded = round(Decimal(str(y.real)), gn.places)
            return Fraction(rounded) == gn.value
        return False
    places = max(g.places if g.inexact else 0, a.places if a.inexact else 0)
    return _symbolic_equal(gv, av, free, inexact, cfg, places)


def _magnitude_digits(v) -> int:
    """Decimal digits before the point of |v| (0 for |v| < 10), from a 15-digit estimate."""
    try:
        z = abs(complex(sympy.N(v, 15)))
    except (TypeError, ValueError, ArithmeticError):
        return 0
    return int(math.log10(z)) + 1 if math.isfinite(z) and z >= 10 else 0


def _exact_equal(gv, av) -> bool:
    """Two exact constants (no decimal literal, no unknowns) are equal only if their
    difference is zero: sympy's exact arithmetic decides integers, rationals and
    everything it simplifies on construction (2^{200}+2^{100} - 2^{200}, e^{60}+1 - e^{60});
    for the rest the difference is evaluated with sympy's adaptive precision, which
    returns its digits exactly when it is not zero. A difference that stays zero
    through 100 digits beyond the terms' own size (cos(pi/5) vs (1+sqrt5)/4) is zero."""
    d = gv - av
    if d == 0:
        return True
    if d.is_Rational:
        return False
    maxn = 100 + min(max(_magnitude_digits(gv), _magnitude_digits(av)), 20_000)
    try:
        z = d.evalf(30, strict=True, maxn=maxn)
    except PrecisionExhausted:
        return True
    except (TypeError, ValueError, ArithmeticError, NotImplementedError):
        return _simplifies_to_zero(d)
    return bool(z == 0)


def _num(v) -> _Z | None:
    try:
        z = sympy.N(v, _PREC)
        if not z.is_number or z.has(sympy.nan) or z.has(zoo):
            return None
        re_, im_ = z.as_real_imag()
        return _mp(re_, im_)
    except (TypeError, ValueError, ArithmeticError):
        return None


class _Z:
    """A complex number as two sympy Floats (keeps 40 digits; Python complex has 16)."""

    __slots__ = ("real", "imag")

    def __init__(self, re_, im_):
        self.real, self.imag = re_, im_

    def __abs__(self):
        return sympy.sqrt(self.real**2 + self.imag**2)


def _mp(re_, im_):
    r, i = sympy.Float(re_, _PREC), sympy.Float(im_, _PREC)
    if not (r.is_finite and i.is_finite):
        return None
    return _Z(r, i)


def _close(x: _Z, y: _Z, rtol: float, atol: float) -> bool:
    """|x - y| <= max(rtol * max(|x|, |y|), atol), at 40 digits (the tolerance rule);
    rtol is at least 1e-30, the noise of a 40-digit evaluation."""
    d = abs(_Z(x.real - y.real, x.imag - y.imag))
    scale = max(abs(x), abs(y))
    rtol = max(_float(rtol), Float("1e-30", _PREC))
    return bool(d <= max(rtol * scale, _float(atol)))


def _float(v) -> Float:
    """A tolerance (float or Fraction) as a 40-digit Float, via its decimal text."""
    f = Fraction(str(v)) if isinstance(v, float) else Fraction(v)
    return Float(sympy.Rational(f.numerator, f.denominator), _PREC)


def _simplifies_to_zero(d) -> bool:
    try:
        return sympy.simplify(d) == 0
    except (TypeError, ValueError, NotImplementedError, ArithmeticError):
        return False


def _symbolic_equal(gv, av, free, inexact: bool, cfg: VerifyConfig, places: int = 0) -> bool:
    syms = sorted(free, key=lambda s: s.name)
    rng = random.Random(12345)
    # exact expressions agree to 12 digits at every point; with a decimal, the rule
    rtol, atol = (cfg.rel_tol, decimal_abs_tol(cfg, places)) if inexact else (1e-12, 1e-20)
    valid = 0
    for _ in range(cfg.numeric_points * 2):
        if valid >= cfg.numeric_points:
            break
        point = {s: Float(rng.uniform(0.3, 2.7), 30) for s in syms}
        try:
            x = _num(gv.xreplace(point))
            y = _num(av.xreplace(point))
        except (TypeError, ValueError, ArithmeticError):
            continue
        if x is None or y is None:
            if (x is None) != (y is None) and x is not None:
                return False  # gold defined, answer undefined at this point
            continue
        if not _close(x, y, rtol, atol):
            return False
        valid += 1
    if valid >= min(2, cfg.numeric_points):
        return True
    log.debug("numeric check inconclusive, trying simplify on %s vs %s", gv, av)
    return _simplifies_to_zero(gv - av)

