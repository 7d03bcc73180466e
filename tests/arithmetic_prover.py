"""A scripted prover for the synthetic arithmetic task, behind the Rollout interface.

It reads the question and the solution lines written so far (real token ids,
decoded with the real tokenizer), carries on computing from the last written
value, slips on each remaining step with probability ``slip``, and writes the
boxed answer: a policy whose success probability from any prefix is known in
closed form (``(1 - slip) ** remaining`` when the prefix is right, 0 when a
written line is wrong), so progress estimates can be checked against it.
"""

from __future__ import annotations

import random
import re
from fractions import Fraction

from data.synthetic import flawed_steps, latex_number, make_problem, plain_number, solution_text

_OPS = {"add": "+", "subtract": "-", "multiply by": "*", "divide by": "/"}


def _apply(v: Fraction, op: str, x: int) -> Fraction:
    return {"+": v + x, "-": v - x, "*": v * x, "/": v / x}[op]


class ArithmeticProver:
    def __init__(self, tokenizer, slip: float = 0.2, seed: int = 0):
        self.tok = tokenizer
        self.slip = slip
        self.rng = random.Random(seed)
        self.assistant = tokenizer.convert_tokens_to_ids("<|assistant|>")
        self.eos = tokenizer.eos_token_id
        self.calls = 0

    def sync_weights(self, model) -> None:
        pass

    def _continue(self, ids: list[int]) -> str:
        pos = len(ids) - 1 - ids[::-1].index(self.assistant)
        question = self.tok.decode(ids[:pos], skip_special_tokens=True)
        written = self.tok.decode(ids[pos + 1 :], skip_special_tokens=True)
        start = int(re.search(r"Start with (\d+)", question).group(1))
        chain = [
            (_OPS[m.group(1)], int(m.group(2)))
            for m in re.finditer(r"Then (add|subtract|multiply by|divide by) (\d+)", question)
        ]
        if written.endswith("\\boxed{"):  # answer now: the value of the last complete line
            lines = [ln for ln in written.split("\n")[:-1] if "=" in ln]
            value = Fraction(lines[-1].split("=")[-1].strip()) if lines else Fraction(start)
            return latex_number(value) + "}."
        lines = (
            [ln for ln in written.split("\n") if "=" in ln]
            if written.endswith("\n") or not written
            else [ln for ln in written.split("\n")[:-1] if "=" in ln]
        )
        value = Fraction(lines[-1].split("=")[-1].strip()) if lines else Fraction(start)
        out = []
        for op, x in chain[len(lines) :]:
            new = _apply(value, op, x)
            if self.rng.random() < self.slip:
                new += self.rng.choice([-2, -1, 1, 2])
            out.append(f"{plain_number(value)} {op} {x} = {plain_number(new)}")
            value = new
        out.append(f"The answer is \\boxed{{{latex_number(value)}}}.")
        return "\n".join(out)

    def generate(self, prompts, n, sampling):
        self.calls += 1
        return [
            [
                self.tok(self._continue(list(p)), add_special_tokens=False)["input_ids"][: sampling.max_new_tokens]
                + [self.eos]
                for _ in range(n)
            ]
            for p in prompts
        ]


def slip_traces(tok, seed=3):
    """Constructed responses to one 3-step problem: the right solution, and one
    whose second step slips (later steps carry the wrong value on correctly): the
    problem, the chat-templated prompt and both responses as token ids (+ EOS)."""
    from pipeline.models.policy import encode_prompt

    rng = random.Random(seed)
    p = make_problem(rng, steps=3, max_operand=9, ops=("+", "-"))
    while True:
        bad, lines, value = flawed_steps(p, rng)
        if bad == 1:
            break
    good = solution_text(p)
    flawed = "\n".join([*lines, f"The answer is \\boxed{{{latex_number(value)}}}."])
    prompt = encode_prompt(tok, [{"role": "user", "content": p.question}])
    enc = lambda t: tok(t, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]  # noqa: E731
    return p, prompt, enc(good), enc(flawed)
