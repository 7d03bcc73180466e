#!/usr/bin/env python
"""ALP at toy scale: does the adaptive length penalty cut tokens on easy prompts
far more than on hard ones, at equal accuracy?

    .venv/bin/python benchmarks/alp.py [--rl-steps 60] [--beta 0.5] [--std] [--out runs/bench/alp]

The synthetic task mixes easy prompts (1 operation, 5% of worked solutions
slip) and hard ones (3 operations, 30% slip), so the warmed-up model solves
most of an easy prompt's group and a minority of a hard one's. Half of the
worked solutions re-check every step on a line of its own ("Check: 3 + 4 =
7."): longer, never more correct. A tiny Llama is warmed up
on them (so it writes checks about half the time, on both kinds), then two GRPO
runs start from that checkpoint with the same data, seed and compute:

* ``outcome``: the verifier's reward only;
* ``alp``: the same plus ALP, ``-(beta/N) * max(p, 1/K) * |y|``.

Both runs use Dr.GRPO's mean-only baseline by default (``--std`` for GRPO's std
normalisation): with std normalisation a group that is all wrong, common on hard
prompts, has only the length penalty left, and dividing by its tiny spread turns
it into full-size advantages that shorten hard answers until they break.

Each model is measured on held-out prompts, 30 easy (all that is left of the
288 possible) and 100 hard, 4 samples each at temperature 1: accuracy, mean response tokens, and the
hard/easy token ratio. ALP should raise the ratio (easy prompts, solved by most
of their group, pay the full per-token price; hard ones pay in proportion to
their solve rate) without costing accuracy. The last line is the headline.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def write_task(root: Path, seed: int = 0) -> dict:
    from data.formats import synthetic_rows, write_parquet

    # easy: one operation, worked solutions rarely slip (the model solves them reliably);
    # hard: three operations, 30% slipped solutions (solved by a minority of each group)
    common = dict(ops=("+", "-"), check_rate=0.5)
    easy = synthetic_rows(250, seed=seed, split="train", steps=1, max_operand=12, error_rate=0.05, **common)  # of 288
    hard = synthetic_rows(750, seed=seed + 1, split="train", steps=3, max_operand=9, error_rate=0.3, **common)
    seen = {r["extra_info"]["question"] for r in easy + hard}
    train = easy + hard
    random.Random(seed).shuffle(train)
    for i, r in enumerate(train):
        r["extra_info"]["index"] = i
    write_parquet(train, root / "train.parquet")
    out = {"train": root / "train.parquet"}
    for name, steps, operand, n in (("easy", 1, 12, 30), ("hard", 3, 9, 100)):
        held = synthetic_rows(n, seed=seed + 10 + steps, split="test", steps=steps, exclude=seen,
                              max_operand=operand, ops=("+", "-"))
        write_parquet(held, root / f"heldout_{name}.parquet")
        out[name] = root / f"heldout_{name}.parquet"
    return out


def measure(model_dir: str, files: dict, max_new_tokens: int, seed: int) -> dict:
    from data.formats import read_rl_rows
    from pipeline.train.heldout import heldout_accuracy
    from pipeline.train.policy import load_policy
    from rewards.verifier import Verifier

    model, tok = load_policy(model_dir, device="cpu")
    out = {}
    with Verifier(workers=2) as v:
        for name in ("easy", "hard"):
            r = heldout_accuracy(model, tok, read_rl_rows(files[name]), v, samples=4, temperature=1.0,
                                 max_new_tokens=max_new_tokens, seed=seed)
            out[name] = {"acc": round(r["acc"], 3), "tokens": round(r["mean_tokens"], 1)}
    out["hard_easy_token_ratio"] = round(out["hard"]["tokens"] / out["easy"]["tokens"], 2)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--warmup-steps", type=int, default=800)
    p.add_argument("--rl-steps", type=int, default=60)
    p.add_argument("--beta", type=float, default=0.5)
    p.add_argument("--lr", type=float, default=1.5e-4)
    p.add_argument("--std", action="store_true", help="GRPO's std normalisation (default: Dr.GRPO, mean only)")
    p.add_argument("--max-new-tokens", type=int, default=96)
    p.add_argument("--out", default="runs/bench/alp", help="runs, results and the plot go here")
    a = p.parse_args()

    from benchmarks.toy import plot, read_metrics, rl_config, warm_up
    from pipeline.train.engine import train

    root = Path(a.out)
    root.mkdir(parents=True, exist_ok=True)
    files = write_task(root / "data")
    t0 = time.perf_counter()
    model = warm_up(root, files["train"], files["hard"], steps=a.warmup_steps, max_new_tokens=a.max_new_tokens)
    results = {"warmup": measure(str(model), files, a.max_new_tokens, seed=1)}
    print(f"warmup  {json.dumps(results['warmup'])}  ({time.perf_counter() - t0:.0f} s)", flush=True)
    base = rl_config(model, files["train"], steps=a.rl_steps, max_new_tokens=a.max_new_tokens, lr=a.lr,
                     norm_adv_by_std=a.std)
    for name, terms in (("outcome", {"outcome": {"weight": 1.0}}),
                        ("alp", {"outcome": {"weight": 1.0}, "alp": {"beta": a.beta}})):
        t0 = time.perf_counter()
        cfg = dataclasses.replace(base, reward=dataclasses.replace(base.reward, terms=terms))
        shutil.rmtree(root / name, ignore_errors=True)
        train(cfg, root / name, progress=False, log=lambda m: None)
        results[name] = measure(str(root / name / "model"), files, a.max_new_tokens, seed=1)
        print(f"{name:7s} {json.dumps(results[name])}  ({time.perf_counter() - t0:.0f} s)", flush=True)
    (root / "alp_results.json").write_text(json.dumps(results, indent=2))
    plot({k: [(r["step"], r["response_length"]) for r in read_metrics(root / k) if "response_length" in r]
          for k in ("outcome", "alp")}, root / "alp_length.png", xlabel="GRPO step", ylabel="mean response tokens",
         title=f"ALP vs outcome-only (beta {a.beta})")

    def line(k: str) -> str:
        r = results[k]
        return (f"{k}: easy {r['easy']['tokens']:.0f} tok / acc {r['easy']['acc']:.2f}, hard {r['hard']['tokens']:.0f} tok"
                f" / acc {r['hard']['acc']:.2f}, hard/easy {r['hard_easy_token_ratio']:.2f}")

    norm = "GRPO std-normalised" if a.std else "Dr.GRPO"
    print(f"ALP toy ({a.rl_steps} {norm} steps, beta {a.beta}): " + " | ".join(line(k) for k in ("warmup", "outcome", "alp")))


if __name__ == "__main__":
    main()
