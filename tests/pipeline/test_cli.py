"""The verifier CLI and the demo, run as a user runs them (subprocesses, real files)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BON = REPO.parent / "shared" / "data" / "bon" / "math_cot_100.jsonl"


def run(*args, **kw):
    return subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=300, **kw)


def test_verify_file_with_bad_lines(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text(
        json.dumps({"id": 1, "response": ["so \\boxed{4}", "\\boxed{5}", "four"], "gt": "4"}) + "\n"
        "{not json\n"
        + json.dumps({"id": 3, "response": "x"})
        + "\n"
        + json.dumps({"id": 4, "response": "\\boxed{\\frac{1}{2}}", "gt": 0.5})
        + "\n"
        + "\n"
        + json.dumps([1, 2])
        + "\n"
    )
    out = tmp_path / "sub" / "out.jsonl"
    r = run(
        "-m",
        "rewards",
        "verify",
        "-i",
        str(src),
        "-o",
        str(out),
        "--answer-key",
        "gt",
        "--workers",
        "1",
        "--no-progress",
    )
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    assert "in.jsonl:2: malformed line" in r.stderr
    assert "in.jsonl:3: missing field(s) 'gt'" in r.stderr
    assert "in.jsonl:6: malformed line" in r.stderr
    assert "match=2" in r.stderr and "mismatch=1" in r.stderr and "no_answer=1" in r.stderr
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert [row["id"] for row in rows] == [1, 4]
    assert rows[0]["correct"] == [True, False, False]
    assert rows[0]["reason"] == ["match", "mismatch", "no_answer"]
    assert rows[0]["extracted"] == ["4", "5", None]
    assert rows[1]["correct"] is True and rows[1]["extracted"] == "\\frac{1}{2}"
    assert not list(out.parent.glob(".*.tmp")), "temporary file left behind"


def test_lenient_mode_and_options(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text(
        json.dumps({"r": "The final answer is 12.", "a": "12"})
        + "\n"
        + json.dumps({"r": "I pick \\boxed{(B)}", "a": "11", "opts": ["10", "11", "12"]})
        + "\n"
    )
    out = tmp_path / "out.jsonl"
    r = run(
        "-m",
        "rewards",
        "verify",
        "-i",
        str(src),
        "-o",
        str(out),
        "--response-key",
        "r",
        "--answer-key",
        "a",
        "--options-key",
        "opts",
        "--mode",
        "lenient",
        "--workers",
        "1",
        "--no-progress",
    )
    assert r.returncode == 0, r.stderr
    assert [json.loads(x)["correct"] for x in out.read_text().splitlines()] == [True, True]


@pytest.mark.parametrize(
    "args, message",
    [
        (["-i", "/nonexistent/in.jsonl", "-o", "/tmp/x.jsonl"], "no such file"),
        (["-i", "x", "-o", "y", "--timeout", "0"], "must be > 0"),
        (["-i", "x", "-o", "y", "--mode", "loose"], "invalid choice"),
    ],
)
def test_user_errors_have_no_traceback(args, message):
    r = run("-m", "rewards", "verify", *args)
    assert r.returncode == 2
    assert message in r.stderr and "Traceback" not in r.stderr


def _verify(tmp_path, rows: list, *args):
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return run("-m", "rewards", "verify", "-i", str(src), "-o", str(out), "--workers", "1", *args), out


def test_default_reference_key_is_ground_truth_and_progress_stays_off_logs(tmp_path):
    r, out = _verify(
        tmp_path,
        [
            {"response": "so \\boxed{4}", "ground_truth": "4"},
            {"response": "\\boxed{15}. No, wait: \\boxed{17}", "ground_truth": 17},
        ],
    )
    assert r.returncode == 0, r.stderr
    assert [json.loads(x)["correct"] for x in out.read_text().splitlines()] == [True, True]
    assert "\r" not in r.stderr  # stderr is a pipe here: no progress bar redraws in the log


def test_multi_box_flag(tmp_path):
    rows = [{"response": "\\boxed{15}. No, wait: \\boxed{17}", "ground_truth": "17"}]
    r, out = _verify(tmp_path, rows, "--multi-box", "all_agree")
    assert r.returncode == 0, r.stderr
    assert json.loads(out.read_text())["reason"] == "ambiguous"


@pytest.mark.parametrize(
    "rows, message",
    [
        (
            [{"response": "\\boxed{4}", "answer": "4"}] * 3,
            "no row has the field 'ground_truth' (set --answer-key; fields present: answer)",
        ),
        (["{not json", "[1, 2]"], "all 2 line(s)"),
        ([], "holds no rows"),
    ],
)
def test_nothing_verified_exits_non_zero_with_one_line(tmp_path, rows, message):
    r, out = _verify(tmp_path, rows)
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and lines[0].startswith("error: "), r.stderr
    assert not out.exists()


def test_every_check_failing_exits_non_zero(tmp_path):
    # one symbolic comparison under a tiny timeout: the only check times out
    r, out = _verify(
        tmp_path,
        [{"response": "\\boxed{(x+1)^{40} - (x-1)^{40}}", "ground_truth": "\\sin(y)+(x+2)^{41}"}],
        "--timeout",
        "0.01",
    )
    assert r.returncode == 1, r.stderr
    assert "none of the 1 response(s) could be verified" in r.stderr
    assert json.loads(out.read_text())["reason"] == "timeout"


def test_help_explains():
    r = run("-m", "rewards", "verify", "--help")
    assert r.returncode == 0 and "--response-key" in r.stdout and "strict" in r.stdout


@pytest.mark.slow
def test_demo_offline_with_nothing_beside_it(tmp_path):
    cfg = tmp_path / "demo.yaml"
    cfg.write_text(
        "verifier: {workers: 1}\nsynthetic: {problems: 60, seed: 3}\nbon_file: missing/bon.jsonl\n"
        "task: {train: 48, heldout: 6}\n"
        "warmup: {tiny_size: micro, steps: 10, batch_size: 8, threads: 1, heldout_samples: 1, max_new_tokens: 8}\n"
        "train: {rollout: {n: 2, max_new_tokens: 8}, steps: 2, prompts_per_step: 2, save_every: 1,\n"
        "        heldout_samples: 1, threads: 1, reward: {verifier: {workers: 1}}}\n"
        "evaluate: {generation: {n: 2, max_new_tokens: 8}, bootstrap: 50, plots: false, verifier: {workers: 1}}\n"
    )
    r = run("-m", "pipeline", "demo", "--config", str(cfg), "--out", str(tmp_path / "out"))
    assert r.returncode == 0, r.stderr
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["stages"] == ["verifier", "curate", "train", "evaluate"]
    assert "skipped" in summary["curate"]  # no raw sources beside a bare clone
    tr = summary["train"]
    logged = [json.loads(x) for x in (tmp_path / "out" / "rl" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in logged] == [0, 1, 2]
    evals = [r["heldout_acc"] for r in logged if "heldout_acc" in r]
    assert (tr["heldout_acc_before"], tr["heldout_acc_after"]) == (evals[0], evals[-1])
    assert 0 <= tr["control_acc_after"] <= 1
    assert (tmp_path / "out" / "data" / "train.parquet").is_file()
    syn = summary["verifier"]["synthetic"]
    assert syn["responses"] == 60 and syn["disagreements"] == 0
    assert 0 < syn["verifier_correct"] < 60
    assert "skipped" in summary["verifier"]["bon"]
    ev = summary["evaluate"]
    assert set(ev) == {"warmup", "rl", "control"}  # no best-of-N file: only the demo's own models
    for name in ev:
        assert 0 <= ev[name]["pass@1"] <= ev[name]["pass@2"] <= 100
        assert (tmp_path / "out" / "eval" / name / "report.md").is_file()
    assert "| overall | pass@1 |" in (tmp_path / "out" / "eval" / "warmup_vs_rl.md").read_text()


@pytest.mark.slow
@pytest.mark.skipif(not BON.is_file(), reason="../shared/data not beside the repo")
def test_demo_on_real_best_of_n(tmp_path):
    r = run("-m", "pipeline", "demo", "--config", "configs/demo.yaml", "--out", str(tmp_path), "--stages", "verifier")
    assert r.returncode == 0, r.stderr
    bon = json.loads((tmp_path / "summary.json").read_text())["verifier"]["bon"]
    assert bon["responses"] == 800
    assert bon["agreement"] >= 0.99


@pytest.mark.parametrize(
    "text, message",
    [
        ("verifier: {wrkers: 2}", "unknown key(s) ['wrkers']"),
        ("verifier: {workers: two}", "verifier.workers: expected int"),
        ("verifier: {mode: loose}", "verifier.mode must be"),
        ("[1, 2", "not valid YAML"),
    ],
)
@pytest.mark.slow
def test_bad_config_is_a_clear_error(tmp_path, text, message):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(text)
    r = run("-m", "pipeline", "demo", "--config", str(cfg), "--out", str(tmp_path / "o"))
    assert r.returncode == 2
    assert message in r.stderr and "Traceback" not in r.stderr


def test_train_lists_the_reward_ideas_and_needs_a_config_to_run(tmp_path):
    r = run("-m", "pipeline", "train", "--list-rewards")
    assert r.returncode == 0, r.stderr
    names = [line.split()[0] for line in r.stdout.splitlines()[1:]]
    assert names == ["outcome", "alp", "overlong", "length", "progress", "self_correction"]
    r = run("-m", "pipeline", "train", "--out", str(tmp_path / "run"))
    assert r.returncode == 2 and "train needs --config" in r.stderr and "Traceback" not in r.stderr
