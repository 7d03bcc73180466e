"""Per-step metrics to ``metrics.jsonl`` and TensorBoard.

On resume the JSONL is cut back to the checkpoint's step (rows a killed run
wrote after its last checkpoint are replayed, not duplicated), and TensorBoard
purges the same steps.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

from data.io import write_jsonl


def read_metrics(path: str | Path) -> list[dict]:
    p = Path(path)
    if not p.is_file():
        return []
    rows = []
    for line in p.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except ValueError:  # a line cut by a crash mid-write
            break
    return rows


class MetricsLogger:
    def __init__(self, out_dir: str | Path, resume_step: int = 0, tensorboard: bool = True):
        self.path = Path(out_dir) / "metrics.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        kept = [r for r in read_metrics(self.path) if r.get("step", 0) <= resume_step] if resume_step else []
        write_jsonl(self.path, kept, ensure_ascii=True)
        self._f = self.path.open("a")
        self.tb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(
                    str(Path(out_dir) / "tensorboard"), purge_step=resume_step + 1 if resume_step else None
                )
            except ImportError:  # tensorboard not installed: JSONL only
                self.tb = None

    def log(self, step: int, metrics: dict) -> None:
        row = {
            "step": step,
            **{k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in metrics.items()},
        }
        self._f.write(json.dumps(row) + "\n")
        self._f.flush()
        os.fsync(self._f.fileno())
        if self.tb is not None:
            for k, v in metrics.items():
                if isinstance(v, (int, float)) and not isinstance(v, bool) and v is not None:
                    self.tb.add_scalar(k, v, step)

    def close(self) -> None:
        self._f.close()
        if self.tb is not None:
            self.tb.close()
