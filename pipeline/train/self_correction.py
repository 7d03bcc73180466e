"""Self-correction turns (SCoRe): a second attempt after a correction instruction.

A rollout is two turns. The first attempt y1 answers the prompt; the
conversation then adds the first attempt as the assistant's turn and
``instruction`` as a user turn, and the policy answers again (y2). Both attempts
are trained as separate sequences of one batch, each grouped by prompt for the
advantage estimator:

* stage 1: only y2 is rewarded; y1 gets no policy-gradient signal and a strong
  KL to the reference (``first_attempt_kl``), so the first attempt stays where it
  was while the second learns to correct it (this prevents the collapse where
  both attempts become the same answer);
* stage 2: both attempts are rewarded, and y2 also gets the bonus
  ``bonus * (r(y2) - r(y1))``: flipping a wrong first answer to a right one pays
  well, breaking a right one costs as much.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from pipeline.config import SelfCorrectionConfig
from pipeline.train.policy import encode_prompt
from rewards.terms import outcome_scores


def second_attempt_prompt(tokenizer, messages: list[dict], first_attempt: str, instruction: str) -> list[int]:
    """The conversation so far (prompt, first attempt, correction instruction), ready for the second attempt."""
    return encode_prompt(tokenizer, [*messages, {"role": "assistant", "content": first_attempt},
                                     {"role": "user", "content": instruction}])


def turn_scores(cfg: SelfCorrectionConfig, first_reward: np.ndarray, second_reward: np.ndarray,
                first_correct: Sequence[bool], second_correct: Sequence[bool]) -> tuple[np.ndarray, np.ndarray]:
    """The scores each attempt is trained on (stage 1 or 2)."""
    c1 = np.asarray(first_correct, dtype=float)
    c2 = np.asarray(second_correct, dtype=float)
    if cfg.stage == 1:
        return np.zeros_like(first_reward, dtype=float), np.asarray(second_reward, dtype=float)
    return np.asarray(first_reward, dtype=float), np.asarray(second_reward, dtype=float) + cfg.bonus * (c2 - c1)


def std_warning(cfg: SelfCorrectionConfig, norm_adv_by_std: bool) -> str | None:
    """A warning when GRPO's std normalisation undoes stage 2's bonus, else None.

    Each attempt is scored on its own turn, so for a given first attempt the
    bonus on y2 is ``(1 + bonus) * c2`` less a constant: it weighs the second
    attempt's learning above the first's. Normalising each attempt's groups by
    their std cancels that weight (the constant only adds noise).
    """
    if cfg.enabled and cfg.stage == 2 and cfg.bonus > 0 and norm_adv_by_std:
        return (f"self_correction.bonus {cfg.bonus:g} with algorithm.norm_adv_by_std true: each attempt's advantages "
                "are divided by their own groups' std, which cancels the bonus's extra weight on the second "
                "attempt; set algorithm.norm_adv_by_std: false (Dr.GRPO) to keep it")
    return None


def kl_weights(cfg: SelfCorrectionConfig, base_kl: float, n_first: int, n_second: int) -> np.ndarray | None:
    """Per-sequence KL-to-reference weights: stage 1 adds ``first_attempt_kl`` on
    the first attempts; None when every sequence has the base weight."""
    if cfg.stage == 1 and cfg.first_attempt_kl > 0:
        return np.concatenate([np.full(n_first, base_kl + cfg.first_attempt_kl), np.full(n_second, base_kl)])
    return None


def attempt_metrics(first_correct: Sequence[bool], second_correct: Sequence[bool]) -> dict[str, float]:
    """The evaluation stage's self-correction metrics under metric-log-friendly names:
    acc_t1, acc_t2, delta_t1_t2, delta_i2c, delta_c2i."""
    from pipeline.evaluate.metrics import self_correction

    m = self_correction(first_correct, second_correct)
    return {"acc_t1": m["acc@t1"], "acc_t2": m["acc@t2"], "delta_t1_t2": m["delta(t1,t2)"],
            "delta_i2c": m["delta_i2c"], "delta_c2i": m["delta_c2i"]}


def attempt_outputs(prompt_ids: list[int], first_ids: list[int], second_prompt_ids: list[int],
                    second_ids: list[int], response_length: int) -> list[dict]:
    """The two outputs' tokens: each attempt is the response to its own prompt, every
    response token the model's (mask 1), cut to ``response_length``."""
    out = []
    for p, r in ((prompt_ids, first_ids), (second_prompt_ids, second_ids)):
        r = list(r)[:response_length]
        out.append({"prompt_ids": list(p), "response_ids": r, "response_mask": [1] * len(r)})
    return out


def rollout_reward(first_correct: bool, second_correct: bool, outcome: dict, bonus: float) -> float:
    """The second attempt's stage-2 reward: its outcome term plus ``bonus * (c2 - c1)``."""
    right, wrong = outcome_scores(outcome)
    cfg = SelfCorrectionConfig(enabled=True, stage=2, bonus=bonus)
    _, r2 = turn_scores(cfg, np.array([right if first_correct else wrong]),
                        np.array([right if second_correct else wrong]), [first_correct], [second_correct])
    return float(r2[0])
