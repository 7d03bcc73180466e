"""``python -m pipeline``: one subcommand per stage, each a thin layer over a library.

    python -m pipeline demo      --config configs/demo.yaml --out runs/demo
    python -m pipeline synthetic --config configs/task/arithmetic.yaml --out runs/task
    python -m pipeline warmup    --config configs/warmup/tiny.yaml --out runs/warmup
    python -m pipeline train     --config configs/train/tiny.yaml --out runs/grpo [--resume]
"""

from __future__ import annotations

import argparse
import sys

from data.io import InputError
from pipeline.config import ConfigError


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m pipeline", description="RL post-training pipeline for math reasoning models.")
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser(
        "demo",
        help="run the embedded CPU demo and write summary.json",
        description="Run every stage that exists on small data (self-generated; plus ../shared/data when present) "
        "and write OUT/summary.json with each stage's headline figures.",
    )
    d.add_argument("--config", default=None, help="demo config YAML (default: built-in defaults)")
    d.add_argument("--out", default=None, help="output directory (default: the config's `out`)")
    d.add_argument("--stages", default=None, help="comma-separated demo parts to run (default: the config's `stages`: "
                   "verifier,train)")

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
    w.add_argument("--config", required=True, help="warm-up config YAML (see WarmupConfig in pipeline/config.py)")
    w.add_argument("--out", required=True, help="output directory")
    w.add_argument("--no-progress", action="store_true", help="no progress bar")

    t = sub.add_parser(
        "train",
        help="GRPO-style RL on one process (CPU or one GPU)",
        description="RL with verifier rewards and verl's advantage estimators and policy losses. Writes "
        "OUT/metrics.jsonl, OUT/tensorboard/, OUT/checkpoints/ (every save_every steps), OUT/model and "
        "OUT/summary.json. --resume continues a killed run exactly from its last checkpoint.",
    )
    t.add_argument("--config", required=True, help="train config YAML (see TrainConfig in pipeline/config.py)")
    t.add_argument("--out", required=True, help="output directory")
    t.add_argument("--resume", action="store_true", help="continue from OUT/checkpoints/latest")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def cmd_demo(args: argparse.Namespace) -> int:
    from pipeline.config import DemoConfig, load_config
    from pipeline.demo import run_demo

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
    from pipeline.config import WarmupConfig, load_config
    from pipeline.train.sft import run_warmup

    run_warmup(load_config(WarmupConfig, args.config), args.out, progress=not args.no_progress)
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    import json

    from pipeline.config import TrainConfig, load_config
    from pipeline.train.engine import train

    summary = train(load_config(TrainConfig, args.config), args.out, resume=args.resume, progress=not args.no_progress)
    print(json.dumps(summary, indent=2))
    return 0


COMMANDS = {"demo": cmd_demo, "synthetic": cmd_synthetic, "warmup": cmd_warmup, "train": cmd_train}


def main(argv: list[str] | None = None) -> int:
    from pipeline.train.policy import PolicyLoadError

    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except (ConfigError, InputError, PolicyLoadError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
