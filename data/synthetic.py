"""A synthetic, verifiable math task family the project generates itself.

Multi-step arithmetic with tunable difficulty: a chain of ``steps`` operations on
integers up to ``max_operand``. Each problem has an exact answer (an integer or a
reduced fraction) and a reference solution written one step per line, ending in
``\\boxed{}``. It needs no download, so the demo and the tests run on a fresh
clone with nothing beside it.

:func:`labelled_responses` turns problems into responses with known correctness
in the forms real models write (boxed fractions or decimals, wrong final steps,
missing boxes, hedged double answers): a ground-truth set for the verifier.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from fractions import Fraction

OPS = ("+", "-", "*", "/")


@dataclass(frozen=True)
class Problem:
    question: str
    answer: str  # canonical LaTeX: "12", "-3", "\\frac{7}{4}"
    steps: tuple[str, ...]  # one line per operation, e.g. "12 * 3 = 36"
    value: Fraction
    start: int = 0
    ops: tuple[tuple[str, int], ...] = ()  # (operator, operand) in order


def latex_number(v: Fraction) -> str:
    if v.denominator == 1:
        return str(v.numerator)
    sign = "-" if v < 0 else ""
    return f"{sign}\\frac{{{abs(v.numerator)}}}{{{v.denominator}}}"


def plain_number(v: Fraction) -> str:
    return str(v.numerator) if v.denominator == 1 else f"{v.numerator}/{v.denominator}"


def _apply(value: Fraction, op: str, operand: int) -> Fraction:
    return {"+": value + operand, "-": value - operand, "*": value * operand, "/": value / operand}[op]


SLIPS = (-10, -2, -1, 1, 2, 10)  # how far a slipped result is off


_VERBS = {"+": "add {}", "-": "subtract {}", "*": "multiply by {}", "/": "divide by {}"}


def make_problem(
    rng: random.Random,
    steps: int = 2,
    max_operand: int = 20,
    allow_division: bool = True,
    ops: tuple[str, ...] | None = None,
) -> Problem:
    """A problem: start from a number and apply ``steps`` operations in order.

    ``ops`` restricts the operators drawn (default: all four, or ``+ - *`` when
    ``allow_division`` is false).
    """
    start = rng.randint(1, max_operand)
    value = Fraction(start)
    words = [f"Start with {start}."]
    lines = []
    pool = ops or (OPS if allow_division else OPS[:3])
    chain = []
    for _ in range(steps):
        op = rng.choice(pool)
        operand = rng.randint(1, max_operand)
        new = _apply(value, op, operand)
        words.append(f"Then {_VERBS[op].format(operand)}.")
        lines.append(f"{plain_number(value)} {op} {operand} = {plain_number(new)}")
        chain.append((op, operand))
        value = new
    question = " ".join(words) + " What is the result?"
    return Problem(question, latex_number(value), tuple(lines), value, start, tuple(chain))


def flawed_steps(p: Problem, rng: random.Random) -> tuple[int, tuple[str, ...], Fraction]:
    """The worked steps with one arithmetic slip, carried through consistently.

    Returns ``(index of the wrong step, the lines, the resulting wrong answer)``:
    one step's result is off by a small amount and every later step computes
    correctly from the wrong value, as a model that slipped once would write it.
    """
    if not p.ops:
        raise ValueError("flawed_steps needs a Problem made by make_problem")
    bad = rng.randrange(len(p.ops))
    lines, value = _carried_through(p, rng, {bad})
    return bad, lines, value


def slipped_steps(p: Problem, rng: random.Random, rate: float) -> tuple[tuple[int, ...], tuple[str, ...], Fraction]:
    """The worked steps where each step slips independently with probability ``rate``
    (none, one or several slips, each carried through): ``(wrong step indices, lines, answer)``.
    Unlike :func:`flawed_steps`, a long chain is then rarely right, as for a model
    whose every step is unreliable."""
    if not p.ops:
        raise ValueError("slipped_steps needs a Problem made by make_problem")
    bad = tuple(i for i in range(len(p.ops)) if rng.random() < rate)
    lines, value = _carried_through(p, rng, set(bad))
    return bad, lines, value


def _carried_through(p: Problem, rng: random.Random, bad: set[int]) -> tuple[tuple[str, ...], Fraction]:
    """The steps from ``p.start`` with the results of the ``bad`` steps off by a small amount,
    every later step computed from the value actually written."""
    value = Fraction(p.start)
    lines = []
    for i, (op, operand) in enumerate(p.ops):
        new = _apply(value, op, operand)
        if i in bad:
            new += rng.choice(SLIPS)
        lines.append(f"{plain_number(value)} {op} {operand} = {plain_number(new)}")
        value = new
    return tuple(lines), value


def with_checks(lines: tuple[str, ...] | list[str]) -> list[str]:
    """Each step followed by a line re-checking it: longer, never more correct
    (the verbosity a length penalty should learn to drop where it is not needed)."""
    out = []
    for line in lines:
        out += [line, f"Check: {line}."]
    return out


def worked_solution(
    p: Problem,
    rng: random.Random,
    error_rate: float = 0.0,
    check_rate: float = 0.0,
    direct_rate: float = 0.0,
    step_slip_rate: float = 0.0,
) -> tuple[str, bool]:
    """A supervised target: the reference solution, or with probability
    ``error_rate`` one with a slip in a step (``(text, is_correct)``); otherwise,
    with ``step_slip_rate``, each step slips independently at that rate. With
    probability ``check_rate`` every step is followed by a check line.
    ``direct_rate``: the share of targets that state the answer with no steps
    (off by a little at ``error_rate`` too): short, and only learnable where the
    answer can be had without working.
    """
    if direct_rate > 0 and rng.random() < direct_rate:
        if error_rate > 0 and rng.random() < error_rate:  # a guess off by a little
            return f"The answer is \\boxed{{{latex_number(p.value + rng.choice(SLIPS))}}}.", False
        return f"The answer is \\boxed{{{p.answer}}}.", True
    value = p.value
    lines: tuple[str, ...] | list[str] = p.steps
    if error_rate > 0 and rng.random() < error_rate:
        _, lines, value = flawed_steps(p, rng)
    elif step_slip_rate > 0:
        _, lines, value = slipped_steps(p, rng, step_slip_rate)
    if check_rate > 0 and rng.random() < check_rate:
        lines = with_checks(lines)
    return "\n".join([*lines, f"The answer is \\boxed{{{latex_number(value)}}}."]), value == p.value


def solution_text(p: Problem, answer: str | None = None) -> str:
    """The reference solution, one step per line, final answer boxed."""
    return "\n".join([*p.steps, f"The answer is \\boxed{{{answer if answer is not None else p.answer}}}."])


def labelled_responses(problems: list[Problem], rng: random.Random) -> list[tuple[str, bool]]:
    """For each problem one response with a known label, in varied real-world forms."""
    out: list[tuple[str, bool]] = []
    for p in problems:
        kind = rng.randrange(8)
        v = p.value
        if kind == 0:
            out.append((solution_text(p), True))
        elif kind == 1:  # same value, other notation: decimal or a/b
            alt = f"{float(v):.6g}" if v.denominator in (2, 4, 5, 8, 10) or v.denominator == 1 else plain_number(v)
            out.append((solution_text(p, alt), True))
        elif kind == 2:  # arithmetic slip in the final answer
            out.append((solution_text(p, latex_number(v + rng.choice([1, -1, 2]))), False))
        elif kind == 3:  # right number, but never boxed: strict mode gives no credit
            out.append(("\n".join([*p.steps, f"So the result is {plain_number(v)}."]), False))
        elif kind == 4:  # hedging: two different boxed answers
            out.append((solution_text(p) + f" Or maybe \\boxed{{{latex_number(v + 1)}}}.", False))
        elif kind == 5:  # markdown and \text wrappers around the right answer
            out.append(("\n".join(p.steps) + f"\n**Answer:** $\\boxed{{\\text{{{plain_number(v)}}}}}$", True))
        elif kind == 6:  # sign error
            wrong = -v if v != 0 else Fraction(1)
            out.append((solution_text(p, latex_number(wrong)), False))
        else:  # empty box
            out.append(("\n".join(p.steps) + "\n\\boxed{}", False))
    return out
