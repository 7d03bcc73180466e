#!/usr/bin/env python
"""Self-correction turns (SCoRe) at toy scale.

    .venv/bin/python benchmarks/self_correction.py [--stage1-steps 15] [--stage2-steps 45] [--out runs/bench/score]

A tiny Llama is warmed up on 3-step arithmetic (operands up to 9; RL and
held-out problems disjoint from the warm-up's). Two thirds of the warm-up rows
are one-turn with clean worked solutions, so the model learns the arithmetic
well; the other third are two-turn: a first attempt that slips half the time,
the correction instruction, and as the target either the first attempt
repeated word for word or a careful fresh solution, half and half. For a right
first attempt the two targets are the same text; for a wrong one the model
sees both standing by the slip and fixing it. Sampling (rollouts and held-out
measurements) runs at temperature 0.7.

RL then runs SCoRe's two stages in sequence (stage 1: reward the second attempt,
strong KL on the first; stage 2: each attempt credited with its own reward, the second plus
``bonus * (r2 - r1)``; SCoRe's beta1 KL on both).
Held-out Accuracy@t1/t2, Delta(t1,t2), Delta^{i->c} and Delta^{c->i} are
measured every 5 steps (200 problems x 4 samples) and plotted. SCoRe's
claim at this scale: Delta(t1,t2) rises over training and Delta^{c->i} stays low.
``--task-steps 2 --one-turn 1000 --two-turn 1000 --warmup-steps 1000
--max-new-tokens 48`` is the smaller variant docs/benchmarks.md also reports.
``--direct-rate 0.5`` makes half the first attempts answer without working
(a first attempt the worked redo can fix; the two-turn first turns are off by
a little half the time, direct or worked); with ``--first-attempt-kl 2``
stage 1 holds the first attempt where it was, as SCoRe intends. With
``--direct-rate 1.0 --one-turn 1000 --two-turn 4000`` no first attempt in the
warm-up shows working, so RL never samples a worked first attempt and stage 2
cannot move the redo into it: the second attempt keeps an edge the first
cannot learn, as a real second attempt that reads the first does. The last
line is the headline.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.config import SelfCorrectionConfig  # noqa: E402

KEYS = ("heldout_acc_t1", "heldout_acc_t2", "heldout_delta_t1_t2", "heldout_delta_i2c", "heldout_delta_c2i")


def write_task(
    root: Path,
    instruction: str,
    steps: int = 3,
    one_turn: int = 3000,
    two_turn: int = 1500,
    direct_rate: float = 0.0,
    seed: int = 0,
) -> dict:
    """``steps``-step problems (operands up to 9): warm-up rows (``one_turn`` clean one-turn, ``two_turn``
    two-turn), 600 RL questions, 200 held out, pairwise disjoint. A share ``direct_rate`` of the
    one-turn targets and of the two-turn first attempts state the answer without working."""
    from benchmarks.toy import questions, write_splits
    from data.formats import synthetic_rows

    common = dict(steps=steps, max_operand=9, ops=("+", "-"))
    # two-turn rows: the first attempt slips half the time; the target repeats it or redoes it carefully
    two = synthetic_rows(
        two_turn,
        seed=seed,
        split="train",
        error_rate=0.5,
        second_attempt_rate=1.0,
        second_instruction=instruction,
        second_repeat_rate=0.5,
        second_error_rate=0.0,
        direct_rate=direct_rate,
        **common,
    )
    one = synthetic_rows(
        one_turn, seed=seed + 3, split="train", exclude=questions(two), direct_rate=direct_rate, **common
    )  # no slips
    warm = one + two
    random.Random(seed).shuffle(warm)
    train = synthetic_rows(600, seed=seed + 1, split="train", exclude=questions(warm), **common)
    held = synthetic_rows(200, seed=seed + 2, split="test", exclude=questions(warm + train), **common)
    return write_splits(root, {"warmup": warm, "train": train, "heldout": held})


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task-steps", type=int, default=3, help="operations per problem")
    p.add_argument("--one-turn", type=int, default=3000, help="clean one-turn warm-up rows")
    p.add_argument("--two-turn", type=int, default=1500, help="two-turn warm-up rows")
    p.add_argument(
        "--direct-rate",
        type=float,
        default=0.0,
        help="share of first attempts (one-turn targets, two-turn first turns) that answer without working",
    )
    p.add_argument("--warmup-steps", type=int, default=1500)
    p.add_argument("--temperature", type=float, default=0.7, help="rollouts and held-out measurements")
    p.add_argument("--stage1-steps", type=int, default=15)
    p.add_argument("--stage2-steps", type=int, default=45)
    p.add_argument("--bonus", type=float, default=10.0)
    p.add_argument(
        "--first-attempt-kl",
        type=float,
        default=SelfCorrectionConfig.first_attempt_kl,
        help="stage 1: KL-to-reference weight on the first attempt's tokens",
    )
    p.add_argument(
        "--no-std",
        action="store_true",
        help="Dr.GRPO's mean-only baseline (default: GRPO's std normalisation, which cancels the bonus's "
        "(1 + bonus) weight on the second attempt, each attempt being normalised in its own groups)",
    )
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--max-new-tokens", type=int, default=56)
    p.add_argument("--out", default="runs/bench/score")
    p.add_argument(
        "--seed",
        type=int,
        default=0,
        help="the RL runs' seed (prompt order, sampling, held-out draws); the data and the warm-up stay the same",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="keep finished stages under --out (e.g. stage 2 with another bonus from the same stage 1) "
        "and continue interrupted ones",
    )
    a = p.parse_args()

    from benchmarks.toy import plot, rl_config, train_run, warm_up

    sc = SelfCorrectionConfig(enabled=True, first_attempt_kl=a.first_attempt_kl)
    root = Path(a.out)
    files = write_task(root / "data", sc.instruction, a.task_steps, a.one_turn, a.two_turn, a.direct_rate)
    t0 = time.perf_counter()
    model = warm_up(root, files["warmup"], files["heldout"], steps=a.warmup_steps, max_new_tokens=a.max_new_tokens)
    print(f"warm-up: {time.perf_counter() - t0:.0f} s", flush=True)
    history: list[dict] = []
    start = model
    offset = 0
    for stage, steps in ((1, a.stage1_steps), (2, a.stage2_steps)):
        if steps <= 0:
            continue
        cfg = rl_config(
            start,
            files["train"],
            steps=steps,
            max_new_tokens=a.max_new_tokens,
            lr=a.lr,
            heldout_file=files["heldout"],
            eval_every=5,
            temperature=a.temperature,
            norm_adv_by_std=not a.no_std,
            seed=a.seed,
            self_correction=dataclasses.replace(sc, stage=stage, bonus=a.bonus),
        )
        cfg = dataclasses.replace(
            cfg, algorithm=dataclasses.replace(cfg.algorithm, kl_coef=0.0, micro_batch_size=64)
        )  # SCoRe adds its beta1 (0.01)
        out = root / f"stage{stage}"
        t0 = time.perf_counter()
        rows = [r for r in train_run(cfg, out, resume=a.resume) if r.get("heldout_acc_t2") is not None]
        for r in rows:
            if offset and r["step"] == 0:
                continue  # the previous stage's last measurement, again
            history.append({"step": offset + r["step"], "stage": stage, **{k: round(r[k], 3) for k in KEYS}})
        print(
            f"stage {stage}: {steps} steps in {time.perf_counter() - t0:.0f} s; {json.dumps(history[-1])}", flush=True
        )
        start, offset = out / "model", offset + steps
    if not history:
        print("SCoRe toy: no RL steps asked for; the warm-up is in", root / "warmup")
        return
    (root / "score_results.json").write_text(json.dumps(history, indent=2))
    plot(
        {k.removeprefix("heldout_"): [(h["step"], h[k]) for h in history] for k in KEYS[2:]},
        root / "score_deltas.png",
        xlabel="RL step (stage 1, then stage 2)",
        ylabel="share of held-out attempts",
        title="SCoRe: Delta(t1,t2), Delta i->c, Delta c->i",
    )
    first, last = history[0], history[-1]

    def fmt(h: dict) -> str:
        return (
            f"acc@t1 {h['heldout_acc_t1']:.3f}, acc@t2 {h['heldout_acc_t2']:.3f}, "
            f"delta {h['heldout_delta_t1_t2']:+.3f}, i->c {h['heldout_delta_i2c']:.3f}, "
            f"c->i {h['heldout_delta_c2i']:.3f}"
        )

    print(
        f"SCoRe toy ({a.stage1_steps} stage-1 + {a.stage2_steps} stage-2 steps): before: {fmt(first)} | after: {fmt(last)}"
    )


if __name__ == "__main__":
    main()
