"""The engine's use of verl's core_algos: advantages, losses, gradient accumulation."""

import numpy as np
import pytest
import torch

from pipeline.config import ConfigError
from pipeline.train import algorithms
from pipeline.train.config import AlgorithmConfig

MASK = torch.tensor(
    [[1, 1, 1, 0], [1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0], [1, 1, 1, 0], [1, 1, 0, 0]], dtype=torch.float32
)
SCORES = np.array([1, 0, 1, 1, 0, 0], dtype=float)
GROUP = np.array([0, 0, 0, 1, 1, 1])


@pytest.mark.parametrize(
    "cfg, expected",
    [
        (AlgorithmConfig(adv_estimator="grpo"), [0.577, -1.155, 0.577, 1.155, -0.577, -0.577]),
        (AlgorithmConfig(adv_estimator="grpo", norm_adv_by_std=False), [0.333, -0.667, 0.333, 0.667, -0.333, -0.333]),
        (AlgorithmConfig(adv_estimator="rloo"), [0.5, -1, 0.5, 1, -0.5, -0.5]),
    ],
)
@pytest.mark.slow
def test_advantages_are_verls(cfg, expected):
    adv = algorithms.compute_advantages(cfg, SCORES, MASK, GROUP)
    assert adv.shape == MASK.shape
    assert torch.all(adv[MASK == 0] == 0)
    # one value per response, broadcast over its tokens
    per_seq = (adv * MASK).sum(-1) / MASK.sum(-1)
    assert np.allclose(per_seq.numpy(), expected, atol=1e-3)


def test_score_sits_on_last_token_and_bonus_is_per_token():
    r = algorithms.last_token_rewards(torch.tensor([1.0, 2.0]), MASK[:2])
    assert r.tolist() == [[0, 0, 1, 0], [0, 2, 0, 0]]
    bonus = torch.zeros_like(MASK)
    bonus[0, 1] = 0.25
    bonus[3, 3] = 9.0  # outside the response: must be masked away
    dr = AlgorithmConfig(norm_adv_by_std=False)  # no std division: the bonus is added as it is
    adv = algorithms.compute_advantages(dr, SCORES, MASK, GROUP, token_bonus=bonus)
    base = algorithms.compute_advantages(dr, SCORES, MASK, GROUP)
    assert torch.isclose(adv[0, 1] - base[0, 1], torch.tensor(0.25))
    assert adv[3, 3] == 0


def test_a_token_bonus_keeps_one_weight_against_the_std_normalised_outcome_advantage():
    # groups of 4: one solve (std 0.5), two solves (std 0.577), all solved (no spread)
    scores = np.array([1, 0, 0, 0, 1, 1, 0, 0, 1, 1, 1, 1], dtype=float)
    group = np.repeat([0, 1, 2], 4)
    mask = torch.ones(12, 3)
    bonus = torch.zeros(12, 3)
    bonus[:, 0] = 0.1  # the same progress on every response's first step
    grpo = AlgorithmConfig()
    base = algorithms.compute_advantages(grpo, scores, mask, group)
    added = (algorithms.compute_advantages(grpo, scores, mask, group, token_bonus=bonus) - base)[:, 0].numpy()
    std = np.array([np.std(scores[group == g], ddof=1) for g in (0, 1)])
    # each varying group's bonus is divided by the std its outcome advantage was divided by ...
    assert np.allclose(added[:4], 0.1 / (std[0] + 1e-6)) and np.allclose(added[4:8], 0.1 / (std[1] + 1e-6))
    # ... so each response's signal is (r - mean + 0.1) / std: bonus and outcome in one ratio on both prompts
    # (adding 0.1 as it is would weigh the bonus 0.5 and 0.577 against one outcome std on the two)
    assert np.allclose(
        base[:8, 0].numpy() + added[:8],
        (scores[:8] - np.repeat([0.25, 0.5], 4) + 0.1) / np.repeat(std + 1e-6, 4),
        atol=1e-5,
    )
    # the flat group (no outcome advantage, std 0) takes the batch's mean factor, not 1 / 1e-6
    assert np.allclose(added[8:], 0.1 * np.mean(1 / (std + 1e-6)))
    # Dr.GRPO: the bonus is added as it is
    dr = AlgorithmConfig(norm_adv_by_std=False)
    plain = algorithms.compute_advantages(dr, scores, mask, group, token_bonus=bonus)
    assert np.allclose((plain - algorithms.compute_advantages(dr, scores, mask, group))[:, 0].numpy(), 0.1)


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("adv_estimator", "gae", "not supported"),
        ("loss_mode", "nope", "verl has"),
        ("loss_agg_mode", "mean", "agg_loss"),
        ("kl_type", "full", "kl_penalty"),
    ],
)
def test_validate_names_verls_options(field, value, message):
    with pytest.raises(ConfigError) as e:
        algorithms.validate(AlgorithmConfig(**{field: value}))
    assert message in str(e.value)


def _toy(seed=0):
    torch.manual_seed(seed)
    logits = torch.randn(6, 4, 5, requires_grad=True)
    labels = torch.randint(0, 5, (6, 4))
    return logits, labels


def _logp(logits, labels):
    return torch.log_softmax(logits, -1).gather(-1, labels.unsqueeze(-1)).squeeze(-1)


@pytest.mark.parametrize("agg", ["token-mean", "seq-mean-token-sum", "seq-mean-token-mean", "seq-mean-token-sum-norm"])
def test_micro_batches_accumulate_to_the_full_batch_gradient(agg):
    cfg = AlgorithmConfig(loss_agg_mode=agg, kl_coef=0.1, entropy_coeff=0.01)
    ac = algorithms.actor_config(cfg, group_size=3)
    adv = algorithms.compute_advantages(cfg, SCORES, MASK, GROUP)
    ref = torch.randn(6, 4)

    def run(splits):
        logits, labels = _toy()
        algorithms.set_batch_info(ac, MASK, max_new_tokens=4)
        total = 0.0
        shares = dict.fromkeys(algorithms.SHARE_METRICS, 0.0)
        for ix in splits:
            lp = _logp(logits[ix], labels[ix])
            ent = -(torch.softmax(logits[ix], -1) * torch.log_softmax(logits[ix], -1)).sum(-1)
            loss, m = algorithms.actor_loss(
                ac,
                log_prob=lp,
                old_log_prob=lp.detach(),
                advantages=adv[ix],
                response_mask=MASK[ix],
                entropy=ent,
                ref_log_prob=ref[ix],
            )
            loss.backward()
            total += float(loss.detach())
            assert {"pg_loss", "pg_clipfrac", "kl", "entropy"} <= set(m)
            for k in shares:
                shares[k] += m[k]
        return total, logits.grad.clone(), shares

    full_loss, full_grad, full_m = run([torch.arange(6)])
    micro_loss, micro_grad, micro_m = run([torch.tensor([0, 1]), torch.tensor([2, 3, 4]), torch.tensor([5])])
    for k in algorithms.SHARE_METRICS:  # what the engine reports: micro-batch shares add up
        assert micro_m[k] == pytest.approx(full_m[k], rel=1e-5, abs=1e-7), k
    assert micro_loss == pytest.approx(full_loss, rel=1e-5)
    assert torch.allclose(micro_grad, full_grad, atol=1e-6)
    assert full_grad.abs().sum() > 0


@pytest.mark.parametrize("mode", ["vanilla", "gspo", "clip_cov", "kl_cov", "cispo", "gpg", "sapo", "dro"])
def test_every_policy_loss_gives_a_gradient(mode):
    cfg = AlgorithmConfig(loss_mode=mode)
    algorithms.validate(cfg)
    ac = algorithms.actor_config(cfg, group_size=3)
    algorithms.set_batch_info(ac, MASK)
    logits, labels = _toy(1)
    lp = _logp(logits, labels)
    old = lp.detach() + 0.05 * torch.randn_like(lp)
    adv = algorithms.compute_advantages(cfg, SCORES, MASK, GROUP)
    loss, _ = algorithms.actor_loss(ac, log_prob=lp, old_log_prob=old, advantages=adv, response_mask=MASK)
    loss.backward()
    assert torch.isfinite(loss) and logits.grad.abs().sum() > 0


def _expected_kl_gradient(kl_type: str, theta: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """E_{x ~ pi}[grad of verl's kl_penalty(log pi(x), log ref(x))] for a policy over two
    tokens, summed exactly over both (the sampling weight pi(x) carries no gradient, as
    in a loss on sampled tokens)."""
    from verl.trainer.ppo import core_algos as ca

    th = theta.clone().requires_grad_(True)
    logp = torch.log_softmax(th, -1)
    per_token = ca.kl_penalty(logprob=logp.view(1, 2), ref_logprob=ref.log().view(1, 2), kl_penalty=kl_type).view(2)
    (logp.exp().detach() * per_token).sum().backward()
    return th.grad


def test_default_kl_estimator_has_the_reverse_kl_gradient():
    """GRPO's KL term means reverse KL(pi || ref). On a two-token toy the default
    estimator's expected gradient equals the exact reverse-KL gradient; plain
    low_var_kl (k3) as a loss gives the forward-KL gradient instead."""
    theta = torch.tensor([0.9, -0.4])
    ref = torch.tensor([0.25, 0.75])

    def exact(direction: str) -> torch.Tensor:
        th = theta.clone().requires_grad_(True)
        pi = torch.softmax(th, -1)
        kl = (pi * (pi.log() - ref.log())).sum() if direction == "reverse" else (ref * (ref.log() - pi.log())).sum()
        kl.backward()
        return th.grad

    default = AlgorithmConfig().kl_type
    assert torch.allclose(_expected_kl_gradient(default, theta, ref), exact("reverse"), atol=1e-6)
    k3 = _expected_kl_gradient("low_var_kl", theta, ref)
    assert torch.allclose(k3, exact("forward"), atol=1e-6)
    assert not torch.allclose(k3, exact("reverse"), atol=1e-2)


def test_a_prompt_drawn_twice_makes_two_groups():
    """Across an epoch boundary the sampler can draw one prompt twice in a step: its
    two draws are two GRPO groups, each normalised on its own."""
    from pipeline.train.engine import PromptSampler, draw_groups

    sampler = PromptSampler(3, seed=0)
    idx = sampler.next(4)  # 3 prompts, 4 per step: one repeats
    assert len(set(idx)) == 3
    k = 2
    group = draw_groups(len(idx), k)
    assert len(set(group.tolist())) == len(idx)
    # the repeated prompt: one draw all right, the other all wrong; merged into one group
    # of four, both would get advantages; as two groups neither does (no contrast within)
    first = idx.index(next(i for i in idx if idx.count(i) == 2))
    second = len(idx) - 1 - idx[::-1].index(idx[first])
    scores = torch.zeros(len(idx) * k)
    scores[first * k : (first + 1) * k] = 1.0
    mask = torch.ones(len(idx) * k, 3)
    adv = algorithms.compute_advantages(AlgorithmConfig(), scores, mask, group)
    assert torch.all(adv[first * k : (first + 1) * k] == 0) and torch.all(adv[second * k : (second + 1) * k] == 0)
    merged = np.repeat(np.asarray(idx), k)
    adv_merged = algorithms.compute_advantages(AlgorithmConfig(), scores, mask, merged)
    assert torch.all(adv_merged[first * k : (first + 1) * k] > 0)
