"""A whitelisting parser for the LaTeX / plain-text math subset, building sympy objects.

Runs only inside worker processes (it imports sympy). Model text is never given to
`eval`, `exec`, `sympify` or `parse_expr`: a tokenizer turns the string into numbers,
single-letter symbols, whitelisted commands and operators, and a recursive-descent
parser calls sympy constructors (Integer, Rational, Symbol, Add, Mul, Pow and a fixed
table of functions) directly. Anything else is a ParseError ("unparsable").

Before sympy computes a power, factorial or binomial of exact numbers, the size of the
result is estimated and refused past `VerifyConfig.max_int_bits` (TooLargeError), so
`9^{9^{9^9}}` and `1000000!` cost microseconds, not memory.

Answer structure (`parse_answer`) sits above expressions:
  Text        words ("Monday")
  Expr        one expression (may be a matrix)
  Rel         `lhs op rhs` with op in = < > <= >= !=
  Seq         comma lists: kind "bare" (1, 2), "set" \\{1, 2\\}, "bracket" (1, 2] / [1, 2)
  Union       intervals joined by \\cup
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from fractions import Fraction

import sympy
from sympy import (
    Abs,
    E,
    I,
    ImmutableMatrix,
    Integer,
    Rational,
    S,
    Symbol,
    binomial,
    ceiling,
    factorial,
    floor,
    oo,
    pi,
)

from .config import VerifyConfig
from .errors import ParseError, TooLargeError

__all__ = ["Expr", "Rel", "Seq", "Union", "Text", "parse_answer", "parse_expression", "tokenize"]

# ---------------------------------------------------------------- structure nodes


@dataclass
class Expr:
    value: sympy.Basic
    inexact: bool = False  # contains a decimal literal with places (a rounded value)
    places: int = 0  # most decimal places among its decimal literals (1.5e-4: 5)
    percent: bool = False  # written with a % sign


@dataclass
class Rel:
    op: str
    lhs: object
    rhs: object


@dataclass
class Seq:
    kind: str  # "bare" | "set" | "bracket"
    items: list
    open: str = ""
    close: str = ""


@dataclass
class Union:
    items: list = field(default_factory=list)


@dataclass
class Text:
    text: str


# ---------------------------------------------------------------- tokenizer

_NAMES = (
    "arcsin arccos arctan sinh cosh tanh sqrt sin cos tan sec csc cot log ln exp pi "
    "infinity infty inf oo abs or and"
).split()
_NAME_RE = re.compile("|".join(sorted(_NAMES, key=len, reverse=True)))
_NUM_RE = re.compile(r"(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d{1,4}(?![\d.]))?")
_UNICODE = {
    "×": "*", "·": "*", "⋅": "*", "÷": "/", "√": "\\sqrt", "π": "\\pi", "∞": "\\infty",
    "≤": "<=", "≥": ">=", "≠": "!=", "∪": "\\cup", "∩": "\\cap", "−": "-", "∅": "\\emptyset",
}
_OPS = set("+-*/^()[]{}|,=!_'&%<>;:")

GREEK = frozenset(
    "alpha beta gamma delta epsilon varepsilon zeta eta theta vartheta iota kappa lambda mu nu "
    "xi rho varrho sigma tau upsilon phi varphi chi psi omega Gamma Delta Theta Lambda Xi Sigma "
    "Upsilon Phi Psi Omega".split()
)
_FUNCS = {
    "sin": sympy.sin, "cos": sympy.cos, "tan": sympy.tan, "sec": sympy.sec, "csc": sympy.csc,
    "cot": sympy.cot, "arcsin": sympy.asin, "arccos": sympy.acos, "arctan": sympy.atan,
    "sinh": sympy.sinh, "cosh": sympy.cosh, "tanh": sympy.tanh, "ln": sympy.log,
    "log": sympy.log, "exp": sympy.exp, "abs": Abs,
}
_INVERSE = {"sin": sympy.asin, "cos": sympy.acos, "tan": sympy.atan}
_REL_CMDS = {"\\le": "<=", "\\leq": "<=", "\\leqslant": "<=", "\\ge": ">=", "\\geq": ">=",
             "\\geqslant": ">=", "\\ne": "!=", "\\neq": "!=", "\\lt": "<", "\\gt": ">"}
_MULT_CMDS = {"\\cdot", "\\times", "\\ast"}
_BAR_CMDS = {"\\lvert", "\\rvert", "\\vert", "\\mid", "\\|"}
_MATRIX_ENVS = {"pmatrix", "bmatrix", "matrix", "Bmatrix", "smallmatrix"}

Tok = tuple[str, str]  # (kind, text); kinds: NUM LET NAME CMD OP


def tokenize(s: str) -> list[Tok]:
    out: list[Tok] = []
    i, n = 0, len(s)
    while i < n:
        c = s[i]
        if c.isspace():
            i += 1
        elif c.isdigit() or (c == "." and i + 1 < n and s[i + 1].isdigit()):
            m = _NUM_RE.match(s, i)
            out.append(("NUM", m.group(0)))
            i = m.end()
        elif c.isascii() and c.isalpha():
            j = i
            while j < n and s[j].isascii() and s[j].isalpha():
                j += 1
            word, k = s[i:j], 0
            while k < len(word):
                m = _NAME_RE.match(word, k)
                if m:
                    out.append(("NAME", m.group(0)))
                    k = m.end()
                else:
                    out.append(("LET", word[k]))
                    k += 1
            i = j
        elif c == "\\":
            if i + 1 < n and s[i + 1].isascii() and s[i + 1].isalpha():
                j = i + 1
                while j < n and s[j].isascii() and s[j].isalpha():
                    j += 1
                out.append(("CMD", s[i:j]))
                i = j
            elif i + 1 < n and s[i + 1] in "{}|%\\":
                out.append(("CMD", s[i : i + 2]))
                i += 2
            else:
                raise ParseError(f"unexpected backslash at position {i}")
        elif c in _UNICODE:
            t = _UNICODE[c]
            out.append(("CMD", t) if t.startswith("\\") else ("OP", t))
            i += 1
        elif c == "*" and s.startswith("**", i):
            out.append(("OP", "^"))
            i += 2
        elif c in "<>!" and s.startswith("=", i + 1):
            out.append(("OP", c + "="))
            i += 2
        elif c in _OPS:
            out.append(("OP", c))
            i += 1
        else:
            raise ParseError(f"character {c!r} is not in the math whitelist")
    return out


# ---------------------------------------------------------------- structure

_OPEN = {("OP", "("), ("OP", "["), ("OP", "{"), ("CMD", "\\{")}
_CLOSE = {("OP", ")"), ("OP", "]"), ("OP", "}"), ("CMD", "\\}")}


def _split_top(toks: list[Tok], seps: set[Tok], max_depth: int) -> list[list[Tok]]:
    parts: list[list[Tok]] = [[]]
    depth = 0
    for t in toks:
        if t in _OPEN or (t[0] == "CMD" and t[1] == "\\begin"):
            depth += 1
            if depth > max_depth:
                raise ParseError(f"brackets nested deeper than max_depth={max_depth}")
        elif t in _CLOSE or (t[0] == "CMD" and t[1] == "\\end"):
            depth -= 1
            if depth < 0:
                raise ParseError("unbalanced closing bracket")
        if depth == 0 and t in seps:
            parts.append([])
        else:
            parts[-1].append(t)
    if depth != 0:
        raise ParseError("unbalanced brackets")
    return parts


def _wrapped(toks: list[Tok]) -> bool:
    """True if toks[0] is an opening bracket whose match is the last token."""
    if len(toks) < 2 or toks[0] not in _OPEN or toks[-1] not in _CLOSE:
        return False
    depth = 0
    for k, t in enumerate(toks):
        if t in _OPEN:
            depth += 1
        elif t in _CLOSE:
            depth -= 1
            if depth == 0:
                return k == len(toks) - 1
    return False


_SEP = {("OP", ","), ("OP", ";"), ("NAME", "or"), ("NAME", "and")}
_REL_OPS = {("OP", "="), ("OP", "<"), ("OP", ">"), ("OP", "<="), ("OP", ">="), ("OP", "!=")}
_THOUSANDS_RE = re.compile(r"^-?\d{1,3}(?:,\d{3})+(?:\.\d+)?$")


def parse_answer(s: str, cfg: VerifyConfig) -> object:
    """Parse a normalised answer string into a structure node (see module docstring)."""
    if len(s) > cfg.max_answer_chars:
        raise ParseError(f"answer longer than max_answer_chars={cfg.max_answer_chars}")
    if _THOUSANDS_RE.match(s):
        s = s.replace(",", "")
    toks = tokenize(s)
    if not toks:
        raise ParseError("empty answer")
    return _struct(toks, cfg, 0)


def _struct(toks: list[Tok], cfg: VerifyConfig, level: int) -> object:
    if level > cfg.max_depth:
        raise ParseError(f"answer nested deeper than max_depth={cfg.max_depth}")
    if not toks:
        raise ParseError("empty list item")
    if toks[0] in (("NAME", "or"), ("NAME", "and")):
        toks = toks[1:]
    parts = _split_top(toks, {("CMD", "\\cup"), ("LET", "U")}, cfg.max_depth)
    if len(parts) > 1:
        return Union([_struct(p, cfg, level + 1) for p in parts])
    parts = [p for p in _split_top(toks, _SEP, cfg.max_depth) if p]
    if len(parts) > 1:
        return Seq("bare", _flat([_struct(p, cfg, level + 1) for p in parts]))
    toks = parts[0] if parts else toks
    depth = 0
    for k, t in enumerate(toks):  # a top-level \pm: two answers
        if t in _OPEN:
            depth += 1
        elif t in _CLOSE:
            depth -= 1
        if depth == 0 and t in (("CMD", "\\pm"), ("CMD", "\\mp")):
            plus, minus = ("OP", "+"), ("OP", "-")
            if t[1] == "\\mp":
                plus, minus = minus, plus
            return Seq("bare", [_struct(toks[:k] + [plus] + toks[k + 1 :], cfg, level + 1),
                                _struct(toks[:k] + [minus] + toks[k + 1 :], cfg, level + 1)])
    if toks[0] == ("CMD", "\\{") and _wrapped(toks):
        inner = toks[1:-1]
        items = [p for p in _split_top(inner, _SEP, cfg.max_depth)] if inner else []
        return Seq("set", _flat([_struct(p, cfg, level + 1) for p in items]))
    if toks in ([("CMD", "\\emptyset")], [("CMD", "\\varnothing")]):
        return Seq("set", [])
    if toks[0] in (("OP", "("), ("OP", "[")) and _wrapped(toks):
        inner = _split_top(toks[1:-1], {("OP", ",")}, cfg.max_depth)
        if len(inner) > 1:
            return Seq("bracket", [_struct(p, cfg, level + 1) for p in inner],
                       toks[0][1], toks[-1][1])
    rel_toks = [(k, t) for k, t in enumerate(toks) if depth_zero_rel(toks, k)]
    if rel_toks:
        if len(rel_toks) > 1 and any(t != ("OP", "=") for _, t in rel_toks):
            raise ParseError("chained inequalities (a < x < b) are not supported")
        k, t = rel_toks[-1]  # a = b = c: (a = b) = c, whose value side is c
        op = _REL_CMDS.get(t[1], t[1])
        return Rel(op, _struct(toks[:k], cfg, level + 1), _struct(toks[k + 1 :], cfg, level + 1))
    in_pos = [k for k, t in enumerate(toks) if t == ("CMD", "\\in")]
    if in_pos and cfg.strip_equation_lhs:
        return Rel("in", _struct(toks[: in_pos[0]], cfg, level + 1),
                   _struct(toks[in_pos[0] + 1 :], cfg, level + 1))
    p = _Parser(toks, cfg)
    value = p.parse()
    return Expr(value, p.inexact, p.percent, p.places)


def _flat(items: list) -> list:
    """Splice the two answers of a `\\pm` into the enclosing list or set."""
    out = []
    for it in items:
        if isinstance(it, Seq) and it.kind == "bare":
            out.extend(it.items)
        else:
            out.append(it)
    return out


def depth_zero_rel(toks: list[Tok], k: int) -> bool:
    t = toks[k]
    if not (t in _REL_OPS or (t[0] == "CMD" and t[1] in _REL_CMDS)):
        return False
    depth = 0
    for u in toks[:k]:
        if u in _OPEN:
            depth += 1
        elif u in _CLOSE:
            depth -= 1
    return depth == 0


def parse_expression(s: str, cfg: VerifyConfig | None = None) -> sympy.Basic:
    """Parse one expression string into a sympy object (for tests and tools)."""
    cfg = cfg or VerifyConfig()
    return _Parser(tokenize(s), cfg).parse()


# ---------------------------------------------------------------- expressions


class _Parser:
    def __init__(self, toks: list[Tok], cfg: VerifyConfig):
        self.toks = toks
        self.pos = 0
        self.cfg = cfg
        self.depth = 0
        self.inexact = False
        self.places = 0
        self.percent = False

    # -- helpers
    def peek(self, k: int = 0) -> Tok | None:
        j = self.pos + k
        return self.toks[j] if j < len(self.toks) else None

    def take(self) -> Tok:
        t = self.peek()
        if t is None:
            raise ParseError("unexpected end of expression")
        self.pos += 1
        return t

    def expect(self, kind: str, text: str) -> None:
        t = self.take()
        if t != (kind, text):
            raise ParseError(f"expected {text!r}, got {t[1]!r}")

    def enter(self) -> None:
        self.depth += 1
        if self.depth > self.cfg.max_depth:
            raise ParseError(f"expression nested deeper than max_depth={self.cfg.max_depth}")

    def parse(self) -> sympy.Basic:
        v = self.expr()
        if self.peek() is not None:
            raise ParseError(f"unexpected {self.peek()[1]!r}")
        return v

    # -- size guards (expression bombs)
    def _bits(self, r: sympy.Rational) -> int:
        return max(int(r.p).bit_length(), int(r.q).bit_length(), 1)

    def pow(self, b: sympy.Basic, e: sympy.Basic) -> sympy.Basic:
        limit = self.cfg.max_int_bits
        if e.is_Number and b.is_number:
            trivial = b in (S.Zero, S.One, S.NegativeOne, I, -I)
            if not trivial and e.is_Rational:
                if b.is_Rational:
                    if abs(e) * self._bits(b) > limit:
                        raise TooLargeError(f"power too large (> {limit} bits)")
                elif abs(e) > 4096:
                    raise TooLargeError("power of a constant with exponent > 4096")
        elif e.is_Integer and abs(e) > 100000:
            raise TooLargeError("exponent > 100000")
        return sympy.Pow(b, e)

    def fact(self, n: sympy.Basic) -> sympy.Basic:
        if n.is_number and n.is_real and n.is_finite and n > 2000:
            raise TooLargeError("factorial of a number > 2000")
        return factorial(n)

    def binom(self, n: sympy.Basic, k: sympy.Basic) -> sympy.Basic:
        if n.is_number and n.is_real and n.is_finite and abs(n) > self.cfg.max_int_bits:
            raise TooLargeError("binomial of a number too large")
        return binomial(n, k)

    def num(self, text: str) -> sympy.Basic:
        m = re.search(r"[eE]([+-]?\d+)$", text)
        exp10 = abs(int(m.group(1))) if m else 0
        if (len(text) + exp10) * 3.33 > self.cfg.max_int_bits:
            raise TooLargeError("number literal too large")
        if "." in text or "e" in text or "E" in text:
            t = text.replace(".e", "e").replace(".E", "E").rstrip(".") or "0"
            f = Fraction(t)
            if f.denominator != 1 or ("." in t and t.split(".", 1)[1][:1].isdigit()):
                self.inexact = True
                mant = re.split("[eE]", t)[0]
                written = len(mant.split(".", 1)[1]) if "." in mant else 0
                exp = int(re.split("[eE]", t)[1]) if re.search("[eE]", t) else 0
                self.places = max(self.places, written - exp)
            return Rational(f.numerator, f.denominator)
        return Integer(int(text))

    # -- grammar
    def expr(self) -> sympy.Basic:
        self.enter()
        terms = [self.term()]
        while (t := self.peek()) in (("OP", "+"), ("OP", "-")):
            self.take()
            rhs = self.term()
            terms.append(rhs if t[1] == "+" else -rhs)
        self.depth -= 1
        return sympy.Add(*terms) if len(terms) > 1 else terms[0]

    def _starts_primary(self, t: Tok | None) -> bool:
        if t is None:
            return False
        kind, text = t
        if kind in ("NUM", "LET"):
            return True
        if kind == "NAME":
            return text not in ("or", "and")
        if kind == "OP":
            return text in "([{"
        if kind == "CMD":
            return not (text in _MULT_CMDS or text in _REL_CMDS or text in _BAR_CMDS or text in (
                "\\div", "\\cup", "\\cap", "\\in", "\\pm", "\\mp", "\\}", "\\end", "\\\\",
                "\\right", "\\rfloor", "\\rceil", "\\%"))
        return False

    def term(self) -> sympy.Basic:
        v = self.unary()
        while True:
            t = self.peek()
            if t in (("OP", "*"),) or (t is not None and t[0] == "CMD" and t[1] in _MULT_CMDS):
                self.take()
                v = v * self.unary()
            elif t == ("OP", "/") or t == ("CMD", "\\div"):
                self.take()
                v = v / self.unary()
            elif self._starts_primary(t):
                if t[0] == "NUM" and self.toks[self.pos - 1][0] == "NUM":
                    raise ParseError("two numbers in a row")
                v = v * self.power()
            else:
                return v

    def unary(self) -> sympy.Basic:
        t = self.peek()
        if t == ("OP", "-"):
            self.take()
            return -self.unary()
        if t == ("OP", "+"):
            self.take()
            return self.unary()
        return self.power()

    def power(self) -> sympy.Basic:
        base = self.postfix()
        if self.peek() == ("OP", "^"):
            self.take()
            e = self.exponent()
            base = self.pow(base, e)
            while self.peek() in (("OP", "!"),):
                self.take()
                base = self.fact(base)
        return base

    def exponent(self) -> sympy.Basic:
        t = self.peek()
        if t == ("OP", "{"):
            return self.group()
        if t == ("OP", "-"):
            self.take()
            return -self.exponent()
        if t == ("OP", "+"):
            self.take()
            return self.exponent()
        return self.power()

    def postfix(self) -> sympy.Basic:
        v = self.primary()
        while True:
            t = self.peek()
            if t == ("OP", "!"):
                self.take()
                v = self.fact(v)
            elif t in (("OP", "%"), ("CMD", "\\%")):
                self.take()
                self.percent = True
                if self.cfg.percent == "value":
                    v = v / 100
            elif t == ("OP", "'"):
                raise ParseError("primes (derivatives) are not supported")
            else:
                return v

    def group(self) -> sympy.Basic:
        """`{ expr }` or, LaTeX-style, one digit / letter / command as an argument."""
        t = self.peek()
        if t == ("OP", "{"):
            self.take()
            v = self.expr()
            self.expect("OP", "}")
            return v
        if t is not None and t[0] == "NUM" and len(t[1]) > 1 and "." not in t[1]:
            self.toks[self.pos] = ("NUM", t[1][1:])  # \frac12: first digit only
            return Integer(int(t[1][0]))
        return self.postfix()

    def bracketed(self, close: str) -> sympy.Basic:
        v = self.expr()
        self.expect("OP", close)
        return v

    def primary(self) -> sympy.Basic:
        t = self.take()
        kind, text = t
        if kind == "NUM":
            return self.num(text)
        if kind == "LET":
            return self.letter(text)
        if kind == "NAME":
            return self.name(text)
        if kind == "OP":
            if text == "(":
                return self.bracketed(")")
            if text == "[":
                return self.bracketed("]")
            if text == "{":
                return self.bracketed("}")
            if text == "|":
                v = self.expr()
                self.expect("OP", "|")
                return Abs(v)
            raise ParseError(f"unexpected {text!r}")
        return self.command(text)

    def subscript(self, base: str) -> str:
        if self.peek() != ("OP", "_"):
            return base
        self.take()
        t = self.take()
        parts: list[str] = []
        if t == ("OP", "{"):
            while (u := self.take()) != ("OP", "}"):
                if u[0] not in ("NUM", "LET", "NAME"):
                    raise ParseError("only letters and digits in subscripts")
                parts.append(u[1])
        elif t[0] in ("NUM", "LET"):
            parts.append(t[1])
        else:
            raise ParseError("bad subscript")
        return f"{base}_{''.join(parts)}"

    def letter(self, ch: str) -> sympy.Basic:
        name = self.subscript(ch)
        if name == "e":
            return E
        if name == "i":
            return I
        return Symbol(name)

    def name(self, text: str) -> sympy.Basic:
        if text == "pi":
            return pi
        if text in ("inf", "infty", "infinity", "oo"):
            return oo
        if text == "sqrt":
            return self.pow(self.func_arg(), Rational(1, 2))
        return self.apply_func(text)

    def func_arg(self) -> sympy.Basic:
        t = self.peek()
        if t == ("OP", "("):
            self.take()
            return self.bracketed(")")
        if t == ("OP", "{"):
            return self.group()
        return self.power()

    def apply_func(self, fname: str) -> sympy.Basic:
        f = _FUNCS[fname]
        power = None
        base = None
        if fname == "log" and self.peek() == ("OP", "_"):
            self.take()
            base = self.group()
        if self.peek() == ("OP", "^"):
            self.take()
            power = self.exponent()
        arg = self.func_arg()
        if power is not None and power == -1 and fname in _INVERSE:
            return _INVERSE[fname](arg)
        v = sympy.log(arg, base) if base is not None else f(arg)
        return self.pow(v, power) if power is not None else v

    def command(self, cmd: str) -> sympy.Basic:
        name = cmd[1:]
        if name == "frac":
            num = self.group()
            den = self.group()
            if den == 0:
                raise ParseError("division by zero")
            return num * self.pow(den, S.NegativeOne)
        if name in ("binom", "dbinom", "tbinom"):
            return self.binom(self.group(), self.group())
        if name == "sqrt":
            index = None
            if self.peek() == ("OP", "["):
                self.take()
                index = self.bracketed("]")
            radicand = self.group()
            if index is None:
                return self.pow(radicand, Rational(1, 2))
            if index == 0:
                raise ParseError("zeroth root")
            return self.pow(radicand, self.pow(index, S.NegativeOne))
        if name == "pi":
            return pi
        if name in ("infty", "infin"):
            return oo
        if name in GREEK:
            return Symbol(self.subscript(name))
        if name in _FUNCS:
            return self.apply_func(name)
        if name in ("lfloor", "lceil"):
            v = self.expr()
            self.expect("CMD", "\\rfloor" if name == "lfloor" else "\\rceil")
            return floor(v) if name == "lfloor" else ceiling(v)
        if cmd in _BAR_CMDS:
            v = self.expr()
            t = self.take()
            if not (t == ("OP", "|") or (t[0] == "CMD" and t[1] in _BAR_CMDS)):
                raise ParseError("unclosed absolute value")
            return Abs(v)
        if name == "begin":
            return self.matrix()
        if name in ("mathrm", "mathbf", "text", "operatorname"):  # left over by normalize
            return self.group()
        raise ParseError(f"LaTeX command {cmd} is not supported")

    def matrix(self) -> sympy.Basic:
        self.expect("OP", "{")
        env = ""
        while (t := self.take()) != ("OP", "}"):
            env += t[1]
        if env not in _MATRIX_ENVS:
            raise ParseError(f"environment {env!r} is not supported")
        rows: list[list[sympy.Basic]] = [[]]
        while True:
            t = self.peek()
            if t == ("CMD", "\\end"):
                self.take()
                self.expect("OP", "{")
                while self.take() != ("OP", "}"):
                    pass
                break
            if t == ("CMD", "\\\\"):
                self.take()
                rows.append([])
                continue
            if t == ("OP", "&"):
                self.take()
                continue
            rows[-1].append(self.expr())
        rows = [r for r in rows if r]
        if not rows or len({len(r) for r in rows}) != 1:
            raise ParseError("ragged or empty matrix")
        return ImmutableMatrix(rows)
