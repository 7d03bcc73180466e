"""``python -m pipeline``: one subcommand per stage, each a thin layer over a library.

    python -m pipeline demo --config configs/demo.yaml --out runs/demo
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
    return p


def cmd_demo(args: argparse.Namespace) -> int:
    from pipeline.config import DemoConfig, load_config
    from pipeline.demo import run_demo

    cfg = load_config(DemoConfig, args.config)
    run_demo(cfg, args.out)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return {"demo": cmd_demo}[args.command](args)
    except (ConfigError, InputError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
