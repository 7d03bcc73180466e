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
