"""Self-correction turns (SCoRe): the second-attempt prompt, stage 1/2 scores, the
per-sequence KL weight in verl's loss composition, and two-turn training steps."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from pipeline.config import AlgorithmConfig, ConfigError, SelfCorrectionConfig, TrainConfig, load_config
from pipeline.train import algorithms
from pipeline.train.self_correction import attempt_metrics, kl_weights, second_attempt_prompt, std_warning, turn_scores


def test_stage_scores():
    r1, r2 = np.array([1.0, 0.0, 1.0, 0.0]), np.array([1.0, 1.0, 0.0, 0.0])
    c1, c2 = r1 > 0, r2 > 0
    s1, s2 = turn_scores(SelfCorrectionConfig(stage=1), r1, r2, c1, c2)
    assert s1.tolist() == [0, 0, 0, 0] and s2.tolist() == r2.tolist()  # stage 1: only the second attempt counts
    s1, s2 = turn_scores(SelfCorrectionConfig(stage=2, bonus=10.0), r1, r2, c1, c2)
    assert s1.tolist() == r1.tolist()
    assert s2.tolist() == [1.0, 11.0, -10.0, 0.0]  # kept, i->c flip rewarded, c->i flip punished, both wrong
    assert kl_weights(SelfCorrectionConfig(stage=1, first_attempt_kl=0.1), 0.01, 2, 3).tolist() == \
        pytest.approx([0.11, 0.11, 0.01, 0.01, 0.01])
    assert kl_weights(SelfCorrectionConfig(stage=2), 0.01, 2, 3) is None
    for bad in ({"stage": 3}, {"instruction": "  "}, {"first_attempt_kl": -1}):
        with pytest.raises(ConfigError):
            SelfCorrectionConfig(**bad)


def test_attempt_metrics_add_up():
    m = attempt_metrics([1, 1, 0, 0, 1], [1, 0, 1, 1, 1])
    assert m["acc_t1"] == 0.6 and m["acc_t2"] == 0.8
    assert m["delta_i2c"] == 0.4 and m["delta_c2i"] == 0.2
    assert m["delta_t1_t2"] == pytest.approx(m["delta_i2c"] - m["delta_c2i"])


def test_second_attempt_prompt_holds_the_first_attempt_and_instruction(task_files):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(task_files["model"])
    ids = second_attempt_prompt(tok, [{"role": "user", "content": "Start with 2. Then add 3."}], "2 + 3 = 6",
                                "Check it again.")
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
    uniform, _ = algorithms.actor_loss(ac, log_prob=lp, old_log_prob=lp.detach(), advantages=adv, response_mask=mask,
                                       ref_log_prob=ref)
    weighted, _ = algorithms.actor_loss(ac, log_prob=lp, old_log_prob=lp.detach(), advantages=adv, response_mask=mask,
                                        ref_log_prob=ref, kl_weight=torch.full((4,), 0.3))
    assert float(weighted.detach()) == pytest.approx(float(uniform.detach()), rel=1e-6)
    ac0 = algorithms.actor_config(AlgorithmConfig(kl_coef=0.0), group_size=2)
    algorithms.set_batch_info(ac0, mask)
    loss, _ = algorithms.actor_loss(ac0, log_prob=lp, old_log_prob=lp.detach(), advantages=adv, response_mask=mask,
                                    ref_log_prob=ref, kl_weight=torch.tensor([1.0, 1.0, 0.0, 0.0]))
    loss.backward()
    assert lp.grad[:2].abs().sum() > 0 and lp.grad[2:].abs().sum() == 0  # only the weighted rows pull


def test_std_warning_only_where_std_normalisation_undoes_the_bonus():
    on = SelfCorrectionConfig(enabled=True, stage=2, bonus=10.0)
    assert "norm_adv_by_std: false" in std_warning(on, norm_adv_by_std=True)
    assert std_warning(on, norm_adv_by_std=False) is None
    for quiet in (SelfCorrectionConfig(enabled=False), SelfCorrectionConfig(enabled=True, stage=1),
                  SelfCorrectionConfig(enabled=True, stage=2, bonus=0.0)):
        assert std_warning(quiet, norm_adv_by_std=True) is None


@pytest.mark.parametrize("stage", [1, 2])
def test_two_turn_training_logs_both_attempts(task_files, tmp_path, stage):
    from pipeline.train.engine import train
    from tests.test_train import write_train_config

    over = {"self_correction": {"enabled": True, "stage": stage}, "steps": 2, "eval_every": 2,
            "algorithm": {"kl_coef": 0.0, "micro_batch_size": 8}}
    cfg = load_config(TrainConfig, write_train_config(tmp_path / "t.yaml", task_files, **over))
    logged = []
    train(cfg, tmp_path / "run", progress=False, log=logged.append)
    # stage 2 with the default bonus under GRPO's default std normalisation says what that costs
    assert any(m.startswith("warning: self_correction.bonus") for m in logged) == (stage == 2)
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    last = rows[-1]
    for k in ("acc_t1", "acc_t2", "delta_t1_t2", "delta_i2c", "delta_c2i", "response_length_t2",
              "heldout_acc_t2", "heldout_delta_c2i"):
        assert k in last, k
    assert last["delta_t1_t2"] == pytest.approx(last["delta_i2c"] - last["delta_c2i"])
    assert last["acc_t1"] == last["acc"]
    # stage 1 keeps a reference model for the first-attempt KL even with algorithm.kl_coef = 0
    assert ("kl" in last) == (stage == 1)
