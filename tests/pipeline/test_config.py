"""The config loader: nested sections keep their own defaults, overrides merge, typed lists."""

import pytest

from pipeline.config import ConfigError, load_config
from pipeline.evaluate.config import EvalConfig
from pipeline.train.config import WarmupConfig


def test_a_partial_nested_section_keeps_that_sections_own_defaults(tmp_path):
    cfg = tmp_path / "e.yaml"
    cfg.write_text("generation: {n: 16}\n")
    e = load_config(EvalConfig, cfg)
    # EvalConfig's generation defaults (temperature 0.6, 1024 tokens), not RolloutConfig's class defaults
    assert (e.generation.n, e.generation.temperature, e.generation.max_new_tokens) == (16, 0.6, 1024)
    w = load_config(WarmupConfig, None, {"optim": {"lr": 1e-3}})
    assert (w.optim.lr, w.optim.schedule, w.optim.warmup_steps) == (1e-3, "cosine", 20)


def test_overrides_merge_into_nested_sections_and_validate(tmp_path):
    cfg = tmp_path / "e.yaml"
    cfg.write_text("keys: {response: response, answer: gt}\nks: [1, 4]\n")
    e = load_config(EvalConfig, cfg, {"keys": {"correct": "score"}})
    assert (e.keys.response, e.keys.answer, e.keys.correct) == ("response", "gt", "score")
    assert e.ks == [1, 4]
    with pytest.raises(ConfigError, match=r"ks\[0\]: expected int, got four"):
        load_config(EvalConfig, None, {"ks": ["four"]})
    with pytest.raises(ConfigError, match="aggregate must be one of"):
        load_config(EvalConfig, None, {"aggregate": "median"})
    with pytest.raises(ConfigError, match=r"generation: unknown key\(s\) \['rollout'\]"):
        load_config(EvalConfig, None, {"generation": {"rollout": 1}})


def test_local_model_paths_resolve_against_the_config_file_and_hub_names_stay(tmp_path):
    from pipeline.config import load_config
    from pipeline.train.config import TrainConfig

    (tmp_path / "models" / "warm").mkdir(parents=True)
    (tmp_path / "configs").mkdir()
    f = tmp_path / "configs" / "t.yaml"
    f.write_text("model: {path: ../models/warm}\nprogress: {pav_model: ../models/pav}\n")
    cfg = load_config(TrainConfig, f)
    assert cfg.model.path == str(tmp_path / "models" / "warm")
    assert cfg.progress.pav_model == str(tmp_path / "models" / "pav")  # ./ or ../: a path even before it exists
    f.write_text("model: {path: Qwen/Qwen2.5-Math-1.5B}\n")
    assert load_config(TrainConfig, f).model.path == "Qwen/Qwen2.5-Math-1.5B"


@pytest.mark.parametrize(
    "algorithm, ok",
    [
        ({}, False),  # GRPO divides by each group's std
        ({"adv_estimator": "grpo_passk"}, False),
        ({"norm_adv_by_std": False}, True),  # Dr.GRPO
        ({"adv_estimator": "rloo"}, True),  # leave-one-out mean, no std
    ],
)
def test_alp_under_a_per_group_std_is_refused_with_what_to_set(algorithm, ok):
    from pipeline.train.config import TrainConfig

    terms = {"outcome": {"weight": 1.0}, "alp": {"beta": 0.5}}
    data = {"reward": {"terms": terms}, "algorithm": algorithm}
    if ok:
        assert load_config(TrainConfig, None, data).reward.terms == terms
        return
    with pytest.raises(ConfigError, match="norm_adv_by_std: false \\(Dr.GRPO\\) or algorithm.adv_estimator: rloo"):
        load_config(TrainConfig, None, data)
    load_config(TrainConfig, None, {"reward": {"terms": {"outcome": {}, "length": {"alpha": 0.5}}}})  # uniform: fine


def test_types_are_checked_per_key_and_yaml_numbers_convert(tmp_path):
    from pipeline.train.config import TrainConfig

    f = tmp_path / "t.yaml"
    f.write_text("optim: {lr: 2e-4}\nrollout: {temperature: 1}\ndata: {train_files: a.jsonl}\n")
    cfg = load_config(TrainConfig, f)  # YAML reads 2e-4 as a string; one file where a list goes
    assert (cfg.optim.lr, cfg.rollout.temperature, cfg.data.train_files) == (2e-4, 1.0, [str(tmp_path / "a.jsonl")])
    with pytest.raises(ConfigError, match="rollout.n: expected int, got True"):
        load_config(TrainConfig, None, {"rollout": {"n": True}})
    with pytest.raises(ConfigError, match="rollout.n: expected int, got 2.5"):
        load_config(TrainConfig, None, {"rollout": {"n": 2.5}})
    with pytest.raises(ConfigError, match=r"optim: unknown key\(s\) \['lrr'\]; valid keys: \[.*'lr'"):
        load_config(TrainConfig, None, {"optim": {"lrr": 1}})
    with pytest.raises(ConfigError, match="rollout: expected a mapping, got int"):
        load_config(TrainConfig, None, {"rollout": 3})


def test_a_free_form_mapping_is_replaced_not_merged_into_its_default():
    from pipeline.train.config import TrainConfig

    terms = {"alp": {"beta": 0.5}}  # the default holds outcome; the user's terms replace it
    cfg = load_config(TrainConfig, None, {"reward": {"terms": terms}, "algorithm": {"norm_adv_by_std": False}})
    assert cfg.reward.terms == terms
    assert load_config(TrainConfig, None).reward.terms == {"outcome": {"weight": 1.0}}


def test_strings_are_taken_as_written_not_interpolated(tmp_path):
    f = tmp_path / "e.yaml"
    f.write_text('instruction: "Answer in ${x} and \\\\boxed{}"\n')
    assert load_config(EvalConfig, f).instruction == "Answer in ${x} and \\boxed{}"
