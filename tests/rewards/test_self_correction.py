"""Self-correction turns (SCoRe), the pure part (rewards/self_correction.py): stage 1/2 targets
and the shaped reward, and the attempt metrics."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.config import ConfigError, SelfCorrectionConfig
from rewards.self_correction import attempt_metrics, kl_weights, shaped_reward, turn_scores


def test_stage_scores():
    r1, r2 = np.array([1.0, 0.0, 1.0, 0.0]), np.array([1.0, 1.0, 0.0, 0.0])
    c1, c2 = r1 > 0, r2 > 0
    s1, s2 = turn_scores(SelfCorrectionConfig(stage=1), r1, r2, c1, c2)
    assert s1.tolist() == [0, 0, 0, 0] and s2.tolist() == r2.tolist()  # stage 1: only the second attempt counts
    s1, s2 = turn_scores(SelfCorrectionConfig(stage=2, bonus=10.0), r1, r2, c1, c2)
    assert s1.tolist() == r1.tolist()  # the first attempt is credited with its own reward
    assert s2.tolist() == [11.0, 11.0, 0.0, 0.0]  # r(y2) + bonus * c2: SCoRe's shaping less what y2 cannot change
    # SCoRe's reward as reported: kept, i->c flip rewarded, c->i flip punished, both wrong
    assert shaped_reward(SelfCorrectionConfig(stage=2, bonus=10.0), r2, c1, c2).tolist() == [1.0, 11.0, -10.0, 0.0]
    # beta1 (kl_coef 0.01) on both attempts in both stages, beta2 on first attempts in stage 1, on top of algorithm's
    assert kl_weights(SelfCorrectionConfig(stage=1, first_attempt_kl=0.1), 0.01, 2, 3).tolist() == pytest.approx(
        [0.12, 0.12, 0.02, 0.02, 0.02]
    )
    assert kl_weights(SelfCorrectionConfig(stage=2), 0.0, 2, 3).tolist() == pytest.approx([0.01] * 5)
    assert kl_weights(SelfCorrectionConfig(stage=2, kl_coef=0.0), 0.0, 2, 3) is None
    for bad in ({"stage": 3}, {"instruction": "  "}, {"first_attempt_kl": -1}, {"kl_coef": -0.1}):
        with pytest.raises(ConfigError):
            SelfCorrectionConfig(**bad)


def test_attempt_metrics_add_up():
    m = attempt_metrics([1, 1, 0, 0, 1], [1, 0, 1, 1, 1])
    assert m["acc_t1"] == 0.6 and m["acc_t2"] == 0.8
    assert m["delta_i2c"] == 0.4 and m["delta_c2i"] == 0.2
    assert m["delta_t1_t2"] == pytest.approx(m["delta_i2c"] - m["delta_c2i"])
