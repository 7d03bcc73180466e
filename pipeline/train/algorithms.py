"""The RL algorithms, from verl's ``core_algos``: nothing here re-derives them.

* :func:`compute_advantages`: per-response scores -> per-token advantages with
  any of verl's outcome estimators (GRPO, Dr.GRPO via ``norm_adv_by_std=False``,
  RLOO, REINFORCE++ with baseline, OPO, GPG, GRPO pass@k), called as verl's
  ``compute_advantage`` calls them: the score sits on the last response token
  and ``index`` groups responses by prompt. ``token_bonus`` (B, R) is added
  afterwards: the hook for per-token process rewards.
* :func:`actor_loss`: verl's registered policy loss plus entropy bonus and
  KL-to-reference, composed exactly as verl's ``ppo_loss`` composes them,
  with ``global_batch_info`` set so micro-batch losses sum to the mini-batch loss.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from pipeline.config import ConfigError, SelfCorrectionConfig
from pipeline.train.config import GROUP_STD_ESTIMATORS, AlgorithmConfig
from rewards.self_correction import FIRST, SECOND

# estimators that need only scores + group ids (the others want values or baselines)
OUTCOME_ESTIMATORS = (
    "grpo",
    "grpo_vectorized",
    "rloo",
    "rloo_vectorized",
    "reinforce_plus_plus",
    "reinforce_plus_plus_baseline",
    "opo",
    "gpg",
    "grpo_passk",
)


def _core():
    from verl.trainer.ppo import core_algos

    return core_algos


def validate(cfg: AlgorithmConfig) -> None:
    """Check names against verl's registries; a ConfigError lists the valid ones."""
    ca = _core()
    if cfg.adv_estimator not in OUTCOME_ESTIMATORS:
        raise ConfigError(
            f"algorithm.adv_estimator {cfg.adv_estimator!r} is not supported by the single-process "
            f"engine; choose one of {list(OUTCOME_ESTIMATORS)}"
        )
    if cfg.loss_mode not in ca.POLICY_LOSS_REGISTRY:
        raise ConfigError(f"algorithm.loss_mode {cfg.loss_mode!r}; verl has {sorted(ca.POLICY_LOSS_REGISTRY)}")
    if cfg.loss_agg_mode not in (
        "token-mean",
        "token-sum",
        "seq-mean-token-sum",
        "seq-mean-token-mean",
        "seq-mean-token-sum-norm",
    ):
        raise ConfigError(f"algorithm.loss_agg_mode {cfg.loss_agg_mode!r} is not one of verl's agg_loss modes")
    try:
        ca.kl_penalty(torch.zeros(1, 1), torch.zeros(1, 1), cfg.kl_type)
    except (NotImplementedError, ValueError, KeyError):
        raise ConfigError(
            f"algorithm.kl_type {cfg.kl_type!r} is not a verl kl_penalty type "
            "(kl, abs, mse, low_var_kl, k1, k2, k3, k3+, low_var_kl+)"
        ) from None


def algo_config(cfg: AlgorithmConfig):
    from verl.trainer.config import AlgoConfig

    return AlgoConfig(gamma=1.0, lam=1.0, adv_estimator=cfg.adv_estimator, norm_adv_by_std_in_grpo=cfg.norm_adv_by_std)


def actor_config(cfg: AlgorithmConfig, group_size: int):
    """verl's ``ActorConfig`` carrying the loss settings (the policy losses read it)."""
    from verl.workers.config import ActorConfig
    from verl.workers.config.actor import PolicyLossConfig

    ac = ActorConfig(
        policy_loss=PolicyLossConfig(loss_mode=cfg.loss_mode, dro_beta=0.1 if cfg.loss_mode == "dro" else None),
        strategy="fsdp",
        rollout_n=group_size,
        ppo_micro_batch_size_per_gpu=cfg.micro_batch_size,
        clip_ratio_low=cfg.clip_ratio_low,
        clip_ratio_high=cfg.clip_ratio_high,
        clip_ratio_c=cfg.clip_ratio_c,
        loss_agg_mode=cfg.loss_agg_mode,
        entropy_coeff=cfg.entropy_coeff,
        use_kl_loss=cfg.kl_coef > 0,
        kl_loss_coef=cfg.kl_coef,
        kl_loss_type=cfg.kl_type,
        use_torch_compile=False,
    )
    return ac


def last_token_rewards(scores: torch.Tensor, response_mask: torch.Tensor) -> torch.Tensor:
    """(B,) scores -> (B, R) token-level rewards with each score on its last response token."""
    out = torch.zeros_like(response_mask, dtype=torch.float32)
    lengths = response_mask.sum(-1).long()
    rows = torch.arange(len(scores))
    last = (lengths - 1).clamp(min=0)
    out[rows, last] = scores.float() * (lengths > 0).float()
    return out


def compute_advantages(
    cfg: AlgorithmConfig,
    scores: np.ndarray,
    response_mask: torch.Tensor,
    group: np.ndarray,
    token_bonus: torch.Tensor | None = None,
) -> torch.Tensor:
    """Per-token advantages (B, R) from per-response scores via verl's estimator.

    ``token_bonus`` (per-token process rewards, in reward units) is added after
    the estimator, multiplied by the factor the estimator's std normalisation gave
    the response's group (:func:`bonus_scale`), so the bonus keeps one weight
    against the outcome advantage on every prompt."""
    adv = _estimate(cfg, scores, response_mask, group)
    if token_bonus is not None:
        scale = bonus_scale(cfg, scores, response_mask, group, normalised=adv)
        adv = adv + torch.as_tensor(scale, dtype=adv.dtype, device=adv.device)[:, None] * token_bonus * response_mask
    return adv


def _estimate(cfg: AlgorithmConfig, scores, response_mask: torch.Tensor, group) -> torch.Tensor:
    fn = _core().get_adv_estimator_fn(cfg.adv_estimator)
    rewards = last_token_rewards(torch.as_tensor(scores, dtype=torch.float32), response_mask)
    index = np.asarray([str(g) for g in group], dtype=object)
    kwargs = dict(token_level_rewards=rewards, response_mask=response_mask, index=index, config=algo_config(cfg))
    if cfg.adv_estimator in GROUP_STD_ESTIMATORS:
        kwargs["norm_adv_by_std_in_grpo"] = cfg.norm_adv_by_std
    adv, _ = fn(**kwargs)
    return adv


def bonus_scale(
    cfg: AlgorithmConfig, scores, response_mask: torch.Tensor, group, normalised: torch.Tensor | None = None
) -> np.ndarray:
    """(B,) factor for a token bonus: 1 without per-group std normalisation, else
    the ``1 / (std + eps)`` verl's estimator divided the response's group by (read
    off the estimator itself: normalised over centred advantages). A group whose
    scores do not vary has no outcome advantage to keep a ratio with; it takes the
    batch's mean factor (1 when no group varies), so its bonus is neither dropped
    nor blown up by ``1 / eps``."""
    n = len(scores)
    if not (cfg.norm_adv_by_std and cfg.adv_estimator in GROUP_STD_ESTIMATORS):
        return np.ones(n)
    if normalised is None:
        normalised = _estimate(cfg, scores, response_mask, group)
    centred = _estimate(dataclasses.replace(cfg, norm_adv_by_std=False), scores, response_mask, group)
    mask = response_mask.float()
    per_seq = lambda a: ((a * mask).sum(-1) / mask.sum(-1).clamp(min=1)).detach().cpu().numpy()  # noqa: E731
    return group_scale(per_seq(normalised), per_seq(centred), group)


def group_scale(normalised: np.ndarray, centred: np.ndarray, group) -> np.ndarray:
    """Per-row factor ``normalised / centred`` of each group (one value per group),
    groups where every centred value is ~0 filled with the mean of the others' (or 1)."""
    group = np.asarray([str(g) for g in group], dtype=object)
    factors = {}
    for g in np.unique(group):
        moving = (group == g) & (np.abs(centred) > 1e-9)
        if moving.any():
            factors[g] = float(np.median(normalised[moving] / centred[moving]))
    flat = float(np.mean(list(factors.values()))) if factors else 1.0
    return np.asarray([factors.get(g, flat) for g in group])


# actor_loss metrics that verl's agg_loss computed with the mini-batch totals: a
# micro-batch's value is its share, and the shares add up to the mini-batch value
SHARE_METRICS = frozenset({"pg_loss", "entropy", "kl"})


def actor_loss(
    ac,
    *,
    log_prob: torch.Tensor,
    old_log_prob: torch.Tensor,
    advantages: torch.Tensor,
    response_mask: torch.Tensor,
    entropy: torch.Tensor | None = None,
    ref_log_prob: torch.Tensor | None = None,
    kl_weight: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict]:
    """verl's ``ppo_loss`` composition for one micro-batch; ``ac.global_batch_info``
    must hold the mini-batch totals (see :func:`set_batch_info`). ``kl_weight`` (B,):
    per-sequence KL-to-reference weights used instead of ``kl_loss_coef`` (SCoRe's
    stronger KL on first attempts). Metrics named in
    :data:`SHARE_METRICS` are this micro-batch's share of the mini-batch value."""
    ca = _core()
    mode = ac.loss_agg_mode
    gbi = ac.global_batch_info
    mask = response_mask.bool()
    pg_loss, pg_metrics = ca.get_policy_loss_fn(ac.policy_loss.loss_mode)(
        old_log_prob=old_log_prob,
        log_prob=log_prob,
        advantages=advantages,
        response_mask=mask,
        loss_agg_mode=mode,
        config=ac,
        rollout_is_weights=None,
    )
    metrics = {k.split("/")[-1]: float(v) for k, v in pg_metrics.items()}
    metrics["pg_loss"] = float(pg_loss.detach())
    loss = pg_loss
    if entropy is not None:
        ent = ca.agg_loss(loss_mat=entropy, loss_mask=mask, loss_agg_mode=mode, **gbi)
        loss = loss - ac.entropy_coeff * ent
        metrics["entropy"] = float(ent.detach())
    if ac.use_kl_loss or kl_weight is not None:
        kld = ca.kl_penalty(logprob=log_prob, ref_logprob=ref_log_prob, kl_penalty=ac.kl_loss_type)
        kl = ca.agg_loss(loss_mat=kld, loss_mask=mask, loss_agg_mode=mode, **gbi)
        if kl_weight is None:
            loss = loss + ac.kl_loss_coef * kl
        else:
            loss = loss + ca.agg_loss(loss_mat=kld * kl_weight[:, None], loss_mask=mask, loss_agg_mode=mode, **gbi)
        metrics["kl"] = float(kl.detach())
    return loss, metrics


def set_batch_info(ac, response_mask: torch.Tensor, max_new_tokens: int | None = None) -> None:
    """Tell verl's ``agg_loss`` the mini-batch totals, so micro-batch losses add up
    to the mini-batch loss exactly (gradient accumulation)."""
    ac.global_batch_info.clear()  # a frozen field holding a mutable dict, as verl's own ppo_loss uses it
    ac.global_batch_info.update(
        {
            "dp_size": 1,
            "batch_num_tokens": int(response_mask.sum()),
            "global_batch_size": int((response_mask.sum(-1) > 0).sum()),
            "loss_scale_factor": max_new_tokens,  # Dr.GRPO: a constant normaliser, not the padded width
        }
    )


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
    attempt = np.asarray(attempt)
    group = np.asarray([str(g) for g in group], dtype=object)
    if not set(np.unique(attempt).tolist()) <= {FIRST, SECOND}:
        raise ValueError(f"attempt numbers must be {FIRST} or {SECOND}, got {sorted(set(attempt.tolist()))}")
    keys = np.asarray([f"{g}|{a}" for g, a in zip(group, attempt)], dtype=object)
    shared = algo.norm_adv_by_std and algo.adv_estimator in ("grpo", "grpo_vectorized")
    adv = compute_advantages(
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
        bonus_scale = group_scale(value * scale, value, group)
    if cfg.stage == 1:
        adv = adv * torch.as_tensor(attempt != FIRST, dtype=adv.dtype, device=adv.device)[:, None]
    if token_bonus is not None:  # scaled as the draw's outcome advantages (bonus_scale)
        adv = (
            adv
            + torch.as_tensor(bonus_scale, dtype=adv.dtype, device=adv.device)[:, None] * token_bonus * response_mask
        )
    return adv


def termination_advantages(adv: torch.Tensor, scores, termination_scores, cuts, scale, response_mask) -> torch.Tensor:
    """``adv`` with each row's tokens from ``cuts[i]`` on replaced by
    ``scale[i] * (scores[i] - termination_scores[i])``; the prefix keeps the group
    estimator's advantage (the termination value depends on the prefix's own tokens,
    so it is no baseline for them). ``scale``: :func:`bonus_scale`, the
    factor the estimator's std normalisation gave the row's group."""
    out = adv.clone()
    width = adv.shape[1]
    after = torch.arange(width, device=adv.device)[None, :] >= torch.as_tensor(cuts, device=adv.device)[:, None]
    value = torch.as_tensor(
        np.asarray(scale) * (np.asarray(scores, float) - np.asarray(termination_scores, float)),
        dtype=adv.dtype,
        device=adv.device,
    )[:, None]
    return torch.where(after, value * response_mask, out)
