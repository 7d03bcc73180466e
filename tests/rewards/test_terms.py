"""Reward terms: registry, validation, composition."""

import numpy as np
import pytest

from rewards.terms import TERMS, RolloutScores, compose, register_term, validate_terms


def scores(correct, lengths=None, K=2):
    n = len(correct)
    return RolloutScores(
        correct=correct,
        response_length=lengths or [10] * n,
        group=np.repeat(np.arange(n // K), K),
        group_size=K,
        max_response_length=64,
    )


def test_outcome_and_weights():
    s = scores([True, False, True, True])
    total, parts = compose(s, {"outcome": {"weight": 2.0}})
    assert total.tolist() == [2.0, 0.0, 2.0, 2.0]
    assert parts["outcome"].tolist() == [2.0, 0.0, 2.0, 2.0]
    total, _ = compose(s, {"outcome": {"correct": 1.0, "incorrect": -1.0}})
    assert total.tolist() == [1.0, -1.0, 1.0, 1.0]


def test_group_mean():
    s = scores([True, False, True, True])
    assert s.group_mean(s.correct.astype(float)).tolist() == [0.5, 0.5, 1.0, 1.0]


@pytest.mark.parametrize(
    "spec, message",
    [
        ({}, "non-empty"),
        ({"nope": {}}, "unknown reward term 'nope'"),
        ({"outcome": {"weight": "x"}}, "weight must be a number"),
        ({"outcome": {"bogus": 1}}, "outcome has no parameter(s) ['bogus']"),
        ({"outcome": 3}, "expected a mapping"),
    ],
)
def test_validation_names_the_problem(spec, message):
    with pytest.raises(ValueError) as e:
        validate_terms(spec)
    assert message in str(e.value)


def test_a_new_term_composes_with_outcome():
    @register_term("_test_short")
    def short(batch, *, scale: float = 1.0):
        return -scale * batch.response_length / batch.max_response_length

    try:
        s = scores([True, False], lengths=[32, 16])
        total, parts = compose(s, {"outcome": {}, "_test_short": {"weight": 0.5, "scale": 2.0}})
        assert parts["_test_short"].tolist() == [-0.5, -0.25]
        assert total.tolist() == [0.5, -0.25]
        with pytest.raises(ValueError):
            register_term("_test_short")(lambda b: b.correct)
    finally:
        TERMS.pop("_test_short", None)


def test_mismatched_lengths_rejected():
    with pytest.raises(ValueError):
        RolloutScores(correct=[True], response_length=[1, 2], group=[0], group_size=1, max_response_length=4)


# ---------------------------------------------------------------- length penalties


def alp_batch():
    # group 0: all wrong (p = 0); group 1: all right (p = 1); group 2: half right (p = 0.5); K = 4, N = 100
    correct = [False] * 4 + [True] * 4 + [True, True, False, False]
    lengths = [10, 20, 30, 40, 10, 20, 30, 40, 50, 50, 50, 50]
    return RolloutScores(
        correct=correct, response_length=lengths, group=np.repeat([0, 1, 2], 4), group_size=4, max_response_length=100
    )


def test_alp_scales_the_per_token_price_by_the_solve_rate_with_a_1_over_k_floor():
    b = alp_batch()
    pen = TERMS["alp"](b, beta=0.5)
    assert np.allclose(pen[:4], [-0.5 / 100 * 0.25 * n for n in (10, 20, 30, 40)])  # p = 0 pays at 1/K
    assert np.allclose(pen[4:8], [-0.5 / 100 * 1.0 * n for n in (10, 20, 30, 40)])  # p = 1: the full price
    assert np.allclose(pen[8:], -0.5 / 100 * 0.5 * 50)
    assert np.allclose(TERMS["alp"](b, beta=0.5, budget=200), pen / 2)


def test_alp_equal_length_correct_and_incorrect_differ_by_exactly_one():
    total, parts = compose(alp_batch(), {"outcome": {"weight": 1.0}, "alp": {"beta": 0.5}})
    assert total[8] - total[10] == pytest.approx(1.0)  # same group, same length (50), right vs wrong
    assert set(parts) == {"outcome", "alp"}


def test_alp_under_grpo_std_norm_makes_an_all_correct_group_a_pure_length_ranking():
    import torch

    from pipeline.train import algorithms
    from pipeline.train.config import AlgorithmConfig

    b = alp_batch()
    total, _ = compose(b, {"outcome": {}, "alp": {"beta": 1e-3}})
    mask = torch.ones(12, 50)
    per_seq = lambda cfg: algorithms.compute_advantages(cfg, total, mask, b.group)[:, 0].numpy()  # noqa: E731
    grpo = per_seq(AlgorithmConfig(adv_estimator="grpo"))
    lengths = b.response_length[4:8].astype(float)
    z = -(lengths - lengths.mean()) / lengths.std(ddof=1)
    # a tiny beta still yields a full-size, standardised shorter-is-better ranking in the all-correct group
    # (within 1%: verl divides by std + 1e-6, and this std is only ~1.3e-4)
    assert np.allclose(grpo[4:8], z, rtol=0.01) and np.all(np.diff(grpo[4:8]) < 0)
    # Dr.GRPO's no-std option: the same ranking, at the size beta sets
    dr = per_seq(AlgorithmConfig(adv_estimator="grpo", norm_adv_by_std=False))
    assert np.allclose(dr[4:8], -(1e-3 / 100) * (lengths - lengths.mean()), atol=1e-7)
    # the mixed group is still decided by correctness
    assert grpo[8] > 0 > grpo[10]
    # and the never-solved group (price floored at 1/K) gets the very same advantages as the always-solved
    # one (full price): the std division erases the solve-rate-dependent price that makes ALP adaptive
    # (within verl's + 1e-6 in the divisor, 2% of this group's std), where Dr.GRPO keeps the 4x price gap
    assert np.allclose(grpo[0:4], grpo[4:8], rtol=0.03)
    assert np.allclose(dr[0:4], dr[4:8] / 4, rtol=1e-3) and not np.allclose(dr[0:4], dr[4:8])


def test_fixed_budget_baselines():
    b = RolloutScores(
        correct=[True, True, False, True],
        response_length=[50, 80, 90, 100],
        group=[0, 0, 1, 1],
        group_size=2,
        max_response_length=100,
        truncated=[False, False, False, True],
    )
    assert np.allclose(TERMS["overlong"](b, cache=40), [0.0, -0.5, -0.75, -1.0])
    assert np.allclose(TERMS["length"](b, alpha=0.5), [-0.25, -0.4, -0.45, -0.5])
    assert np.allclose(TERMS["length"](b, alpha=0.5, correct_only=True), [-0.25, -0.4, 0.0, -0.5])


@pytest.mark.parametrize(
    "spec, message",
    [
        ({"alp": {"beta": -1}}, "beta must be a number >= 0"),
        ({"alp": {"beta": "big"}}, "beta must be a number"),
        ({"overlong": {"cache": 0}}, "cache must be a number >= 1"),
        ({"length": {"alpha": None}}, "alpha must be a number"),
    ],
)
def test_bad_length_penalty_parameters_fail_at_validation(spec, message):
    with pytest.raises(ValueError, match=message):
        validate_terms(spec)
