"""Self-correction turns (SCoRe): a second attempt after a correction instruction.

A rollout is two turns. The first attempt y1 answers the prompt; the
conversation then adds the first attempt as the assistant's turn and
``instruction`` as a user turn, and the policy answers again (y2). Both attempts
are trained as separate sequences of one batch, and each attempt is credited
with its own reward (Kumar et al. 2024, arXiv 2409.12917):

* stage 1: only y2 is rewarded; y1 gets no policy-gradient signal and a strong
  KL to the reference (``first_attempt_kl``), so the first attempt stays where it
  was while the second learns to correct it (this prevents the collapse where
  both attempts become the same answer);
* stage 2: y1 is trained on r(y1), y2 on r(y2) + ``bonus`` (r(y2) - r(y1)):
  flipping a wrong first answer to a right one pays well, breaking a right one
  costs as much. The ``- bonus * r(y1)`` part is fixed once y1 is drawn, so it
  adds nothing to y2's expected gradient, only variance: y2's target is
  ``r(y2) + bonus * c2`` (:func:`turn_scores`), the same expected gradient.

:func:`attempt_advantages` turns the targets into advantages the same way on
both engines: each attempt is grouped with the same prompt's same attempt
(``(group, attempt)``), and under GRPO's std normalisation both attempts of a
prompt are divided by one shared std, so the bonus keeps its weight (a
per-attempt std would cancel it). Both stages keep SCoRe's base KL
(``kl_coef``, beta1 = 0.01) on both attempts, towards ``reference_model`` when
given (the base model, not the stage-1 model a stage-2 run starts from).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import torch

from pipeline.config import SelfCorrectionConfig
from pipeline.models.policy import encode_prompt
from pipeline.train.config import AlgorithmConfig
from rewards.terms import outcome_scores


def second_attempt_prompt(tokenizer, messages: list[dict], first_attempt: str, instruction: str) -> list[int]:
    """The conversation so far (prompt, first attempt, correction instruction), ready for the second attempt."""
    return encode_prompt(
        tokenizer,
        [*messages, {"role": "assistant", "content": first_attempt}, {"role": "user", "content": instruction}],
    )


def generate_second_attempts(rollout, tokenizer, conversations, first_attempts, instruction: str, sampling):
    """One second attempt per first attempt (``conversations[i]`` is the prompt ``first_attempts[i]``
    answered), generated on ``rollout``; returns (their prompts, their token ids). The one
    second-attempt loop of training, held-out measurement and evaluation."""
    prompts = [
        second_attempt_prompt(tokenizer, conv, text, instruction)
        for conv, text in zip(conversations, first_attempts, strict=True)
    ]
    return prompts, [group[0] for group in rollout.generate(prompts, 1, sampling)]


FIRST, SECOND = 1, 2  # attempt numbers (on verl, the marker each output's token rewards carry)


def turn_scores(
    cfg: SelfCorrectionConfig,
    first_reward: np.ndarray,
    second_reward: np.ndarray,
    first_correct: Sequence[bool],
    second_correct: Sequence[bool],
) -> tuple[np.ndarray, np.ndarray]:
    """The targets each attempt is trained on: stage 1 (0, r(y2)); stage 2
    (r(y1), r(y2) + bonus * c2), i.e. SCoRe's r(y2) + bonus * (c2 - c1) without the
    term y2 cannot change."""
    c2 = np.asarray(second_correct, dtype=float)
    if cfg.stage == 1:
        return np.zeros_like(first_reward, dtype=float), np.asarray(second_reward, dtype=float)
    return np.asarray(first_reward, dtype=float), np.asarray(second_reward, dtype=float) + cfg.bonus * c2


def shaped_reward(cfg: SelfCorrectionConfig, second_reward, first_correct, second_correct) -> np.ndarray:
    """SCoRe's stage-2 reward of the second attempt, r(y2) + bonus * (c2 - c1) (what
    the metrics report; training uses :func:`turn_scores`' equivalent target)."""
    c1 = np.asarray(first_correct, dtype=float)
    c2 = np.asarray(second_correct, dtype=float)
    return np.asarray(second_reward, dtype=float) + (cfg.bonus * (c2 - c1) if cfg.stage == 2 else 0.0)


def attempt_advantages(
    cfg: SelfCorrectionConfig,
    algo: AlgorithmConfig,
    targets,
    attempt,
    group,
    response_mask: torch.Tensor,
    token_bonus: torch.Tensor | None = None,
) -> torch.Tensor:
    """(B, R) advantages of a batch holding both attempts.

    ``targets`` (B,): :func:`turn_scores`' values; ``attempt`` (B,): 1 or 2;
    ``group`` (B,): the prompt draw each row answers. Each attempt is grouped on its
    own (verl's estimator over ``(group, attempt)``); with ``grpo`` under
    ``norm_adv_by_std`` the group-centred values of both attempts of a draw are
    divided by their one shared std instead of each attempt's own. Stage 1 gives the
    first attempts no policy-gradient signal. ``token_bonus`` is added last, scaled
    as the draw's outcome advantages."""
    from pipeline.train import algorithms

    attempt = np.asarray(attempt)
    group = np.asarray([str(g) for g in group], dtype=object)
    if not set(np.unique(attempt).tolist()) <= {FIRST, SECOND}:
        raise ValueError(f"attempt numbers must be {FIRST} or {SECOND}, got {sorted(set(attempt.tolist()))}")
    keys = np.asarray([f"{g}|{a}" for g, a in zip(group, attempt)], dtype=object)
    shared = algo.norm_adv_by_std and algo.adv_estimator in ("grpo", "grpo_vectorized")
    adv = algorithms.compute_advantages(
        dataclasses.replace(algo, norm_adv_by_std=False) if shared else algo,
        np.asarray(targets, dtype=float),
        response_mask,
        keys,
    )
    bonus_scale = np.ones(len(group))
    if shared:
        mask = response_mask.float()
        value = ((adv * mask).sum(-1) / mask.sum(-1).clamp(min=1)).detach().cpu().numpy()
        scale = np.ones(len(group))
        for g in np.unique(group):
            rows = group == g
            if rows.sum() > 1:
                scale[rows] = 1.0 / (np.std(value[rows], ddof=1) + 1e-6)  # verl's GRPO: unbiased std + 1e-6
        adv = adv * torch.as_tensor(scale, dtype=adv.dtype, device=adv.device)[:, None]
        bonus_scale = algorithms.group_scale(value * scale, value, group)
    if cfg.stage == 1:
        adv = adv * torch.as_tensor(attempt != FIRST, dtype=adv.dtype, device=adv.device)[:, None]
    if token_bonus is not None:  # scaled as the draw's outcome advantages (algorithms.bonus_scale)
        adv = (
            adv
            + torch.as_tensor(bonus_scale, dtype=adv.dtype, device=adv.device)[:, None] * token_bonus * response_mask
        )
    return adv


def kl_weights(cfg: SelfCorrectionConfig, base_kl: float, n_first: int, n_second: int) -> np.ndarray | None:
    """Per-sequence KL-to-reference weights: ``base_kl`` (``algorithm.kl_coef``) plus
    SCoRe's ``kl_coef`` on every attempt, plus ``first_attempt_kl`` on the first
    attempts in stage 1; None when no sequence has a KL weight."""
    first = base_kl + cfg.kl_coef + (cfg.first_attempt_kl if cfg.stage == 1 else 0.0)
    second = base_kl + cfg.kl_coef
    if first == 0 and second == 0:
        return None
    return np.concatenate([np.full(n_first, first), np.full(n_second, second)])


def attempt_metrics(first_correct: Sequence[bool], second_correct: Sequence[bool]) -> dict[str, float]:
    """The evaluation stage's self-correction metrics under metric-log-friendly names:
    acc_t1, acc_t2, delta_t1_t2, delta_i2c, delta_c2i."""
    from pipeline.evaluate.metrics import self_correction

    m = self_correction(first_correct, second_correct)
    return {
        "acc_t1": m["acc@t1"],
        "acc_t2": m["acc@t2"],
        "delta_t1_t2": m["delta(t1,t2)"],
        "delta_i2c": m["delta_i2c"],
        "delta_c2i": m["delta_c2i"],
    }


def attempt_outputs(
    prompt_ids: list[int],
    first_ids: list[int],
    second_prompt_ids: list[int],
    second_ids: list[int],
    response_length: int,
    pad_id: int = 0,
) -> list[dict]:
    """The two outputs' tokens: each attempt is the response to its own prompt, every
    response token the model's (mask 1), cut to ``response_length``. A response of
    fewer than two tokens is padded with masked ``pad_id`` tokens to two, so its
    token rewards can carry its attempt marker beside its reward
    (:func:`pack_attempt_rewards`)."""
    out = []
    for p, r in ((prompt_ids, first_ids), (second_prompt_ids, second_ids)):
        r = list(r)[:response_length]
        mask = [1] * len(r) + [0] * max(0, 2 - len(r))
        out.append({"prompt_ids": list(p), "response_ids": r + [pad_id] * (len(mask) - len(r)), "response_mask": mask})
    return out


def attempt_targets(
    cfg: SelfCorrectionConfig, first_correct: bool, second_correct: bool, outcome: dict
) -> tuple[float, float]:
    """One rollout's two training targets (:func:`turn_scores`) from the verdicts and the outcome term."""
    right, wrong = outcome_scores(outcome)
    t1, t2 = turn_scores(
        cfg,
        np.array([right if first_correct else wrong]),
        np.array([right if second_correct else wrong]),
        [first_correct],
        [second_correct],
    )
    return float(t1[0]), float(t2[0])


def pack_attempt_rewards(target: float, attempt: int, length: int) -> list[float]:
    """An attempt's token rewards as verl receives them (``rm_scores``, ``length`` >= 2):
    the attempt number on the first token, ``target - attempt`` on the last, so the
    row sums to the target (what verl logs as the score)."""
    if length < 2:
        raise ValueError("an attempt's token rewards need two positions (attempt_outputs pads to two)")
    out = [0.0] * length
    out[0], out[-1] = float(attempt), float(target) - float(attempt)
    return out


def unpack_attempt_rewards(token_level_rewards: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """(targets, attempts) from packed token rewards (right-padded rows)."""
    r = token_level_rewards.detach().double().cpu()
    attempt = r[:, 0].round().long().numpy()
    return r.sum(-1).numpy(), attempt
