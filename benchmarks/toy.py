"""Shared pieces of the toy-scale reward benchmarks (alp.py, progress.py,
self_correction.py): their data, warm-up, a GRPO config and its run, and curve plots."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

# torch threads per benchmark process; BENCH_THREADS=1 lets two benchmarks share 2 cores
# without oversubscription (2 + 2 threads on 2 cores made steps 10x slower)
THREADS = int(os.environ.get("BENCH_THREADS", "2"))


def warm_up(
    root: Path,
    train_file: Path,
    heldout_file: Path,
    *,
    steps: int,
    max_new_tokens: int,
    threads: int = THREADS,
    size: str = "tiny",
    start: Path | None = None,
    name: str = "warmup",
) -> Path:
    """Warm a tiny Llama up on the worked solutions (or go on training ``start``);
    reuses ``root/<name>/model`` if present."""
    from pipeline.config import DataConfig, ModelConfig
    from pipeline.train.config import WarmupConfig
    from pipeline.train.sft import run_warmup

    model = root / name / "model"
    if not (model / "config.json").is_file():
        run_warmup(
            WarmupConfig(
                model=ModelConfig(path=str(start) if start else ""),
                data=DataConfig(train_files=[str(train_file)], heldout_files=[str(heldout_file)]),
                tiny_size=size,
                steps=steps,
                batch_size=32,
                max_new_tokens=max_new_tokens,
                threads=threads,
            ),
            root / name,
            progress=False,
            log=lambda m: None,
        )
    return model


def disjoint_rows(common: dict, *, warmup: int, rl: int, heldout: int, seed: int = 0, **warmup_kw) -> dict[str, list]:
    """Warm-up rows (``warmup_kw``: slips, checks, two-turn rows), RL prompts and
    held-out problems of the same kind (``common``), pairwise disjoint.

    RL runs on prompts the warm-up never saw: on memorised prompts the policy repeats
    its memorised slips with near-zero entropy and RL has little to work with.
    """
    from data.formats import synthetic_rows

    warm = synthetic_rows(warmup, seed=seed, split="train", **common, **warmup_kw)
    train = synthetic_rows(rl, seed=seed + 1, split="train", exclude=questions(warm), **common)
    held = synthetic_rows(heldout, seed=seed + 2, split="test", exclude=questions(warm + train), **common)
    return {"warmup": warm, "train": train, "heldout": held}


def questions(rows: list[dict]) -> set[str]:
    """The question texts of synthetic rows (for ``synthetic_rows(exclude=)``)."""
    return {r["extra_info"]["question"] for r in rows}


def write_splits(root: Path, splits: dict[str, list], shuffle_seed: int | None = None) -> dict[str, Path]:
    """Each split's rows, shuffled if ``shuffle_seed`` is given and numbered afresh, as ``root/<split>.parquet``."""
    import random

    from data.formats import write_parquet

    root.mkdir(parents=True, exist_ok=True)
    for name, rows in splits.items():
        if shuffle_seed is not None:
            random.Random(shuffle_seed).shuffle(rows)
        for j, r in enumerate(rows):
            r["extra_info"]["index"] = j
        write_parquet(rows, root / f"{name}.parquet")
    return {name: root / f"{name}.parquet" for name in splits}


def rl_config(
    model: Path,
    train_file: Path,
    *,
    steps: int,
    max_new_tokens: int,
    lr: float,
    heldout_file=None,
    eval_every: int = 0,
    norm_adv_by_std: bool = True,
    temperature: float = 1.0,
    **over,
):
    """The benchmarks' GRPO config: 16 prompts x 8 samples per step, ``THREADS`` threads;
    ``temperature`` for rollouts and held-out measurements alike."""
    from pipeline.config import DataConfig, ModelConfig, RolloutConfig
    from pipeline.train.config import AlgorithmConfig, OptimConfig, TrainConfig

    cfg = TrainConfig(
        model=ModelConfig(path=str(model), device="cpu"),
        data=DataConfig(train_files=[str(train_file)], heldout_files=[str(heldout_file)] if heldout_file else []),
        rollout=RolloutConfig(n=8, temperature=temperature, max_new_tokens=max_new_tokens),
        algorithm=AlgorithmConfig(norm_adv_by_std=norm_adv_by_std),
        optim=OptimConfig(lr=lr),
        steps=steps,
        prompts_per_step=16,
        save_every=steps,
        threads=THREADS,
        eval_every=eval_every,
        heldout_samples=4,
        heldout_temperature=temperature,
    )
    return dataclasses.replace(cfg, **over)


def train_run(cfg, out: Path, *, resume: bool = False) -> list[dict]:
    """Run GRPO ``cfg`` into ``out`` (replacing what is there) and return its metrics rows; with
    ``resume``, a finished run is kept as it is and an interrupted one continues from its checkpoint."""
    import shutil

    from pipeline.train.engine import train
    from pipeline.train.metrics import read_metrics

    if not (resume and (out / "summary.json").is_file()):
        if not resume:
            shutil.rmtree(out, ignore_errors=True)
        train(cfg, out, resume=resume and (out / "checkpoints").is_dir(), progress=False, log=lambda m: None)
    return read_metrics(out / "metrics.jsonl")


def plot(curves: dict[str, list[tuple[float, float]]], path: Path, *, xlabel: str, ylabel: str, title: str) -> None:
    from pipeline.evaluate.report import plot_curves

    plot_curves(curves, path, xlabel=xlabel, ylabel=ylabel, title=title)
