"""The PAV model: a value head fitted to Monte Carlo labels, saved and loaded, used
as the engine's progress source and as a process verifier in evaluation."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from pipeline.config import ProgressConfig, load_config
from pipeline.models.value_model import PAVPredictor, ValueModel, load_value_model, predict_values, save_value_model
from pipeline.train.config import PAVConfig
from pipeline.train.pav import check, fit


@pytest.fixture(scope="module")
def policy(task_files):
    from pipeline.models.policy import load_policy

    return load_policy(str(task_files["model"]), device="cpu")


def _labels(tok, n=24, seed=0):
    """Responses whose label rises with the step index: a pattern the head can learn."""
    from pipeline.models.policy import encode_prompt
    from pipeline.models.prover import StepSegmenter

    seg = StepSegmenter(ProgressConfig(), tok)
    rng = random.Random(seed)
    out = []
    for g in range(n):
        q = f"Start with {rng.randint(1, 9)}. Then add {rng.randint(1, 9)}. What is the result?"
        lines = [f"{rng.randint(1, 9)} + {rng.randint(1, 9)} = {rng.randint(2, 18)}" for _ in range(rng.randint(1, 3))]
        resp = tok("\n".join(lines + ["The answer is \\boxed{3}."]), add_special_tokens=False)["input_ids"]
        ends = seg(resp)
        H = len(ends)
        out.append(
            {
                "prompt_ids": encode_prompt(tok, [{"role": "user", "content": q}]),
                "response_ids": resp,
                "ends": ends,
                "values": [h / H * 0.8 + 0.1 for h in range(H + 1)],
                "group": g,
            }
        )
    return out


def test_value_head_fits_labels_and_round_trips(policy, tmp_path):
    lm, tok = policy
    import copy

    model = ValueModel(copy.deepcopy(lm))
    labels = _labels(tok)
    before = check(model, labels, tok.pad_token_id)
    assert before["value_mae"] > 0.15  # a zero head predicts 0.5 everywhere
    cfg = load_config(
        PAVConfig,
        None,
        {"steps": 80, "batch_size": 8, "optim": {"lr": 3e-3, "schedule": "constant", "warmup_steps": 0}},
    )
    losses = fit(model, labels, cfg, tok.pad_token_id, log=lambda m: None)
    assert np.mean(losses[-10:]) < np.mean(losses[:10])
    after = check(model, labels, tok.pad_token_id)
    assert after["value_mae"] < before["value_mae"] / 2 and after["value_corr"] > 0.8
    save_value_model(model, tok, tmp_path / "pav", {"split": "lines", "max_steps": 8})
    loaded, _, meta = load_value_model(tmp_path / "pav", device="cpu")
    a = predict_values(
        model, tok.pad_token_id, [labels[0]["prompt_ids"]], [labels[0]["response_ids"]], [labels[0]["ends"]]
    )
    b = predict_values(
        loaded, tok.pad_token_id, [labels[0]["prompt_ids"]], [labels[0]["response_ids"]], [labels[0]["ends"]]
    )
    np.testing.assert_allclose(a[0], b[0], atol=1e-5)
    assert meta["split"] == "lines"
    # the predictor gives the engine one value per boundary, and progress as their differences
    pred = PAVPredictor.load(tmp_path / "pav", ProgressConfig(), tokenizer=tok, device="cpu")
    res = pred.estimate([labels[0]["prompt_ids"]], [labels[0]["response_ids"]])
    assert res.ends[0] == labels[0]["ends"] and len(res.values[0]) == len(res.ends[0]) + 1
    np.testing.assert_allclose(res.progress[0], np.diff(a[0]), atol=1e-5)


def test_step_scores_credit_the_step_not_the_state():
    from pipeline.models.value_model import step_scores

    # a: a weak start its steps lift; b: a strong start its steps barely move
    a, b = [0.2, 0.7, 0.8], [0.85, 0.8, 0.82]
    assert step_scores(a, alpha=0.0) == pytest.approx([0.7, 0.8])  # Q alone: b's every step scores higher
    assert min(step_scores(a, alpha=0.0)) < min(step_scores(b, alpha=0.0))
    assert step_scores(a, alpha=1.0) == pytest.approx([1.2, 0.9])  # Q + alpha * A: a's steps made progress
    assert min(step_scores(a, alpha=1.0)) > min(step_scores(b, alpha=1.0))
    # with a base-policy value model, Q^pi comes from it and A from the prover's values
    assert step_scores(a, q_pi=[0.1, 0.3, 0.6], alpha=2.0) == pytest.approx([0.3 + 1.0, 0.6 + 0.2])
    with pytest.raises(ValueError, match="different steps"):
        step_scores(a, q_pi=[0.1, 0.3])


def test_process_values_put_the_question_as_generation_did(policy, tmp_path):
    import copy

    import torch

    from data.formats import prompt_messages
    from pipeline.models.policy import encode_prompt
    from pipeline.models.prover import StepSegmenter
    from pipeline.models.value_model import process_scores, process_values

    lm, tok = policy
    model = ValueModel(copy.deepcopy(lm))
    torch.manual_seed(0)
    torch.nn.init.normal_(model.head.weight, std=0.5)  # values that depend on the whole context
    save_value_model(model, tok, tmp_path / "pav", {"split": "lines", "max_steps": 8})
    q, text = "Start with 2. Then add 3. What is the result?", "2 + 3 = 5\nThe answer is \\boxed{5}."
    rows = [{"question": q, "responses": [text]}]
    instruction = "Please reason step by step, and put your final answer within \\boxed{}."
    got = process_values(str(tmp_path / "pav"), rows, instruction=instruction, system_prompt="Be brief.", device="cpu")
    resp = tok(text, add_special_tokens=False, split_special_tokens=True)["input_ids"]
    ends = StepSegmenter(ProgressConfig(), tok)(resp)

    def predicted(chat):
        return predict_values(model, tok.pad_token_id, [encode_prompt(tok, chat)], [resp], [ends])[0]

    np.testing.assert_allclose(got[0][0], predicted(prompt_messages(q, instruction, "Be brief.")), atol=1e-5)
    bare = predicted([{"role": "user", "content": q}])  # what the scorer used to see
    assert not np.allclose(got[0][0], bare, atol=1e-4)
    scores = process_scores(
        str(tmp_path / "pav"), rows, instruction=instruction, system_prompt="Be brief.", alpha=0.5, device="cpu"
    )
    np.testing.assert_allclose(scores[0][0], got[0][0][1:] + 0.5 * np.diff(got[0][0]), atol=1e-6)


@pytest.mark.slow
def test_pav_cli_labels_fits_and_is_used_by_train_and_evaluate(task_files, tmp_path):
    from pipeline.cli import main
    from pipeline.train.config import TrainConfig
    from pipeline.train.engine import train
    from tests.pipeline.train.test_train import write_train_config

    conf = tmp_path / "pav.yaml"
    conf.write_text(
        json.dumps(
            {
                "model": {"path": str(task_files["model"]), "device": "cpu"},
                "data": {"train_files": [str(task_files["train"])]},
                "progress": {"mc_rollouts": 2, "prover_k": 2},
                "prompts": 8,
                "seeds_per_prompt": 2,
                "chunk": 4,
                "max_new_tokens": 12,
                "steps": 4,
                "batch_size": 4,
                "verifier_workers": 1,
                "threads": 1,
                "heldout_share": 0.25,
            }
        )
    )
    assert main(["pav", "--config", str(conf), "--out", str(tmp_path / "pav")]) == 0
    summary = json.loads((tmp_path / "pav" / "summary.json").read_text())
    labels = [json.loads(x) for x in (tmp_path / "pav" / "labels.jsonl").read_text().splitlines()]
    assert summary["labelled_responses"] == len(labels) > 0
    assert all(len(b["values"]) == len(b["ends"]) + 1 and all(0 <= v <= 1 for v in b["values"]) for b in labels)
    assert summary["heldout"]["responses"] > 0
    # a rerun reuses the labels
    assert main(["pav", "--config", str(conf), "--out", str(tmp_path / "pav")]) == 0

    # the engine's progress source: no prover rollouts are sampled
    over = {
        "progress": {"enabled": True, "pav_model": str(tmp_path / "pav" / "model")},
        "steps": 1,
        "data": {"heldout_files": []},
    }
    cfg = load_config(TrainConfig, write_train_config(tmp_path / "t.yaml", task_files, **over))
    train(cfg, tmp_path / "run", progress=False, log=lambda m: None)
    last = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[-1])
    assert last["progress/mc_rollouts"] == 0 and last["progress/steps"] >= 1

    # evaluation: best-of-N by the process verifier's step scores
    gens = tmp_path / "gens.jsonl"
    gens.write_text(
        "\n".join(
            json.dumps(
                {
                    "question": "Start with 2. Then add 3. What is the result?",
                    "answer": "5",
                    "responses": ["2 + 3 = 5\nThe answer is \\boxed{5}.", "2 + 3 = 6\nThe answer is \\boxed{6}."],
                }
            )
            for _ in range(3)
        )
    )
    rc = main(
        [
            "evaluate",
            "--generations",
            str(gens),
            "--process-verifier",
            str(tmp_path / "pav" / "model"),
            "--aggregate",
            "min",
            "--out",
            str(tmp_path / "ev"),
            "--no-plots",
            "--no-progress",
            "--workers",
            "1",
        ]
    )
    assert rc == 0
    report = json.loads((tmp_path / "ev" / "report.json").read_text())
    assert report["settings"]["process_verifier"].endswith("model")
    assert report["settings"]["process_alpha"] == 1.0 and "stand in for Q^pi" in report["settings"]["process_score"]
    text = json.dumps(report)
    assert "bon@" in text


def test_not_a_pav_directory_is_a_clear_error(tmp_path):
    from pipeline.models.policy import PolicyLoadError

    with pytest.raises(PolicyLoadError, match="not a PAV model"):
        load_value_model(tmp_path)


def test_reusing_labels_made_with_other_settings_is_refused(task_files, tmp_path):
    from pipeline.cli import main

    cfg = {
        "model": {"path": str(task_files["model"]), "device": "cpu"},
        "data": {"train_files": [str(task_files["train"])]},
        "progress": {"mc_rollouts": 1, "prover_k": 1},
        "prompts": 4,
        "seeds_per_prompt": 1,
        "max_new_tokens": 8,
        "steps": 1,
        "batch_size": 2,
        "verifier_workers": 1,
        "threads": 1,
        "heldout_share": 0.5,
    }
    (tmp_path / "a.yaml").write_text(json.dumps(cfg))
    assert main(["pav", "--config", str(tmp_path / "a.yaml"), "--out", str(tmp_path / "o")]) == 0
    cfg["progress"]["mc_rollouts"] = 3
    (tmp_path / "b.yaml").write_text(json.dumps(cfg))
    assert main(["pav", "--config", str(tmp_path / "b.yaml"), "--out", str(tmp_path / "o")]) == 2
