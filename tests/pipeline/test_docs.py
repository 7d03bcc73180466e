"""The generated parts of the docs stay in sync: the config reference (docs/config.md) with the
stages' schemas, the reward-idea table (docs/training.md) with the registry."""

import importlib
from pathlib import Path

import pytest

from pipeline.config import reference_markdown

README = (Path(__file__).resolve().parents[2] / "docs" / "config.md").read_text()
SCHEMAS = [
    "pipeline.train.config.TrainConfig",
    "pipeline.train.config.WarmupConfig",
    "pipeline.train.config.PAVConfig",
    "pipeline.config.TaskConfig",
    "pipeline.evaluate.config.EvalConfig",
    "pipeline.curate.config.CurateConfig",
    "pipeline.curate.config.SourceConfig",
]


def _schema(dotted: str):
    module, _, name = dotted.rpartition(".")
    return getattr(importlib.import_module(module), name)


@pytest.mark.parametrize("dotted", SCHEMAS)
def test_reference_tables_match_the_dataclasses(dotted):
    assert reference_markdown(_schema(dotted)) in README, (
        f"docs/config.md's {dotted} table is stale: regenerate with `python -m pipeline.config {dotted}`"
    )


def test_every_key_has_an_explanation():
    for dotted in [*SCHEMAS, "pipeline.demo.DemoConfig"]:
        for row in reference_markdown(_schema(dotted)).splitlines()[2:]:
            assert not row.endswith("|  |"), f"{dotted}: {row} has no comment in its schema"


def test_the_training_docs_show_the_registry():
    from rewards.ideas import describe

    docs = (Path(__file__).resolve().parents[2] / "docs" / "training.md").read_text()
    assert describe() in docs, "docs/training.md's reward-idea table is stale: paste `rl-pipeline train --list-rewards`"
