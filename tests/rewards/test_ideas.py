"""The registry of reward ideas (rewards/ideas.py): every per-response term and the step- and
turn-level ideas in one list, what a config turns on, and where a misplaced idea is set."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.config import ConfigError, load_config
from pipeline.train.config import TrainConfig
from rewards.ideas import LEVELS, active_ideas, active_summary, describe, reward_ideas
from rewards.terms import TERMS, register_term


def test_every_reward_term_and_both_other_levels_are_listed():
    ideas = reward_ideas()
    assert {n for n, i in ideas.items() if i.level == "response"} == set(TERMS)
    assert ideas["progress"].level == "step" and ideas["self_correction"].level == "turn"
    assert {i.level for i in ideas.values()} == set(LEVELS)
    for idea in ideas.values():
        __import__(idea.module)  # the pure part is where the registry says
        assert idea.summary and "``" not in idea.summary
    assert ideas["alp"].config == "reward.terms.alp" and ideas["alp"].summary.startswith("ALP")


def test_a_plugin_term_is_listed_once_registered():
    @register_term("test_constant_bonus")
    def constant(batch, *, value: float = 0.1) -> np.ndarray:
        """A constant bonus: for the registry test."""
        return np.full(len(batch.correct), value)

    try:
        idea = reward_ideas()["test_constant_bonus"]
        assert (idea.level, idea.summary, idea.module) == ("response", "A constant bonus", __name__)
        assert "test_constant_bonus" in describe()
    finally:
        del TERMS["test_constant_bonus"]


def _cfg(tmp_path, text: str) -> TrainConfig:
    path = tmp_path / "t.yaml"
    path.write_text("model: {path: m}\ndata: {train_files: [t.parquet]}\n" + text)
    return load_config(TrainConfig, path)


def test_active_ideas_follow_the_config_level_by_level(tmp_path):
    plain = _cfg(tmp_path, "")
    assert [i.name for i in active_ideas(plain)] == ["outcome"]
    assert active_summary(plain) == "outcome (response)"
    both = _cfg(
        tmp_path,
        "reward: {terms: {outcome: {weight: 1.0}, overlong: {cache: 4}}}\n"
        "progress: {enabled: true}\nself_correction: {enabled: true}\n",
    )
    assert [i.name for i in active_ideas(both)] == ["outcome", "overlong", "progress", "self_correction"]
    assert active_summary(both) == "outcome + overlong (response), progress (step), self_correction (turn)"


@pytest.mark.parametrize(("name", "section"), [("progress", "progress"), ("self_correction", "self_correction")])
def test_a_step_or_turn_idea_under_reward_terms_says_where_it_goes(tmp_path, name, section):
    with pytest.raises(ConfigError, match=rf"{name} is a \w+-level reward idea.*set {section}.enabled: true"):
        _cfg(tmp_path, f"reward: {{terms: {{outcome: {{}}, {name}: {{weight: 1.0}}}}}}\n")
