"""Training with process rewards: the progress config, MRT's termination advantages, and the
engine adding progress on each step's tokens."""

from __future__ import annotations

import pytest

from pipeline.config import ProgressConfig


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
