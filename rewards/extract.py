"""Find the final answer in a model response.

Two modes:

* ``strict`` (the RL default): only ``\\boxed{...}`` / ``\\fbox{...}`` count. A response
  that mentions the right number somewhere without boxing it earns nothing.
* ``lenient`` (for base models in evaluation): boxed answers first, then
  "final answer is X", ``#### X``, ``Answer: X``, "the answer is X", and as a last
  resort the last number in the text.

Every boxed answer of the response is returned, not just the last one: a response
that boxes several different answers must not be rewarded for hedging, and the
verifier decides that by comparing every one of them with the reference.

Everything here is linear in the input length (no backtracking regexes over
model text, no recursion), so hostile inputs cannot make extraction slow.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

STRICT = "strict"
LENIENT = "lenient"
MODES = (STRICT, LENIENT)

# Box commands, longest first so that ``\boxed`` is not mistaken for a prefix of another.
_BOX_RE = re.compile(r"\\(?:boxed|fbox)\s*")
# Markers that introduce a final answer in plain text (lenient mode), last match wins.
_PHRASE_RES = (
    ("final_answer", re.compile(r"final answer(?:\s+is)?\s*[:：]?\s*", re.IGNORECASE)),
    ("hashes", re.compile(r"####\s*")),
    ("answer_colon", re.compile(r"(?:^|\n)\s*\**answer\**\s*[:：]\s*\**\s*", re.IGNORECASE)),
    ("answer_is", re.compile(r"\bthe answer is\s*[:：]?\s*", re.IGNORECASE)),
)
_NUMBER_RE = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:/\d+)?")
# Where a phrase-introduced answer ends: end of line, or a sentence end (". " / "." at end).
_PHRASE_END_RE = re.compile(r"\n|\.\s|\.$|\$\s*\.")


@dataclass(frozen=True)
class Extraction:
    """What the response claims as its final answer.

    ``answers`` holds every candidate in order of appearance (several when the
    response boxed more than once); ``answer`` is the last one, the one shown.
    ``method`` says how it was found (``boxed``, ``final_answer``, ``hashes``,
    ``answer_colon``, ``answer_is``, ``last_number``) or is ``None`` when nothing was.
    """

    answers: tuple[str, ...] = field(default_factory=tuple)
    method: str | None = None

    @property
    def answer(self) -> str | None:
        return self.answers[-1] if self.answers else None


def _read_braced(text: str, start: int) -> tuple[str, int] | None:
    """Read a ``{...}`` group starting at ``text[start] == '{'``; return (content, end).

    Iterative, counts nesting, honours ``\\{`` / ``\\}`` escapes. ``None`` when
    the group is never closed (an unterminated ``\\boxed{`` yields no answer).
    """
    depth = 0
    i = start
    n = len(text)
    while i < n:
        c = text[i]
        if c == "\\" and i + 1 < n and text[i + 1] in "{}":
            i += 2
            continue
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return text[start + 1 : i], i + 1
        i += 1
    return None


def boxed_answers(text: str) -> list[str]:
    """Every ``\\boxed{...}`` / ``\\fbox{...}`` content, outermost boxes only, in order.

    ``\\boxed 5`` (no braces, a single token) is accepted too, as LaTeX does.
    """
    out: list[str] = []
    pos = 0
    while True:
        m = _BOX_RE.search(text, pos)
        if m is None:
            return out
        j = m.end()
        if j < len(text) and text[j] == "{":
            got = _read_braced(text, j)
            if got is None:  # unterminated: nothing after this point can be an answer
                return out
            content, pos = got
            out.append(content.strip())
        else:
            tok = re.match(r"[^\s$\\]+", text[j:])
            if tok and m.group(0).endswith((" ", "\t")):
                out.append(tok.group(0).rstrip(".,;"))
                pos = j + tok.end()
            else:
                pos = j


def _phrase_answer(text: str) -> tuple[str, str] | None:
    """The answer after the last "final answer is"-style marker, if any."""
    best: tuple[int, str, str] | None = None
    for name, rx in _PHRASE_RES:
        last = None
        for last in rx.finditer(text):
            pass
        if last is None:
            continue
        rest = text[last.end() :]
        end = _PHRASE_END_RE.search(rest)
        cand = (rest[: end.start()] if end else rest).strip().strip("$").strip()
        cand = cand.rstrip(".")
        if cand and (best is None or last.start() > best[0]):
            best = (last.start(), name, cand)
    return (best[2], best[1]) if best else None


def extract_answers(text: str, mode: str = STRICT) -> Extraction:
    """Find the final answer(s) of ``text`` under ``mode`` (``strict`` or ``lenient``)."""
    if mode not in MODES:
        raise ValueError(f"unknown extraction mode {mode!r}; choose one of {MODES}")
    boxed = boxed_answers(text)
    if boxed:
        return Extraction(tuple(boxed), "boxed")
    if mode == STRICT:
        return Extraction()
    phrase = _phrase_answer(text)
    if phrase is not None:
        inner = boxed_answers(phrase[0])
        return Extraction((inner[-1] if inner else phrase[0],), phrase[1])
    numbers = _NUMBER_RE.findall(text)
    if numbers:
        return Extraction((numbers[-1],), "last_number")
    return Extraction()


def reference_answer(gold: object) -> str:
    """The reference answer as a string.

    Datasets store references as strings, numbers (``27.0``) or whole solutions;
    a reference that contains a ``\\boxed{}`` is reduced to its last box.
    """
    if isinstance(gold, float) and gold.is_integer():
        gold = int(gold)
    s = str(gold).strip()
    boxes = boxed_answers(s)
    return boxes[-1] if boxes else s
