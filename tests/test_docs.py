"""The config reference (docs/config.md) is generated from the config dataclasses: keep it in sync."""

from pathlib import Path

import pytest

from pipeline import config

README = (Path(__file__).resolve().parents[1] / "docs" / "config.md").read_text()


@pytest.mark.parametrize(
    "name", ["TrainConfig", "WarmupConfig", "PAVConfig", "TaskConfig", "EvalConfig", "CurateConfig", "SourceConfig"]
)
def test_reference_tables_match_the_dataclasses(name):
    table = config.reference_markdown(getattr(config, name))
    assert table in README, (
        f"docs/config.md's {name} table is stale: regenerate with `python -m pipeline.config {name}`"
    )


def test_every_key_has_an_explanation():
    for name in (
        "TrainConfig",
        "WarmupConfig",
        "PAVConfig",
        "TaskConfig",
        "EvalConfig",
        "CurateConfig",
        "SourceConfig",
        "DemoConfig",
    ):
        for row in config.reference_markdown(getattr(config, name)).splitlines()[2:]:
            assert not row.endswith("|  |"), f"{name}: {row} has no comment in pipeline/config.py"
