"""Held-out accuracy during training: sample, verify, average.

The evaluation stage reports the full set of metrics; training needs one
number it can track cheaply: mean verifier-correctness of ``samples`` responses
per held-out prompt at a given temperature (pass@1 estimated from ``samples``
draws; temperature 0 is greedy).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from data.formats import RLRow
from pipeline.models.policy import encode_prompt
from pipeline.models.rollout import HFRollout, Rollout, Sampling


def eval_seed(seed: int, step: int) -> int:
    """The sampling seed of a training run's held-out measurement at ``step``
    (shared by the RL run and the demo's supervised control, so both are
    measured on the same draws)."""
    return seed * 7919 + step


def heldout_accuracy(
    model,
    tokenizer,
    rows: Sequence[RLRow],
    verifier,
    *,
    samples: int = 1,
    temperature: float = 1.0,
    max_new_tokens: int = 64,
    rollout: Rollout | None = None,
    seed: int | None = None,
    second_instruction: str | None = None,
    keep_texts: bool = False,
) -> dict:
    """``{"acc", "n", "mean_tokens"}`` over ``rows`` (``samples`` draws each).

    With ``seed``, sampling draws from a private RNG stream seeded with it: the
    measurement is reproducible and leaves the caller's RNG state untouched.
    With ``second_instruction``, each response gets a second attempt after it
    (self-correction) and the result adds ``acc_t1``, ``acc_t2``, ``delta_t1_t2``,
    ``delta_i2c`` and ``delta_c2i``. ``keep_texts`` adds the decoded
    (first-attempt) responses as ``texts`` and their verdicts as ``correct``
    (bools), in row order.
    """
    if seed is not None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return heldout_accuracy(
                model,
                tokenizer,
                rows,
                verifier,
                samples=samples,
                temperature=temperature,
                max_new_tokens=max_new_tokens,
                rollout=rollout,
                second_instruction=second_instruction,
                keep_texts=keep_texts,
            )
    if not rows:
        return {"acc": None, "n": 0, "mean_tokens": None}
    n = 1 if temperature == 0 else samples
    rollout = rollout or HFRollout(model, tokenizer)
    prompts = [encode_prompt(tokenizer, r.messages) for r in rows]
    groups = rollout.generate(prompts, n, Sampling(temperature=temperature, max_new_tokens=max_new_tokens))
    texts = [tokenizer.decode(t, skip_special_tokens=True) for g in groups for t in g]
    gold = [r.ground_truth for r in rows for _ in range(n)]
    verdicts = verifier.verify_batch(texts, gold)
    correct = sum(v.correct for v in verdicts)
    tokens = sum(len(t) for g in groups for t in g)
    out = {"acc": correct / len(verdicts), "n": len(verdicts), "mean_tokens": tokens / len(verdicts)}
    if keep_texts:
        out["texts"], out["correct"] = texts, [v.correct for v in verdicts]
    if second_instruction:
        from pipeline.models.rollout import generate_second_attempts
        from rewards.self_correction import attempt_metrics

        _, seconds = generate_second_attempts(
            rollout,
            tokenizer,
            [r.messages for r in rows for _ in range(n)],
            texts,
            second_instruction,
            Sampling(temperature=temperature, max_new_tokens=max_new_tokens),
        )
        v2 = verifier.verify_batch(tokenizer.batch_decode(seconds, skip_special_tokens=True), gold)
        out.update(attempt_metrics([v.correct for v in verdicts], [v.correct for v in v2]))
    return out
