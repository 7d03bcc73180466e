"""The prover's Monte Carlo step values (pipeline/models/prover.py) on constructed traces: a
correct trace gains on every step, the step that introduces an error loses; best-of-K and
answer-now (MRT) provers, the termination baseline, and token pieces."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.config import ProgressConfig
from pipeline.models.prover import ProgressEstimator, TokenPieces
from tests.arithmetic_prover import ArithmeticProver, slip_traces


@pytest.fixture(scope="module")
def tok(task_files):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(task_files["model"])


@pytest.fixture(scope="module")
def verifier():
    from rewards.verifier import Verifier

    with Verifier(workers=1, timeout=5.0) as v:
        yield v


def test_monte_carlo_progress_is_positive_on_right_steps_and_negative_on_the_slip(tok, verifier):
    p, prompt, good, flawed = slip_traces(tok)
    cfg = ProgressConfig(enabled=True, mc_rollouts=64, prover_k=1)
    slip = 0.25
    est = ProgressEstimator(cfg, tok, ArithmeticProver(tok, slip=slip, seed=0), verifier, max_new_tokens=96)
    res = est.estimate([prompt, prompt], [good, flawed], [p.answer, p.answer])
    assert [len(e) for e in res.ends] == [4, 4]  # three computation lines and the answer line
    g, f = res.values
    # the right trace: each correct step raises the prover's chance, towards (1 - slip) ** remaining
    np.testing.assert_allclose(g[:4], [(1 - slip) ** r for r in (3, 2, 1, 0)], atol=0.17)
    assert g[-1] == 1.0 and all(x > 0 for x in res.progress[0][:3])
    # the flawed trace: step 1 is fine, step 2 slips (progress about -(1 - slip)), the rest is about flat at 0
    assert res.progress[1][0] > 0
    assert res.progress[1][1] < -0.5 and np.argmin(res.progress[1]) == 1
    np.testing.assert_allclose(res.progress[1][2:], 0.0, atol=0.1)  # a later slip can undo the first
    assert f[-1] == 0.0
    # the shared prefix (prompt + first line) was sampled once for both traces
    assert res.prefixes == 1 + 1 + 2 + 2 and res.mc_rollouts == 64 * res.prefixes
    # the bonus sits on the slipping step's tokens only
    bonus = res.bonus(len(flawed), alpha=1.0)[1]
    e = res.ends[1]
    np.testing.assert_allclose(bonus[e[0] : e[1]], res.progress[1][1])
    assert (bonus[e[0] : e[1]] < -0.5).all() and (np.abs(bonus[e[1] :]) < 0.1).all()


def test_leave_one_out_start_counts():
    from pipeline.models.prover import leave_one_out, step_values

    c, m = leave_one_out([True, False, False, True, True, True], [0, 0, 0, 1, 1, 1])
    assert c.tolist() == [0, 1, 1, 2, 2, 2] and m.tolist() == [2] * 6
    # the value after the last step is the response's own outcome, exact
    v = step_values([1.0, 4.0], 4.0, True, 2)
    assert v[-1] == 1.0 and v[0] == pytest.approx(1 - 3 / 6) and v[1] == 1.0


def test_best_of_k_prover_and_known_start_value(tok, verifier):
    p, prompt, good, _ = slip_traces(tok, seed=5)
    cfg = ProgressConfig(enabled=True, mc_rollouts=32, prover_k=4)
    prover = ArithmeticProver(tok, slip=0.5, seed=1)
    est = ProgressEstimator(cfg, tok, prover, verifier, max_new_tokens=96)
    res = est.estimate([prompt], [good], [p.answer], outcomes=[True], start_success=([2.0], [8.0]))
    assert res.values[0][0] == pytest.approx(1 - 15 / 70)  # the known start value, 1 - C(6,4)/C(8,4): not sampled
    assert res.prefixes == 3  # after steps 1, 2, 3; before step 1 and after the answer are known
    # best-of-4 of a 50% prover after two right steps (one step left): 1 - 0.5**4
    assert res.values[0][2] == pytest.approx(1 - 0.5**4, abs=0.1)


def test_answer_now_mode_credits_the_step_that_computes_the_answer(tok, verifier):
    p, prompt, good, flawed = slip_traces(tok)
    cfg = ProgressConfig(
        enabled=True,
        mode="answer_now",
        mc_rollouts=4,
        prover_k=1,
        answer_now_text="\nThe answer is \\boxed{",
        answer_tokens=16,
    )  # the toy model has no think block
    est = ProgressEstimator(cfg, tok, ArithmeticProver(tok, slip=0.0), verifier, max_new_tokens=96)
    res = est.estimate([prompt, prompt], [good, flawed], [p.answer, p.answer])
    # forced to answer, the prover states the last value written: right only once the last step is done
    np.testing.assert_allclose(res.values[0], [0, 0, 0, 1, 1])
    np.testing.assert_allclose(res.progress[0], [0, 0, 1, 0])
    np.testing.assert_allclose(res.values[1], 0.0)
    assert res.prefixes == 4 + 2  # the flawed trace shares the bare prompt and its first line


def test_termination_baseline_is_the_policy_answering_at_once_where_the_response_was_cut(tok, verifier):
    """MRT's R_termination: the good trace's 4 steps, cut at random before one of them;
    answering at once there is right only after the step that computes the answer
    (cut before step 4: values 0, 0, 0, 1 as in answer_now mode)."""
    from pipeline.models.prover import StepSegmenter, TerminationBaseline

    p, prompt, good, _ = slip_traces(tok)
    cfg = ProgressConfig(
        enabled=True,
        mode="answer_now",
        mc_rollouts=2,
        prover_k=1,
        baseline="termination",
        answer_now_text="\nThe answer is \\boxed{",
        answer_tokens=16,
    )
    tb = TerminationBaseline(cfg, tok, ArithmeticProver(tok, slip=0.0), verifier, seed=3)
    res = tb.estimate([prompt] * 24, [good] * 24, [p.answer] * 24)
    ends = StepSegmenter(cfg, tok)(good)
    by_cut = dict(zip([0, *ends[:-1]], [0.0, 0.0, 0.0, 1.0]))
    assert set(res.cuts.tolist()) == set(by_cut)  # every prefix that leaves a step is drawn (24 draws of 4)
    assert res.success.tolist() == [by_cut[c] for c in res.cuts.tolist()]
    assert res.rollouts == 2 * len(set(res.cuts.tolist()))  # identical prefixes are sampled once
    assert res.summary()["termination/rollouts"] == res.rollouts


def test_token_pieces_rebuild_the_decoded_text(tok):
    ids = tok("12 + 3 = 15\nThe answer is \\boxed{15}.", add_special_tokens=False)["input_ids"]
    assert "".join(TokenPieces(tok)(ids)) == tok.decode(ids)


def _sentencepiece_style_tokenizer():
    """A Metaspace BPE (SentencePiece's scheme: a word's space is its leading '▁',
    dropped when the word decodes on its own), built here from a few lines."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    t = Tokenizer(models.BPE(unk_token="<unk>"))
    t.pre_tokenizer = pre_tokenizers.Metaspace()
    t.decoder = decoders.Metaspace()
    lines = [
        "Let me add the numbers first.",
        "But wait, I should check it.",
        "Alternatively, count them.",
        "Wait, that is wrong.",
        "So the answer is 5.",
        "\n\n",
    ] * 20
    t.train_from_iterator(lines, trainers.BpeTrainer(vocab_size=120, special_tokens=["<unk>"], show_progress=False))
    return PreTrainedTokenizerFast(tokenizer_object=t, unk_token="<unk>")


def test_episode_markers_are_found_with_a_tokenizer_that_drops_spaces_token_by_token():
    sp = _sentencepiece_style_tokenizer()
    text = (
        "Let me add the numbers first.\n\nSo the answer is 5.\n\nSo the answer is 5.\n\n"
        "But wait, I should check it.\n\nSo the answer is 5."
    )
    ids = sp(text, add_special_tokens=False)["input_ids"]
    wait = next(i for i in ids if sp.convert_ids_to_tokens(i) in ("▁wait", "▁wait,"))
    assert sp.decode([wait]) == sp.decode([wait]).lstrip()  # on its own the word loses its space ...
    glued = "".join(sp.batch_decode([[i] for i in ids]))
    assert "But wait" not in glued  # ... so decoding token by token glues "Butwait"
    pieces = TokenPieces(sp)(ids)
    assert "".join(pieces) == sp.decode(ids) and "But wait" in "".join(pieces)
    from pipeline.models.prover import StepSegmenter

    ends = StepSegmenter(ProgressConfig(split="episodes"), sp)(ids)
    assert len(ends) == 2  # the "But wait" paragraph opens the second episode
    assert sp.decode(ids[ends[0] :]).lstrip().startswith("But wait")
