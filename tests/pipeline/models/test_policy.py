"""Policy loading, the batch layout, log-probs and rollouts on a micro model."""

import pytest
import torch

from data.formats import read_rl_rows
from pipeline.models.policy import PolicyLoadError, encode_prompt, load_policy, make_batch, response_logprobs
from pipeline.models.rollout import HFRollout, Sampling, cut_at_eos


@pytest.fixture(scope="module")
def policy(task_files):
    return load_policy(str(task_files["model"]), device="cpu")


def test_layout_left_pads_prompts_and_right_pads_responses():
    b = make_batch([[5, 6, 7], [8]], [[1], [2, 3, 4]], pad_id=0)
    assert b.prompt_len == 3
    assert b.input_ids.tolist() == [[5, 6, 7, 1, 0, 0], [0, 0, 8, 2, 3, 4]]
    assert b.response_mask.tolist() == [[1, 0, 0], [1, 1, 1]]
    assert b.position_ids.tolist() == [[0, 1, 2, 3, 3, 3], [0, 0, 0, 1, 2, 3]]


def test_logprobs_do_not_depend_on_padding(policy, task_files):
    model, tok = policy
    rows = read_rl_rows(task_files["train"], limit=3)
    prompts = [encode_prompt(tok, r.messages) for r in rows]
    resp = [tok(r.solution, add_special_tokens=False)["input_ids"] for r in rows]
    alone = make_batch(prompts[:1], resp[:1], tok.pad_token_id)
    together = make_batch([prompts[0], prompts[1] + prompts[2]], [resp[0], resp[1] + resp[2]], tok.pad_token_id)
    with torch.no_grad():
        a, _ = response_logprobs(model, alone)
        b, ent = response_logprobs(model, together, with_entropy=True)
    n = len(resp[0])
    assert torch.allclose(a[0, :n], b[0, :n], atol=1e-5)
    assert ent.shape == b.shape and torch.all(ent[0, :n] > 0)


def test_greedy_rollout_is_the_argmax_and_stops_at_eos(policy, task_files):
    model, tok = policy
    rows = read_rl_rows(task_files["train"], limit=2)
    prompts = [encode_prompt(tok, r.messages) for r in rows]
    ro = HFRollout(model, tok)
    groups = ro.generate(prompts, 3, Sampling(temperature=0, max_new_tokens=12))
    assert len(groups) == 2 and all(len(g) == 3 for g in groups)
    assert groups[0][0] == groups[0][1] == groups[0][2]  # greedy: identical
    for g in groups:
        r = g[0]
        assert 1 <= len(r) <= 12
        assert tok.eos_token_id not in r[:-1]
    # the greedy token is the most likely one under the same forward pass the loss uses
    b = make_batch(prompts[:1], groups[0][:1], tok.pad_token_id)
    with torch.no_grad():
        from pipeline.models.policy import response_logits

        logits = response_logits(model, b)
    assert logits[0, : len(groups[0][0])].argmax(-1).tolist() == groups[0][0]


def test_sampling_is_seeded(policy, task_files):
    model, tok = policy
    prompts = [encode_prompt(tok, r.messages) for r in read_rl_rows(task_files["train"], limit=2)]
    ro = HFRollout(model, tok)
    torch.manual_seed(3)
    a = ro.generate(prompts, 4, Sampling(max_new_tokens=8))
    torch.manual_seed(3)
    b = ro.generate(prompts, 4, Sampling(max_new_tokens=8))
    assert a == b and len({tuple(x) for x in a[0]}) > 1


def test_cut_at_eos():
    assert cut_at_eos([4, 5, 2, 0, 0], {2}, 0) == [4, 5, 2]
    assert cut_at_eos([4, 5, 0, 0], {2}, 0) == [4, 5]


def test_missing_model_is_a_clear_error(tmp_path):
    with pytest.raises(PolicyLoadError) as e:
        load_policy(str(tmp_path / "nope"))
    assert "cannot load tokenizer" in str(e.value)


def test_logprobs_are_those_of_the_sampler_at_its_temperature(policy, task_files):
    """Sampling at T=0.7 draws from softmax(logits / 0.7): the log-probs the loss uses
    must be that policy's, so the ratio to the sampler's own log-probs is 1 before
    any update (and is not at T=1, the unscaled logits)."""
    model, tok = policy
    prompt = encode_prompt(tok, read_rl_rows(task_files["train"], limit=1)[0].messages)
    torch.manual_seed(0)
    out = model.generate(
        torch.tensor([prompt]),
        attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
        do_sample=True,
        temperature=0.7,
        top_k=0,
        top_p=1.0,
        max_new_tokens=10,
        output_scores=True,
        return_dict_in_generate=True,
        pad_token_id=tok.pad_token_id,
    )
    response = out.sequences[0, len(prompt) :].tolist()
    sampler = torch.stack([torch.log_softmax(s[0].float(), -1)[t] for s, t in zip(out.scores, response)])
    batch = make_batch([prompt], [response], tok.pad_token_id)
    with torch.no_grad():
        at_t, _ = response_logprobs(model, batch, temperature=0.7)
        unscaled, _ = response_logprobs(model, batch)
    ratio = torch.exp(at_t[0, : len(response)] - sampler)
    assert torch.allclose(ratio, torch.ones_like(ratio), atol=1e-4), ratio
    assert (unscaled[0, : len(response)] - sampler).abs().max() > 1e-3
