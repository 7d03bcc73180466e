"""Progress-based process rewards: segmentation, token mapping, Monte Carlo values on
constructed traces (a correct trace gains on every step; the step that introduces
an error loses), and the engine's per-token bonus."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.config import ProgressConfig
from pipeline.models.prover import ProgressEstimator, TokenPieces
from rewards.progress import best_of_k, best_of_k_from_counts, progress_bonus, step_ends, step_progress, token_step_ends
from tests.arithmetic_prover import ArithmeticProver, slip_traces


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


def test_termination_advantages_replace_the_tokens_after_the_cut():
    import torch

    from pipeline.train.algorithms import termination_advantages

    adv = torch.full((3, 5), 0.5)
    mask = torch.tensor([[1, 1, 1, 1, 0], [1, 1, 1, 1, 1], [1, 1, 0, 0, 0]], dtype=torch.float32)
    adv = adv * mask
    out = termination_advantages(
        adv,
        scores=[1.0, 0.0, 1.0],
        termination_scores=[1.0, 0.5, 0.0],
        cuts=[2, 0, 1],
        scale=[2.0, 2.0, 1.0],
        response_mask=mask,
    )
    # row 0: terminating there was as good as going on: no credit after the cut, the prefix keeps its advantage
    assert out[0].tolist() == [0.5, 0.5, 0.0, 0.0, 0.0]
    # row 1 (cut at the start): going on lost what answering at once would have won, on every token
    assert out[1].tolist() == [-1.0] * 5
    # row 2: the continuation won where answering at once failed; padding stays 0
    assert out[2].tolist() == [0.5, 1.0, 0.0, 0.0, 0.0]


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


def test_config_rejects_bad_progress_settings():
    from pipeline.config import ConfigError

    for bad in (
        {"split": "words"},
        {"mode": "later"},
        {"mc_rollouts": 0},
        {"temperature": 0.0},
        {"episodes_per_step": 0},
    ):
        with pytest.raises(ConfigError):
            ProgressConfig(**bad)
    # MRT's meta-prover is the policy itself, answering at once
    for bad in ({"prover_k": 4}, {"prover_k": 1, "prover_model": "runs/prover"}):
        with pytest.raises(ConfigError, match="meta-prover"):
            ProgressConfig(mode="answer_now", **bad)
    mrt = ProgressConfig(mode="answer_now", prover_k=1)
    assert mrt.answer_now_text.startswith("Time is up.") and "</think>" in mrt.answer_now_text
    assert mrt.answer_tokens == 4096


def test_engine_trains_with_the_termination_baseline(task_files, tmp_path):
    import json

    from pipeline.config import ConfigError, load_config
    from pipeline.train.config import TrainConfig
    from pipeline.train.engine import train
    from tests.pipeline.train.test_train import write_train_config

    progress = {
        "enabled": True,
        "mode": "answer_now",
        "prover_k": 1,
        "mc_rollouts": 2,
        "alpha": 0.0,
        "baseline": "termination",
        "answer_now_text": "\nThe answer is \\boxed{",
        "answer_tokens": 8,
    }
    over = {"progress": progress, "steps": 2, "eval_every": 0, "data": {"heldout_files": []}}
    cfg = load_config(TrainConfig, write_train_config(tmp_path / "t.yaml", task_files, **over))
    train(cfg, tmp_path / "run", progress=False, log=lambda m: None)
    last = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()][-1]
    assert last["termination/rollouts"] > 0 and 0 <= last["termination/success"] <= 1
    assert "progress/mc_rollouts" not in last  # alpha 0: no progress bonus is sampled
    with pytest.raises(ConfigError, match="termination with self_correction"):
        load_config(TrainConfig, None, {"progress": progress, "self_correction": {"enabled": True}})


def test_engine_adds_progress_on_step_tokens_and_reports_its_cost(task_files, tmp_path):
    import json

    from pipeline.config import load_config
    from pipeline.train.config import TrainConfig
    from pipeline.train.engine import train
    from tests.pipeline.train.test_train import write_train_config

    over = {
        "progress": {"enabled": True, "mc_rollouts": 2, "prover_k": 2, "alpha": 0.5},
        "steps": 2,
        "eval_every": 0,
        "data": {"heldout_files": []},
    }
    cfg = load_config(TrainConfig, write_train_config(tmp_path / "t.yaml", task_files, **over))
    train(cfg, tmp_path / "run", progress=False, log=lambda m: None)
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    last = rows[-1]
    # the policy is the prover: every step prefix but the first (solve rate) and the last (outcome) is sampled
    assert last["progress/mc_rollouts"] > 0 and last["progress/mc_rollouts"] % 2 == 0
    assert last["progress/steps"] >= 1 and last["progress/time"] > 0
    assert "progress/mean" in last and 0 <= last["progress/negative"] <= 1
