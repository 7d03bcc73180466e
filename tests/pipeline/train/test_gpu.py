"""GPU paths: the engine on CUDA with transformers and with vLLM rollouts, and the
evaluation stage with vLLM. Marked ``gpu``; skipped cleanly without a CUDA GPU
(and the vLLM tests without the ``gpu`` extra). Run on a GPU node with

    .venv/bin/pip install -e '.[gpu]' && .venv/bin/python -m pytest -m gpu -v
"""

import importlib.util
import json

import pytest
import torch

from tests.pipeline.train.test_train import run, write_train_config

pytestmark = pytest.mark.gpu
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
needs_vllm = pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="needs the gpu extra (vLLM)")


def _train(task_files, tmp_path, **rollout):
    cfg = write_train_config(
        tmp_path / "t.yaml", task_files, model={"device": "cuda"}, rollout=rollout, steps=3, save_every=3, eval_every=0
    )
    r = run("train", "--config", str(cfg), "--out", str(tmp_path / "out"), "--no-progress")
    assert r.returncode == 0, r.stderr[-3000:]
    rows = [json.loads(x) for x in (tmp_path / "out" / "metrics.jsonl").read_text().splitlines()]
    steps = [m for m in rows if "step_time" in m]
    assert len(steps) == 3 and all(torch.isfinite(torch.tensor(m["pg_loss"])) for m in steps)
    return steps


@needs_cuda
def test_engine_on_cuda_with_transformers_rollouts(task_files, tmp_path):
    steps = _train(task_files, tmp_path)
    assert all(m["response_length"] > 0 for m in steps)


@needs_cuda
@needs_vllm
def test_engine_with_vllm_rollouts_and_weight_sync(task_files, tmp_path):
    steps = _train(task_files, tmp_path, backend="vllm", gpu_memory_utilization=0.2)
    assert all(m["tokens_per_s"] > 0 for m in steps)


@needs_cuda
@needs_vllm
def test_evaluate_with_vllm(task_files, tmp_path):
    out = tmp_path / "eval"
    r = run(
        "evaluate",
        "--model",
        str(task_files["model"]),
        "--benchmarks",
        str(task_files["heldout"]),
        "--n",
        "4",
        "--backend",
        "vllm",
        "--max-new-tokens",
        "8",
        "--instruction",
        "",
        "--out",
        str(out),
        "--no-progress",
        "--no-plots",
    )
    assert r.returncode == 0, r.stderr[-3000:]
    rep = json.loads((out / "report.json").read_text())
    assert rep["overall"]["responses"] == 32 and "pass@4" in rep


needs_verl_gpu = pytest.mark.skipif(
    not torch.cuda.is_available() or any(importlib.util.find_spec(m) is None for m in ("vllm", "transfer_queue")),
    reason="needs a CUDA GPU and the gpu extra (vLLM, TransferQueue)",
)


@needs_verl_gpu
def test_verl_engine_runs_the_tiny_model_for_two_steps(task_files, tmp_path):
    """python -m pipeline train --engine verl: verl's Ray trainer (FSDP actor, vLLM rollout)
    on one GPU, the project's verifier as reward and ALP through the pipeline_terms estimator."""
    cfg = write_train_config(
        tmp_path / "t.yaml",
        task_files,
        model={"device": "cuda"},
        rollout={"backend": "vllm", "n": 4, "max_new_tokens": 16, "gpu_memory_utilization": 0.2},
        reward={"terms": {"outcome": {"weight": 1.0}, "alp": {"beta": 0.5}}},
        algorithm={"norm_adv_by_std": False},
        steps=2,
        save_every=2,
        prompts_per_step=4,
        eval_every=0,
    )
    out = tmp_path / "out"
    r = run(
        "train",
        "--engine",
        "verl",
        "--config",
        str(cfg),
        "--out",
        str(out),
        "--nnodes",
        "1",
        "--gpus-per-node",
        "1",
        "--override",
        "transfer_queue.backend.SimpleStorage.num_data_storage_units=2",
        "--override",
        "reward.num_workers=2",
        "--override",
        "actor_rollout_ref.rollout.agent.num_workers=2",
    )
    assert r.returncode == 0, (r.stdout + r.stderr)[-5000:]
    steps = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [s["step"] for s in steps][-1] == 2
    assert (out / "checkpoints" / "latest_checkpointed_iteration.txt").read_text().strip() == "2"
