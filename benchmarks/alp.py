#!/usr/bin/env python
"""ALP at toy scale: does the adaptive length penalty cut tokens on easy prompts
far more than on hard ones, at equal accuracy?

    .venv/bin/python benchmarks/alp.py [--rl-steps 60] [--beta 0.5] [--out runs/bench/alp]

The synthetic task mixes easy prompts (one operation) and hard ones (three).
Some worked solutions state the answer with no working ("The answer is
\\boxed{13}."), the rest write one line per step first: 70% direct on easy
prompts, 15% on hard ones. A tiny Llama warmed up on them answers easy prompts
mostly directly and nearly always works through hard ones, where its direct
answers are far less accurate (the script prints the accuracy of direct and
worked answers per kind). Three GRPO runs then start from that checkpoint on
other prompts, with the same data, seed and compute:

* ``outcome``: the verifier's reward only;
* ``alp``: the same plus ALP, ``-(beta/N) * max(p, 1/K) * |y|``;
* ``uniform``: the same plus a uniform length penalty ``-alpha * |y| / N``
  with ``alpha = beta * `` the warm-up's mean solve rate over the RL prompts,
  so both penalties cost the same on average at the start;
* ``uniform_easy`` (with ``--uniform mean easy``): a uniform penalty priced
  like ALP on easy prompts (``alpha = beta *`` the warm-up's easy solve rate),
  so it pays easy tokens as ALP does and hard ones more: what a fixed penalty
  must cost hard prompts to cut easy tokens as much as ALP.

All use Dr.GRPO's mean-only baseline (ALP refuses GRPO's std normalisation,
pipeline/train/config.py): with std normalisation a group that is all wrong has only the
length penalty left, and dividing by its tiny spread turns it into full-size
advantages that shorten answers until they break.

Each model is measured on held-out prompts (32 easy, all that is left of the
162 possible, and 100 hard; disjoint from the warm-up's and RL's), 4 samples
each at temperature 0.7 (as the rollouts): accuracy, mean response tokens, the
share of responses that show working and that re-check a step, and the
hard/easy token ratio. ALP should raise the ratio against outcome-only (easy
prompts, solved by most of their group, pay the full per-token price for
working; hard ones pay in proportion to their solve rate, and their working
buys accuracy) without costing accuracy. On that task both kinds are solved about equally often, so
ALP's price is the same on both and cannot show its adaptivity; the task that
does is ``--hard-operand 20 --easy-direct-rate 0 --easy-check-rate 0.7
--uniform mean easy``: hard prompts solved about a quarter of the time, easy
ones always worked and mostly re-checked on a line that buys no accuracy.
``--resume`` keeps finished runs under ``--out`` (e.g. to
try another beta from the same warm-up and outcome run) and continues
interrupted ones. The last line is the
headline.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def write_task(
    root: Path,
    easy_direct_rate: float = 0.7,
    hard_direct_rate: float = 0.15,
    hard_operand: int = 9,
    easy_check_rate: float = 0.0,
    seed: int = 0,
) -> tuple[dict, float]:
    """Warm-up rows, RL prompts and held-out problems, pairwise disjoint, of both kinds: the files
    by split, and the share of easy prompts among the RL ones."""
    from benchmarks.toy import disjoint_rows, questions, write_splits
    from data.formats import synthetic_rows

    common = dict(max_operand=9, ops=("+", "-"))
    hard = disjoint_rows(
        dict(common, steps=3, max_operand=hard_operand),
        warmup=3000,
        rl=600,
        heldout=100,
        seed=seed,
        direct_rate=hard_direct_rate,
    )
    # easy: all 162 one-operation problems, 32 held out, 30 for RL, and the other 100 ten times
    # each in the warm-up with fresh draws of direct vs worked
    held = synthetic_rows(32, seed=seed + 10, split="test", steps=1, **common)
    rl = synthetic_rows(30, seed=seed + 11, split="train", steps=1, exclude=questions(held), **common)
    warm = [
        r
        for k in range(10)
        for r in synthetic_rows(
            100,
            seed=seed + 12 + k,
            split="train",
            steps=1,
            direct_rate=easy_direct_rate,
            check_rate=easy_check_rate,
            exclude=questions(held + rl),
            **common,
        )
    ]
    # RL sees each easy prompt 10 times as often as a hard one: a third of its prompts are easy
    train = [copy.deepcopy(r) for r in rl for _ in range(10)] + hard["train"]
    files = write_splits(
        root,
        {"warmup": warm + hard["warmup"], "train": train, "heldout_easy": held, "heldout_hard": hard["heldout"]},
        shuffle_seed=seed,
    )
    return {k.removeprefix("heldout_"): f for k, f in files.items()}, (len(train) - len(hard["train"])) / len(train)


def measure(model_dir: str, files: dict, max_new_tokens: int, temperature: float, seed: int) -> dict:
    from data.formats import read_rl_rows
    from pipeline.models.policy import load_policy
    from pipeline.train.heldout import heldout_accuracy
    from rewards.verifier import Verifier

    model, tok = load_policy(model_dir, device="cpu")
    out = {}
    with Verifier(workers=2) as v:
        for name in ("easy", "hard"):
            r = heldout_accuracy(
                model,
                tok,
                read_rl_rows(files[name]),
                v,
                samples=4,
                temperature=temperature,
                max_new_tokens=max_new_tokens,
                seed=seed,
                keep_texts=True,
            )
            worked = [" = " in t for t in r["texts"]]  # a step line; a direct answer has none
            checked = ["Check:" in t for t in r["texts"]]  # a step re-checked: longer, never more correct

            def acc(shown: bool, r=r, worked=worked) -> float | None:
                picked = [ok for ok, w in zip(r["correct"], worked) if w == shown]
                return round(sum(picked) / len(picked), 3) if picked else None

            out[name] = {
                "acc": round(r["acc"], 3),
                "tokens": round(r["mean_tokens"], 1),
                "worked": round(sum(worked) / len(worked), 3),
                "acc_worked": acc(True),
                "acc_direct": acc(False),
                "checked": round(sum(checked) / len(checked), 3),
            }
    out["hard_easy_token_ratio"] = round(out["hard"]["tokens"] / out["easy"]["tokens"], 2)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--warmup-steps", type=int, default=1500)
    p.add_argument("--rl-steps", type=int, default=60)
    p.add_argument("--beta", type=float, default=0.5)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument(
        "--hard-direct-rate", type=float, default=0.15, help="share of direct answers among the hard warm-up targets"
    )
    p.add_argument(
        "--easy-direct-rate", type=float, default=0.7, help="share of direct answers among the easy warm-up targets"
    )
    p.add_argument(
        "--easy-check-rate",
        type=float,
        default=0.0,
        help="share of the easy worked warm-up targets that re-check their step on a line of its own "
        "(tokens that buy no accuracy)",
    )
    p.add_argument("--hard-operand", type=int, default=9, help="largest operand of the hard prompts (easy: 9)")
    p.add_argument("--temperature", type=float, default=0.7, help="rollouts and held-out measurements")
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--out", default="runs/bench/alp", help="runs, results and the plot go here")
    p.add_argument(
        "--uniform",
        nargs="+",
        choices=("mean", "easy"),
        default=["mean"],
        help="uniform-penalty runs: priced like ALP at the warm-up's mean solve rate, or at its easy one",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=0,
        help="the RL runs' seed (prompt order, sampling) and the held-out "
        "draws'; the data and the warm-up stay the same",
    )
    p.add_argument(
        "--resume", action="store_true", help="keep finished runs (measure them again) and continue interrupted ones"
    )
    a = p.parse_args()

    from benchmarks.toy import plot, rl_config, train_run, warm_up

    root = Path(a.out)
    root.mkdir(parents=True, exist_ok=True)
    files, easy_share = write_task(
        root / "data", a.easy_direct_rate, a.hard_direct_rate, a.hard_operand, a.easy_check_rate
    )
    t0 = time.perf_counter()
    model = warm_up(root, files["warmup"], files["hard"], steps=a.warmup_steps, max_new_tokens=a.max_new_tokens)
    measure_seed = 1 + a.seed  # the held-out draws: the same for every model of a run
    results = {"warmup": measure(str(model), files, a.max_new_tokens, a.temperature, seed=measure_seed)}
    print(f"warmup  {json.dumps(results['warmup'])}  ({time.perf_counter() - t0:.0f} s)", flush=True)
    base = rl_config(
        model,
        files["train"],
        steps=a.rl_steps,
        max_new_tokens=a.max_new_tokens,
        lr=a.lr,
        norm_adv_by_std=False,
        temperature=a.temperature,
        seed=a.seed,
    )
    # a uniform penalty's price per token is ALP's at the warm-up's mean solve rate over the RL prompts
    # (so both cost the same on average at the start), or at its solve rate on easy prompts
    w = results["warmup"]
    solve_rate = {"mean": easy_share * w["easy"]["acc"] + (1 - easy_share) * w["hard"]["acc"], "easy": w["easy"]["acc"]}
    uniform = {k: round(a.beta * solve_rate[k], 3) for k in a.uniform}
    outcome = {"outcome": {"weight": 1.0}}
    runs = [("outcome", outcome), ("alp", {**outcome, "alp": {"beta": a.beta}})]
    runs += [
        ("uniform" if k == "mean" else f"uniform_{k}", {**outcome, "length": {"alpha": alpha}})
        for k, alpha in uniform.items()
    ]
    lengths = {}
    for name, terms in runs:
        t0 = time.perf_counter()
        cfg = dataclasses.replace(base, reward=dataclasses.replace(base.reward, terms=terms))
        lengths[name] = [
            (r["step"], r["response_length"])
            for r in train_run(cfg, root / name, resume=a.resume)
            if "response_length" in r
        ]
        results[name] = measure(str(root / name / "model"), files, a.max_new_tokens, a.temperature, seed=measure_seed)
        print(f"{name:7s} {json.dumps(results[name])}  ({time.perf_counter() - t0:.0f} s)", flush=True)
    (root / "alp_results.json").write_text(json.dumps(results, indent=2))
    plot(
        lengths,
        root / "alp_length.png",
        xlabel="GRPO step",
        ylabel="mean response tokens",
        title=f"ALP vs outcome-only (beta {a.beta})",
    )

    def line(k: str) -> str:
        r = results[k]
        return (
            f"{k}: easy {r['easy']['tokens']:.0f} tok / acc {r['easy']['acc']:.2f} / worked {r['easy']['worked']:.0%}"
            f" / re-checked {r['easy']['checked']:.0%}, "
            f"hard {r['hard']['tokens']:.0f} tok / acc {r['hard']['acc']:.2f} / worked {r['hard']['worked']:.0%}, "
            f"hard/easy {r['hard_easy_token_ratio']:.2f}"
        )

    prices = ", ".join(f"{k} {v}" for k, v in uniform.items())
    print(
        f"ALP toy ({a.rl_steps} Dr.GRPO steps, beta {a.beta}, uniform alpha: {prices}): "
        + " | ".join(line(k) for k in ["warmup", *(name for name, _ in runs)])
    )


if __name__ == "__main__":
    main()
