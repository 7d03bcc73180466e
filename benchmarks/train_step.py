"""Seconds per GRPO step and rollout tokens/s: this project's engine vs TRL's GRPOTrainer.

Same tiny model (a ~0.9M-parameter Llama built from scratch, or --model), same
synthetic prompts, same K, same generation budget, same reward (this project's
verifier), one process each on CPU. Each engine runs in its own subprocess so
peak memory (max RSS) is its own. The first step of each is excluded as warm-up;
seconds per step are the median over the rest, and each engine runs --repeats
times, interleaved, its fastest run counting (shared machines are noisy).

    .venv/bin/pip install -c constraints.txt 'trl==1.16.0'   # TRL is not a dependency
    .venv/bin/python benchmarks/train_step.py [--steps 8] [--model DIR]

The last line is the headline.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def prepare(work: Path, model: str | None) -> tuple[str, Path]:
    from data.formats import read_rl_rows, synthetic_rows, write_parquet
    from pipeline.models.tiny_model import build_and_save

    rows = synthetic_rows(512, seed=0, split="train", error_rate=0.25)
    write_parquet(rows, work / "train.parquet")
    if model is None:
        rl = read_rl_rows(work / "train.parquet")
        build_and_save(work / "model", [r.messages[0]["content"] for r in rl] + [r.solution for r in rl], size="tiny")
        model = str(work / "model")
    return model, work / "train.parquet"


def run_ours(a) -> dict:
    from pipeline.config import load_config
    from pipeline.train.config import TrainConfig
    from pipeline.train.engine import train
    from pipeline.train.metrics import read_metrics

    cfg = load_config(
        TrainConfig,
        None,
        {
            "model": {"path": a.model, "device": "cpu"},
            "data": {"train_files": [a.data]},
            "rollout": {"n": a.k, "max_new_tokens": a.max_new_tokens, "temperature": 1.0},
            "optim": {"lr": 1.0e-5},
            "algorithm": {"micro_batch_size": a.micro_batch},
            "reward": {"verifier": {"workers": 1}},
            "steps": a.steps,
            "prompts_per_step": a.prompts,
            "save_every": 10_000,
            "threads": a.threads,
        },
    )
    out = Path(a.work) / "ours"
    shutil.rmtree(out, ignore_errors=True)
    train(cfg, out, progress=False, log=lambda m: None)
    rows = [r for r in read_metrics(out / "metrics.jsonl") if "step_time" in r][1:]
    tokens = sum(r["response_length"] * a.prompts * a.k for r in rows)
    secs = sum(r["step_time"] for r in rows)
    gen = sum(r["gen_time"] for r in rows)
    return {
        "s_per_step": statistics.median(r["step_time"] for r in rows),
        "rollout_tok_s": tokens / gen,
        "train_tok_s": tokens / secs,
    }


def run_trl(a) -> dict:
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from data.formats import read_rl_rows
    from rewards.verifier import Verifier

    torch.set_num_threads(a.threads)
    rows = read_rl_rows(a.data)
    ds = Dataset.from_list([{"prompt": r.messages, "ground_truth": r.ground_truth} for r in rows])
    tok = AutoTokenizer.from_pretrained(a.model)
    model = AutoModelForCausalLM.from_pretrained(a.model)
    verifier = Verifier(workers=1)
    lengths: list[float] = []

    def reward(prompts, completions, ground_truth, completion_ids=None, **kw):
        texts = [c[-1]["content"] if isinstance(c, list) else c for c in completions]
        if completion_ids is not None:
            lengths.append(sum(len(x) for x in completion_ids))
        return [float(v.correct) for v in verifier.verify_batch(texts, ground_truth)]

    times: list[float] = []

    class Clock(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            self.t = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            times.append(time.perf_counter() - self.t)

    args = GRPOConfig(
        output_dir=tempfile.mkdtemp(dir=a.work),
        use_cpu=True,
        bf16=False,
        report_to=[],
        save_strategy="no",
        logging_steps=1,
        max_steps=a.steps,
        per_device_train_batch_size=a.prompts * a.k,
        num_generations=a.k,
        max_completion_length=a.max_new_tokens,
        temperature=1.0,
        top_k=0,
        learning_rate=1e-5,
        beta=0.0,
        num_iterations=1,
        gradient_accumulation_steps=1,
        dataloader_num_workers=0,
        disable_tqdm=True,
        seed=0,
    )
    trainer = GRPOTrainer(
        model=model, reward_funcs=[reward], args=args, train_dataset=ds, processing_class=tok, callbacks=[Clock()]
    )
    trainer.train()
    verifier.close()
    gen_tok = sum(lengths[1:]) if lengths else float("nan")
    secs = sum(times[1:])
    logs = [h for h in trainer.state.log_history if "completions/mean_length" in h][1:]
    return {
        "s_per_step": statistics.median(times[1:]),
        "train_tok_s": gen_tok / secs if secs else float("nan"),
        "mean_length": sum(h["completions/mean_length"] for h in logs) / max(1, len(logs)),
    }


def child(a) -> None:
    res = run_ours(a) if a.engine == "ours" else run_trl(a)
    res["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("RESULT " + json.dumps(res), flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--prompts", type=int, default=16)
    p.add_argument("--k", type=int, default=8)
    p.add_argument("--max-new-tokens", type=int, default=40)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=2, help="runs per engine, interleaved; the fastest counts")
    p.add_argument("--micro-batch", type=int, default=64, help="our engine's sequences per forward/backward")
    p.add_argument("--model", default=None, help="model directory (default: a fresh tiny model)")
    p.add_argument("--engine", choices=["ours", "trl"], help=argparse.SUPPRESS)
    p.add_argument("--work", help=argparse.SUPPRESS)
    p.add_argument("--data", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.engine:
        return child(a)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model, data = prepare(work, a.model)
        results: dict[str, dict | None] = {}
        for engine in ("ours", "trl") * a.repeats:  # interleaved; each engine's best run counts
            cmd = [
                sys.executable,
                __file__,
                "--engine",
                engine,
                "--work",
                str(work),
                "--data",
                str(data),
                "--model",
                model,
                "--steps",
                str(a.steps),
                "--prompts",
                str(a.prompts),
                "--k",
                str(a.k),
                "--max-new-tokens",
                str(a.max_new_tokens),
                "--threads",
                str(a.threads),
                "--micro-batch",
                str(a.micro_batch),
            ]
            r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env={**os.environ, "TQDM_DISABLE": "1"})
            line = [x for x in r.stdout.splitlines() if x.startswith("RESULT ")]
            if r.returncode != 0 or not line:
                print(f"{engine} failed:\n{r.stderr[-3000:]}", file=sys.stderr)
                results[engine] = None
                continue
            res = json.loads(line[0][7:])
            print(f"{engine:5s} {json.dumps(res)}")
            best = results.get(engine)
            results[engine] = res if best is None or res["s_per_step"] < best["s_per_step"] else best
    o, t = results.get("ours"), results.get("trl")
    head = (
        f"GRPO step ({a.prompts} prompts x K={a.k}, <= {a.max_new_tokens} new tokens, tiny Llama, {a.threads} CPU threads): "
        f"ours {o['s_per_step']:.2f} s/step, {o['train_tok_s']:.0f} tok/s, peak {o['peak_rss_mb']:.0f} MB"
        if o
        else "ours failed"
    )
    if o and t:
        head += (
            f" | TRL GRPOTrainer {t['s_per_step']:.2f} s/step, {t['train_tok_s']:.0f} tok/s, peak {t['peak_rss_mb']:.0f} MB"
            f" | speedup {t['s_per_step'] / o['s_per_step']:.2f}x"
        )
    print(head)


if __name__ == "__main__":
    main()
