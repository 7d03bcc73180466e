"""The installed commands (``rl-pipeline``, ``rl-verifier``) work from a directory whose own
``data.py``, ``rewards.py``, ``pipeline.py`` and ``tests.py`` would shadow the project's
packages under ``python -m`` (issue 24): neither they nor the verifier's sandbox workers put
the working directory on the import path."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent
SHADOWS = ("data", "rewards", "pipeline", "tests")


@pytest.fixture
def hostile_cwd(tmp_path):
    for name in SHADOWS:
        (tmp_path / f"{name}.py").write_text(f"raise ImportError('the user\\'s own {name}.py was imported')\n")
    return tmp_path


def run(cmd: str, *args, cwd: Path):
    exe = BIN / cmd
    assert exe.is_file(), f"{exe} is not installed: run `make venv` (pyproject's [project.scripts])"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run(
        [str(exe), *args], cwd=cwd, capture_output=True, text=True, timeout=300, env={**env, "HF_HUB_OFFLINE": "1"}
    )


def test_python_dash_m_is_shadowed_there(hostile_cwd):
    """What the commands protect against: python -m imports the user's data.py first."""
    r = subprocess.run(
        [sys.executable, "-m", "rewards", "--help"],
        cwd=hostile_cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    )
    assert r.returncode != 0 and "own rewards.py was imported" in r.stderr


def test_rl_verifier_and_its_sandbox_ignore_the_working_directory(hostile_cwd):
    src = hostile_cwd / "gens.jsonl"
    rows = [
        {"response": r"so \boxed{x+1}", "ground_truth": "1+x"},  # needs the parser: a sandbox worker
        {"response": r"\boxed{4}", "ground_truth": "5"},
    ]
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    r = run("rl-verifier", "verify", "-i", "gens.jsonl", "-o", "graded.jsonl", "--workers", "1", cwd=hostile_cwd)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    graded = [json.loads(x) for x in (hostile_cwd / "graded.jsonl").read_text().splitlines()]
    assert [g["correct"] for g in graded] == [True, False] and graded[0]["reason"] == "match"


@pytest.mark.slow
def test_rl_pipeline_runs_a_stage_there(hostile_cwd):
    assert run("rl-pipeline", "--help", cwd=hostile_cwd).returncode == 0
    gens = hostile_cwd / "g.jsonl"
    gens.write_text(
        json.dumps({"question": "1+1?", "ground_truth": "2", "responses": [r"\boxed{2}", r"\boxed{3}"]}) + "\n"
    )
    r = run("rl-pipeline", "evaluate", "--generations", "g.jsonl", "--out", "ev", "--no-plots", cwd=hostile_cwd)
    assert r.returncode == 0, r.stderr
    rep = json.loads((hostile_cwd / "ev" / "report.json").read_text())
    assert rep["pass@1"] == 50.0
