"""Training with self-correction turns (SCoRe): the second-attempt prompt, the credit per attempt
(attempt_advantages, both engines), the per-sequence KL weight in verl's loss composition, and
two-turn training steps."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from pipeline.config import ConfigError, SelfCorrectionConfig, load_config
from pipeline.models.rollout import second_attempt_prompt
from pipeline.train import algorithms
from pipeline.train.algorithms import attempt_advantages
from pipeline.train.config import AlgorithmConfig, TrainConfig
from rewards.self_correction import FIRST, SECOND


def _attempt_batch(t1, t2, groups):
    targets = np.concatenate([t1, t2])
    attempts = np.repeat([FIRST, SECOND], len(t1))
    return targets, attempts, np.concatenate([groups, groups]), torch.ones(len(targets), 3)


def test_each_attempt_is_grouped_on_its_own_and_shares_one_std():
    """y1 targets [1,0,1,0], y2 targets [11,11,0,0] (bonus 10) for one prompt: each attempt
    is centred on its own mean, and under GRPO's std both are divided by one std, so the
    second attempt keeps its 11x weight; per-attempt std (what verl's GRPO does per
    group) would make both attempts weigh the same."""
    t1, t2 = np.array([1.0, 0.0, 1.0, 0.0]), np.array([11.0, 11.0, 0.0, 0.0])
    targets, attempts, groups, mask = _attempt_batch(t1, t2, np.zeros(4, int))
    sc = SelfCorrectionConfig(enabled=True, stage=2, bonus=10.0)
    adv = attempt_advantages(sc, AlgorithmConfig(adv_estimator="grpo"), targets, attempts, groups, mask)[:, 0]
    assert float(adv[:4].sum()) == pytest.approx(0, abs=1e-5) and float(adv[4:].sum()) == pytest.approx(0, abs=1e-5)
    assert (adv[[0, 2]] > 0).all() and (adv[[1, 3]] < 0).all()  # a right first attempt is pushed up
    assert (adv[4:6] > 0).all() and (adv[6:] < 0).all()
    assert float(adv[4] / adv[0]) == pytest.approx(11.0, rel=1e-4)  # the bonus keeps its weight
    centred = np.concatenate([t1 - t1.mean(), t2 - t2.mean()])
    assert adv.tolist() == pytest.approx((centred / (centred.std(ddof=1) + 1e-6)).tolist(), rel=1e-5)
    # a token bonus (progress) is divided by that same shared std
    bonus = torch.zeros_like(mask)
    bonus[:, 0] = 0.5
    with_bonus = attempt_advantages(
        sc, AlgorithmConfig(adv_estimator="grpo"), targets, attempts, groups, mask, token_bonus=bonus
    )[:, 0]
    assert (with_bonus - adv).tolist() == pytest.approx([0.5 / (centred.std(ddof=1) + 1e-6)] * 8, rel=1e-4)
    # verl's GRPO on each (prompt, attempt) group with its own std: the weight is gone
    from pipeline.train import algorithms

    keys = np.array([f"{a}" for a in attempts])
    own = algorithms.compute_advantages(AlgorithmConfig(adv_estimator="grpo"), targets, mask, keys)[:, 0]
    assert float(own[4] / own[0]) == pytest.approx(1.0, rel=1e-4)
    # without std (Dr.GRPO) the centred targets themselves; two prompts never mix
    targets2, attempts2, groups2, mask2 = _attempt_batch(np.r_[t1, t1 * 0], np.r_[t2, t2 * 0 + 3], np.repeat([0, 1], 4))
    dr = attempt_advantages(
        sc, AlgorithmConfig(adv_estimator="grpo", norm_adv_by_std=False), targets2, attempts2, groups2, mask2
    )[:, 0]
    assert dr.tolist() == pytest.approx(np.r_[t1 - 0.5, [0] * 4, t2 - 5.5, [0] * 4].tolist(), abs=1e-6)
    # stage 1: the first attempts get no policy-gradient signal, whatever the estimator
    for est in ("grpo", "rloo", "reinforce_plus_plus_baseline"):
        a1 = attempt_advantages(
            SelfCorrectionConfig(stage=1), AlgorithmConfig(adv_estimator=est), targets, attempts, groups, mask
        )
        assert a1[:4].abs().sum() == 0 and a1[4:].abs().sum() > 0, est
    with pytest.raises(ValueError, match="attempt numbers"):
        attempt_advantages(sc, AlgorithmConfig(), targets, np.full(8, 3), groups, mask)


def test_the_second_attempts_target_has_scores_expected_gradient_with_less_variance():
    """A toy two-attempt policy: y1 right with probability 0.4, y2 right with sigmoid(theta[c1]).
    Policy-gradient estimates for theta from Dr.GRPO advantages of SCoRe's reward
    r(y2) + a (c2 - c1) and of the target r(y2) + a c2 agree in mean (the dropped -a c1 is
    fixed once y1 is drawn) while the target's estimates vary less."""
    rng = np.random.default_rng(0)
    theta = np.array([-0.5, 0.8])  # logit of a right second attempt after a wrong / right first one
    alpha, K, G = 10.0, 8, 3000
    sc = SelfCorrectionConfig(enabled=True, stage=2, bonus=alpha)
    algo = AlgorithmConfig(adv_estimator="grpo", norm_adv_by_std=False)
    c1 = rng.random((G, K)) < 0.4
    q = 1 / (1 + np.exp(-theta[c1.astype(int)]))
    c2 = rng.random((G, K)) < q
    score = (c2 - q)[..., None] * np.stack([~c1, c1], -1)  # d log pi(c2 | c1) / d theta
    groups = np.repeat(np.arange(G), K)
    mask = torch.ones(2 * G * K, 1)
    full = c2.astype(float) + alpha * (c2.astype(float) - c1)
    target = c2.astype(float) + alpha * c2
    grads = {}
    for name, t2 in (("full", full), ("target", target)):
        t, att, g, _ = _attempt_batch(c1.ravel().astype(float), t2.ravel(), groups)
        adv = attempt_advantages(sc, algo, t, att, g, mask)[G * K :, 0].numpy().reshape(G, K)
        grads[name] = (adv[..., None] * score).sum(1)  # one estimate per group
    se = np.sqrt(grads["full"].var(0) / G + grads["target"].var(0) / G)
    assert (np.abs(grads["full"].mean(0) - grads["target"].mean(0)) < 4 * se).all()
    assert (grads["target"].var(0) < 0.8 * grads["full"].var(0)).all()


def test_second_attempt_prompt_holds_the_first_attempt_and_instruction(task_files):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(task_files["model"])
    ids = second_attempt_prompt(
        tok, [{"role": "user", "content": "Start with 2. Then add 3."}], "2 + 3 = 6", "Check it again."
    )
    text = tok.decode(ids)
    assert text.index("Start with 2.") < text.index("2 + 3 = 6") < text.index("Check it again.")
    assert text.endswith("<|assistant|>")  # ready for the second attempt


def test_per_sequence_kl_weight_matches_the_uniform_coefficient_and_masks_rows():
    mask = torch.ones(4, 3)
    torch.manual_seed(0)
    lp = torch.randn(4, 3, requires_grad=True)
    ref = torch.randn(4, 3)
    adv = torch.zeros(4, 3)
    ac = algorithms.actor_config(AlgorithmConfig(kl_coef=0.3), group_size=2)
    algorithms.set_batch_info(ac, mask)
    uniform, _ = algorithms.actor_loss(
        ac, log_prob=lp, old_log_prob=lp.detach(), advantages=adv, response_mask=mask, ref_log_prob=ref
    )
    weighted, _ = algorithms.actor_loss(
        ac,
        log_prob=lp,
        old_log_prob=lp.detach(),
        advantages=adv,
        response_mask=mask,
        ref_log_prob=ref,
        kl_weight=torch.full((4,), 0.3),
    )
    assert float(weighted.detach()) == pytest.approx(float(uniform.detach()), rel=1e-6)
    ac0 = algorithms.actor_config(AlgorithmConfig(kl_coef=0.0), group_size=2)
    algorithms.set_batch_info(ac0, mask)
    loss, _ = algorithms.actor_loss(
        ac0,
        log_prob=lp,
        old_log_prob=lp.detach(),
        advantages=adv,
        response_mask=mask,
        ref_log_prob=ref,
        kl_weight=torch.tensor([1.0, 1.0, 0.0, 0.0]),
    )
    loss.backward()
    assert lp.grad[:2].abs().sum() > 0 and lp.grad[2:].abs().sum() == 0  # only the weighted rows pull


@pytest.mark.slow
@pytest.mark.parametrize("stage", [1, 2])
def test_two_turn_training_logs_both_attempts(task_files, tmp_path, stage):
    from pipeline.train.engine import train
    from tests.pipeline.train.test_train import write_train_config

    over = {
        "self_correction": {"enabled": True, "stage": stage},
        "steps": 2,
        "eval_every": 2,
        "algorithm": {"kl_coef": 0.0, "micro_batch_size": 8},
    }
    cfg = load_config(TrainConfig, write_train_config(tmp_path / "t.yaml", task_files, **over))
    logged = []
    train(cfg, tmp_path / "run", progress=False, log=logged.append)
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    last = rows[-1]
    for k in (
        "acc_t1",
        "acc_t2",
        "delta_t1_t2",
        "delta_i2c",
        "delta_c2i",
        "response_length_t2",
        "heldout_acc_t2",
        "heldout_delta_c2i",
    ):
        assert k in last, k
    assert last["delta_t1_t2"] == pytest.approx(last["delta_i2c"] - last["delta_c2i"])
    assert last["acc_t1"] == last["acc"]
    # both stages keep a reference model for SCoRe's beta1 even with algorithm.kl_coef = 0
    assert "kl" in last


@pytest.mark.slow
def test_reference_model_is_the_kl_reference_and_must_share_the_tokenizer(task_files, tmp_path):
    """self_correction.reference_model (SCoRe: the base model, also for a stage-2 run
    started elsewhere): the first step's KL is ~0 against the policy's own copy, not
    against another model; a reference with another tokenizer is refused."""
    from data.formats import read_rl_rows
    from pipeline.models.tiny_model import build_and_save
    from pipeline.train.engine import train
    from tests.pipeline.train.test_train import write_train_config

    rows = read_rl_rows(task_files["train"])
    texts = [r.messages[0]["content"] for r in rows] + [r.solution for r in rows]
    other = build_and_save(tmp_path / "other", texts, size="micro", seed=1)  # same tokenizer, other weights

    def first_kl(name: str, reference: str) -> float:
        over = {
            "self_correction": {"enabled": True, "stage": 2, "reference_model": reference},
            "steps": 1,
            "eval_every": 0,
            "data": {"heldout_files": []},
            "algorithm": {"micro_batch_size": 8},
        }
        cfg = load_config(TrainConfig, write_train_config(tmp_path / f"{name}.yaml", task_files, **over))
        train(cfg, tmp_path / name, progress=False, log=lambda m: None)
        return json.loads((tmp_path / name / "metrics.jsonl").read_text().splitlines()[-1])["kl"]

    own, named = first_kl("own", ""), first_kl("named", str(other))
    assert abs(own) < 1e-3  # the reference is the policy's starting copy (float noise only)
    assert named > 100 * abs(own) and named > 1e-2  # the named model
    foreign = build_and_save(
        tmp_path / "foreign", ["completely different words only"] * 8, size="micro", vocab_size=300
    )
    over = {
        "self_correction": {"enabled": True, "reference_model": str(foreign)},
        "steps": 1,
        "data": {"heldout_files": []},
    }
    cfg = load_config(TrainConfig, write_train_config(tmp_path / "f.yaml", task_files, **over))
    with pytest.raises(ConfigError, match="another tokenizer"):
        train(cfg, tmp_path / "runf", progress=False, log=lambda m: None)
