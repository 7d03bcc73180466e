"""``rl-pipeline``: one subcommand per stage, each a thin layer over a library.

rl-pipeline demo      --config configs/demo.yaml --out runs/demo
rl-pipeline synthetic --config configs/task/arithmetic.yaml --out runs/task
rl-pipeline warmup    --config configs/warmup/tiny.yaml --out runs/warmup
rl-pipeline train     --config configs/train/tiny.yaml --out runs/grpo [--resume]
rl-pipeline evaluate  --model runs/grpo/model --benchmarks math500 --n 8 --out runs/eval
rl-pipeline evaluate  --generations gens.jsonl --response-key response --answer-key gt --out runs/bon
rl-pipeline compare   runs/eval_a runs/eval_b
rl-pipeline curate    --config configs/curate/shared.yaml --out runs/curated
rl-pipeline submit    --config configs/pipeline/demo.yaml [--dry-run]   # every stage as Slurm jobs
"""

from __future__ import annotations

import argparse
import sys

from data.io import InputError
from pipeline.config import ConfigError


def _progress(args: argparse.Namespace) -> bool:
    """Progress bars only on a terminal: tqdm's carriage-return redraws are noise in a log file
    (a Slurm job's output, a redirect); --no-progress turns them off on a terminal too."""
    return not args.no_progress and sys.stderr.isatty()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rl-pipeline", description="RL post-training pipeline for math reasoning models.")
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser(
        "demo",
        help="run the embedded CPU demo and write summary.json",
        description="Run every stage that exists on small data (self-generated; plus ../shared/data when present) "
        "and write OUT/summary.json with each stage's headline figures.",
    )
    d.add_argument("--config", default=None, help="demo config YAML (default: built-in defaults)")
    d.add_argument("--out", default=None, help="output directory (default: the config's `out`)")
    d.add_argument(
        "--stages",
        default=None,
        help="comma-separated demo parts to run (default: the config's `stages`: verifier,curate,train,evaluate)",
    )

    s = sub.add_parser(
        "synthetic",
        help="write the built-in synthetic arithmetic task as verl parquet",
        description="Write OUT/train.parquet (with worked solutions, a configurable share flawed) and a disjoint "
        "OUT/heldout.parquet for the multi-step arithmetic task (config: the `task` keys, see TaskConfig).",
    )
    s.add_argument("--config", default=None, help="task config YAML (default: built-in defaults)")
    s.add_argument("--out", required=True, help="output directory")

    w = sub.add_parser(
        "warmup",
        help="supervised warm-up on worked solutions (builds a tiny model when model.path is empty)",
        description="Supervised fine-tuning on extra_info.solution of verl-schema rows, with a decaying learning "
        "rate. Writes OUT/model, OUT/metrics.jsonl and OUT/summary.json (held-out pass@1).",
    )
    w.add_argument("--config", required=True, help="warm-up config YAML (see WarmupConfig in pipeline/train/config.py)")
    w.add_argument("--out", required=True, help="output directory")
    w.add_argument("--no-progress", action="store_true", help="no progress bar")

    t = sub.add_parser(
        "train",
        help="GRPO-style RL: on one process (CPU or one GPU), or on GPUs and nodes through verl",
        description="RL with verifier rewards and verl's advantage estimators and policy losses. Writes "
        "OUT/metrics.jsonl, OUT/tensorboard/, OUT/checkpoints/ (every save_every steps), OUT/model and "
        "OUT/summary.json. --resume continues a killed run exactly from its last checkpoint. "
        "With --engine verl the same config is translated into verl 0.9.1's Hydra overrides and "
        "`python -m verl.trainer.main_ppo` runs them on a Ray cluster (FSDP actor, vLLM rollouts; CUDA GPUs "
        "and the gpu extra needed): checkpoints in OUT/checkpoints (verl's layout), metrics in "
        "OUT/metrics.jsonl (verl's file logger) and OUT/tensorboard. Settings verl cannot express are an error; "
        "--dry-run prints the command and the notes.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
        "  rl-pipeline train --config configs/train/tiny.yaml --out runs/grpo\n"
        "  rl-pipeline train --engine verl --config configs/train/tiny.yaml --out runs/verl --dry-run\n"
        "  rl-pipeline train --engine verl --config my.yaml --out runs/big --nnodes 2 --gpus-per-node 8",
    )
    t.add_argument("--config", help="train config YAML (see TrainConfig in pipeline/train/config.py); required")
    t.add_argument("--out", help="output directory; required")
    t.add_argument(
        "--list-rewards",
        action="store_true",
        help="list every reward idea (per-response terms, step-level progress, turn-level self-correction), "
        "where a config turns it on, and exit",
    )
    t.add_argument("--resume", action="store_true", help="continue from OUT/checkpoints/latest")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    t.add_argument(
        "--engine",
        choices=["local", "verl"],
        default="local",
        help="local: this single-process engine (default); verl: verl's Ray trainer (multi-GPU, multi-node)",
    )
    t.add_argument(
        "--dry-run",
        action="store_true",
        help="verl: print the main_ppo command (one override per "
        "line) and the notes on settings only the local engine reads; run nothing",
    )
    t.add_argument(
        "--nnodes", type=_positive_int, help="verl: nodes in the Ray cluster (default: $SLURM_JOB_NUM_NODES, else 1)"
    )
    t.add_argument(
        "--gpus-per-node",
        type=_positive_int,
        help="verl: GPUs per node (default: $SLURM_GPUS_ON_NODE, else this machine's GPU count)",
    )
    t.add_argument(
        "--override",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="verl: an extra Hydra override for verl's config, applied last (repeatable), e.g. "
        "--override actor_rollout_ref.rollout.tensor_model_parallel_size=2",
    )
    pv = sub.add_parser(
        "pav",
        help="train a process verifier (PAV): Monte Carlo progress labels, then a value head",
        description="Samples the policy's responses, estimates a prover's chance of success after every step "
        "by Monte Carlo (same settings as training's `progress` section), and trains a value head on an LM to "
        "predict it. Writes OUT/labels.jsonl (reused on a rerun), OUT/model (use as progress.pav_model in "
        "training or --process-verifier in evaluate) and OUT/summary.json (held-out fit).",
    )
    pv.add_argument("--config", required=True, help="PAV config YAML (see PAVConfig in pipeline/train/config.py)")
    pv.add_argument("--out", required=True, help="output directory")

    e = sub.add_parser(
        "evaluate",
        help="evaluate a model on held-out benchmarks, or score a generations file",
        description="Generate n responses per problem on each benchmark (resumable: a re-run with the same --out "
        "continues), grade them with the verifier, and write OUT/report.json, OUT/report.md, plots, "
        "OUT/generations/ and OUT/graded.jsonl. Reports pass@k for every k <= n (unbiased estimator), maj@k "
        "(answers grouped by the verifier's equivalence), best-of-N by a verifier score (bon@k: top response; "
        "wbon@k: top summed score per answer group), self-correction metrics when second attempts exist, "
        "response lengths, and bootstrap confidence intervals. With --generations, scores an existing JSONL "
        "(one row per problem, responses as a list) without a model. Flags override the config.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
        "  rl-pipeline evaluate --model runs/grpo/model --benchmarks math500,gsm8k --n 8 --limit 100 "
        "--out runs/eval\n"
        "  rl-pipeline evaluate --generations ../shared/data/bon/math_cot_100.jsonl --response-key response "
        "--answer-key gt --correct-key score --verifier-score-key pred_score --out runs/bon\n"
        "  rl-pipeline evaluate --model runs/grpo/model --benchmarks math500 --search beam --budget 16 "
        "--beam-width 4 --process-verifier runs/pav --out runs/beam",
    )
    e.add_argument(
        "--config", default=None, help="evaluation config YAML (see EvalConfig in pipeline/evaluate/config.py)"
    )
    e.add_argument("--out", required=True, help="output directory")
    e.add_argument("--model", help="model to generate with: hub name or local directory (model.path)")
    e.add_argument(
        "--benchmarks", help="comma-separated: math500,aime24,amc23,minerva_math,olympiadbench,gsm8k or .jsonl paths"
    )
    e.add_argument(
        "--data-dir",
        help="directory with the benchmark files (default: ../shared/data/eval if present, else the Hugging Face Hub)",
    )
    e.add_argument("--limit", type=_positive_int, help="first N problems of each benchmark")
    e.add_argument("--n", type=_positive_int, help="responses per problem (generation.n)")
    e.add_argument("--k", help="comma-separated k values shown in report.md (report.json has every k <= n)")
    e.add_argument("--temperature", type=float, help="sampling temperature (0: greedy)")
    e.add_argument("--max-new-tokens", type=_positive_int, help="generation budget per response")
    e.add_argument(
        "--instruction",
        help="text appended to each question (default: the \\boxed{} instruction; "
        "'' for none, e.g. for prompts that carry their own)",
    )
    e.add_argument("--backend", choices=["hf", "vllm"], help="hf: transformers (CPU / one GPU); vllm: the gpu extra")
    e.add_argument("--generations", help="score this JSONL instead of generating")
    e.add_argument("--response-key", help="field with the responses (default: responses)")
    e.add_argument("--answer-key", help="field with the reference answer (default: ground_truth, else answer)")
    e.add_argument("--question-key", help="field with the question (default: question)")
    e.add_argument(
        "--correct-key",
        help="field with per-response correctness; without it the verifier grades "
        "(and is compared with the file's own score/correct/is_correct field when there is one)",
    )
    e.add_argument("--verifier-score-key", help="field with per-response verifier scores (numbers or step lists)")
    e.add_argument("--second-response-key", help="field with second attempts, for self-correction metrics")
    e.add_argument(
        "--second-attempt",
        metavar="INSTRUCTION",
        help="self-correction: after each response ask again with INSTRUCTION ('default': SCoRe's, as in "
        "training) and report Accuracy@t1/t2, delta(t1,t2), delta i->c and c->i",
    )
    e.add_argument(
        "--aggregate",
        choices=["last", "min", "product", "mean", "max"],
        help="how per-step verifier scores become one (default: last)",
    )
    e.add_argument("--reward-model", help="sequence-classification reward model scoring responses for best-of-N")
    e.add_argument(
        "--genrm",
        help="generative verifier (a causal LM, hub name or directory) for best-of-N: "
        "p(Yes) to 'Is the answer correct (Yes/No)?'",
    )
    e.add_argument(
        "--genrm-rationales",
        type=int,
        help="GenRM-CoT: sampled verification rationales per response, p(Yes) averaged (default 0: direct)",
    )
    e.add_argument(
        "--process-verifier",
        help="PAV model directory (rl-pipeline pav; prover mu) for best-of-N: "
        "each step scores Q^pi + alpha * A^mu, --aggregate combines the step scores",
    )
    e.add_argument(
        "--process-base-verifier",
        help="PAV model labelled with the policy itself as prover "
        "(progress.prover_k 1): Q^pi (default: the process verifier's values stand in)",
    )
    e.add_argument("--process-alpha", type=float, help="weight of the prover's per-step advantage A^mu (default 1.0)")
    e.add_argument(
        "--search",
        choices=["bon", "weighted_bon", "beam", "dvts", "adaptive"],
        help="test-time search (search.strategy): bon / weighted_bon spend the budget on full samples, beam / dvts "
        "on a step-level tree guided by the step scorer; report.md names the pick and the tokens it cost",
    )
    e.add_argument(
        "--allocation",
        help="adaptive: rl-pipeline allocate's comparison.json; each problem's difficulty bin picks the strategy "
        "it found best at --budget",
    )
    e.add_argument(
        "--budget", type=_positive_int, help="search: samples, or continuations per step (search.budget, default 16)"
    )
    e.add_argument(
        "--beam-width",
        type=_positive_int,
        help="beam / dvts: continuations per beam per step, M; budget/M beams end as budget/M candidates (default 4)",
    )
    e.add_argument(
        "--search-scorer",
        choices=["pav", "orm", "genrm", "likelihood", "mc"],
        help="step scores for the search: pav (--process-verifier), orm (--reward-model at each step), genrm "
        "(--genrm at each step), likelihood (verifier-free: the policy's own probability of the path's least "
        "likely step so far), mc "
        "(the policy's own continuations checked against the reference answer: an oracle bound); default pav",
    )
    e.add_argument("--mode", choices=["strict", "lenient"], help="verifier mode (default: strict, \\boxed{} only)")
    e.add_argument("--workers", type=_positive_int, help="verifier worker processes")
    e.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    e.add_argument("--no-progress", action="store_true", help="no progress bars")
    e.add_argument(
        "--array-task",
        type=int,
        help="Slurm array task: only this benchmark (with --shards: this shard "
        "of one), into OUT/shards/<benchmark>[.<shard>]; slurm/evaluate.sbatch passes $SLURM_ARRAY_TASK_ID",
    )
    e.add_argument("--shards", type=_positive_int, default=1, help="with --array-task: array tasks per benchmark")
    e.add_argument(
        "--merge",
        action="store_true",
        help="one report in OUT from the finished OUT/shards/* of an array run (no model is loaded)",
    )

    cu = sub.add_parser(
        "curate",
        help="turn raw problem sources into a clean, verifiable, decontaminated RL set",
        description="Read every source (field mappings in the config), run the filters in the configured order, "
        "and write OUT/train.parquet and OUT/val.parquet (verl's schema), OUT/dropped.parquet (every dropped row "
        "with its filter and reason), OUT/report.md, OUT/report.json and OUT/drop_reasons.png. A re-run with the "
        "same config and unchanged inputs does nothing.",
        epilog="example: rl-pipeline curate --config configs/curate/shared.yaml --out runs/curated",
    )
    cu.add_argument(
        "--config", required=True, help="curation config YAML (see CurateConfig in pipeline/curate/config.py)"
    )
    cu.add_argument("--out", required=True, help="output directory")
    cu.add_argument("--no-progress", action="store_true", help="no progress bars")

    sb = sub.add_parser(
        "submit",
        help="submit a pipeline's stages to Slurm, chained with --dependency=afterok",
        description="Load a pipeline config (see PipelineConfig in pipeline/slurm.py), resolve and check every stage's "
        "config, write them to OUT/configs/, submit one sbatch job per stage (an evaluate stage: a job array and a "
        "merge job), each waiting for the ones before it, and print `<stage> <job id>` per job.",
        epilog="example: rl-pipeline submit --config configs/pipeline/demo.yaml --dry-run",
    )
    sb.add_argument("--config", required=True, help="pipeline config YAML (configs/pipeline/*.yaml)")
    sb.add_argument("--out", help="output directory (default: the config's `out`)")
    sb.add_argument(
        "--dry-run", action="store_true", help="print the sbatch commands, one per line; submit and write nothing"
    )
    sb.add_argument(
        "--sbatch",
        metavar="OPTIONS",
        help="sbatch options added to every job, last (so they win), e.g. --sbatch='--partition=debug --gres=none'",
    )

    c = sub.add_parser(
        "compare",
        help="put two evaluation runs side by side",
        description="Print a Markdown table of two evaluation runs' shared metrics per benchmark, with the "
        "difference B - A.",
    )
    c.add_argument("run_a", help="evaluation output directory (or its report.json)")
    c.add_argument("run_b", help="evaluation output directory (or its report.json)")
    c.add_argument("--k", help="comma-separated k values to show")
    c.add_argument("--out", help="also write the table to this file")

    al = sub.add_parser(
        "allocate",
        help="compare test-time search runs at equal compute and fit the difficulty-adaptive choice among them",
        description="Read finished `evaluate --search` runs on one split (several strategies at one or more "
        "budgets), bin the problems by difficulty (the process verifier's value of the bare question, no answer "
        "needed) and write OUT/report.md, OUT/comparison.json and OUT/accuracy_vs_tokens.png: each run's pick "
        "accuracy and generated tokens, overall and on the hardest bin, and per budget the adaptive allocation "
        "(each bin gets the strategy best on it), cross-fitted over two halves of the problems.",
        epilog="example: rl-pipeline allocate runs/search/bon_16 runs/search/beam_16 runs/search/dvts_16 "
        "--process-verifier runs/pav/model --out runs/search/allocation",
    )
    al.add_argument("runs", nargs="+", help="evaluate --search output directories, all on the same problems")
    al.add_argument(
        "--process-verifier", required=True, help="PAV model directory whose question values rank difficulty"
    )
    al.add_argument("--out", required=True, help="output directory")
    al.add_argument("--bins", type=_positive_int, default=3, help="difficulty bins (default 3)")
    al.add_argument("--device", default="auto", help="device of the process verifier (default: auto)")
    al.add_argument("--no-plots", action="store_true", help="skip the PNG plot")
    return p


def _positive_int(s: str) -> int:
    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {s!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {s!r}")
    return v


def _int_list(s: str | None, flag: str) -> list[int] | None:
    if not s:
        return None
    try:
        vals = [int(x) for x in s.split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"{flag}: expected comma-separated integers, got {s!r}") from None
    if any(v < 1 for v in vals):
        raise ConfigError(f"{flag}: values must be >= 1, got {s!r}")
    return vals


def cmd_demo(args: argparse.Namespace) -> int:
    from pipeline.config import load_config
    from pipeline.demo import DemoConfig, run_demo

    overrides = {"stages": [x.strip() for x in args.stages.split(",") if x.strip()]} if args.stages else None
    cfg = load_config(DemoConfig, args.config, overrides)
    run_demo(cfg, args.out)
    return 0


def cmd_synthetic(args: argparse.Namespace) -> int:
    from pathlib import Path

    from pipeline.config import TaskConfig, load_config
    from pipeline.demo import write_task_data

    cfg = load_config(TaskConfig, args.config)
    train, held = write_task_data(cfg, Path(args.out))
    print(f"wrote {train} ({cfg.train} rows)" + (f" and {held} ({cfg.heldout} rows)" if cfg.heldout else ""))
    return 0


def cmd_warmup(args: argparse.Namespace) -> int:
    from pipeline.config import load_config
    from pipeline.train.config import WarmupConfig
    from pipeline.train.sft import run_warmup

    run_warmup(load_config(WarmupConfig, args.config), args.out, progress=_progress(args))
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    import json

    from pipeline.config import load_config
    from pipeline.train.config import TrainConfig
    from pipeline.train.engine import TrainingStopped, train
    from rewards.ideas import active_summary, describe

    if args.list_rewards:
        print(describe())
        return 0
    missing = [flag for flag, value in (("--config", args.config), ("--out", args.out)) if not value]
    if missing:
        raise ConfigError(f"train needs {' and '.join(missing)} (see rl-pipeline train --help)")
    cfg = load_config(TrainConfig, args.config)
    if args.engine == "verl":
        return _train_verl(args, cfg)
    if args.dry_run or args.nnodes or args.gpus_per_node or args.override:
        raise ConfigError("--dry-run, --nnodes, --gpus-per-node and --override are for --engine verl")
    print(f"reward: {active_summary(cfg)}", file=sys.stderr)
    try:
        summary = train(cfg, args.out, resume=args.resume, progress=_progress(args))
    except TrainingStopped as e:
        print(f"error: {e}", file=sys.stderr)
        return 128 + e.signum
    print(json.dumps(summary, indent=2))
    return 0


def _train_verl(args: argparse.Namespace, cfg) -> int:
    from pipeline.train import verl_engine

    cluster = verl_engine.cluster_from_env(args.nnodes, args.gpus_per_node)
    launch = verl_engine.build_launch(cfg, args.out, cluster=cluster, resume=args.resume, extra=args.override)
    if not args.dry_run:
        run = verl_engine.existing_run(args.out)
        if run is not None and not args.resume:
            raise ConfigError(
                f"{args.out} already holds a verl run ({run}); pass --resume to continue it or choose another --out"
            )
        verl_engine.check_runtime()
        verl_engine.validate(launch)
    from rewards.ideas import active_summary

    print(f"reward: {active_summary(cfg)}", file=sys.stderr)
    for note in launch.notes:
        print(f"note: {note}", file=sys.stderr)
    if args.dry_run:
        print(launch.render(), end="")
        return 0
    return verl_engine.run(launch)


def cmd_pav(args: argparse.Namespace) -> int:
    import json

    from pipeline.config import load_config
    from pipeline.train.config import PAVConfig
    from pipeline.train.pav import run_pav

    print(json.dumps(run_pav(load_config(PAVConfig, args.config), args.out), indent=2))
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    import os

    from pipeline.config import load_config
    from pipeline.evaluate.config import EvalConfig
    from pipeline.evaluate.run import evaluate

    o: dict = {}

    def put(path: str, value) -> None:
        if value is None:
            return
        *parents, leaf = path.split(".")
        d = o
        for p in parents:
            d = d.setdefault(p, {})
        d[leaf] = value

    cwd = os.getcwd()
    absolute = lambda v: v if v is None or os.path.isabs(v) else os.path.join(cwd, v)  # noqa: E731
    put("model.path", args.model if args.model is None or not os.path.exists(args.model) else absolute(args.model))
    put("benchmarks", [b.strip() for b in args.benchmarks.split(",") if b.strip()] if args.benchmarks else None)
    put("data_dir", absolute(args.data_dir))
    put("limit", args.limit)
    put("generation.n", args.n)
    put("generation.temperature", args.temperature)
    put("generation.max_new_tokens", args.max_new_tokens)
    put("generation.backend", args.backend)
    put("instruction", args.instruction)
    put("generations", absolute(args.generations))
    put("keys.response", args.response_key)
    put("keys.answer", args.answer_key)
    put("keys.question", args.question_key)
    put("keys.correct", args.correct_key)
    put("keys.verifier_score", args.verifier_score_key)
    put("keys.second_response", args.second_response_key)
    put("second_attempt", args.second_attempt)
    put("aggregate", args.aggregate)
    put("reward_model", args.reward_model)
    put("genrm", absolute(args.genrm) if args.genrm and os.path.exists(args.genrm) else args.genrm)
    put("genrm_rationales", args.genrm_rationales)
    put("process_verifier", args.process_verifier)
    put("process_base_verifier", args.process_base_verifier)
    put("process_alpha", args.process_alpha)
    put("search.strategy", args.search)
    put("search.budget", args.budget)
    put("search.beam_width", args.beam_width)
    put("search.scorer", args.search_scorer)
    put("search.allocation", absolute(args.allocation))
    put("verifier.mode", args.mode)
    put("verifier.workers", args.workers)
    put("ks", _int_list(args.k, "--k"))
    if args.no_plots:
        put("plots", False)
    cfg = load_config(EvalConfig, args.config, o)
    log = lambda m: print(m, file=sys.stderr)  # noqa: E731
    if args.merge or args.array_task is not None:  # a Slurm array's task or its merge step
        from pipeline.slurm import eval_task, merge_eval

        if args.merge and args.array_task is not None:
            raise ConfigError("--merge and --array-task: choose one")
        if args.merge:
            merge_eval(cfg, args.out, progress=_progress(args), log=log)
        else:
            eval_task(cfg, args.out, args.array_task, args.shards, progress=_progress(args), log=log)
        return 0
    evaluate(cfg, args.out, progress=_progress(args), log=log)
    return 0


def cmd_curate(args: argparse.Namespace) -> int:
    from pipeline.config import load_config
    from pipeline.curate.config import CurateConfig
    from pipeline.curate.run import curate

    curate(
        load_config(CurateConfig, args.config),
        args.out,
        progress=_progress(args),
        log=lambda m: print(m, file=sys.stderr),
    )
    return 0


def cmd_submit(args: argparse.Namespace) -> int:
    from pipeline.slurm import run_submit

    return run_submit(args.config, out=args.out, dry_run=args.dry_run, sbatch_args=args.sbatch)


def cmd_compare(args: argparse.Namespace) -> int:
    from data.io import atomic_writer
    from pipeline.evaluate.report import compare_markdown, load_report, run_name

    table = compare_markdown(
        load_report(args.run_a),
        load_report(args.run_b),
        run_name(args.run_a),
        run_name(args.run_b),
        _int_list(args.k, "--k"),
    )
    print(table, end="")
    if args.out:
        with atomic_writer(args.out) as f:
            f.write(table)
    return 0


def cmd_allocate(args: argparse.Namespace) -> int:
    from pipeline.evaluate.allocation import compare_runs, run_difficulty, run_picks, write_comparison

    runs = [run_picks(r) for r in args.runs]
    result = compare_runs(runs, run_difficulty(runs[0], args.process_verifier, device=args.device), args.bins)
    write_comparison(result, args.out, plots=not args.no_plots)
    for name, r in sorted(result["runs"].items(), key=lambda kv: (kv[1]["budget"], kv[1]["strategy"])):
        print(f"{name}: accuracy {100 * r['acc']:.1f}% at {r['tokens']:.0f} tokens per problem")
    for budget, a in result["adaptive"].items():
        print(f"adaptive@{budget}: accuracy {100 * a['acc']:.1f}% at {a['tokens']:.0f} tokens per problem")
    return 0


COMMANDS = {
    "demo": cmd_demo,
    "synthetic": cmd_synthetic,
    "warmup": cmd_warmup,
    "train": cmd_train,
    "evaluate": cmd_evaluate,
    "submit": cmd_submit,
    "compare": cmd_compare,
    "allocate": cmd_allocate,
    "curate": cmd_curate,
    "pav": cmd_pav,
}


def main(argv: list[str] | None = None) -> int:
    from pipeline.models.policy import PolicyLoadError

    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except (ConfigError, InputError, PolicyLoadError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
