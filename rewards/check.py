"""One verification, in-process: extract the answer(s), compare with the reference.

This is the function the sandbox workers run. It never raises for any input
string; callers outside a worker should use :mod:`rewards.verifier`, which adds the
hard time and memory bounds.
"""

from __future__ import annotations

import re
import time
from dataclasses import asdict, dataclass

from rewards.equivalence import MATCH, UNDECIDED, UNPARSED, compare, compare_cached
from rewards.extract import LAST, STRICT, extract_answers, reference_answer
from rewards.normalize import clean

# Reasons a verdict can carry. ``correct`` is True only for MATCH.
REASON_MATCH = "match"
REASON_MISMATCH = "mismatch"
REASON_NO_ANSWER = "no_answer"  # nothing extractable (or an empty box)
REASON_UNPARSED = "unparsed"  # an answer was found but could not be parsed
REASON_AMBIGUOUS = "ambiguous"  # several different final answers
REASON_REPEATS_QUESTION = "repeats_question"
REASON_TIMEOUT = "timeout"
REASON_ERROR = "error"
REASONS = (
    REASON_MATCH,
    REASON_MISMATCH,
    REASON_NO_ANSWER,
    REASON_UNPARSED,
    REASON_AMBIGUOUS,
    REASON_REPEATS_QUESTION,
    REASON_TIMEOUT,
    REASON_ERROR,
)

# Responses longer than this are cut (the head goes: final answers sit at the end).
MAX_RESPONSE_CHARS = 32_000
# More distinct boxed answers than this is answer spraying, not a solution.
MAX_DISTINCT_BOXES = 4


@dataclass(frozen=True)
class Verdict:
    """The outcome of one check.

    ``correct``: the response's final answer equals the reference.
    ``extracted``: the (last) extracted answer, or ``None``.
    ``reason``: one of :data:`REASONS`.
    ``ms``: wall-clock milliseconds the check took.
    """

    correct: bool
    extracted: str | None
    reason: str
    ms: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


def warm_up() -> None:
    """Import sympy and the LaTeX parser now (sandbox workers call this at start)."""
    check(r"\boxed{\frac{x}{2}}", r"\frac{x}{2}")
    check(r"\boxed{\sqrt{2}x}", r"x\sqrt{2}")


def _squash(s: str) -> str:
    return re.sub(r"\s+", " ", s).strip().lower()


def _as_text(response: object) -> str:
    """Any response as a string a check can read: no NUL bytes, the last
    ``MAX_RESPONSE_CHARS`` characters (final answers sit at the end)."""
    if not isinstance(response, str):
        response = "" if response is None else str(response)
    return response.replace("\x00", "")[-MAX_RESPONSE_CHARS:]


def _final_answers(response: str, mode: str, multi_box: str = LAST):
    """The extraction and its answers in order, empty boxes and placeholders left out."""
    ext = extract_answers(response, mode, multi_box)
    return ext, [a for a in ext.answers if clean(a)]


def check(
    response: str,
    ground_truth: object,
    mode: str = STRICT,
    question: str | None = None,
    options: dict[str, str] | None = None,
    multi_box: str = LAST,
    fast_only: bool = False,
) -> Verdict | None:
    """Verify ``response`` against ``ground_truth``; never raises.

    The response's final answer (see :func:`rewards.extract.extract_answers` for
    ``mode`` and ``multi_box``) is correct when each of its distinct boxes equals
    the reference, or when its boxes together do ("\\boxed{1}, \\boxed{2}" for
    ``\\{1, 2\\}``). Boxes of which only some match are a hedge: ``ambiguous``.

    ``fast_only``: return ``None`` instead of parsing (see
    :func:`rewards.equivalence.compare`), and on any error, so that the caller can
    hand the check to a sandboxed worker."""
    t0 = time.perf_counter()

    def outcome(pred: str) -> str:
        got = (
            compare(pred, gold, options, fast_only=True) if fast_only else compare_cached(pred, gold, options)
        ).outcome
        if got == UNDECIDED:
            raise _Undecided
        return got

    def done(correct: bool, extracted: str | None, reason: str) -> Verdict:
        return Verdict(correct, extracted, reason, round((time.perf_counter() - t0) * 1000, 3))

    try:
        response = _as_text(response)
        gold = reference_answer(ground_truth)
        if question and _squash(response) and _squash(response) in _squash(question):
            return done(False, None, REASON_REPEATS_QUESTION)
        ext, answers = _final_answers(response, mode, multi_box)
        if not answers:
            return done(False, ext.answer, REASON_NO_ANSWER)
        shown = answers[-1]
        distinct = list(dict.fromkeys(answers))
        if len(distinct) > MAX_DISTINCT_BOXES:
            return done(False, shown, REASON_AMBIGUOUS)
        # Every distinct final answer must equal the reference, or all of them together
        # must: boxing 3 and 4 earns nothing unless the reference is {3, 4}.
        outcomes = [outcome(a) for a in distinct]
        if all(o == MATCH for o in outcomes):
            return done(True, shown, REASON_MATCH)
        if len(distinct) > 1:
            joined = ", ".join(distinct)
            if outcome(joined) == MATCH:
                return done(True, joined, REASON_MATCH)
            if any(o == MATCH for o in outcomes):
                return done(False, shown, REASON_AMBIGUOUS)
        if outcomes[-1] == UNPARSED:
            return done(False, shown, REASON_UNPARSED)
        return done(False, shown, REASON_MISMATCH)
    except _Undecided:
        return None
    except Exception:  # untrusted input must never crash the caller (RecursionError, MemoryError, ...)
        return None if fast_only else done(False, None, REASON_ERROR)


class _Undecided(Exception):
    """A fast-only check reached a pair that needs the parser."""


# Most distinct answers one grouping call compares pairwise (n^2 comparisons).
MAX_GROUPED_ANSWERS = 64


@dataclass(frozen=True)
class AnswerGroups:
    """Final answers of several responses to one problem, grouped by equivalence.

    ``answers[i]``: response i's final answer (``None``: none, or ambiguous).
    ``labels[i]``: its group, numbered in order of first appearance; ``-1`` when it
    has no answer. Two answers share a group when the verifier judges them equal
    (``1/2`` and ``0.5``), not only when their strings match.
    ``reason``: ``ok``, or why grouping fell back to exact strings.
    """

    answers: tuple[str | None, ...]
    labels: tuple[int, ...]
    reason: str = "ok"


def final_answer(response: str, mode: str = STRICT, multi_box: str = LAST) -> str | None:
    """The final answer a response commits to (several boxes of one answer joined
    by commas), or ``None``: no answer, or with ``multi_box="all_agree"`` several
    different ones, which :func:`check` would also not credit."""
    try:
        answers = list(dict.fromkeys(_final_answers(_as_text(response), mode, multi_box)[1]))
        if len(answers) > 1 and (multi_box != LAST or len(answers) > MAX_DISTINCT_BOXES):
            return None
        return ", ".join(answers) if answers else None
    except Exception:
        return None


def _groups_by_string(answers: list[str | None], reason: str) -> AnswerGroups:
    first: dict[str, int] = {}
    labels = []
    for a in answers:
        key = None if a is None else clean(a)
        labels.append(-1 if not key else first.setdefault(key, len(first)))
    return AnswerGroups(tuple(answers), tuple(labels), reason)


def group_answers(
    responses: list[str], mode: str = STRICT, equivalence: bool = True, multi_box: str = LAST
) -> AnswerGroups:
    """Extract each response's final answer and group equivalent ones; never raises.

    Each new answer joins the first group whose representative (the group's first
    answer) it equals, checked in both directions. ``equivalence=False`` groups
    identical (cleaned) strings only: the cheap fallback."""
    answers = [final_answer(r, mode, multi_box) for r in responses]
    if not equivalence:
        return _groups_by_string(answers, "exact strings")
    try:
        reps: list[str] = []
        labels: list[int] = []
        seen: dict[str, int] = {}
        for a in answers:
            if a is None:
                labels.append(-1)
                continue
            if a in seen:
                labels.append(seen[a])
                continue
            if len(seen) >= MAX_GROUPED_ANSWERS:
                return _groups_by_string(answers, "too many distinct answers")
            for j, rep in enumerate(reps):  # noqa: B007 - j, the matching group, is read after the loop
                if compare(a, rep).outcome == MATCH or compare(rep, a).outcome == MATCH:
                    break
            else:
                j = len(reps)
                reps.append(a)
            seen[a] = j
            labels.append(j)
        return AnswerGroups(tuple(answers), tuple(labels))
    except Exception:
        return _groups_by_string(answers, "error")


# Kinds of reference answer (see :func:`answer_form`).
FORM_NUMBER = "number"  # 3, -2.5, \frac{7}{2}, 25%
FORM_EXPRESSION = "expression"  # 10-4n, 2\sqrt{3}, \pi/4
FORM_EQUATION = "equation"  # y = 2x + 1, x \le 3
FORM_STRUCTURE = "structure"  # (3, \pi/2), \{1, 2\}, [0, 1), a matrix
FORM_LETTER = "letter"  # a multiple-choice option letter
FORM_TEXT = "text"  # words, or LaTeX the parser cannot read
FORM_EMPTY = "empty"
FORM_TOO_LONG = "too_long"
CLOSED_FORMS = (FORM_NUMBER, FORM_EXPRESSION, FORM_EQUATION, FORM_STRUCTURE)


@dataclass(frozen=True)
class AnswerForm:
    """How the verifier reads a reference answer (for curating data, not grading).

    ``canonical``: the answer after the verifier's normalisation (wrappers, units,
    thousands separators gone; ``145.0`` -> ``145``). ``kind``: one of the
    ``FORM_*`` values.
    """

    canonical: str
    kind: str


def _canonical_number(text: str) -> str:
    from rewards.equivalence import _plain_value

    v = _plain_value(text)
    if v is not None and v[0].denominator == 1 and ("." in text or "e" in text.lower()):
        return str(v[0].numerator)  # 145.0 -> 145, 1.5e3 -> 1500
    return text


# "Solution is: ...", "The answer is ...": a sentence frame around the answer in a data set's key
_KEY_FRAME = re.compile(
    r"^\s*(?:the\s+)?(?:final\s+)?(?:solutions?|answers?|roots?|results?)"
    r"(?:\s+(?:is|are))?\s*(?::|(?<=is)\s|(?<=are)\s)\s*",
    re.I,
)


def split_top_level(text: str, seps: str) -> list[str]:
    """``text`` split at each character of ``seps`` outside braces, brackets and
    parentheses; an ``=`` that is part of ``<=``, ``>=``, ``!=``, ``:=`` or ``==``
    does not split. One element when nothing splits."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch in "{[(":
            depth += 1
        elif ch in "}])":
            depth -= 1
        elif ch in seps and depth == 0:
            if ch == "=" and (text[i - 1 : i] in ("<", ">", "!", ":", "=") or text[i + 1 : i + 2] == "="):
                continue
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts


def stated_value(text: str) -> str:
    """The value a reference answer written as a derivation or a labelled value
    states, as its own text; ``text`` itself when it states none.

    The last side of a chain of equalities is the answer when every side is equal
    (``i^{15}=(i^{4})^{3}\\cdot i^{3}=1\\cdot(-i)=-i`` -> ``-i``,
    ``\\sqrt{4}=2`` -> ``2``) or the first side is a name (``x = 5+5+1 = 11`` ->
    ``11``, ``(p,q)=(3,2)`` -> ``(3,2)``, ``|AB|=1`` -> ``1``) and the last has no
    variables. An equation that relates variables (``y = 2x + 1``,
    ``x^2+y^2=25``) or names several values (``a = 3, b = 4``) is an answer
    itself. The same name rule as the verifier's comparison of labelled answers."""
    from rewards.equivalence import _label_like, parse_latex, sym_equal

    sides = [s.strip() for s in split_top_level(text, "=")]
    if (
        len(sides) < 2
        or not all(sides)
        or any(len(split_top_level(s, ",;<>")) > 1 or "\\le" in s or "\\ge" in s for s in sides)
    ):
        return text
    parsed = [parse_latex(s) for s in sides]
    if any(not hasattr(p, "free_symbols") for p in parsed):  # None, a bool, a list: no single value
        return text
    last = parsed[-1]
    if last.free_symbols:
        return text
    if _label_like(parsed[0]) or all(sym_equal(p, last) for p in parsed[:-1]):
        return sides[-1]
    return text


def answer_form(raw: object) -> AnswerForm:
    """Classify and canonicalise a reference answer; never raises. A derivation or
    a labelled value is read for the value it states (:func:`stated_value`)."""
    from rewards.equivalence import _plain_value, parse_latex
    from rewards.normalize import normalize

    try:
        text_in = reference_answer(raw)
        # an en dash is a minus sign in many data sets; "$x=0$ or $x=1$": inner math delimiters
        text_in = text_in.replace("\u2013", "-").replace("\\$", "")
        if text_in.count("$") > 2 or (
            text_in.count("$") == 2 and not (text_in.startswith("$") and text_in.endswith("$"))
        ):
            text_in = text_in.replace("$", " ")
        text_in = _KEY_FRAME.sub("", text_in, count=1)
        if "=" in text_in:
            text_in = stated_value(clean(text_in))
        a = normalize(text_in)
        if a.too_long:
            return AnswerForm(a.text, FORM_TOO_LONG)
        if a.letter:
            return AnswerForm(a.text, FORM_LETTER)
        if not a.text:
            return AnswerForm("", FORM_EMPTY)
        text = _canonical_number(a.text)
        canonical = text + ("\\%" if a.percent else "")
        if a.base:
            canonical = f"{text}_{{{a.base}}}"
        if _plain_value(text) is not None:
            return AnswerForm(canonical, FORM_NUMBER)
        if looks_like_prose(text):  # "Yes, this is a subspace", "No. Consider x+y+z=2"
            return AnswerForm(canonical, FORM_TEXT)
        parsed = parse_latex(text)
        if parsed is None:
            return AnswerForm(canonical, FORM_TEXT)
        import sympy

        if isinstance(parsed, (sympy.core.relational.Relational, sympy.logic.boolalg.BooleanFunction)):
            kind = FORM_EQUATION  # x = 2, x < 3, 1 < x < 3 (an And)
        elif isinstance(parsed, (sympy.Tuple, sympy.Set, sympy.MatrixBase, tuple, list, set, frozenset)):
            kind = FORM_STRUCTURE
        elif isinstance(parsed, sympy.Number):
            # a bare number from text with letters or relations is a lossy parse (set-builder notation)
            lossy = re.search(r"[A-Za-z<>|]", re.sub(r"\\[A-Za-z]+", "", text))
            kind = FORM_TEXT if lossy else FORM_NUMBER
        elif isinstance(parsed, sympy.Expr):
            kind = FORM_EXPRESSION
        else:
            kind = FORM_TEXT
        return AnswerForm(canonical, kind)
    except Exception:
        return AnswerForm(str(raw)[:200], FORM_TEXT)


_WORD = re.compile(r"(?<!\\)\b[A-Za-z]{3,}\b")
_ENVIRONMENT = re.compile(r"\\(?:begin|end)\s*\{\w+\*?\}(?:\s*\{[lcr|]*\})?")
_BRACED_LETTERS = re.compile(r"(?<=[{])[A-Za-z]{3,}(?=[}])")
_PROSE_OK = {"sin", "cos", "tan", "cot", "sec", "csc", "log", "exp", "max", "min", "mod", "gcd", "lcm", "det"}


def looks_like_prose(text: str) -> bool:
    """Words of three or more letters that are neither LaTeX commands (``\\sqrt``,
    ``\\pi``, ``\\frac``) nor function names (``sin``, ``log``), outside
    ``\\text{}`` units already stripped: prose, not a closed-form answer."""
    text = _ENVIRONMENT.sub(" ", text)  # \\begin{array}{rrr}: a column spec, not a word
    text = _BRACED_LETTERS.sub("{}", text)  # \\frac{def}{de+df+ef}: a product of variables filling an argument
    words = [w for w in _WORD.findall(re.sub(r"\\[A-Za-z]+", " ", text)) if w.lower() not in _PROSE_OK]
    return len(words) >= 1


def run(op: str, *args, **kwargs):
    """The sandbox workers' entry point: ``check``, ``group_answers`` or ``answer_form``."""
    return {"check": check, "group_answers": group_answers, "answer_form": answer_form}[op](*args, **kwargs)
