"""Progress-based process rewards, the pure part (rewards/progress.py): step segmentation
(lines, MRT's episodes), character cuts onto tokens, the best-of-K prover transform and the
per-token bonus."""

from __future__ import annotations

import numpy as np
import pytest

from rewards.progress import best_of_k, best_of_k_from_counts, progress_bonus, step_ends, step_progress, token_step_ends


def test_lines_split_keeps_newlines_with_their_step_and_joins_blank_lines():
    text = "a = 1\nb = 2\n\nc = 3"
    ends = step_ends(text, "lines")
    assert ends == [6, 13, 18]
    assert [text[s:e] for s, e in zip([0] + ends, ends)] == ["a = 1\n", "b = 2\n\n", "c = 3"]
    assert step_ends("", "lines") == []
    assert step_ends("no newline", "lines") == [10]
    assert step_ends("one\n", "lines") == [4]


def test_max_steps_joins_the_tail_into_the_last_step():
    text = "1\n2\n3\n4\n5"
    assert step_ends(text, "lines", max_steps=3) == [2, 4, 9]
    assert step_ends(text, "lines", max_steps=1) == [9]


def test_episodes_start_at_markers_but_not_right_after_another_cut():
    paras = [
        "Let x = 2.",
        "So y = 4.",
        "Then z = 6.",
        "Wait, check y.",
        "Alternatively, z = 3x.",
        "Done.",
        "Still going.",
        "But wait, one more.",
    ]
    text = "\n\n".join(paras)
    ends = step_ends(text, "episodes")
    starts = [0] + ends[:-1]
    pieces = [text[s:e].strip() for s, e in zip(starts, ends)]
    # "Wait" opens episode 2; "Alternatively" is one paragraph later (<= 2 back): ignored;
    # "But wait" is 4 paragraphs after the last cut: a new episode
    assert [p.split("\n\n")[0] for p in pieces] == ["Let x = 2.", "Wait, check y.", "But wait, one more."]
    assert step_ends("Wait at the very start.\n\nmore", "episodes") == [len("Wait at the very start.\n\nmore")]
    with pytest.raises(ValueError, match="split"):
        step_ends(text, "sentences")


def test_episodes_group_into_steps_as_mrt_groups_them():
    paras = ["Start.", "a", "b", "Wait, one.", "c", "d", "Wait, two.", "e", "f", "Wait, three.", "g"]
    text = "\n\n".join(paras)
    single = step_ends(text, "episodes")
    assert len(single) == 4  # four episodes
    pairs = step_ends(text, "episodes", episodes_per_step=2)
    assert pairs == [single[1], single[3]]  # episodes 1-2 and 3-4 make the two steps
    assert step_ends(text, "episodes", episodes_per_step=5) == [len(text)]
    with pytest.raises(ValueError, match="episodes_per_step"):
        step_ends(text, "episodes", episodes_per_step=0)


def test_token_step_ends_cover_each_step_with_the_token_holding_its_last_character():
    pieces = ["1 ", "+ 2", " = 3\n", "The", " answer\n", "<eos>"[:0]]
    text = "".join(pieces)
    chars = step_ends(text, "lines")
    assert token_step_ends(pieces, chars) == [3, 6]  # the empty EOS piece joins the last step
    # a newline in the middle of a token: the step ends after that token, and a
    # second cut inside the same token does not make an empty step
    assert token_step_ends(["a\nb\nc", "d"], step_ends("a\nb\ncd", "lines")) == [1, 2]


def test_best_of_k_and_progress_bonus():
    assert best_of_k(0.5, 1) == pytest.approx(0.5)
    assert best_of_k(0.5, 3) == pytest.approx(0.875)
    assert best_of_k(np.array([0.0, 1.0]), 8).tolist() == [0.0, 1.0]
    with pytest.raises(ValueError):
        best_of_k(0.5, 0)
    prog = step_progress([0.2, 0.5, 0.0, 0.0])
    np.testing.assert_allclose(prog, [0.3, -0.5, 0.0])
    bonus = progress_bonus([2, 5, 6], prog, width=8, alpha=2.0)
    np.testing.assert_allclose(bonus, [0.6, 0.6, -1.0, -1.0, -1.0, 0.0, 0.0, 0.0])


def test_best_of_k_from_counts_is_unbiased_where_the_plug_in_is_low():
    """A toy prover with known single-draw success q: over many Monte Carlo estimates
    from M = 8 draws, the count estimator averages to the true best-of-4 value,
    while 1 - (1 - c/M)^K of the same counts is biased low."""
    rng = np.random.default_rng(0)
    q, m, k = 0.2, 8, 4
    truth = 1 - (1 - q) ** k
    hits = rng.binomial(m, q, size=200_000)
    unbiased = best_of_k_from_counts(hits.astype(float), float(m), k).mean()
    plug_in = best_of_k(hits / m, k).mean()
    assert abs(unbiased - truth) < 0.003
    assert truth - plug_in > 0.03
    # exact small cases: 1 - C(M-c, K)/C(M, K)
    assert best_of_k_from_counts(2, 8, 4) == pytest.approx(1 - 15 / 70)
    assert best_of_k_from_counts(0, 8, 4) == 0 and best_of_k_from_counts(5, 8, 4) == 1  # 5 right: any 4 hold one
    assert best_of_k_from_counts(1, 2, 4) == pytest.approx(1 - 0.5**4)  # fewer draws than K: the plug-in
