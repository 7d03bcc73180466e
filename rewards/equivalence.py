"""Decide whether two answers are mathematically the same.

math-verify's LaTeX parser (latex2sympy2_extended) turns each cleaned answer into
sympy; the comparison is this module's own, because that is where math-verify's
public false positives come from (numbers rounded to 6 places make ``1/2004!``
equal ``1/2006!``; a degenerate equation compares equal to any other) and its
false negatives (``\\sqrt{1/n}`` vs ``1/\\sqrt{n}`` with no sign assumption).

Rules, in order:

* exact numbers compare exactly (rationals) or to 1e-12 relative at 50 digits
  (irrationals); a decimal literal on either side is an approximation and
  matches within 1e-4 relative (the tolerance of the reference graders),
  except against an integer, which a decimal must equal exactly;
* expressions with symbols: ``simplify(a - b) == 0``, else numeric probing at
  positive points (domain assumptions of typical answers) that must not be
  contradicted at negative points where both sides are real;
* equations match when ``lhs - rhs`` of each are proportional by a nonzero
  constant, never when either is identically zero; ``x = 5`` matches ``5``;
* sets match unordered, tuples ordered, intervals by endpoints and openness,
  matrices element-wise; a set never matches a single element.

Nothing here evaluates model text as code: input reaches sympy only through the
LaTeX grammar, after :func:`looks_explosive` has rejected towers of exponents and
huge factorials. The hard time/memory bound is the caller's (``sandbox``).
"""

from __future__ import annotations

import logging
import random
import re
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache

from rewards.normalize import Answer, normalize, unit_scale

MATCH = "match"
MISMATCH = "mismatch"
UNPARSED = "unparsed"  # the prediction could not be parsed and is not textually equal
UNDECIDED = "undecided"  # fast_only: this pair needs the parser (never a final outcome)

DECIMAL_REL_TOL = 1e-4
EXACT_REL_TOL = 1e-12

_PLAIN_NUMBER = re.compile(r"^[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d{1,4})?$")
_PLAIN_FRACTION = re.compile(r"^([-+]?)(?:\\frac\{(\d+)\}\{(\d+)\}|(\d+)/(\d+))$")
# 3,14 or 0,5: a decimal comma (never three digits after it, which is a thousands separator).
_DECIMAL_COMMA = re.compile(r"^[-+]?\d+,(?:\d{1,2}|\d{4,})$")
_SPACED_MIXED = re.compile(r"^([-+]?)(\d+)\s+(\d+)\s*/\s*(\d+)$")  # 3128 1/2
_DIGIT_SPACE_DIGIT = re.compile(r"\d\s+\d")
# A primed letter (E', f^{\prime}): the parser drops the prime, so E' would equal E.
_PRIMED = re.compile(r"([A-Za-z])\s*('+|\^\s*\{?\s*\\prime\s*\}?)")
_MIXED_NUMBER = re.compile(r"^([-+]?)(\d+)\\frac\{(\d+)\}\{(\d+)\}$")  # 2\frac{1}{2} = 5/2
# Spaces that carry no meaning: any next to something other than a letter ("\sin x" keeps its one).
_LOOSE_SPACE = re.compile(r"(?<![A-Za-z])\s+|\s+(?![A-Za-z])")
_NESTED_POWER = re.compile(r"\^\s*\{[^{}]*\^|\^\s*\d+\s*\^")
_BIG_EXPONENT = re.compile(r"\^\s*\{?\s*(\d{6,})")
_BIG_FACTORIAL = re.compile(r"(\d{6,})\s*!")
_BIG_NUMBER = re.compile(r"\d{2000,}")
_FACTORIAL_CHAIN = re.compile(r"!\s*!")  # 10!!!!!!: iterated factorials explode
MAX_NESTING = 24  # deeper bracket nesting makes the parser recurse for seconds


@dataclass(frozen=True)
class Comparison:
    outcome: str  # MATCH / MISMATCH / UNPARSED
    detail: str = ""

    @property
    def equal(self) -> bool:
        return self.outcome == MATCH


def looks_explosive(latex: str) -> bool:
    """True for inputs whose evaluation could take unbounded time or memory."""
    depth = deepest = 0
    for ch in latex:
        if ch in "({[":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in ")}]":
            depth -= 1
    return bool(
        deepest > MAX_NESTING
        or _FACTORIAL_CHAIN.search(latex)
        or _NESTED_POWER.search(latex)
        or _BIG_EXPONENT.search(latex)
        or _BIG_FACTORIAL.search(latex)
        or _BIG_NUMBER.search(latex)
    )


# --------------------------------------------------------------------------- parsing


def _plain_value(text: str) -> tuple[Fraction, bool] | None:
    """(value, is_decimal) for plain numbers and fractions, without sympy."""
    if "/" in text and _DIGIT_SPACE_DIGIT.search(text):
        # "3128 1/2" is a mixed number, never 31281/2; "3 5/2" is neither
        m = _SPACED_MIXED.match(text.strip())
        if not m or int(m.group(3)) >= int(m.group(4)) or int(m.group(4)) == 0:
            return None
        v = int(m.group(2)) + Fraction(int(m.group(3)), int(m.group(4)))
        return (-v if m.group(1) == "-" else v), False
    t = text.replace(" ", "")
    if _PLAIN_NUMBER.match(t):
        v = Fraction(t)  # also reads 1.5e3
        return v, v.denominator != 1 and ("." in t or "e" in t.lower())
    m = _MIXED_NUMBER.match(t)
    if m and int(m.group(3)) < int(m.group(4)):
        v = int(m.group(2)) + Fraction(int(m.group(3)), int(m.group(4)))
        return (-v if m.group(1) == "-" else v), False
    m = _PLAIN_FRACTION.match(t)
    if m:
        num, den = (m.group(2), m.group(3)) if m.group(2) else (m.group(4), m.group(5))
        if int(den) == 0:
            return None
        v = Fraction(int(num), int(den))
        return (-v if m.group(1) == "-" else v), False
    return None


def _explicit_matrix(x):
    """A matrix sum or product written out (A + B, A B) as the matrix it is; anything else as is."""
    import sympy

    if isinstance(x, sympy.MatrixExpr) and not isinstance(x, sympy.MatrixBase):
        try:
            return x.doit().as_explicit()
        except Exception:  # shapes that do not fit, symbols the product cannot resolve
            return x
    return x


def _is_truth_value(x) -> bool:
    import sympy

    return isinstance(x, sympy.logic.boolalg.BooleanAtom)


def _last_side(text: str) -> str:
    """What follows the last '=' outside brackets (the whole text if there is none)."""
    depth, cut = 0, -1
    for i, ch in enumerate(text):
        if ch in "({[":
            depth += 1
        elif ch in ")}]":
            depth -= 1
        elif ch == "=" and depth == 0:
            cut = i
    return text[cut + 1 :].strip() if cut >= 0 else text


def _primes(text: str) -> list[tuple[str, int]]:
    """The primed letters of an answer with their prime counts (f'' counts 2), sorted."""
    return sorted((m.group(1), m.group(2).count("'") or 1) for m in _PRIMED.finditer(text))


def _integer(text: str) -> int | None:
    v = _plain_value(text)
    return v[0].numerator if v is not None and v[0].denominator == 1 else None


@lru_cache(maxsize=4096)
def parse_latex(latex: str):
    """Parse an answer with math-verify's LaTeX parser; ``None`` if it fails.

    math-verify's own signal-based timeout is disabled (it breaks outside the
    main thread); callers bound time by running this in a killable worker.
    """
    if not latex or looks_explosive(latex):
        return None
    from math_verify import parse as mv_parse

    # math-verify warns that its own timeout is off: ours is the sandbox's hard kill.
    logging.getLogger("math_verify").setLevel(logging.ERROR)

    try:
        out = mv_parse(f"${latex}$", parsing_timeout=None, raise_on_error=False)
    except Exception:  # the parser is third-party code fed untrusted text
        return None
    for item in out:
        if not isinstance(item, str):
            return _imaginary_unit(item)
    return None


def _imaginary_unit(expr):
    """Read a free symbol ``i`` as the imaginary unit (``3+4i``)."""
    import sympy

    try:
        syms = getattr(expr, "free_symbols", set())
        for s in syms:
            if s.name == "i":
                return expr.subs(s, sympy.I)
    except Exception:
        pass
    return expr


# --------------------------------------------------------------------------- power towers

# Largest power a tower may evaluate to, in bits (2^{2^{2^2}} = 2^16 is tiny; 10^{10^{10}} is not).
MAX_POWER_BITS = 1 << 16
_TOWER_TOKEN = re.compile(r"\s*(\d{1,40}|\^|\{|\}|\(|\))")


class _TooBig(Exception):
    pass


def power_tower_value(text: str) -> int | None:
    """The value of an integer power tower (``2^{2^2}``, ``2^2^3``, ``(2^3)^2``,
    read right to left as in mathematics), evaluated only while it stays under
    :data:`MAX_POWER_BITS`; ``None`` when ``text`` is not one or is too large."""
    toks, pos, t = [], 0, text.strip()
    while pos < len(t):
        m = _TOWER_TOKEN.match(t, pos)
        if m is None:
            return None
        toks.append(m.group(1))
        pos = m.end()
        if len(toks) > 64:
            return None
    if "^" not in toks:
        return None
    try:
        value, end = _tower(toks, 0, 0)
    except (_TooBig, IndexError, ValueError, RecursionError):
        return None
    return value if end == len(toks) else None


def _tower(toks: list[str], i: int, depth: int) -> tuple[int, int]:
    if depth > 12:
        raise _TooBig
    base, i = _tower_atom(toks, i, depth)
    if i < len(toks) and toks[i] == "^":
        exp, i = _tower(toks, i + 1, depth + 1)
        if base in (0, 1) or exp == 0:
            return (1 if exp == 0 else base), i
        if exp * base.bit_length() > MAX_POWER_BITS:
            raise _TooBig
        return base**exp, i
    return base, i


def _tower_atom(toks: list[str], i: int, depth: int) -> tuple[int, int]:
    tok = toks[i]
    if tok in ("{", "("):
        value, i = _tower(toks, i + 1, depth + 1)
        if toks[i] != {"{": "}", "(": ")"}[tok]:
            raise ValueError
        return value, i + 1
    if tok.isdigit():
        return int(tok), i + 1
    raise ValueError


# --------------------------------------------------------------------------- numbers


def _numbers_close(a, b) -> bool:
    """Compare two sympy numbers (no free symbols)."""
    import sympy

    if a == b:
        return True
    if a.is_Rational and b.is_Rational:
        return False
    # A decimal may approximate a fraction or an irrational, never an integer.
    inexact = (a.has(sympy.Float) or b.has(sympy.Float)) and not (a.is_Integer or b.is_Integer)
    tol = DECIMAL_REL_TOL if inexact else EXACT_REL_TOL
    try:
        va, vb = sympy.N(a, 50), sympy.N(b, 50)
        if va.has(sympy.zoo, sympy.nan) or vb.has(sympy.zoo, sympy.nan):
            return False
        if va.is_infinite or vb.is_infinite:
            return bool(va == vb)
        ra, ia = va.as_real_imag()
        rb, ib = vb.as_real_imag()
        scale = max(abs(ra), abs(ia), abs(rb), abs(ib))
        if scale == 0:
            return True
        diff = sympy.sqrt((ra - rb) ** 2 + (ia - ib) ** 2)
        return bool(diff <= tol * scale)
    except Exception:
        return False


_PROBE_RNG_SEED = 20261123


def _probe_equal(a, b, symbols) -> bool:
    """Numeric probing for expressions with free symbols."""
    import sympy

    rng = random.Random(_PROBE_RNG_SEED)
    symbols = sorted(symbols, key=lambda s: s.name)
    agreed = 0
    for _ in range(6):
        point = {s: sympy.Rational(rng.randint(11, 97), rng.randint(7, 13)) for s in symbols}
        try:
            va, vb = sympy.N(a.subs(point), 30), sympy.N(b.subs(point), 30)
        except Exception:
            return False
        if not (va.is_number and vb.is_number) or va.has(sympy.zoo, sympy.nan) or vb.has(sympy.zoo, sympy.nan):
            continue
        if not _numbers_close(va, vb):
            return False
        agreed += 1
    if agreed < 3:
        return False
    # Where both sides are real at negative points they must still agree: this keeps
    # |x| != x while accepting sqrt(1/n) == 1/sqrt(n) (complex for n < 0).
    for _ in range(4):
        point = {s: -sympy.Rational(rng.randint(11, 97), rng.randint(7, 13)) for s in symbols}
        try:
            va, vb = sympy.N(a.subs(point), 30), sympy.N(b.subs(point), 30)
        except Exception:
            continue
        if va.is_real and vb.is_real and va.is_finite and vb.is_finite and not _numbers_close(va, vb):
            return False
    return True


def _approximates_irrational(gold, pred) -> bool:
    """``12.566`` for ``4\\pi``: a decimal is not an exact irrational answer (a
    decimal reference, an approximation itself, may still be matched by one)."""
    import sympy

    try:
        decimal = isinstance(pred, sympy.Float) or (
            isinstance(pred, sympy.Mul)
            and len(pred.args) == 2
            and -1 in pred.args
            and any(isinstance(x, sympy.Float) for x in pred.args)
        )
        return bool(decimal and not gold.has(sympy.Float) and gold.is_rational is False)
    except Exception:
        return False


def _expr_equal(a, b) -> bool:
    import sympy

    if a.has(sympy.zoo, sympy.nan) or b.has(sympy.zoo, sympy.nan):
        return False  # "undefined" equals nothing, not even another 1/0
    if a == b:
        return True
    syms = a.free_symbols | b.free_symbols
    if not syms:
        if _approximates_irrational(a, b):
            return False
        return _numbers_close(a, b)
    try:
        if sympy.simplify(a - b) == 0:
            return True
    except Exception:
        pass
    return _probe_equal(a, b, syms)


# --------------------------------------------------------------------------- structures


def _is_relation(x) -> bool:
    import sympy

    return isinstance(x, sympy.core.relational.Relational)


def _is_condition(x) -> bool:
    """An equation, inequality, or a chain of them (``1 < x < 3``, ``x = 2+3 = 5``)."""
    import sympy

    if _is_relation(x):
        return True
    return isinstance(x, (sympy.And, sympy.Or)) and all(_is_relation(e) for e in x.args)


def _sets_equal(a, b) -> bool:
    import sympy

    try:
        if isinstance(a, sympy.Interval) and isinstance(b, sympy.Interval):
            return (
                a.left_open == b.left_open
                and a.right_open == b.right_open
                and bool(
                    sympy.simplify(a.start - b.start) == 0
                    if a.start.is_finite and b.start.is_finite
                    else a.start == b.start
                )
                and bool(sympy.simplify(a.end - b.end) == 0 if a.end.is_finite and b.end.is_finite else a.end == b.end)
            )
        return bool(a == b or sympy.simplify(a.symmetric_difference(b)) == sympy.EmptySet)
    except Exception:
        return False


def _relation_equal(a, b) -> bool:
    """Equations and inequalities: same solution set by proportional normal forms."""
    import sympy
    from sympy.core import relational as rel

    def normal(r):
        # Gt/Ge as (expr, strict) with expr > 0; Lt/Le flipped; Eq as (expr, None).
        if isinstance(r, rel.Equality):
            return r.lhs - r.rhs, None
        if isinstance(r, (rel.StrictGreaterThan, rel.GreaterThan)):
            return r.lhs - r.rhs, isinstance(r, rel.StrictGreaterThan)
        if isinstance(r, (rel.StrictLessThan, rel.LessThan)):
            return r.rhs - r.lhs, isinstance(r, rel.StrictLessThan)
        return None, None

    try:
        ea, sa = normal(a)
        eb, sb = normal(b)
        if ea is None or eb is None or sa != sb:
            return False
        if sympy.simplify(ea) == 0 or sympy.simplify(eb) == 0:
            return False  # degenerate: an identity is not an answer
        ratio = sympy.simplify(ea / eb)
        if ratio.free_symbols or not ratio.is_number or ratio == 0:
            return False
        return bool(ratio > 0) if sa is not None else True
    except Exception:
        return False


def _assigned_value(x):
    """``x = 5`` -> 5 ; ``x \\in [1, 2)`` -> the interval; else ``None``."""
    import sympy

    if isinstance(x, sympy.Eq) and isinstance(x.lhs, sympy.Symbol):
        return x.rhs
    return None


def _chain(x):
    """``x = 5+5+1 = 11`` (an ``And`` of equations, each starting where the last
    ended) as ``(x, 11)``: its first and last sides; ``None`` for anything else."""
    import sympy

    if isinstance(x, sympy.Eq):
        return x.lhs, x.rhs
    if isinstance(x, sympy.And) and x.args and all(isinstance(e, sympy.Eq) for e in x.args):
        # And sorts its arguments; rebuild the chain by following rhs -> lhs links
        eqs = list(x.args)
        lhss = {e.lhs for e in eqs}
        start = [e for e in eqs if e.lhs not in {f.rhs for f in eqs}] or eqs[:1]
        first = start[0]
        cur, seen = first, {first}
        while True:
            nxt = next((e for e in eqs if e not in seen and e.lhs == cur.rhs), None)
            if nxt is None:
                break
            seen.add(nxt)
            cur = nxt
        if len(seen) == len(eqs) and lhss:
            return first.lhs, cur.rhs
    return None


def _label_like(x, depth: int = 0) -> bool:
    """A name for an answer rather than a condition on it: ``x``, ``(p, q)``,
    ``AB`` (read as a product of letters), ``|AB|``, ``V_1:V_2``, ``f(x)``."""
    import sympy

    if depth > 4:
        return False
    if isinstance(x, sympy.Symbol):
        return True
    if isinstance(x, (sympy.Tuple, sympy.FiniteSet)):
        return all(_label_like(e, depth + 1) for e in x.args)
    if isinstance(x, sympy.Interval) and x.left_open and x.right_open:  # (p, q), read as an open interval
        return _label_like(x.start, depth + 1) and _label_like(x.end, depth + 1)
    if isinstance(x, sympy.Mul):
        return all(_label_like(e, depth + 1) for e in x.args)
    if isinstance(x, sympy.Pow):
        return x.exp == -1 and _label_like(x.base, depth + 1)  # the V_2 of V_1 : V_2, the BO of NO/BO
    if isinstance(x, sympy.Abs):
        return _label_like(x.args[0], depth + 1)
    if isinstance(x, sympy.core.function.AppliedUndef):
        return all(isinstance(e, sympy.Symbol) for e in x.args)
    return False


def _stated_value(x, reference: bool):
    """The value an equation states: the last side of ``x = 5+5+1 = 11``,
    ``\\sqrt{4} = 2`` or ``(p, q) = (3, 2)``. A reference's equation states a value
    only when its left side is a name (``x^2 + y^2 = 25`` is an answer itself)."""
    ends = _chain(x)
    if ends is None:
        return None
    lhs, rhs = ends
    if reference and not _label_like(lhs):
        return None
    return rhs


def _solution_set(x):
    """A condition on one variable as the set it describes (``-3 < a < 10`` ->
    ``(-3, 10)``, ``x \\in (3, \\infty)`` -> that interval); ``None`` otherwise."""
    import sympy

    try:
        if isinstance(x, sympy.Eq) and isinstance(x.lhs, sympy.Symbol) and isinstance(x.rhs, sympy.Set):
            return x.rhs
        if isinstance(x, sympy.Set):
            return x
        if isinstance(x, (sympy.core.relational.Relational, sympy.And, sympy.Or)) and not isinstance(x, sympy.Eq):
            # 0 < f(x) < 1: the condition is on f(x), a name like any other
            calls = x.atoms(sympy.core.function.AppliedUndef)
            if len(calls) == 1:
                x = x.subs(next(iter(calls)), sympy.Dummy("y"))
            if len(x.free_symbols) == 1:
                return x.as_set()
    except Exception:
        return None
    return None


def _is_ordered(x) -> bool:
    """A tuple: ``(3, 2)``, or ``(2, 3)``, which the parser reads as an open interval."""
    import sympy

    return isinstance(x, sympy.Tuple) or (isinstance(x, sympy.Interval) and x.left_open and x.right_open)


def _seq(x):
    import sympy

    if isinstance(x, sympy.Tuple):
        return list(x.args)
    if isinstance(x, sympy.Interval) and x.left_open and x.right_open:
        return [x.start, x.end]  # "(1, 2)" is a point as much as an interval
    if isinstance(x, sympy.MatrixBase) and 1 in x.shape:
        return list(x)
    return None


def sym_equal(a, b, depth: int = 0) -> bool:
    """Structural equality of two parsed answers (``a`` is the reference)."""
    import sympy

    if depth > 6:
        return False
    rel_a, rel_b = _is_condition(a), _is_condition(b)
    if rel_a or rel_b:
        if rel_a and rel_b:
            ca, cb = _chain(a), _chain(b)
            if ca is not None and cb is not None and ca[0] == cb[0]:
                return sym_equal(ca[1], cb[1], depth + 1)  # x = 5 vs x = 2+3 = 5
            if _is_relation(a) and _is_relation(b) and _relation_equal(a, b):
                return True
        else:
            va = _stated_value(a, reference=True) if rel_a else a
            vb = _stated_value(b, reference=False) if rel_b else b
            if va is not None and vb is not None and sym_equal(va, vb, depth + 1):
                return True
        sa, sb = _solution_set(a), _solution_set(b)
        if (
            sa is not None
            and sb is not None
            and not (isinstance(sa, sympy.FiniteSet) and isinstance(sb, sympy.FiniteSet))
        ):
            return _sets_equal(sa, sb)
        return False
    if isinstance(a, sympy.FiniteSet) or isinstance(b, sympy.FiniteSet):
        ea = list(a.args) if isinstance(a, sympy.FiniteSet) else _seq(a)
        eb = list(b.args) if isinstance(b, sympy.FiniteSet) else _seq(b)
        if ea is None or eb is None or len(ea) != len(eb):
            return False
        unused = list(eb)
        for x in ea:
            hit = next((k for k, y in enumerate(unused) if sym_equal(x, y, depth + 1)), None)
            if hit is None:
                return False
            unused.pop(hit)
        return True
    if isinstance(a, sympy.Interval) and isinstance(b, sympy.Interval):
        return (
            a.left_open == b.left_open
            and a.right_open == b.right_open
            and sym_equal(a.start, b.start, depth + 1)
            and sym_equal(a.end, b.end, depth + 1)
        )
    if isinstance(a, sympy.Union) and isinstance(b, sympy.Union):
        return _sets_equal(a, b)
    if isinstance(a, sympy.MatrixBase) and isinstance(b, sympy.MatrixBase):
        return a.shape == b.shape and all(sym_equal(x, y, depth + 1) for x, y in zip(a, b))
    sa, sb = _seq(a), _seq(b)
    if sa is not None or sb is not None:
        return (
            sa is not None
            and sb is not None
            and len(sa) == len(sb)
            and all(sym_equal(x, y, depth + 1) for x, y in zip(sa, sb))
        )
    if isinstance(a, sympy.Expr) and isinstance(b, sympy.Expr):
        return _expr_equal(a, b)
    if isinstance(a, sympy.Set) or isinstance(b, sympy.Set):
        try:
            return bool(a == b or sympy.simplify(a.symmetric_difference(b)) == sympy.EmptySet)
        except Exception:
            return False
    return False


# --------------------------------------------------------------------------- entry point


def _digits_value(digits: str, base: int) -> int | None:
    try:
        return int(digits, base) if 2 <= base <= 36 else None
    except ValueError:
        return None


def _percent_variants(ans: Answer, value):
    """``50\\%`` may be meant as 50 or as 0.5; only numbers have the second reading."""
    if not ans.percent:
        return (value,)
    try:
        return (value, value / 100)
    except TypeError:  # a set, interval or relation: no percent reading
        return (value,)


def compare(pred: str, gold: str, options: dict[str, str] | None = None, fast_only: bool = False) -> Comparison:
    """Compare a predicted answer with the reference answer (both raw strings).

    ``fast_only``: decide only what needs no parsing (identical forms, option
    letters, bases, units, plain numbers and fractions, power towers) and return
    ``UNDECIDED`` where the LaTeX parser and sympy would be needed. That part is
    pure string and integer work, bounded by the answer length, so the verifier
    runs it in the caller's process and sends only the rest to its sandbox."""
    p, g = normalize(pred), normalize(gold)
    if not p.text:
        return Comparison(MISMATCH, "empty prediction")
    # Units on both sides: of one kind they convert (50 cm = 0.5 m), of different kinds
    # or different sizes they differ (5 cm is not 5 m). A unit on one side only is ignored.
    pu, gu = unit_scale(p.unit), unit_scale(g.unit)
    if pu and gu:
        pv, gv = _plain_value(p.text), _plain_value(g.text)
        if pu[0] != gu[0]:
            return Comparison(MISMATCH, "units of different kinds")
        if pv is not None and gv is not None:
            x, y = pv[0] * Fraction(pu[1]), gv[0] * Fraction(gu[1])
            close = x == y or ((pv[1] or gv[1]) and abs(x - y) <= DECIMAL_REL_TOL * max(abs(x), abs(y)))
            return Comparison(MATCH if close else MISMATCH, "units")
        if pu != gu:
            return Comparison(MISMATCH, "units")

    if _LOOSE_SPACE.sub("", p.text) == _LOOSE_SPACE.sub("", g.text) and p.percent == g.percent and p.base == g.base:
        return Comparison(MATCH, "identical")

    # Multiple choice: a letter on one side and the option's text on the other.
    if p.letter or g.letter:
        if p.letter and g.letter:
            return Comparison(MATCH if p.letter == g.letter else MISMATCH, "option letters")
        if options:
            opts = {k.strip().upper(): v for k, v in options.items()}
            if g.letter and g.letter in opts:
                return compare(pred, opts[g.letter], fast_only=fast_only)
            if p.letter and p.letter in opts:
                return compare(opts[p.letter], gold, fast_only=fast_only)

    # Numbers written in a base: an answer asked in base 7 is its base-7 digits, not the
    # same value in base 10; a base-10 reference is not answered in another base.
    if p.base or g.base:
        if p.text.lower() == g.text.lower() and (p.base is None or g.base is None or p.base == g.base):
            return Comparison(MATCH, "same digits")
        if g.base is None and p.base == 10:
            pv, gv = _digits_value(p.text, 10), _plain_value(g.text)
            return Comparison(MATCH if gv is not None and pv == gv[0] else MISMATCH, "base 10")
        if g.base is not None and p.base == g.base:
            pv, gv = _digits_value(p.text, p.base), _digits_value(g.text, g.base)
            return Comparison(MATCH if pv is not None and pv == gv else MISMATCH, "base")
        return Comparison(MISMATCH, "base")

    if p.too_long or g.too_long:
        same = p.plain == g.plain
        return Comparison(MATCH if same else (MISMATCH if g.too_long else UNPARSED), "too long to parse")

    # Power towers (2^{2^2} vs 16): exact integers while they stay small enough.
    if _NESTED_POWER.search(p.text) or _NESTED_POWER.search(g.text):
        pt = power_tower_value(p.text) if "^" in p.text else _integer(p.text)
        gt = power_tower_value(g.text) if "^" in g.text else _integer(g.text)
        if pt is not None and gt is not None and not (p.percent or g.percent):
            return Comparison(MATCH if pt == gt else MISMATCH, "power tower")

    # Fast path: plain numbers and fractions, no sympy.
    pv, gv = _plain_value(p.text), _plain_value(g.text)
    if pv is None and gv is not None and gv[1] and _DECIMAL_COMMA.match(p.text):
        pv = _plain_value(p.text.replace(",", "."))  # 3,14 for 3.14: a decimal comma, as the reference is a decimal
    if gv is None and pv is not None and pv[1] and _DECIMAL_COMMA.match(g.text):
        gv = _plain_value(g.text.replace(",", "."))  # and the other way round
    if pv is not None and gv is not None:
        for x in _percent_variants(p, pv[0]):
            for y in _percent_variants(g, gv[0]):
                if x == y:
                    return Comparison(MATCH, "number")
                approximate = (pv[1] or gv[1]) and x.denominator != 1 and y.denominator != 1
                if approximate and abs(x - y) <= DECIMAL_REL_TOL * max(abs(x), abs(y)):
                    return Comparison(MATCH, "number within tolerance")
        return Comparison(MISMATCH, "number")

    if _primes(p.text) != _primes(g.text):
        return Comparison(MISMATCH, "primed letters differ")
    if fast_only:
        return Comparison(UNDECIDED, "needs the parser")
    ga, pa = parse_latex(g.text), parse_latex(p.text)
    ga, pa = _explicit_matrix(ga), _explicit_matrix(pa)
    if pa is not None and _is_truth_value(pa) and "=" in p.text:
        # the parser decided a true equation (e^{i\pi} = -1 -> True): its last side is the answer
        pa = parse_latex(_last_side(p.text)) or pa
    if ga is None or pa is None:
        if p.plain == g.plain:
            return Comparison(MATCH, "text")
        if ga is None:
            return Comparison(MISMATCH, "reference not parseable; text differs")
        return Comparison(UNPARSED, "prediction not parseable")
    import sympy

    if _is_ordered(ga) and isinstance(pa, sympy.FiniteSet) and len(pa.args) > 1:
        # an ordered pair answered with a set loses the order: "\\{3, 2\\}" is not (3, 2);
        # a bare list "3, 2" keeps it, so it is read as the tuple it spells
        if p.text.startswith(("\\{", "\\lbrace", "{")):
            return Comparison(MISMATCH, "set for an ordered tuple")
        pa = parse_latex(f"({p.text})") or pa
    for x in _percent_variants(g, ga):
        for y in _percent_variants(p, pa):
            try:
                if sym_equal(x, y):
                    return Comparison(MATCH, "symbolic")
            except (RecursionError, MemoryError, sympy.SympifyError, TypeError, ValueError, AttributeError):
                continue
    if p.plain == g.plain:
        return Comparison(MATCH, "text")
    return Comparison(MISMATCH, "symbolic")


@lru_cache(maxsize=8192)
def _compare_cached(pred: str, gold: str, options: tuple | None) -> Comparison:
    return compare(pred, gold, dict(options) if options else None)


def compare_cached(pred: str, gold: str, options: dict[str, str] | None = None) -> Comparison:
    """:func:`compare`, remembering the last 8192 outcomes: the K responses to one
    prompt often give the same answer, which then costs one comparison."""
    key = tuple(sorted((str(k), str(v)) for k, v in options.items())) if options else None
    return _compare_cached(pred, gold, key)
