#!/usr/bin/env python
"""Seconds to score 800 best-of-N responses end to end with ``rl-pipeline evaluate``.

    .venv/bin/python benchmarks/evaluate.py [--data PATH] [--workers 2]

Runs the evaluation stage on ``../shared/data/bon/math_cot_100.jsonl`` (100
problems x 8 responses) twice, each in a fresh process like a user would:

* ``from-file``: correctness from the file's ``score`` (grouping answers for
  maj@k still runs the verifier's equivalence over all 800 responses);
* ``regrade``: the project's verifier grades all 800, and the report lists where
  it and the file disagree.

Both include reading, verifier start-up, bootstrap intervals (1000 resamples),
plots and the reports. The last line is the headline.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "bon" / "math_cot_100.jsonl"))
    p.add_argument("--workers", default="2", help="verifier worker processes")
    a = p.parse_args()
    if not Path(a.data).is_file():
        sys.exit(f"{a.data}: not found (this benchmark needs the shared best-of-N file)")
    base = [
        sys.executable,
        "-m",
        "pipeline",
        "evaluate",
        "--generations",
        a.data,
        "--response-key",
        "response",
        "--answer-key",
        "gt",
        "--verifier-score-key",
        "pred_score",
        "--workers",
        a.workers,
        "--no-progress",
    ]
    res = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, extra in (("from-file", ["--correct-key", "score"]), ("regrade", [])):
            out = Path(tmp) / name
            t0 = time.perf_counter()
            r = subprocess.run(base + extra + ["--out", str(out)], cwd=ROOT, capture_output=True, text=True)
            secs = time.perf_counter() - t0
            if r.returncode != 0:
                sys.exit(f"{name} failed:\n{r.stderr[-2000:]}")
            rep = json.loads((out / "report.json").read_text())
            res[name] = {
                "seconds": round(secs, 2),
                "grade_seconds": rep["seconds"]["grade"],
                **{k: rep[k] for k in ("pass@1", "maj@8", "bon@8", "pass@8")},
            }
            print(f"{name:9s} {json.dumps(res[name])}")
    f, g = res["from-file"], res["regrade"]
    print(
        f"evaluate 800 responses (100 problems x 8, {a.workers} verifier workers): from-file {f['seconds']:.1f} s "
        f"(maj@8 {f['maj@8']}, bon@8 {f['bon@8']}, pass@8 {f['pass@8']}, pass@1 {f['pass@1']}) | "
        f"regrade {g['seconds']:.1f} s ({800 / g['seconds']:.0f} responses/s end to end)"
    )


if __name__ == "__main__":
    main()
