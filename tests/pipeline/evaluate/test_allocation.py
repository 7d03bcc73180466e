"""Compute-optimal allocation (pipeline/evaluate/allocation.py): per difficulty bin the strategy
best on it, applied to other problems; cross-fitting never lets a problem choose its own
strategy; `rl-pipeline allocate` over real search runs."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

from data.io import InputError
from pipeline.evaluate.allocation import apply_allocation, assign, bin_edges, compare_runs, fit_allocation


def test_bins_cut_at_quantiles_easiest_first():
    d = np.arange(9) / 10
    edges = bin_edges(d, 3)
    assert assign(d, edges).tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert assign([-1.0, 5.0], edges).tolist() == [0, 2]  # outside the fitted range: the end bins


def test_each_bin_gets_its_best_strategy_and_a_tie_goes_to_the_cheaper():
    bins = [0, 0, 1, 1, 2, 2]
    correct = {
        "bon": np.array([1, 1, 0, 0, 1, 0], bool),
        "beam": np.array([1, 0, 1, 1, 1, 0], bool),
    }
    tokens = {"bon": np.full(6, 100.0), "beam": np.full(6, 80.0)}
    table = fit_allocation(correct, tokens, bins)
    assert table == {0: "bon", 1: "beam", 2: "beam"}  # bin 2: a tie, beam is cheaper
    acc, spent = apply_allocation(table, bins, correct, tokens)
    assert acc == pytest.approx(5 / 6) and spent == pytest.approx((2 * 100 + 4 * 80) / 6)
    # question 1 sits in a bin the table lacks: the fallback answers it (beam: wrong on question 1)
    assert apply_allocation({0: "bon"}, [0, 3], correct, tokens, fallback="beam") == (0.5, 90.0)


def _run(name, correct, tokens, ids=None):
    s, b = name.split("@")
    return {
        "name": name,
        "strategy": s,
        "budget": int(b),
        "ids": ids or [("t", str(i)) for i in range(len(correct))],
        "correct": np.asarray(correct, bool),
        "tokens": np.asarray(tokens, float),
    }


def test_cross_fitted_adaptive_choice_beats_each_fixed_strategy_where_they_split_by_difficulty():
    hard = np.array([0.1, 0.1, 0.9, 0.9] * 3)  # easy and hard problems interleaved, so both folds see both
    easy_right = hard < 0.5
    runs = [_run("bon@8", easy_right, np.full(12, 50.0)), _run("beam@8", ~easy_right, np.full(12, 70.0))]
    out = compare_runs(runs, hard, bins=2)
    assert out["runs"]["bon@8"]["acc"] == 0.5 and out["runs"]["beam@8"]["acc"] == 0.5
    assert out["runs"]["beam@8"]["acc_hardest"] == 1.0 and out["runs"]["bon@8"]["acc_hardest"] == 0.0
    a = out["adaptive"]["8"]
    assert a["acc"] == 1.0 and a["tokens"] == pytest.approx(60.0)
    assert [f["strategies"] for f in a["folds"]] == [{"0": "bon@8", "1": "beam@8"}] * 2
    # where the fold fitted on the even problems saw no difference, the odd ones get its tie-break (cheaper)
    flat = compare_runs(
        [_run("bon@8", np.ones(12), np.full(12, 50.0)), _run("beam@8", np.ones(12), np.full(12, 70.0))], hard, 2
    )
    assert flat["adaptive"]["8"]["tokens"] == 50.0


def test_the_plot_draws_one_curve_per_setting_across_budgets():
    from pipeline.evaluate.allocation import budget_curves

    hard = np.linspace(0, 1, 12)
    runs = []
    for n, tok in ((4, 10.0), (8, 20.0)):
        for name, right in ((f"beam@{n}/M4", 6), (f"beam@{n}/M4:likelihood", 9), (f"bon@{n}", 3)):
            runs.append(_run(f"{name.split('@')[0]}@{n}", np.arange(12) < right, np.full(12, tok)) | {"name": name})
    curves = budget_curves(compare_runs(runs, hard, bins=2))
    # beam by two scorers stays two curves: one strategy's runs never zigzag between scorers
    assert curves["beam/M4"] == [(10.0, 50.0), (20.0, 50.0)]
    assert curves["beam/M4:likelihood"] == [(10.0, 75.0), (20.0, 75.0)]
    assert curves["bon"] == [(10.0, 25.0), (20.0, 25.0)] and len(curves["adaptive"]) == 2


def test_runs_on_other_problems_are_refused():
    a = _run("bon@4", [1, 0], [1, 1])
    b = _run("beam@4", [1, 0], [1, 1], ids=[("t", "0"), ("t", "9")])
    with pytest.raises(InputError, match="other problems"):
        compare_runs([a, b], [0.1, 0.2])


@pytest.mark.slow
def test_allocate_over_real_search_runs(task_files, tmp_path):
    from pipeline.evaluate.allocation import run_picks
    from pipeline.models.policy import load_policy
    from pipeline.models.value_model import ValueModel, save_value_model
    from tests.pipeline.evaluate.test_evaluate import run

    lm, tok = load_policy(str(task_files["model"]))
    save_value_model(ValueModel(copy.deepcopy(lm)), tok, tmp_path / "pav", {"split": "lines", "max_steps": 8})
    common = [
        "--model",
        str(task_files["model"]),
        "--benchmarks",
        str(task_files["heldout"]),
        "--temperature",
        "1.0",
        "--max-new-tokens",
        "10",
        "--budget",
        "2",
        "--beam-width",
        "2",
        "--process-verifier",
        str(tmp_path / "pav"),
        "--workers",
        "1",
        "--no-progress",
        "--no-plots",
    ]
    for s in ("bon", "dvts"):  # dvts guided by the policy's own likelihood: the table mixes step scorers
        scorer = ["--search-scorer", "likelihood"] if s == "dvts" else []
        r = run("evaluate", "--search", s, *scorer, *common, "--out", str(tmp_path / s))
        assert r.returncode == 0, r.stderr
    r = run(
        "allocate",
        str(tmp_path / "bon"),
        str(tmp_path / "dvts"),
        "--process-verifier",
        str(tmp_path / "pav"),
        "--bins",
        "2",
        "--out",
        str(tmp_path / "alloc"),
    )
    assert r.returncode == 0, r.stderr
    result = json.loads((tmp_path / "alloc" / "comparison.json").read_text())
    for s in ("bon", "dvts"):
        picks = run_picks(tmp_path / s)
        name = {"bon": "bon@2", "dvts": "dvts@2/M2:likelihood"}[s]
        assert picks["name"] == name
        assert result["runs"][name]["acc"] == pytest.approx(picks["correct"].mean())
        assert result["runs"][name]["tokens"] == pytest.approx(picks["tokens"].mean())
        report = json.loads((tmp_path / s / "report.json").read_text())
        assert 100 * picks["correct"].mean() == pytest.approx(report["search"]["accuracy"])  # the report's own pick
    assert "2" in result["adaptive"] and (tmp_path / "alloc" / "accuracy_vs_tokens.png").is_file()
    assert "| dvts@2/M2:likelihood |" in (tmp_path / "alloc" / "report.md").read_text()

    # the fitted table applied: each problem's bin picks a run's strategy, and only its pick is kept
    from pipeline.evaluate.allocation import assign, run_difficulty

    apply = result["adaptive"]["2"]["apply"]
    alloc = str(tmp_path / "alloc" / "comparison.json")
    r = run("evaluate", "--search", "adaptive", "--allocation", alloc, *common, "--out", str(tmp_path / "adaptive"))
    assert r.returncode == 0, r.stderr
    rows = [json.loads(x) for x in (tmp_path / "adaptive" / "generations" / "heldout.jsonl").read_text().splitlines()]
    bins = assign(run_difficulty(run_picks(tmp_path / "bon"), str(tmp_path / "pav")), apply["edges"])
    for row, b in zip(rows, bins, strict=True):
        chosen = apply["choices"][str(int(b))]
        assert row["search"]["bin"] == b and row["search"]["chosen"] == chosen["run"]
        assert chosen["scorer"] == ("likelihood" if chosen["strategy"] == "dvts" else "pav")
        assert len(row["responses"]) == 1  # the pick
        if chosen["scorer"] == "likelihood":  # the run's own scorer guided it: its scores never rise
            [steps] = row["step_scores"]
            assert steps == sorted(steps, reverse=True) and all(0 < x <= 1 for x in steps)
        cont = row["search"]["continuations"]
        assert cont == [2] if chosen["strategy"] == "bon" else cont[0] == 2 and len(cont) >= 1
    rep = json.loads((tmp_path / "adaptive" / "report.json").read_text())
    assert rep["search"]["pick"] == "pass@1" and rep["search"]["accuracy"] == rep["pass@1"]
    assert sum(rep["search"]["chosen"].values()) == len(rows)
    used = {apply["choices"][str(int(b))]["scorer"] for b in bins}
    assert rep["search"]["scorer"] == ", ".join(sorted(used))  # the bins' scorers, not search.scorer's default
    r = run(
        "evaluate",
        "--search",
        "adaptive",
        "--allocation",
        alloc,
        *common,
        "--budget",
        "8",
        "--out",
        str(tmp_path / "adaptive8"),
    )
    assert r.returncode == 2 and "no allocation at budget 8 (budgets: 2)" in r.stderr
    r = run(
        "allocate", str(tmp_path / "bon"), "--process-verifier", str(tmp_path / "pav"), "--out", str(tmp_path / "x")
    )
    assert r.returncode == 0 and "adaptive" not in r.stdout  # one strategy: nothing to allocate
    twice = [str(tmp_path / "bon"), str(tmp_path / "bon")]
    r = run("allocate", *twice, "--process-verifier", str(tmp_path / "pav"), "--out", str(tmp_path / "x"))
    assert r.returncode == 2 and "share a strategy, budget, width and step scorer (bon@2)" in r.stderr
    r = run(
        "allocate", str(tmp_path / "pav"), "--process-verifier", str(tmp_path / "pav"), "--out", str(tmp_path / "x")
    )
    assert r.returncode == 2 and "not a finished evaluate run" in r.stderr and "Traceback" not in r.stderr
