"""Turn an extracted answer string into a canonical form before it is parsed.

This is where the project fixes what math-verify's parser gets wrong or never
sees: markdown bold, ``\\text{13}``, malformed ``\\sqrt(2)``, thousands separators,
units and degrees, percent signs, base subscripts, multiple-choice letters,
"3 or 4" lists. The output is a :class:`Answer`: the cleaned LaTeX plus the
facts that were stripped off (percent, base, option letter) and that the
comparison still needs.

Pure string work, linear time, no parsing of math.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Cut before any parsing: answers longer than this are compared as strings only.
MAX_ANSWER_CHARS = 400

_WRAPPERS = (
    (re.compile(r"^\$+|\$+$"), ""),
    (re.compile(r"^\\\(|\\\)$"), ""),
    (re.compile(r"^\\\[|\\\]$"), ""),
)
# Spacing commands, but not the second backslash of a "\\\\ " matrix row break.
_SPACING = re.compile(r"(?<!\\)\\[,;:! ]|\\q?quad\b|~|\\displaystyle\b|\\limits\b")
_LEFTRIGHT = re.compile(r"\\(?:left|right|big|Big|bigg|Bigg)(?![a-zA-Z])\s*")
_DEGREE = re.compile(r"\^\s*\{?\s*\\circ\s*\}?|°|\\degree\b|\\textdegree\b")
_PERCENT = re.compile(r"\s*(?:\\%|%|\\text\{\s*percent\s*\}|\s+percent)\s*$")
_TEXT_CMD = re.compile(
    r"\\(?:text|textbf|textit|textrm|mathrm|mathbf|mathcal|mathit|mathsf|boldsymbol|mbox|operatorname)\s*\{"
)
# Blanks copied from a fill-in-the-box question: no answer content.
_PLACEHOLDER = re.compile(
    r"\\(?:phantom|hphantom|vphantom|hspace|vspace)\s*\{[^{}]*\}|\\underline\{\s*\}|\\square\b|\\Box\b"
)
_BOLD = re.compile(r"\*\*|__")
# Python's power operator between two operands: 2**10, (x+1)**2 (markdown bold has no operand on one side).
_PY_POWER = re.compile(r"(?<=[\w)}])\s*\*\*\s*(?=[\w({-])")
# "x != 3": Python's not-equal (but "5! = 120" is a factorial, so a letter or brace before it).
_PY_NEQ = re.compile(r"(?<=[A-Za-z}\s])!=")
# 3.2 \times 10^{5}, 3.2 \cdot 10^5, 3.2*10^5, 3.2x10^5: scientific notation, read as 3.2e5.
_SCIENTIFIC = re.compile(
    r"^([-+]?\d+(?:\.\d+)?)\s*(?:\\times|\\cdot|\*|x)\s*10\s*\^\s*(?:\{\s*([-+]?\d{1,4})\s*\}|([-+]?\d{1,4}))$"
)
_FRAC_VARIANTS = re.compile(r"\\[dtc]frac\b")
_NAMED_APPROX = re.compile(r"^([A-Za-z](?:_\{?\w+\}?)?)\s*(?:\\approx|\\simeq|≈)\s*")
_APPROX_TAIL = re.compile(r"(?<=\S)\s*(?:\\approx|\\simeq|≈).*$", re.DOTALL)
_SQRT_PAREN = re.compile(r"\\sqrt\s*\(([^()]*)\)")
_SQRT_BARE = re.compile(r"\\sqrt\s*(\d+|[a-zA-Z])")
_FRAC_BARE = re.compile(r"\\frac\s*(\d)\s*(\d)")
# Digits in groups of two or three joined by ",\!" (MATH's thin-space separator), the last group of
# three: one number, also in the Indian grouping 56,01,78,95,760 that plain thousands rules refuse.
_GROUPED_DIGITS = re.compile(r"^[-+]?\d{1,3}(?:,\s*\\!\s*\d{2,3})*,\s*\\!\s*\d{3}(?:\.\d+)?$")
_THOUSANDS = re.compile(r"^[-+]?\d{1,3}(?:(?:,|\{,\}|\\,)\d{3})+(?:\.\d+)?$")
_BASE = re.compile(r"^\(?([0-9A-Za-z]+)\)?_\{?\(?(\d{1,2})\)?\}?$")
# An option letter: "C", "(C)", "C)", "(c)"; a bare lower-case "e" or "c" is math, not an option.
_LETTER = re.compile(r"^(?:\(?([A-E])\)?[.:)]?|\(([a-e])\))$")
_OR_SPLIT = re.compile(r"\s*(?:\\text\{\s*(?:or|and)\s*\}|\bor\b|\band\b)\s*")
# Trailing unit words after a plain number ("5 cm", "9 (apples)", "12 dollars").
_NUMBER_WITH_UNIT = re.compile(
    r"^(?P<num>[-+]?\\?\$?\s*\d[\d,]*(?:\.\d+)?|[-+]?\\frac\{\d+\}\{\d+\})\s*"
    r"(?:\(\s*(?P<paren>[a-zA-Z][a-zA-Z ]*)\s*\)|(?P<unit>[a-zA-Z]{2,}(?:\^\d)?(?:\s*/\s*[a-zA-Z]+(?:\^\d)?)*(?:\s+[a-zA-Z]+)*))$"
)
# Set-builder notation on one variable: \{x \mid -2 \le x < 1\}, \{x | x > 3\}, \{x \in \mathbb{R} : x^2 < 4\}
_SET_BUILDER = re.compile(
    r"^\\\{\s*([A-Za-z])\s*(?:\\in\s*\\mathbb\s*\{?R\}?\s*)?(?:\\mid|\||:|\\vert)\s*(.+?)\s*\\\}$"
)
_CONNECTIVE = re.compile(r"\b(?:or|and)\b")
_CURRENCY = re.compile(r"^\\?\$\s*|^USD\s*|\s*(?:USD|dollars?|cents?)$")
# Words that make "X or Y"/"X and Y" a list rather than part of a text answer.
_NUMERIC_ITEM = re.compile(r"^[-+]?[\d.\\{}()a-z^_/ +*-]+$")


@dataclass(frozen=True)
class Answer:
    """A cleaned answer and the facts stripped from it."""

    text: str
    percent: bool = False
    base: int | None = None  # "10110_2" -> text "10110", base 2
    letter: str | None = None  # multiple-choice option letter, upper case
    too_long: bool = False
    unit: str | None = None  # the unit stripped from "5 cm", as written (see :func:`unit_scale`)

    @property
    def plain(self) -> str:
        """Case- and space-insensitive form for textual comparison."""
        return re.sub(r"\s+", " ", self.text).strip().lower()


def _unwrap_text_commands(s: str) -> str:
    """Replace ``\\text{...}`` (and friends) by their content, innermost last, linearly."""
    out = []
    i = 0
    while True:
        m = _TEXT_CMD.search(s, i)
        if m is None:
            out.append(s[i:])
            return "".join(out)
        out.append(s[i : m.start()])
        depth, j = 1, m.end()
        while j < len(s) and depth:
            depth += {"{": 1, "}": -1}.get(s[j], 0)
            j += 1
        inner = s[m.end() : j - 1] if depth == 0 else s[m.end() :]
        out.append(" " + inner + " " if inner.strip().isalpha() and len(inner.strip()) > 1 else inner)
        i = j


_BARE_NUMBER = re.compile(r"^\s*-?\d{1,15}(?:\.\d{1,15})?\s*$")


def clean(s: str) -> str:
    """Remove formatting that carries no mathematical meaning."""
    s = s.replace("\x00", "").strip()
    s = _PLACEHOLDER.sub("", s)
    s = _PY_POWER.sub("^", s)
    s = re.sub(r"(?<!\\)\\+$", "", s).rstrip()  # a stray trailing backslash (MATH's "185\\")
    s = re.sub(r"\^\s*\{?\s*\\prime\s*\}?", "'", s)  # f^{\prime} is f'
    s = _BOLD.sub("", s)
    s = _PY_NEQ.sub(" \\\\neq ", s).replace("≠", " \\\\neq ")
    for rx, rep in _WRAPPERS:
        s = rx.sub(rep, s).strip()
    if _GROUPED_DIGITS.match(s):  # "56,\\!01,\\!78,\\!95,\\!760": Indian digit groups, marked as a number by \\!
        s = re.sub(r",\s*\\!\s*", "", s)
    s = re.sub(r",\s*\\!\s*", ",", s)  # "11,\\! 111": a thousands separator with a negative thin space
    s = s.replace("\\!", "")  # negative thin space, as in MATH's "3,\\!250"
    # "x \\approx 11": a name for an approximate value; "\\frac{1}{3} \\approx 0.33": the exact form is the answer
    s = _NAMED_APPROX.sub(r"\1 = ", s)
    s = _APPROX_TAIL.sub("", s)
    s = _SPACING.sub(" ", s)
    s = _LEFTRIGHT.sub("", s)
    s = _FRAC_VARIANTS.sub(r"\\frac", s)
    s = _DEGREE.sub("", s)
    s = _SQRT_PAREN.sub(r"\\sqrt{\1}", s)
    s = _SQRT_BARE.sub(r"\\sqrt{\1}", s)
    s = _FRAC_BARE.sub(r"\\frac{\1}{\2}", s)
    s = s.replace("\\dots", "\\ldots").replace("−", "-").replace("×", "\\times").replace("÷", "\\div")
    s = s.replace("∞", "\\infty").replace("π", "\\pi").replace("√", "\\sqrt")
    s = re.sub(r"\s+", " ", s).strip()
    s = s.rstrip(".;,").strip()
    sci = _SCIENTIFIC.match(s)
    if sci:
        s = f"{sci.group(1)}e{sci.group(2) or sci.group(3)}"
    return s


def normalize(raw: str) -> Answer:
    """Clean ``raw`` and split off percent, base, option letter and units."""
    if _BARE_NUMBER.match(raw):  # the common case, which none of the rules below changes
        return Answer(raw.strip())
    s = clean(raw)
    if len(s) > MAX_ANSWER_CHARS:
        return Answer(s[:MAX_ANSWER_CHARS], too_long=True)
    letter = _LETTER.match(_unwrap_text_commands(s).strip())
    if letter:
        ch = (letter.group(1) or letter.group(2)).upper()
        return Answer(ch, letter=ch)
    percent = bool(_PERCENT.search(s))
    if percent:
        s = _PERCENT.sub("", s).strip()
    s = _unwrap_text_commands(s)
    s = re.sub(r"\s+", " ", s).strip().rstrip(".").strip()
    s = _CURRENCY.sub("", s).strip()
    builder = _SET_BUILDER.match(s)
    if builder and re.search(rf"(?<![A-Za-z\\]){builder.group(1)}(?![A-Za-z])", builder.group(2)):
        s = builder.group(2)  # the condition, compared as the set it describes
    base = _BASE.match(s)
    if base and not base.group(1).isalpha():
        return Answer(base.group(1), percent=percent, base=int(base.group(2)))
    # "3 or 4" / "3 \text{ or } 4" / "x=1 and x=2": a list of answers, compared as a set.
    parts = [p for p in _OR_SPLIT.split(s) if p]
    if len(parts) > 1 and all(_NUMERIC_ITEM.match(p) for p in parts):
        return Answer("\\{" + ", ".join(_strip_unit(p)[0] for p in parts) + "\\}", percent=percent)
    text, unit = _strip_unit(s)
    return Answer(text, percent=percent, unit=unit)


# Words after a number that are part of its value, not a unit: "5 million", "2 pi", "4 sin x".
_NOT_UNITS = frozenset(
    "hundred thousand million billion trillion dozen score half halves third thirds quarter quarters percent "
    "pi sin cos tan cot sec csc log ln exp sqrt arcsin arccos arctan sinh cosh tanh times".split()
)


def _strip_unit(s: str) -> tuple[str, str | None]:
    """``5 cm`` -> (``5``, ``cm``); anything without a unit word -> (s, None)."""
    unit = _NUMBER_WITH_UNIT.match(s) or _NUMBER_WITH_SHORT_UNIT.match(s)
    word = (unit.group("paren") or unit.group("unit") or "").split()[0].lower() if unit else ""
    found = None
    if unit and word not in _NOT_UNITS and not _CONNECTIVE.search(unit.group(0)[len(unit.group("num")) :]):
        s = unit.group("num").replace("\\$", "").replace("$", "").strip()
        found = (unit.group("paren") or unit.group("unit")).strip()
    if _THOUSANDS.match(s):
        s = s.replace("{,}", "").replace("\\,", "").replace(",", "")
    return s, found


# One-letter units, only from this list ("5 m", "3 g"): a lone letter after a number is
# otherwise a variable ("5 x").
_NUMBER_WITH_SHORT_UNIT = re.compile(r"^(?P<num>[-+]?\d[\d,]*(?:\.\d+)?)\s*(?P<unit>[mgsLlh])(?P<paren>)$")
# Units of the same kind convert; different kinds never match (5 cm is not 5 m, nor 5 g).
_UNIT_SCALES = {
    "length": {
        ("mm", "millimeter", "millimetre"): "1/1000",
        ("cm", "centimeter", "centimetre"): "1/100",
        ("m", "meter", "metre"): "1",
        ("km", "kilometer", "kilometre"): "1000",
        ("in", "inch", "inche"): "127/5000",
        ("ft", "foot", "feet"): "381/1250",
        ("yd", "yard"): "1143/1250",
        ("mi", "mile"): "201168/125",
    },
    "mass": {("mg", "milligram"): "1/1000", ("g", "gram"): "1", ("kg", "kilogram"): "1000"},
    "time": {
        ("s", "sec", "second"): "1",
        ("min", "minute"): "60",
        ("h", "hr", "hour"): "3600",
        ("day",): "86400",
        ("week",): "604800",
    },
    "volume": {("ml", "milliliter", "millilitre"): "1/1000", ("l", "liter", "litre"): "1"},
}
_UNIT_INDEX = {
    name: (kind, scale) for kind, table in _UNIT_SCALES.items() for names, scale in table.items() for name in names
}


def unit_scale(unit: str | None) -> tuple[str, str] | None:
    """``(kind, factor to the kind's base unit)`` of a known unit (``cm`` -> length,
    1/100), plural and case of words forgiven; ``None`` for an unknown one."""
    if not unit:
        return None
    u = unit.strip().lower()
    for cand in (u, u[:-1] if u.endswith("s") and len(u) > 2 else u, u[:-2] if u.endswith("es") and len(u) > 3 else u):
        if cand in _UNIT_INDEX:
            return _UNIT_INDEX[cand]
    return None
