"""Shared fixtures: a small synthetic task and a micro from-scratch model on disk."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def task_files(tmp_path_factory) -> dict:
    """The synthetic task as verl parquet, plus a micro Llama + tokenizer saved by path."""
    from data.formats import read_rl_rows, synthetic_rows, write_parquet
    from pipeline.models.tiny_model import build_and_save

    root: Path = tmp_path_factory.mktemp("task")
    train = synthetic_rows(64, seed=0, split="train", error_rate=0.25)
    held = synthetic_rows(8, seed=1, split="test", exclude={r["extra_info"]["question"] for r in train})
    write_parquet(train, root / "train.parquet")
    write_parquet(held, root / "heldout.parquet")
    rows = read_rl_rows(root / "train.parquet")
    texts = [r.messages[0]["content"] for r in rows] + [r.solution for r in rows]
    build_and_save(root / "model", texts, size="micro", seed=0)
    return {"train": root / "train.parquet", "heldout": root / "heldout.parquet", "model": root / "model", "root": root}
