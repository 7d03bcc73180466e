"""What verl imports in every Ray process (``VERL_USE_EXTERNAL_MODULES=pipeline.train.verl_plugin``).

* ``pipeline_terms``: an advantage estimator (``algorithm.adv_estimator=pipeline_terms``)
  for reward terms that need the group: verl's reward loop scores each response
  on its own (``rewards/verl_adapter.py``: 1 correct / 0 not), so the group's
  solve rate (ALP) and the generation budget (overlong, length) only meet at the
  advantage step, where verl hands an estimator the token rewards, the response
  mask and the prompt uid. There the scores become ``rewards.terms.RolloutScores``,
  ``rewards.terms.compose`` adds the configured terms (the local engine's code),
  and the configured verl estimator (``algorithm.pipeline.base_estimator``) turns
  the totals into advantages through ``pipeline.train.algorithms.compute_advantages``,
  as in the local engine.
* ``pipeline_progress``: the same, plus the per-token progress bonus that the
  ``progress`` agent loop (:mod:`pipeline.train.verl_agent_loop`) computed with
  Monte Carlo prover rollouts. verl 0.9.1 hands an estimator one number per token
  (``token_level_rewards``, the agent loop's ``rm_scores``), so the loop packs the
  verdict and the bonus into it (:func:`pack_token_rewards`): every token but the
  last holds its bonus, the last holds ``verdict - sum(the others)``, so a
  response's token rewards still sum to its verdict (verl's logged scores and
  validation see 1/0) and the bonus of its last token is not sent: it is taken to
  be the previous token's (:func:`unpack_token_bonus`; exact unless the last step
  is a single token). The advantage is then the local engine's
  ``compute_advantages(..., token_bonus=bonus)``.
* ``pipeline_self_correction``: SCoRe's credit per attempt. verl 0.9.1's v1
  trainer copies the final output's reward to every output of a rollout and, for
  its GRPO, broadcasts the final output's advantage to them, so the first attempt
  would be trained on the second's reward with the bonus (a right first attempt
  then gets a negative advantage). Estimators other than GRPO see every output
  with its own ``rm_scores``, so the ``self_correction`` agent loop gives each
  output its own target with its attempt number packed beside it
  (``self_correction.pack_attempt_rewards``: the number on the first token, the
  target less it on the last), and this estimator unpacks them and calls
  ``self_correction.attempt_advantages``, the local engine's function: groups of
  (prompt, attempt), one shared std per prompt under GRPO's normalisation.

The agent loops are their own plugin module, :mod:`pipeline.train.verl_agent_loop`
(listed in ``VERL_USE_EXTERNAL_MODULES`` next to this one).

The estimators' settings live under ``algorithm.pipeline`` in verl's config (an
estimator receives ``config.algorithm``); :mod:`pipeline.train.verl_engine` writes them.
"""

from __future__ import annotations

import numpy as np
import torch
from verl.trainer.ppo.core_algos import register_adv_est

from pipeline.config import SelfCorrectionConfig
from pipeline.train import algorithms
from pipeline.train.algorithms import attempt_advantages
from pipeline.train.config import AlgorithmConfig
from pipeline.train.verl_engine import PROGRESS_ESTIMATOR, SCORE_ESTIMATOR, TERMS_ESTIMATOR
from rewards.terms import TERMS, RolloutScores, compose


def scores_from_token_rewards(
    token_level_rewards: torch.Tensor, response_mask: torch.Tensor, index, *, group_size: int, max_response_length: int
) -> RolloutScores:
    """verl's per-response verdicts (the verifier's 1/0, summed over tokens) as the reward terms' batch.

    A response that filled the budget counts as truncated (verl's estimator sees no
    token ids, so a stop token in the last position cannot be told apart)."""
    if index is None:
        raise ValueError(f"{TERMS_ESTIMATOR} needs the prompt uids (verl passes non_tensor_batch['uid'] as index)")
    score = token_level_rewards.sum(-1).detach().cpu().numpy()
    length = response_mask.sum(-1).long().cpu().numpy()
    return RolloutScores(
        correct=score > 0.5,
        response_length=length,
        group=np.asarray([str(i) for i in index]),
        group_size=group_size,
        max_response_length=max_response_length,
        truncated=length >= max_response_length,
    )


def _base_algorithm(config) -> AlgorithmConfig:
    """The configured outcome estimator (``algorithm.pipeline.base_estimator``) and verl's std flag."""
    return AlgorithmConfig(
        adv_estimator=str(config["pipeline"]["base_estimator"]),
        norm_adv_by_std=bool(config.get("norm_adv_by_std_in_grpo", True)),
    )


def _advantage(token_level_rewards, response_mask, index, config, token_bonus=None):
    p = config["pipeline"]
    batch = scores_from_token_rewards(
        token_level_rewards,
        response_mask,
        index,
        group_size=int(p["group_size"]),
        max_response_length=int(p["max_response_length"]),
    )
    terms = {name: dict(spec) for name, spec in p["terms"].items()}
    missing = sorted(set(terms) - set(TERMS))
    if missing:
        raise ValueError(
            f"reward terms {missing} are not registered in this process: the module defining them "
            "must be in VERL_USE_EXTERNAL_MODULES (rl-pipeline train --engine verl adds it)"
        )
    total, _ = compose(batch, terms)
    adv = algorithms.compute_advantages(
        _base_algorithm(config), total, response_mask.float(), batch.group, token_bonus=token_bonus
    )
    adv = adv.to(response_mask.device)
    return adv, adv


@register_adv_est(TERMS_ESTIMATOR)
def terms_advantage(
    token_level_rewards: torch.Tensor, response_mask: torch.Tensor, index=None, config=None, **_
) -> tuple[torch.Tensor, torch.Tensor]:
    """(advantages, returns): the composed reward terms through the configured outcome estimator."""
    return _advantage(token_level_rewards, response_mask, index, config)


def pack_token_rewards(verdict: float, bonus) -> torch.Tensor:
    """One response's token rewards as the ``progress`` agent loop hands them to verl
    (its ``rm_scores``): ``bonus[t]`` on every token but the last, ``verdict - sum``
    of those on the last, so the row sums to the verdict."""
    out = torch.as_tensor(np.asarray(bonus, dtype=np.float32)).clone()
    if len(out):
        out[-1] = float(verdict) - float(out[:-1].double().sum())
    return out


def unpack_token_bonus(token_level_rewards: torch.Tensor, response_mask: torch.Tensor) -> torch.Tensor:
    """(B, T) per-token bonus from packed token rewards: each token's own value, and
    on the last valid token the previous token's (its own carried the verdict);
    zero on padding and on one-token responses."""
    mask = response_mask.float()
    bonus = token_level_rewards.float() * mask
    lengths = mask.sum(-1).long()
    rows = torch.arange(len(bonus), device=bonus.device)
    last = (lengths - 1).clamp(min=0)
    prev = (lengths - 2).clamp(min=0)
    bonus[rows, last] = torch.where(lengths >= 2, bonus[rows, prev], torch.zeros_like(bonus[rows, last]))
    return bonus


@register_adv_est(PROGRESS_ESTIMATOR)
def progress_advantage(
    token_level_rewards: torch.Tensor, response_mask: torch.Tensor, index=None, config=None, **_
) -> tuple[torch.Tensor, torch.Tensor]:
    """(advantages, returns): the composed reward terms of the verdicts (the rows' sums)
    through the configured outcome estimator, plus the unpacked progress bonus."""
    if config.get("use_kl_in_reward", False):
        raise ValueError(
            f"{PROGRESS_ESTIMATOR} reads the progress bonus from the token rewards; "
            "algorithm.use_kl_in_reward would add the KL penalty to them: keep it false"
        )
    bonus = unpack_token_bonus(token_level_rewards, response_mask)
    return _advantage(token_level_rewards, response_mask, index, config, token_bonus=bonus)


@register_adv_est(SCORE_ESTIMATOR)
def self_correction_advantage(
    token_level_rewards: torch.Tensor, response_mask: torch.Tensor, index=None, config=None, **_
) -> tuple[torch.Tensor, torch.Tensor]:
    """(advantages, returns) of both attempts, each from its own packed target, grouped by (prompt, attempt)."""
    if index is None:
        raise ValueError(f"{SCORE_ESTIMATOR} needs the prompt uids (verl passes non_tensor_batch['uid'] as index)")
    if config.get("use_kl_in_reward", False):
        raise ValueError(
            f"{SCORE_ESTIMATOR} reads the attempt markers from the token rewards; "
            "algorithm.use_kl_in_reward would add the KL penalty to them: keep it false"
        )
    targets, attempts = unpack_attempt_rewards(token_level_rewards)
    sc = config["pipeline"]["self_correction"]
    cfg = SelfCorrectionConfig(enabled=True, stage=int(sc["stage"]), bonus=float(sc["bonus"]))
    try:
        adv = attempt_advantages(
            cfg, _base_algorithm(config), targets, attempts, np.asarray(index, dtype=object), response_mask.float()
        )
    except ValueError as e:
        raise ValueError(f"{SCORE_ESTIMATOR}: {e}; are the rollouts from the self_correction agent loop?") from None
    adv = adv.to(response_mask.device)
    return adv, adv


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
