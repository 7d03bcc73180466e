"""Reward terms: registry, validation, composition."""

import numpy as np
import pytest

from rewards.terms import TERMS, RolloutScores, compose, register_term, validate_terms


def scores(correct, lengths=None, K=2):
    n = len(correct)
    return RolloutScores(correct=correct, response_length=lengths or [10] * n,
                         group=np.repeat(np.arange(n // K), K), group_size=K, max_response_length=64)


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


@pytest.mark.parametrize("spec, message", [
    ({}, "non-empty"),
    ({"nope": {}}, "unknown reward term 'nope'"),
    ({"outcome": {"weight": "x"}}, "weight must be a number"),
    ({"outcome": {"bogus": 1}}, "unknown parameter(s) ['bogus']"),
    ({"outcome": 3}, "expected a mapping"),
])
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
