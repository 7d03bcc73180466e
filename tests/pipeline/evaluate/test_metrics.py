"""Evaluation metrics: pass@k, maj@k, best-of-N, intervals, self-correction, checked
against brute force over subsets and hand-built cases."""

import itertools
import random

import numpy as np
import pytest

from pipeline.evaluate.metrics import (
    ProblemResult,
    aggregate_score,
    bootstrap_ci,
    pass_at_k,
    problem_metrics,
    summarize,
    vote_ks,
)


@pytest.mark.parametrize("n, c", [(1, 0), (1, 1), (5, 2), (8, 3), (8, 8), (10, 1)])
def test_pass_at_k_equals_the_fraction_of_k_subsets_with_a_correct_response(n, c):
    correct = [True] * c + [False] * (n - c)
    for k in range(1, n + 1):
        subs = list(itertools.combinations(range(n), k))
        brute = sum(any(correct[i] for i in s) for s in subs) / len(subs)
        assert pass_at_k(n, c, k) == pytest.approx(brute)


def test_majority_vote_groups_by_label_abstains_without_answer_and_breaks_ties_by_first_seen():
    # groups: 0 wrong (x2), 1 right (x2), no answer (x2): a tie won by the group seen first
    p = ProblemResult(correct=[False, True, False, True, False, False], labels=[0, 1, 0, 1, -1, -1])
    assert problem_metrics(p)["maj@6"] == 0.0
    p = ProblemResult(correct=[True, False, True, False], labels=[1, 0, 1, 0])
    assert problem_metrics(p)["maj@4"] == 1.0
    # three abstentions do not outvote one answer
    p = ProblemResult(correct=[False, False, False, True], labels=[-1, -1, -1, 0])
    assert problem_metrics(p)["maj@4"] == 1.0
    # nobody answered: wrong
    assert problem_metrics(ProblemResult(correct=[False] * 2, labels=[-1, -1]))["maj@2"] == 0.0


def test_maj_at_k_below_n_is_the_mean_over_all_k_subsets():
    rng = random.Random(3)
    for _ in range(20):
        n = 6
        labels = [rng.choice([-1, 0, 1, 2]) for _ in range(n)]
        right = rng.choice([0, 1, 2])
        correct = [lab == right for lab in labels]
        m = problem_metrics(ProblemResult(correct, labels))
        for k in vote_ks(n):
            vals = []
            for s in itertools.combinations(range(n), k):
                counts = {}
                for i in s:
                    if labels[i] >= 0:
                        counts[labels[i]] = counts.get(labels[i], 0) + 1
                if not counts:
                    vals.append(0.0)
                    continue
                best = max(counts.values())
                first = next(i for i in s if labels[i] >= 0 and counts[labels[i]] == best)
                vals.append(float(correct[first]))
            assert m[f"maj@{k}"] == pytest.approx(np.mean(vals))


def test_best_of_n_plain_and_weighted_differ_where_they_should():
    # one confident wrong answer vs. three moderately scored right ones
    p = ProblemResult(correct=[False, True, True, True], labels=[0, 1, 1, 1], scores=[0.9, 0.5, 0.5, 0.5])
    m = problem_metrics(p)
    assert m["bon@4"] == 0.0  # the single top-scored response is wrong
    assert m["wbon@4"] == 1.0  # the right answer's summed score (1.5) wins
    # bon@1 is the mean correctness; bon@2 averages the 6 pairs' winners
    assert m["bon@1"] == pytest.approx(0.75)
    assert m["bon@2"] == pytest.approx(3 / 6)


def test_larger_n_uses_a_seeded_sample_of_subsets():
    rng = random.Random(0)
    n = 40
    p = ProblemResult(correct=[rng.random() < 0.4 for _ in range(n)], labels=[rng.randrange(3) for _ in range(n)])
    a, b = problem_metrics(p, max_subsets=64, seed=1), problem_metrics(p, max_subsets=64, seed=1)
    assert a == b and "maj@16" in a and "maj@40" in a
    # the 64-subset estimate is near a 4096-subset one drawn with another seed (an unbiased sample)
    c = problem_metrics(p, max_subsets=4096, seed=2)
    assert abs(a["maj@16"] - c["maj@16"]) < 0.2 and 0.0 < c["maj@16"] < 1.0


def test_step_scores_aggregate_by_last_min_product():
    steps = [0.9, 0.5, 0.8]
    assert aggregate_score(steps, "last") == 0.8
    assert aggregate_score(steps, "min") == 0.5
    assert aggregate_score(steps, "product") == pytest.approx(0.36)
    assert aggregate_score([[3.5]], "last") == 3.5  # one-element step lists, as reward-model files store them
    assert aggregate_score(2, "min") == 2.0
    with pytest.raises(TypeError):
        aggregate_score("high")


def test_self_correction_metrics():
    p = ProblemResult(correct=[False, False, True, True], correct_t2=[True, False, True, False])
    m = problem_metrics(p)
    assert m["acc@t1"] == 0.5 and m["acc@t2"] == 0.5
    assert m["delta_i2c"] == 0.25 and m["delta_c2i"] == 0.25 and m["delta(t1,t2)"] == 0.0


def test_bootstrap_interval_covers_the_mean_and_narrows_with_more_problems():
    rng = np.random.default_rng(0)
    small = rng.random(50) < 0.6
    big = rng.random(2000) < 0.6
    lo, hi = bootstrap_ci(small.astype(float))[0]
    assert lo < small.mean() < hi
    lo2, hi2 = bootstrap_ci(big.astype(float))[0]
    assert (hi2 - lo2) < (hi - lo) / 3


def test_summarize_reports_percent_intervals_and_lengths():
    problems = [ProblemResult(correct=[i % 2 == 0, True], labels=[0, 0], lengths=[10, 30]) for i in range(10)]
    s = summarize(problems, resamples=200)
    assert s["problems"] == 10 and s["responses"] == 20
    assert s["metrics"]["pass@1"] == pytest.approx(75.0)
    assert s["metrics"]["pass@2"] == pytest.approx(100.0)
    lo, hi = s["ci"]["pass@1"]
    assert lo <= 75.0 <= hi
    assert s["mean_tokens"] == 20.0 and s["acc_by_length"]


def test_shared_ties_make_the_figures_independent_of_response_order():
    a = ProblemResult(correct=[True, False, False, False], labels=[0, 1, 2, 3])
    b = ProblemResult(correct=[False, False, False, True], labels=[0, 1, 2, 3])
    first_a, first_b = problem_metrics(a)["maj@2"], problem_metrics(b)["maj@2"]
    assert first_a != first_b  # first-seen tie-breaking (the upstream convention) depends on order
    shared_a, shared_b = problem_metrics(a, share_ties=True), problem_metrics(b, share_ties=True)
    assert shared_a["maj@2"] == shared_b["maj@2"] == pytest.approx(0.25)


def test_vote_weights_are_probabilities_or_the_sigmoid_of_logits():
    from pipeline.evaluate.metrics import vote_weights

    probs = [ProblemResult(correct=[True, False], labels=[0, 1], scores=[0.2, 0.9])]
    assert vote_weights(probs) == "scores" and probs[0].weights == [0.2, 0.9]
    # logits: three right answers at -1 outvote one wrong at -2 once they are probabilities
    logits = [ProblemResult(correct=[True, True, True, False], labels=[0, 0, 0, 1], scores=[-1.0, -1.0, -1.0, -2.0])]
    assert vote_weights(logits) == "sigmoid"
    assert problem_metrics(logits[0])["wbon@4"] == 1.0
    with pytest.raises(ValueError, match="non-finite"):
        problem_metrics(ProblemResult(correct=[True], scores=[float("inf")]))


def test_no_intervals_is_null_not_nan():
    s = summarize([ProblemResult(correct=[True, False])], resamples=0)
    assert s["ci"]["pass@1"] is None
