"""The verl parquet schema: synthetic rows, reading, and verl's own dataset class on our files."""

import random
from fractions import Fraction

import pandas as pd
import pytest

from data.formats import read_rl_rows, synthetic_rows, write_parquet
from data.io import InputError
from data.synthetic import flawed_steps, make_problem, slipped_steps, worked_solution


def _wrong_lines(lines):
    """Indices of the step lines ("a op b = c") whose arithmetic is wrong."""
    out = []
    for i, line in enumerate(lines):
        lhs, rhs = line.split(" = ")
        a, op, b = lhs.split(" ")
        if {"+": Fraction(a) + int(b), "-": Fraction(a) - int(b), "*": Fraction(a) * int(b)}[op] != Fraction(rhs):
            out.append(i)
    return out


def test_flawed_steps_carry_one_slip_through():
    rng = random.Random(0)
    for _ in range(50):
        p = make_problem(rng, steps=3, max_operand=9, ops=("+", "-", "*"))
        bad, lines, value = flawed_steps(p, rng)
        assert value != p.value
        assert _wrong_lines(lines) == [bad]  # only the slip is wrong arithmetic
        assert lines[:bad] == p.steps[:bad]


def test_slipped_steps_slip_each_step_independently():
    rng = random.Random(0)
    counts = [0] * 5
    for _ in range(400):
        p = make_problem(rng, steps=5, max_operand=9, ops=("+", "-"))
        bad, lines, value = slipped_steps(p, rng, 0.4)
        assert _wrong_lines(lines) == list(bad)  # the slips, and only they, are wrong arithmetic
        assert (value == p.value) == (not bad) or len(bad) > 1  # several slips can cancel out
        for i in bad:
            counts[i] += 1
    assert all(120 <= c <= 200 for c in counts)  # ~160 per step at rate 0.4
    p = make_problem(rng, steps=5, max_operand=9, ops=("+", "-"))
    assert slipped_steps(p, rng, 0.0)[1] == p.steps


def test_step_slip_rate_makes_long_chains_mostly_wrong():
    rows = synthetic_rows(400, seed=0, split="train", steps=5, max_operand=9, ops=("+", "-"), step_slip_rate=0.4)
    right = sum(r["extra_info"]["solution_correct"] for r in rows)
    assert 30 <= right <= 95  # 0.6**5 = 0.08 of them slip nowhere, plus slips that cancel
    assert synthetic_rows(50, seed=0, split="train", steps=5) == synthetic_rows(
        50, seed=0, split="train", steps=5, step_slip_rate=0.0
    )


def test_error_rate_sets_the_share_of_flawed_solutions():
    rows = synthetic_rows(400, seed=0, split="train", error_rate=0.25)
    flawed = sum(not r["extra_info"]["solution_correct"] for r in rows)
    assert 70 <= flawed <= 130
    assert len({r["extra_info"]["question"] for r in rows}) == 400
    text, ok = worked_solution(make_problem(random.Random(1)), random.Random(2), 0.0)
    assert ok and text.endswith("}.")


def test_heldout_split_is_disjoint():
    train = synthetic_rows(300, seed=0, split="train")
    held = synthetic_rows(50, seed=1, split="test", exclude={r["extra_info"]["question"] for r in train})
    assert not {r["extra_info"]["question"] for r in train} & {r["extra_info"]["question"] for r in held}


def test_parquet_round_trip(tmp_path):
    rows = synthetic_rows(5, seed=0, split="train", error_rate=0.5)
    write_parquet(rows, tmp_path / "t.parquet")
    back = read_rl_rows(tmp_path / "t.parquet")
    assert [r.ground_truth for r in back] == [r["reward_model"]["ground_truth"] for r in rows]
    assert back[0].messages == rows[0]["prompt"] and back[0].solution == rows[0]["extra_info"]["solution"]
    assert [r.index for r in back] == list(range(5))


def test_verls_dataset_reads_our_parquet(task_files):
    from omegaconf import OmegaConf
    from verl.utils.dataset.rl_dataset import RLHFDataset

    from pipeline.models.policy import load_tokenizer

    tok = load_tokenizer(str(task_files["model"]))
    cfg = OmegaConf.create(
        {
            "prompt_key": "prompt",
            "max_prompt_length": 256,
            "filter_overlong_prompts": True,
            "truncation": "error",
            "return_raw_chat": True,
            "reward_fn_key": "data_source",
        }
    )
    ds = RLHFDataset(data_files=[str(task_files["train"])], tokenizer=tok, config=cfg)
    assert len(ds) == 64
    item = ds[0]
    assert item["raw_prompt"][0]["role"] == "user"
    assert item["reward_model"]["ground_truth"] == read_rl_rows(task_files["train"])[0].ground_truth


@pytest.mark.parametrize(
    "frame, message",
    [
        (pd.DataFrame({"x": [1]}), "missing column(s) ['prompt', 'reward_model']"),
        (pd.DataFrame({"prompt": ["hi"], "reward_model": [{"style": "rule"}]}), "ground_truth` is missing"),
        (pd.DataFrame({"prompt": [[]], "reward_model": [{"ground_truth": "1"}]}), "list of {role, content}"),
    ],
)
def test_bad_rows_are_named(tmp_path, frame, message):
    p = tmp_path / "bad.parquet"
    frame.to_parquet(p)
    with pytest.raises(InputError) as e:
        read_rl_rows(p)
    assert message in str(e.value) and "row 0" in str(e.value)


def test_unreadable_files(tmp_path):
    (tmp_path / "x.parquet").write_text("not parquet")
    with pytest.raises(InputError, match="cannot read"):
        read_rl_rows(tmp_path / "x.parquet")
    with pytest.raises(InputError, match="no such file"):
        read_rl_rows(tmp_path / "missing.parquet")
    with pytest.raises(InputError, match="expected .parquet"):
        (tmp_path / "a.csv").write_text("a")
        read_rl_rows(tmp_path / "a.csv")


def test_direct_answers_state_the_answer_with_no_working():
    direct = synthetic_rows(200, seed=3, split="train", steps=3, ops=("+", "-"), error_rate=0.3, direct_rate=0.5)
    bare = [r for r in direct if " = " not in r["extra_info"]["solution"]]
    worked = [r for r in direct if " = " in r["extra_info"]["solution"]]
    assert 75 <= len(bare) <= 125
    assert sum(not r["extra_info"]["solution_correct"] for r in worked) > 15  # worked ones still slip
    wrong = 0
    for r in bare:
        truth = r["reward_model"]["ground_truth"]
        stated = r["extra_info"]["solution"].removeprefix("The answer is \\boxed{").removesuffix("}.")
        assert r["extra_info"]["solution_correct"] == (stated == truth)
        wrong += stated != truth
    assert 10 <= wrong <= 50  # direct guesses are off by a little at error_rate too
    clean = synthetic_rows(80, seed=3, split="train", steps=3, ops=("+", "-"), direct_rate=0.5)
    assert all(r["extra_info"]["solution_correct"] for r in clean)


def test_second_attempt_target_repeats_or_redoes_carefully():
    kw = dict(seed=0, split="train", error_rate=0.5, second_attempt_rate=1.0, second_instruction="Again.")
    repeat = synthetic_rows(50, second_repeat_rate=1.0, **kw)
    for r in repeat:
        assert r["prompt"][1] == {"role": "assistant", "content": r["extra_info"]["solution"]}
        assert r["extra_info"]["solution_correct"] == r["extra_info"]["first_attempt_correct"]
    careful = synthetic_rows(50, second_error_rate=0.0, **kw)
    assert all(r["extra_info"]["solution_correct"] for r in careful)
    assert sum(not r["extra_info"]["first_attempt_correct"] for r in careful) > 10
    mixed = synthetic_rows(200, second_repeat_rate=0.75, second_error_rate=0.0, **kw)
    repeated = sum(r["prompt"][1]["content"] == r["extra_info"]["solution"] for r in mixed)
    assert 120 <= repeated <= 185  # 75% repeated, plus a few careful redos that equal a right first attempt
    assert all(
        r["extra_info"]["solution_correct"] for r in mixed if r["prompt"][1]["content"] != r["extra_info"]["solution"]
    )
