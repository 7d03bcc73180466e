"""Find the final answer in a model response.

Two modes:

* ``strict`` (the RL default): only ``\\boxed{...}`` / ``\\fbox{...}`` count. A response
  that mentions the right number somewhere without boxing it earns nothing.
* ``lenient`` (for base models in evaluation): boxed answers first, then
  "final answer is X", ``#### X``, ``Answer: X``, "the answer is X" (from a
  sentence, its last math span or number), then the last math span
  (``$...$``, ``\\(...\\)``, ``\\[...\\]``), and as a last resort the last number in
  the text.

Several boxes (``multi_box``):

* ``last`` (default): the final answer is the last one the response commits to,
  after ``</think>`` when there is one. Boxes in earlier sentences are attempts it
  moved on from ("\\boxed{15} ... wait, that was wrong ... \\boxed{17}" answers 17).
  Boxes next to the last one, in the same sentence or in a list at the end, are
  one answer: "\\boxed{(2,2)} and \\boxed{(6,2)}" is the pair of solutions, and
  "\\boxed{3} or \\boxed{4}" is a hedge, which the verifier does not credit unless
  the reference has both values.
* ``all_agree``: every box in the response is part of the answer; each distinct
  one must match the reference (the stricter rule of earlier versions).

Everything here is linear in the input length (no backtracking regexes over
model text, no recursion), so hostile inputs cannot make extraction slow.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from data.latex import boxed_answers, boxed_spans  # noqa: F401 - boxed_answers is part of this module's API

STRICT = "strict"
THINK_END = "</think>"
LENIENT = "lenient"
MODES = (STRICT, LENIENT)
# How several boxed answers in one response are read (see :func:`extract_answers`).
LAST = "last"
ALL_AGREE = "all_agree"
MULTI_BOX_MODES = (LAST, ALL_AGREE)

# Markers that introduce a final answer in plain text (lenient mode), last match wins.
_PHRASE_RES = (
    ("final_answer", re.compile(r"final answer(?:\s+is)?\s*[:：]?\s*", re.IGNORECASE)),
    ("hashes", re.compile(r"####\s*")),
    ("answer_colon", re.compile(r"(?:^|\n)\s*\**answer\**\s*[:：]\s*\**\s*", re.IGNORECASE)),
    ("answer_is", re.compile(r"\bthe answer is\s*[:：]?\s*", re.IGNORECASE)),
)
_QUOTES = re.compile(r'^\\?"|\\?"$')  # quotes around a phrase answer, escaped or not
# A number standing on its own ("AZYUK2A" holds none).
_NUMBER_RE = re.compile(r"(?<![A-Za-z\d])(?>-?\d[\d,]*(?:\.\d+)?(?:/\d+)?)")
# Where a phrase-introduced answer ends: end of line, or a sentence end (". " / "." at end).
_PHRASE_END_RE = re.compile(r"\n|\.\s|\.$|\$\s*\.")


@dataclass(frozen=True)
class Extraction:
    """What the response claims as its final answer.

    ``answers`` holds every candidate in order of appearance (several when the
    response boxed more than once); ``answer`` is the last one, the one shown.
    ``method`` says how it was found (``boxed``, ``final_answer``, ``hashes``,
    ``answer_colon``, ``answer_is``, ``last_math``, ``last_number``) or is ``None`` when nothing was.
    """

    answers: tuple[str, ...] = field(default_factory=tuple)
    method: str | None = None

    @property
    def answer(self) -> str | None:
        return self.answers[-1] if self.answers else None


def after_thinking(text: str) -> str:
    """The part of an R1-style response after its last ``</think>``: the answer the
    model commits to once it stops thinking. The whole text when there is none."""
    k = text.rfind(THINK_END)
    return text if k < 0 else text[k + len(THINK_END) :]


# What may sit between two boxes of one final answer: punctuation, math
# delimiters, spacing and connectives ("\boxed{2} and \boxed{3}", "\boxed{1}, \boxed{2}").
_GAP_FILLER = re.compile(r"\\text\s*\{[^{}]*\}|\\(?:q?quad|[,;:! ])|\\[()\[\]]|\b(?:and|or)\b|[\s$,;&.:]")
# A sentence ends: a new line, or ". " / "! " / "? " before the next words.
_SENTENCE_END = re.compile(r"\n|[.!?](?:\s|$)")
MAX_GAP_CHARS = 80


def _same_answer(gap: str) -> bool:
    """True when two boxes separated by ``gap`` belong to one final answer: nothing
    but fillers between them, or a short gap inside one sentence
    ("\\boxed{3}, or maybe \\boxed{4}" is one hedged answer)."""
    if not _GAP_FILLER.sub("", gap).strip():
        return True
    return len(gap) <= MAX_GAP_CHARS and not _SENTENCE_END.search(gap)


def final_group(text: str) -> list[str]:
    """The boxes that make up the final answer: the last box and the boxes just
    before it in the same sentence or list (see :func:`_same_answer`). Earlier
    boxes, in earlier sentences, are answers the response moved on from."""
    spans = boxed_spans(text)
    if not spans:
        return []
    k = len(spans) - 1
    while k > 0 and _same_answer(text[spans[k - 1][2] : spans[k][1]]):
        k -= 1
    return [c for c, _, _ in spans[k:]]


def _phrase_answer(text: str) -> tuple[str, str, int] | None:
    """The answer after the last "final answer is"-style marker, if any: (answer, marker name,
    where the marker starts)."""
    best: tuple[int, str, str] | None = None
    for name, rx in _PHRASE_RES:
        last = None
        for m in rx.finditer(text):
            last = m
        if last is None:
            continue
        rest = text[last.end() :]
        end = _PHRASE_END_RE.search(rest)
        cand = (rest[: end.start()] if end else rest).strip()
        cand = _QUOTES.sub("", cand).strip().strip("$").strip()  # 'is \\"$12$ and $13$\\"'

        cand = cand.rstrip(".")
        if cand and (best is None or last.start() > best[0]):
            best = (last.start(), name, cand)
    return (best[2], best[1], best[0]) if best else None


# Math delimiters and what closes each: $$...$$, \\[...\\], \\(...\\), $...$.
_MATH_OPEN = re.compile(r"\$\$|\\\[|\\\(|(?<!\\)\$")
_MATH_CLOSE = {
    "$$": re.compile(r"\$\$"),
    "\\[": re.compile(r"\\\]"),
    "\\(": re.compile(r"\\\)"),
    "$": re.compile(r"(?<!\\)\$"),
}
_PROSE_WORD = re.compile(r"(?<![\\A-Za-z])[A-Za-z]{2,}\b")


def math_spans(text: str) -> list[tuple[str, int, int]]:
    """Every math span of ``text`` (``$...$``, ``$$...$$``, ``\\(...\\)``, ``\\[...\\]``):
    (content, start, end), in order; an unclosed one ends the scan. Linear time."""
    out: list[tuple[str, int, int]] = []
    pos = 0
    while True:
        m = _MATH_OPEN.search(text, pos)
        if m is None:
            return out
        close = _MATH_CLOSE[m.group(0)].search(text, m.end())
        if close is None:
            return out
        out.append((text[m.end() : close.start()].strip(), m.start(), close.end()))
        pos = close.end()


def _answer_in_prose(cand: str) -> str:
    """A phrase answer written as a sentence ("The largest $n$ is 34") holds its answer
    in its last math span or last number, whichever comes last; a bare one is itself."""
    outside = "".join(part for i, part in enumerate(re.split(r"\$[^$]*\$", cand)) if part)
    if len(_PROSE_WORD.findall(outside)) < 2:
        return cand
    spans = [s for s in math_spans(cand) if s[0]]
    numbers = list(_NUMBER_RE.finditer(cand))
    last_span = spans[-1] if spans else None
    last_number = numbers[-1] if numbers else None
    if last_number is not None and (last_span is None or last_number.start() >= last_span[2]):
        return last_number.group(0)
    return last_span[0] if last_span is not None else cand


def extract_answers(text: str, mode: str = STRICT, multi_box: str = LAST) -> Extraction:
    """Find the final answer(s) of ``text`` under ``mode`` (``strict`` or ``lenient``).

    Only the text after the last ``</think>`` counts when there is one. With
    ``multi_box="last"`` the answer is the final group of boxes (:func:`final_group`);
    with ``"all_agree"`` it is every box of the response, each of which must then
    match the reference."""
    if mode not in MODES:
        raise ValueError(f"unknown extraction mode {mode!r}; choose one of {MODES}")
    if multi_box not in MULTI_BOX_MODES:
        raise ValueError(f"unknown multi_box rule {multi_box!r}; choose one of {MULTI_BOX_MODES}")
    text = after_thinking(text)
    boxed = final_group(text) if multi_box == LAST else boxed_answers(text)
    phrase = _phrase_answer(text) if mode == LENIENT else None
    if boxed:
        # lenient: "Final Answer: The final answer is $10,455$" after the last box is the later
        # commitment (boxes of intermediate results come before it)
        later = phrase is not None and phrase[1] == "final_answer" and phrase[2] > boxed_spans(text)[-1][2]
        if not later:
            return Extraction(tuple(boxed), "boxed")
    if mode == STRICT:
        return Extraction()
    if phrase is not None:
        inner = boxed_answers(phrase[0])
        return Extraction((inner[-1] if inner else _answer_in_prose(phrase[0]),), phrase[1])
    # the later of the last math span and the last number ("... $d = 90/n$ ... there are 12 ...")
    spans = [s for s in math_spans(text) if s[0]]
    numbers = list(_NUMBER_RE.finditer(text))
    if numbers and (not spans or numbers[-1].start() >= spans[-1][2]):
        return Extraction((numbers[-1].group(0),), "last_number")
    if spans:
        return Extraction((spans[-1][0],), "last_math")
    return Extraction()


def reference_answer(gold: object) -> str:
    """The reference answer as a string.

    Datasets store references as strings, numbers (``27.0``) or whole solutions;
    a reference that contains a ``\\boxed{}`` is reduced to its final group of boxes
    (several boxes of one answer, "\\boxed{(2,2)} and \\boxed{(6,2)}", joined by commas).
    """
    if isinstance(gold, float) and gold.is_integer():
        gold = int(gold)
    s = str(gold).strip()
    boxes = list(dict.fromkeys(b for b in final_group(s) if b))
    return ", ".join(boxes) if boxes else s
