"""The embedded CPU demo: run every stage that exists on small data, then write
``summary.json`` with each stage's headline figures.

Now: the reward verifier, on data the project generates itself (always) and on
the real best-of-N responses in ``../shared/data/bon`` (when present).
"""

from __future__ import annotations

import json
import random
import sys
import time
from collections import Counter
from pathlib import Path

from data.io import atomic_writer, read_jsonl, write_json
from data.synthetic import labelled_responses, make_problem
from pipeline.config import DemoConfig, to_dict


def _score(verdicts, labels) -> dict:
    n = len(verdicts)
    agree = sum(v.correct == bool(lab) for v, lab in zip(verdicts, labels))
    return {
        "responses": n,
        "verifier_correct": sum(v.correct for v in verdicts),
        "label_correct": sum(bool(x) for x in labels),
        "agreement": round(agree / n, 4) if n else None,
        "disagreements": n - agree,
        "reasons": dict(Counter(v.reason for v in verdicts)),
    }


def _write_rows(path: Path, rows) -> None:
    with atomic_writer(path) as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def run_verifier_demo(cfg: DemoConfig, out: Path, log=print) -> dict:
    from rewards.verifier import Verifier

    s = cfg.synthetic
    rng = random.Random(s.seed)
    problems = [make_problem(rng, steps=s.steps, max_operand=s.max_operand) for _ in range(s.problems)]
    pairs = labelled_responses(problems, rng)
    summary: dict = {}
    with Verifier(workers=cfg.verifier.workers, timeout=cfg.verifier.timeout, mode=cfg.verifier.mode) as v:
        t0 = time.perf_counter()
        verdicts = v.verify_batch([r for r, _ in pairs], [p.answer for p in problems])
        dt = time.perf_counter() - t0
        summary["synthetic"] = {**_score(verdicts, [lab for _, lab in pairs]), "checks_per_s": round(len(pairs) / dt, 1)}
        _write_rows(out / "verifier_synthetic.jsonl", (
            {"question": p.question, "answer": p.answer, "response": r, "label": lab, **vd.to_dict()}
            for p, (r, lab), vd in zip(problems, pairs, verdicts)
        ))
        log(f"verifier on {len(pairs)} synthetic responses: agreement {summary['synthetic']['agreement']:.4f}")

        bon = Path(cfg.bon_file) if cfg.bon_file else None
        if bon is not None and bon.is_file():
            rows = [row for _, row in read_jsonl(bon)]
            resp = [r for row in rows for r in row["response"]]
            gold = [row["gt"] for row in rows for _ in row["response"]]
            labels = [s_ for row in rows for s_ in row["score"]]
            t0 = time.perf_counter()
            verdicts = v.verify_batch(resp, gold)
            dt = time.perf_counter() - t0
            summary["bon"] = {**_score(verdicts, labels), "checks_per_s": round(len(resp) / dt, 1), "file": str(bon)}
            log(f"verifier on {len(resp)} real responses ({bon.name}): agreement with reference labels "
                f"{summary['bon']['agreement']:.4f}, {summary['bon']['checks_per_s']:.0f} checks/s")
        else:
            summary["bon"] = {"skipped": f"{cfg.bon_file} not found (real data is optional)"}
            log(f"real best-of-N file not found ({cfg.bon_file}); synthetic data only")
    return summary


def run_demo(cfg: DemoConfig, out_dir: str | None = None) -> dict:
    out = Path(out_dir or cfg.out)
    out.mkdir(parents=True, exist_ok=True)

    def log(msg: str) -> None:
        print(f"[demo] {msg}", file=sys.stderr, flush=True)

    t0 = time.perf_counter()
    summary = {"config": to_dict(cfg), "stages": ["verifier"], "verifier": run_verifier_demo(cfg, out, log)}
    summary["seconds"] = round(time.perf_counter() - t0, 2)
    write_json(out / "summary.json", summary)
    log(f"wrote {out / 'summary.json'}")
    return summary
