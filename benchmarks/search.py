#!/usr/bin/env python
"""Test-time search at toy scale: accuracy vs generated tokens for best-of-N, weighted
best-of-N, step-level beam search and DVTS, each guided by the project's own PAV model and by
the verifier-free likelihood scorer (the policy's probability of the path's least likely step),
and the compute-optimal (difficulty-adaptive) choice among all of them.

    .venv/bin/python benchmarks/search.py [--budgets 4,8,16,32] [--scorers pav,likelihood] [--out runs/bench/search]

A tiny Llama is warmed up on 4-step arithmetic whose worked solutions slip at every step
independently (15%), so its own solutions go wrong at any step; ``rl-pipeline pav``'s
library labels its responses to other problems by Monte Carlo (best-of-4 prover) and fits
the PAV model. Each strategy then runs through the evaluate stage (``search.strategy``) on
200 held-out problems at each budget N (beam width 4: N/4 beams) with each scorer. Every
figure is the pick's accuracy (the top-scored candidate, or the top answer by summed scores for
weighted_bon) against the tokens the policy generated per problem, pruned continuations
included. The figures, table and plot are ``rl-pipeline allocate``'s (``OUT/report.md``,
``OUT/comparison.json``, ``OUT/accuracy_vs_tokens.png``).

The adaptive allocation bins problems into thirds by the PAV model's value of the bare
question (no answer needed) and gives each bin the run (strategy and scorer) that the other
half of the problems showed best at that budget (two-fold cross-fitting, so no problem chooses its own
strategy). The last line is the headline.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

STRATEGIES = ("bon", "weighted_bon", "beam", "dvts")


def train_pav(
    root: Path, model: Path, prompts_file: Path, prompts: int, steps: int, max_new_tokens: int, threads: int
) -> Path:
    """The PAV model of ``model`` (reused when ``root/pav/model`` exists)."""
    from pipeline.config import DataConfig, ModelConfig, ProgressConfig
    from pipeline.train.config import PAVConfig
    from pipeline.train.pav import run_pav

    out = root / "pav"
    if not (out / "model" / "config.json").is_file():
        cfg = PAVConfig(
            model=ModelConfig(path=str(model), device="cpu"),
            data=DataConfig(train_files=[str(prompts_file)]),
            progress=ProgressConfig(mc_rollouts=8, prover_k=4),
            prompts=prompts,
            steps=steps,
            max_new_tokens=max_new_tokens,
            verifier_workers=1,
            threads=threads,
        )
        print(f"pav: {json.dumps(run_pav(cfg, out, log=lambda m: None))}", flush=True)
    return out / "model"


def run_strategy(root, model, pav, heldout, strategy, budget, width, scorer, a) -> Path:
    from pipeline.config import ModelConfig, RolloutConfig
    from pipeline.evaluate.config import EvalConfig, SearchConfig
    from pipeline.evaluate.run import evaluate

    out = root / "eval" / (f"{strategy}_{budget}" + ("" if scorer == "pav" else f"_{scorer}"))
    if not (out / "report.json").is_file():
        cfg = EvalConfig(
            model=ModelConfig(path=str(model), device="cpu"),
            benchmarks=[str(heldout)],
            instruction="",
            generation=RolloutConfig(
                n=budget, temperature=a.temperature, max_new_tokens=a.max_new_tokens, max_batch=512
            ),
            process_verifier=str(pav),
            search=SearchConfig(
                strategy=strategy, budget=budget, beam_width=min(width, budget), scorer=scorer, max_steps=8
            ),
            plots=False,
            bootstrap=0,
            threads=a.threads,
            seed=a.seed,
        )
        evaluate(cfg, out, progress=False, log=lambda m: None)
    return out


def main() -> None:
    from benchmarks.toy import THREADS

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--budgets", default="4,8,16,32", help="comma-separated budgets N")
    p.add_argument("--width", type=int, default=4, help="beam width M of beam and dvts")
    p.add_argument(
        "--scorers",
        default="pav,likelihood",
        help="comma-separated step scorers, each guiding every strategy: pav (the trained PAV model), "
        "likelihood (the policy's own probability of its least likely step)",
    )
    p.add_argument("--warmup-steps", type=int, default=500)
    p.add_argument("--task-steps", type=int, default=4)
    p.add_argument("--step-slip-rate", type=float, default=0.15)
    p.add_argument("--pav-prompts", type=int, default=1024, help="prompts the PAV labels come from (4 responses each)")
    p.add_argument("--pav-steps", type=int, default=1000, help="PAV value-head training steps")
    p.add_argument("--max-new-tokens", type=int, default=96)
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--threads", type=int, default=THREADS)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/bench/search")
    a = p.parse_args()
    budgets = [int(x) for x in a.budgets.split(",")]
    scorers = a.scorers.split(",")

    from benchmarks.process_rewards import write_task
    from benchmarks.toy import warm_up

    root = Path(a.out)
    t0 = time.perf_counter()
    files = write_task(root / "data", steps=a.task_steps, step_slip_rate=a.step_slip_rate)
    model = warm_up(root, files["warmup"], files["heldout"], steps=a.warmup_steps, max_new_tokens=a.max_new_tokens)
    print(f"warm-up: {json.loads((root / 'warmup' / 'summary.json').read_text())}", flush=True)
    pav = train_pav(root, model, files["train"], a.pav_prompts, a.pav_steps, a.max_new_tokens, a.threads)
    print(f"models ready: {time.perf_counter() - t0:.0f} s", flush=True)

    from pipeline.evaluate.allocation import compare_runs, run_difficulty, run_picks, write_comparison

    runs = []
    for budget in budgets:
        for scorer in scorers:
            for s in STRATEGIES:
                t1 = time.perf_counter()
                run = run_strategy(root, model, pav, files["heldout"], s, budget, a.width, scorer, a)
                runs.append(run_picks(run))
                print(f"{runs[-1]['name']}: {time.perf_counter() - t1:.0f} s", flush=True)
    result = compare_runs(runs, run_difficulty(runs[0], str(pav), device="cpu"), bins=3)
    write_comparison(result, root)
    for name, r in result["runs"].items():
        print(f"{name}: {json.dumps(r)}", flush=True)
    for budget, r in result["adaptive"].items():
        print(f"adaptive@{budget}: {json.dumps(r)}", flush=True)

    runs_at = {(r["scorer"], r["strategy"], r["budget"]): r for r in result["runs"].values()}
    pct = lambda r, key="acc": f"{100 * r[key]:.1f}"  # noqa: E731
    parts = []
    for scorer in scorers:
        for b in sorted({min(budgets), max(budgets)}):
            picks = " / ".join(
                f"{pct(runs_at[(scorer, s, b)])} ({pct(runs_at[(scorer, s, b)], 'acc_hardest')})" for s in STRATEGIES
            )
            parts.append(f"{scorer} N={b} ({runs_at[(scorer, 'bon', b)]['tokens']:.0f} tok) {picks}")
    adaptive = " / ".join(
        f"{100 * result['adaptive'][str(b)]['acc']:.1f}" for b in budgets if str(b) in result["adaptive"]
    )
    print(
        f"search, accuracy % (hardest third) of bon / weighted_bon / beam / dvts on {result['problems']} problems: "
        + "; ".join(parts)
        + f"; adaptive (cross-fitted) at N={','.join(map(str, budgets))}: {adaptive}; {time.perf_counter() - t0:.0f} s"
    )


if __name__ == "__main__":
    main()
