"""One verification, in-process: extract the answer(s), compare with the reference.

This is the function the sandbox workers run. It never raises for any input
string; callers outside a worker should use :mod:`rewards.verifier`, which adds the
hard time and memory bounds.
"""

from __future__ import annotations

import re
import time
from dataclasses import asdict, dataclass

from rewards.equivalence import MATCH, UNPARSED, compare
from rewards.extract import STRICT, extract_answers, reference_answer
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


def check(
    response: str,
    ground_truth: object,
    mode: str = STRICT,
    question: str | None = None,
    options: dict[str, str] | None = None,
) -> Verdict:
    """Verify ``response`` against ``ground_truth``; never raises."""
    t0 = time.perf_counter()

    def done(correct: bool, extracted: str | None, reason: str) -> Verdict:
        return Verdict(correct, extracted, reason, round((time.perf_counter() - t0) * 1000, 3))

    try:
        if not isinstance(response, str):
            response = "" if response is None else str(response)
        response = response.replace("\x00", "")
        if len(response) > MAX_RESPONSE_CHARS:
            response = response[-MAX_RESPONSE_CHARS:]
        gold = reference_answer(ground_truth)
        if question and _squash(response) and _squash(response) in _squash(question):
            return done(False, None, REASON_REPEATS_QUESTION)
        ext = extract_answers(response, mode)
        answers = [a for a in ext.answers if clean(a)]  # empty boxes and placeholders are no answer
        if not answers:
            return done(False, ext.answer, REASON_NO_ANSWER)
        shown = answers[-1]
        distinct = list(dict.fromkeys(answers))
        if len(distinct) > MAX_DISTINCT_BOXES:
            return done(False, shown, REASON_AMBIGUOUS)
        # Every distinct final answer must equal the reference: boxing 3 and 4 earns nothing.
        outcomes = [compare(a, gold, options).outcome for a in distinct]
        if all(o == MATCH for o in outcomes):
            return done(True, shown, REASON_MATCH)
        if len(distinct) > 1 and any(o == MATCH for o in outcomes):
            return done(False, shown, REASON_AMBIGUOUS)
        if outcomes[-1] == UNPARSED:
            return done(False, shown, REASON_UNPARSED)
        return done(False, shown, REASON_MISMATCH)
    except Exception:  # untrusted input must never crash the caller (RecursionError, MemoryError, ...)
        return done(False, None, REASON_ERROR)


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


def final_answer(response: str, mode: str = STRICT) -> str | None:
    """The single final answer a response commits to, or ``None`` (no answer, or
    several different ones, which :func:`check` would also not credit)."""
    try:
        if not isinstance(response, str):
            response = "" if response is None else str(response)
        response = response.replace("\x00", "")[-MAX_RESPONSE_CHARS:]
        answers = list(dict.fromkeys(a for a in extract_answers(response, mode).answers if clean(a)))
        return answers[-1] if len(answers) == 1 else None
    except Exception:
        return None


def _groups_by_string(answers: list[str | None], reason: str) -> AnswerGroups:
    first: dict[str, int] = {}
    labels = []
    for a in answers:
        key = None if a is None else clean(a)
        labels.append(-1 if not key else first.setdefault(key, len(first)))
    return AnswerGroups(tuple(answers), tuple(labels), reason)


def group_answers(responses: list[str], mode: str = STRICT, equivalence: bool = True) -> AnswerGroups:
    """Extract each response's final answer and group equivalent ones; never raises.

    Each new answer joins the first group whose representative (the group's first
    answer) it equals, checked in both directions. ``equivalence=False`` groups
    identical (cleaned) strings only: the cheap fallback."""
    answers = [final_answer(r, mode) for r in responses]
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
            for j, rep in enumerate(reps):
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


def run(op: str, *args, **kwargs):
    """The sandbox workers' entry point: ``check`` or ``group_answers``."""
    return {"check": check, "group_answers": group_answers}[op](*args, **kwargs)
