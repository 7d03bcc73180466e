"""Checkpoints that a killed run resumes from exactly.

A checkpoint is a directory ``checkpoints/step_000040/`` holding ``state.pt``
(model, optimizer and scheduler state, every RNG the run draws from, the data
sampler's position, the step) and ``meta.json``. It is written under a
temporary name and renamed into place, and ``checkpoints/latest`` (a one-line
file, itself replaced atomically) names the newest complete one, so a crash at
any moment leaves the previous checkpoint intact. Older ones beyond ``keep``
are deleted.
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import numpy as np
import torch

from data.io import atomic_writer, write_json


def rng_state() -> dict:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(root: str | Path, step: int, state: dict, meta: dict | None = None, keep: int = 2) -> Path:
    """Write ``state`` (anything ``torch.save`` takes) as the checkpoint for ``step``."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step_{step:06d}"
    tmp = root / f".step_{step:06d}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    torch.save(state, tmp / "state.pt")
    write_json(tmp / "meta.json", {"step": step, **(meta or {})})
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    with atomic_writer(root / "latest") as f:
        f.write(final.name + "\n")
    for old in sorted(root.glob("step_*"))[:-keep] if keep > 0 else []:
        if old != final:
            shutil.rmtree(old, ignore_errors=True)
    return final


def latest_checkpoint(root: str | Path) -> Path | None:
    """The newest complete checkpoint directory, or None."""
    root = Path(root)
    pointer = root / "latest"
    if pointer.is_file():
        cand = root / pointer.read_text().strip()
        if (cand / "state.pt").is_file():
            return cand
    done = [p for p in sorted(root.glob("step_*")) if (p / "state.pt").is_file()]
    return done[-1] if done else None


def load_checkpoint(path: str | Path) -> dict:
    return torch.load(Path(path) / "state.pt", map_location="cpu", weights_only=False)
