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


def latex_number(v: Fraction) -> str:
    if v.denominator == 1:
        return str(v.numerator)
    sign = "-" if v < 0 else ""
    return f"{sign}\\frac{{{abs(v.numerator)}}}{{{v.denominator}}}"


def plain_number(v: Fraction) -> str:
    return str(v.numerator) if v.denominator == 1 else f"{v.numerator}/{v.denominator}"


def make_problem(rng: random.Random, steps: int = 2, max_operand: int = 20, allow_division: bool = True) -> Problem:
    """A problem: start from a number and apply ``steps`` operations in order."""
    value = Fraction(rng.randint(1, max_operand))
    words = [f"Start with {value}."]
    lines = []
    ops = OPS if allow_division else OPS[:3]
    for _ in range(steps):
        op = rng.choice(ops)
        operand = rng.randint(1, max_operand)
        new = {"+": value + operand, "-": value - operand, "*": value * operand, "/": value / operand}[op]
        verb = {"+": f"add {operand}", "-": f"subtract {operand}", "*": f"multiply by {operand}", "/": f"divide by {operand}"}[op]
        words.append(f"Then {verb}.")
        lines.append(f"{plain_number(value)} {op} {operand} = {plain_number(new)}")
        value = new
    question = " ".join(words) + " What is the result?"
    return Problem(question, latex_number(value), tuple(lines), value)


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
