"""The training stage end to end on a micro model: warm-up, GRPO, metrics,
checkpoints, exact resume after SIGKILL, and the CLI's handling of user errors."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.config import ConfigError, load_config
from pipeline.train.config import TrainConfig, WarmupConfig

REPO = Path(__file__).resolve().parents[3]
TIMING = {"step_time", "gen_time", "tokens_per_s"}


def write_train_config(path: Path, task_files: dict, **over) -> Path:
    cfg = {
        "model": {"path": str(task_files["model"]), "device": "cpu"},
        "data": {"train_files": [str(task_files["train"])], "heldout_files": [str(task_files["heldout"])]},
        "rollout": {"n": 4, "max_new_tokens": 12},
        # entropy and KL terms keep gradients nonzero even when a micro model earns no reward
        "algorithm": {"entropy_coeff": 0.01, "kl_coef": 0.05, "mini_batches": 2, "micro_batch_size": 5},
        "optim": {"lr": 1.0e-3},
        "reward": {"verifier": {"workers": 1}},
        "steps": 8,
        "prompts_per_step": 3,
        "save_every": 2,
        "eval_every": 4,
        "heldout_samples": 2,
        "threads": 1,
    }
    for k, v in over.items():
        cfg[k] = {**cfg[k], **v} if isinstance(v, dict) and isinstance(cfg.get(k), dict) else v
    path.write_text(json.dumps(cfg))  # JSON is YAML
    return path


def run(*args, **kw):
    return subprocess.run(
        [sys.executable, "-m", "pipeline", *args], cwd=REPO, capture_output=True, text=True, timeout=600, **kw
    )


def strip(rows):
    return [{k: v for k, v in r.items() if k not in TIMING} for r in rows]


@pytest.mark.slow
def test_warmup_learns_the_format(task_files, tmp_path):
    from pipeline.train.sft import run_warmup

    cfg = load_config(
        WarmupConfig,
        None,
        {
            "tiny_size": "micro",
            "steps": 60,
            "batch_size": 16,
            "threads": 1,
            "heldout_samples": 1,
            "data": {"train_files": [str(task_files["train"])], "heldout_files": [str(task_files["heldout"])]},
            "optim": {"lr": 1.0e-2, "schedule": "cosine"},
        },
    )
    s = run_warmup(cfg, tmp_path / "w", progress=False, log=lambda m: None)
    rows = [json.loads(x) for x in (tmp_path / "w" / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 60 and rows[-1]["loss"] < rows[0]["loss"] / 2
    assert rows[-1]["lr"] < rows[30]["lr"]  # cosine decay
    assert (tmp_path / "w" / "model" / "config.json").is_file()
    assert s["examples"] == 64 and 0 <= s["heldout_acc"] <= 1


def test_grpo_run_writes_metrics_checkpoints_and_model(task_files, tmp_path):
    from pipeline.train.checkpoint import latest_checkpoint
    from pipeline.train.engine import train

    cfg = load_config(TrainConfig, write_train_config(tmp_path / "t.yaml", task_files))
    s = train(cfg, tmp_path / "run", progress=False, log=lambda m: None)
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(9))
    assert "heldout_acc" in rows[0] and "heldout_acc" in rows[4] and "heldout_acc" in rows[8]
    for key in (
        "reward",
        "acc",
        "reward/outcome",
        "response_length",
        "kl",
        "entropy",
        "pg_clipfrac",
        "grad_norm",
        "lr",
        "step_time",
        "tokens_per_s",
        "groups_mixed",
    ):
        assert key in rows[1], key
    assert rows[1]["grad_norm"] > 0 and rows[1]["response_length"] > 0
    assert latest_checkpoint(tmp_path / "run" / "checkpoints").name == "step_000008"
    assert len(list((tmp_path / "run" / "checkpoints").glob("step_*"))) == 2  # keep_checkpoints
    assert list((tmp_path / "run" / "tensorboard").glob("events.*"))
    assert (tmp_path / "run" / "model" / "model.safetensors").is_file()
    # the summary reports the first and last held-out evaluations the metrics log holds
    assert s["heldout_acc_before"] == rows[0]["heldout_acc"] and s["heldout_acc_after"] == rows[8]["heldout_acc"]
    with pytest.raises(ConfigError, match="already holds a run"):
        train(cfg, tmp_path / "run", progress=False, log=lambda m: None)


@pytest.fixture(scope="module")
def reference_run(task_files, tmp_path_factory):
    """An uninterrupted 10-step run to compare interrupted-and-resumed ones with."""
    root = tmp_path_factory.mktemp("reference")
    cfg = write_train_config(root / "t.yaml", task_files, steps=10, save_every=3)
    ref = run("train", "--config", str(cfg), "--out", str(root / "ref"), "--no-progress")
    assert ref.returncode == 0, ref.stderr
    return cfg, root / "ref"


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM])
def test_interrupted_run_resumes_to_identical_metrics(reference_run, tmp_path, signum):
    """SIGKILL: the run resumes from its last periodic checkpoint (step 3) and replays steps 4-5.
    SIGTERM (Slurm's stop): the step in flight finishes, a checkpoint is written for it, the exit
    status is 143, and the resumed run redoes nothing."""
    cfg, ref_dir = reference_run
    killed_dir = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "train", "--config", str(cfg), "--out", str(killed_dir), "--no-progress"],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    metrics = killed_dir / "metrics.jsonl"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if metrics.is_file() and '"step": 5' in metrics.read_text():
            proc.send_signal(signum)
            break
        time.sleep(0.01)
    rc = proc.wait(120)
    err = proc.stderr.read()
    assert not (killed_dir / "summary.json").exists(), "the run finished before it could be stopped"
    if signum == signal.SIGKILL:
        assert rc == -signal.SIGKILL
    else:
        assert rc == 128 + signal.SIGTERM, err
        assert "stopped by SIGTERM after step" in err
        stopped = [json.loads(x)["step"] for x in metrics.read_text().splitlines()][-1]
        assert (killed_dir / "checkpoints" / "latest").read_text().strip() == f"step_{stopped:06d}"

    resumed = run("train", "--config", str(cfg), "--out", str(killed_dir), "--resume", "--no-progress")
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming from" in resumed.stderr
    if signum == signal.SIGTERM:
        assert f"(step {stopped})" in resumed.stderr
    a = [json.loads(x) for x in (ref_dir / "metrics.jsonl").read_text().splitlines()]
    b = [json.loads(x) for x in metrics.read_text().splitlines()]
    assert [r["step"] for r in b] == list(range(11))  # rows after the last checkpoint replayed, not duplicated
    assert strip(a) == strip(b)
    import torch
    from safetensors.torch import load_file

    wa = load_file(ref_dir / "model" / "model.safetensors")
    wb = load_file(killed_dir / "model" / "model.safetensors")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


@pytest.mark.parametrize(
    "over, message",
    [
        ({"model": {"path": ""}}, "model.path is required"),
        ({"model": {"path": "/nonexistent/model"}}, "cannot load tokenizer"),
        ({"data": {"train_files": ["/nonexistent/train.parquet"]}}, "no such file"),
        ({"algorithm": {"loss_mode": "ppo2"}}, "verl has"),
        ({"reward": {"terms": {"brevity": {}}}}, "unknown reward term 'brevity'"),
        ({"optim": {"lr": "fast"}}, "optim.lr: expected float"),
        ({"rollout": {"backend": "sglang"}}, "rollout.backend"),
        ({"stepz": 3}, "unknown key(s) ['stepz']"),
    ],
)
@pytest.mark.slow
def test_user_errors_are_one_line(task_files, tmp_path, over, message):
    cfg = write_train_config(tmp_path / "t.yaml", task_files, **over)
    r = run("train", "--config", str(cfg), "--out", str(tmp_path / "o"), "--no-progress")
    assert r.returncode == 2, r.stderr
    assert message in r.stderr and "Traceback" not in r.stderr


@pytest.mark.slow
def test_synthetic_cli_and_help(tmp_path):
    r = run("synthetic", "--out", str(tmp_path / "task"))
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "task" / "train.parquet").is_file() and (tmp_path / "task" / "heldout.parquet").is_file()
    h = run("train", "--help")
    assert h.returncode == 0 and "--resume" in h.stdout and "exactly" in h.stdout


def test_heldout_accuracy_keeps_the_texts_it_graded(task_files):
    from data.formats import read_rl_rows
    from pipeline.models.policy import load_policy
    from pipeline.train.heldout import heldout_accuracy
    from rewards.verifier import Verifier

    model, tok = load_policy(str(task_files["model"]), device="cpu")
    rows = read_rl_rows(task_files["heldout"])
    with Verifier(workers=1) as v:
        r = heldout_accuracy(model, tok, rows, v, samples=2, max_new_tokens=12, seed=0, keep_texts=True)
        again = heldout_accuracy(model, tok, rows, v, samples=2, max_new_tokens=12, seed=0)
        gold = [row.ground_truth for row in rows for _ in range(2)]
        assert len(r["texts"]) == r["n"] == 2 * len(rows) and "texts" not in again and "correct" not in again
        assert r["correct"] == [x.correct for x in v.verify_batch(r["texts"], gold)]
        assert r["acc"] == again["acc"] == sum(r["correct"]) / r["n"]
