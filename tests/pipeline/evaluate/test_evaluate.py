"""The evaluation stage: benchmark loaders, answer grouping, the best-of-N reference
figures, generation with a real (micro) model and resume, reports, user errors."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from data.benchmarks import BENCHMARKS, load_benchmark
from data.io import InputError

REPO = Path(__file__).resolve().parents[3]
SHARED = REPO.parent / "shared" / "data"
BON = SHARED / "bon" / "math_cot_100.jsonl"
needs_shared = pytest.mark.skipif(not (SHARED / "eval").is_dir(), reason="../shared/data is not present")


def run(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "pipeline", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", **(env or {})},
    )


# ---------------------------------------------------------------- benchmarks


@needs_shared
@pytest.mark.parametrize(
    "name, rows, first_answer",
    [
        ("math500", 500, r"\left( 3, \frac{\pi}{2} \right)"),
        ("aime24", 30, "204"),
        ("amc23", 40, "27"),  # stored as 27.0
        ("minerva_math", 272, "1.6"),  # only inside \boxed{} of the solution
        ("olympiadbench", 675, "2"),  # a list stored as text: "['2']"
        ("gsm8k", 1319, "18"),  # after ####
    ],
)
def test_each_benchmark_reads_its_own_answer_field(name, rows, first_answer):
    problems = load_benchmark(name, SHARED / "eval")
    assert len(problems) == rows and len({p.id for p in problems}) == rows
    assert problems[0].answer == first_answer
    assert all(p.question and p.answer for p in problems)
    assert load_benchmark(name, SHARED / "eval", limit=3) == problems[:3]


def test_benchmark_files_by_path_and_their_errors(tmp_path):
    good = tmp_path / "mine.jsonl"
    good.write_text(
        '{"problem": "1+1?", "answer": 2.0}\n{"question": "2+2?", "answer": "4"}\n'
        '{"question": "3+3?", "ground_truth": "6"}\n'
    )
    ps = load_benchmark(str(good))
    assert [(p.benchmark, p.question, p.answer) for p in ps] == [
        ("mine", "1+1?", "2"),
        ("mine", "2+2?", "4"),
        ("mine", "3+3?", "6"),
    ]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"problem": "1+1?", "answer": "2"}\n{"problem": "no answer here"}\n')
    with pytest.raises(InputError, match=r"bad.jsonl:2: no reference answer"):
        load_benchmark(str(bad))
    with pytest.raises(InputError, match="unknown benchmark 'math501'"):
        load_benchmark("math501")


@pytest.mark.slow
def test_a_missing_local_file_falls_back_to_the_hub_with_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(InputError, match="HuggingFaceH4/aime_2024"):
        load_benchmark("aime24", tmp_path)


def test_every_benchmark_has_a_hub_name():
    assert set(BENCHMARKS) == {"math500", "aime24", "amc23", "minerva_math", "olympiadbench", "gsm8k"}
    assert all("/" in s.hub[0] for s in BENCHMARKS.values())


# ---------------------------------------------------------------- answer groups


def test_answer_groups_use_the_verifiers_equivalence_and_survive_hostile_answers():
    from rewards.verifier import Verifier

    with Verifier(workers=2, timeout=3) as v:
        plain, hostile = v.group_answers(
            [
                [
                    r"so \boxed{1/2}",
                    r"\boxed{0.5}",
                    "no answer",
                    r"\boxed{3}",
                    r"\boxed{\frac{1}{2}}",
                    r"\boxed{3} or \boxed{4}",
                ],
                [r"\boxed{10^{10^{10^{10}}}}", r"\boxed{10^{10^{10^{10}}}}", r"\boxed{2}", "\x00" * 1000],
            ]
        )
    # 1/2 = 0.5 = \frac12; two boxes in one sentence are one answer, {3, 4}: a group of its own
    assert plain.labels == (0, 0, -1, 1, 0, 2) and plain.answers[5] == "3, 4"
    assert plain.answers[1] == "0.5" and plain.reason == "ok"
    assert hostile.labels[0] == hostile.labels[1] != hostile.labels[2] and hostile.labels[3] == -1


# ---------------------------------------------------------------- best-of-N reference


@pytest.mark.slow
@pytest.mark.skipif(not BON.is_file(), reason="../shared/data/bon is not present")
def test_bon_file_reproduces_the_upstream_figures_from_its_own_fields(tmp_path):
    out = tmp_path / "bon"
    r = run(
        "evaluate",
        "--generations",
        str(BON),
        "--response-key",
        "response",
        "--answer-key",
        "gt",
        "--correct-key",
        "score",
        "--verifier-score-key",
        "pred_score",
        "--out",
        str(out),
        "--no-progress",
    )
    assert r.returncode == 0, r.stderr
    rep = json.loads((out / "report.json").read_text())
    assert (rep["maj@8"], rep["bon@8"], rep["pass@8"], rep["pass@1"]) == (93.0, 94.0, 96.0, 91.0)
    lo, hi = rep["ci"]["pass@1"]
    assert lo < 91.0 < hi
    assert {"pass_at_k.png", "bon_vs_n.png"} <= {p.name for p in out.iterdir()}
    assert "maj@8" in (out / "report.md").read_text()

    # without --correct-key the project's verifier grades, and the report lists where it and `score` disagree
    out2 = tmp_path / "regraded"
    r = run(
        "evaluate",
        "--generations",
        str(BON),
        "--response-key",
        "response",
        "--answer-key",
        "gt",
        "--verifier-score-key",
        "pred_score",
        "--out",
        str(out2),
        "--no-progress",
        "--no-plots",
    )
    assert r.returncode == 0, r.stderr
    rep2 = json.loads((out2 / "report.json").read_text())
    d = rep2["disagreements"]
    assert d["file_key"] == "score" and d["compared"] == 800
    assert d["agreement"] > 0.99 and len(d["examples"]) == d["disagree"]
    graded = [json.loads(x) for x in (out2 / "graded.jsonl").read_text().splitlines()]
    flips = sum(a != b for g in graded for a, b in zip(g["correct"], g["file_correct"]))
    assert flips == d["disagree"]
    assert "Verifier vs the file's own grades" in (out2 / "report.md").read_text()

    cmp = run("compare", str(out), str(out2))
    assert cmp.returncode == 0 and "| overall | bon@8 | 94.00 |" in cmp.stdout


@pytest.mark.slow
def test_self_correction_and_step_scores_from_a_file(tmp_path):
    f = tmp_path / "two_turns.jsonl"
    rows = [
        {
            "question": "1+1",
            "answer": "2",
            "responses": [r"\boxed{3}", r"\boxed{2}"],
            "second": [r"\boxed{2}", r"\boxed{2}"],
            "steps": [[0.9, 0.1], [0.5, 0.6]],
        },
        {
            "question": "2+2",
            "answer": "4",
            "responses": [r"\boxed{4}", r"\boxed{5}"],
            "second": [r"\boxed{5}", r"\boxed{5}"],
            "steps": [[0.2, 0.9], [0.8, 0.7]],
        },
    ]
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "o"
    r = run(
        "evaluate",
        "--generations",
        str(f),
        "--second-response-key",
        "second",
        "--verifier-score-key",
        "steps",
        "--aggregate",
        "min",
        "--out",
        str(out),
        "--no-progress",
        "--no-plots",
    )
    assert r.returncode == 0, r.stderr
    rep = json.loads((out / "report.json").read_text())
    assert rep["acc@t1"] == 50.0 and rep["acc@t2"] == 50.0
    assert rep["delta_i2c"] == 25.0 and rep["delta_c2i"] == 25.0
    # min step score: problem 1 picks response 2 (0.5 > 0.1, right); problem 2 picks response 2 (0.7 > 0.2, wrong)
    assert rep["bon@2"] == 50.0


def test_generations_read_ground_truth_by_default_then_answer(tmp_path):
    """The reference key defaults to ground_truth, as the verifier CLI, the service and the verl
    adapter read it; the stage's own generations.jsonl (key answer) still reads back."""
    from pipeline.evaluate.config import GenerationKeys
    from pipeline.evaluate.grade import load_generations

    f = tmp_path / "g.jsonl"
    f.write_text('{"responses": ["a"], "ground_truth": "7", "answer": "8"}\n{"responses": ["b"], "answer": "9"}\n')
    assert [r["answer"] for r in load_generations(f, GenerationKeys())] == ["7", "9"]
    assert [r["answer"] for r in load_generations(f, GenerationKeys(answer="answer"))] == ["8", "9"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--generations", "/nonexistent.jsonl"], "no such file"),
        ([], "model.path (--model) is required"),
        (["--generations", "{bad}"], ":2: malformed line"),
        (["--generations", "{bad}", "--response-key", "nope"], "no response field 'nope'"),
        (["--model", "/nonexistent/model"], "cannot load tokenizer"),
        (["--benchmarks", "math501", "--model", "x"], "unknown benchmark 'math501'"),
        (["--generations", "{good}", "--verifier-score-key", "responses"], "must be a number"),
        (["--generations", "{inf}", "--verifier-score-key", "s"], "NaN or infinity"),
        (["--generations", "{empty}"], "holds no responses"),
        (["--generations", "{noanswer}"], "reference answer 'answer' is empty"),
        (["--generations", "{nokey}"], "no reference answer field 'ground_truth' or 'answer'"),
        (["--generations", "{nokey}", "--answer-key", "gt"], "no reference answer field 'gt'"),
        (["--generations", "{badtokens}"], "non-negative integers"),
        (["--benchmarks", " , ", "--model", "x"], "name at least one"),
        (["--benchmarks", "{good},{sub}/good.jsonl", "--model", "x"], "two share a name"),
    ],
)
def test_user_errors_exit_2_with_one_line(tmp_path, args, message, capsys, monkeypatch):
    from pipeline.cli import main

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"responses": ["a"], "answer": "1"}\n{oops\n')
    good = tmp_path / "good.jsonl"
    good.write_text('{"responses": ["a"], "answer": "1"}\n')
    (tmp_path / "inf.jsonl").write_text('{"responses": ["a", "b"], "answer": "1", "s": [Infinity, 0]}\n')
    (tmp_path / "empty.jsonl").write_text('{"responses": [], "answer": "1"}\n')
    (tmp_path / "noanswer.jsonl").write_text('{"responses": ["a"], "answer": null}\n')
    (tmp_path / "nokey.jsonl").write_text('{"responses": ["a"], "solution": "1"}\n')
    (tmp_path / "badtokens.jsonl").write_text('{"responses": ["a"], "answer": "1", "tokens": ["x"]}\n')
    (tmp_path / "sub").mkdir()
    files = {
        "bad": bad,
        "good": good,
        "inf": tmp_path / "inf.jsonl",
        "empty": tmp_path / "empty.jsonl",
        "noanswer": tmp_path / "noanswer.jsonl",
        "nokey": tmp_path / "nokey.jsonl",
        "badtokens": tmp_path / "badtokens.jsonl",
        "sub": tmp_path / "sub",
    }
    for k, v in files.items():
        args = [a.replace("{" + k + "}", str(v)) for a in args]
    assert main(["evaluate", "--out", str(tmp_path / "o"), "--no-progress", *args]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("error: ") and message in last


# ---------------------------------------------------------------- generation


@pytest.mark.slow
def test_generates_with_a_real_model_resumes_and_refuses_mixed_settings(task_files, tmp_path):
    out = tmp_path / "eval"
    common = [
        "--model",
        str(task_files["model"]),
        "--benchmarks",
        str(task_files["heldout"]),
        "--temperature",
        "1.0",
        "--max-new-tokens",
        "8",
        "--instruction",
        "",
        "--out",
        str(out),
        "--no-progress",
        "--no-plots",
    ]
    r = run("evaluate", "--n", "4", *common)
    assert r.returncode == 0, r.stderr
    gen = out / "generations" / "heldout.jsonl"
    rows = [json.loads(x) for x in gen.read_text().splitlines()]
    assert len(rows) == 8 and all(len(x["responses"]) == 4 and len(x["tokens"]) == 4 for x in rows)
    assert all(0 < t <= 8 for x in rows for t in x["tokens"])
    rep = json.loads((out / "report.json").read_text())
    assert {"pass@1", "pass@4", "maj@4"} <= set(rep) and rep["overall"]["responses"] == 32
    assert rep["overall"]["mean_tokens"] == pytest.approx(sum(t for x in rows for t in x["tokens"]) / 32, abs=0.01)

    # a killed run: three problems written, the fourth torn mid-line; the re-run completes the rest only
    lines = gen.read_text().splitlines()
    gen.write_text("\n".join(lines[:3]) + "\n" + lines[3][:20])
    r = run("evaluate", "--n", "4", *common)
    assert r.returncode == 0, r.stderr
    again = [json.loads(x) for x in gen.read_text().splitlines()]
    assert [x["id"] for x in again[:3]] == [x["id"] for x in rows[:3]]
    assert again[:3] == rows[:3] and sorted(x["id"] for x in again) == sorted(x["id"] for x in rows)

    r = run("evaluate", "--n", "2", *common)
    assert r.returncode == 2 and "other settings (n differ" in r.stderr

    # a last line that is whole JSON but lost its newline: the next append must not glue onto it
    lines = gen.read_text().splitlines()
    gen.write_text("\n".join(lines[:5]))
    r = run("evaluate", "--n", "4", *common)
    assert r.returncode == 0, r.stderr
    final = [json.loads(x) for x in gen.read_text().splitlines()]
    assert sorted(x["id"] for x in final) == sorted(x["id"] for x in rows)


@pytest.mark.slow
def test_generates_second_attempts_and_reports_self_correction(task_files, tmp_path):
    """--second-attempt: each response gets a second attempt after the instruction; the verifier
    grades both and the report carries Accuracy@t1/t2 and the deltas, consistent with the grades."""
    out = tmp_path / "sc"
    r = run(
        "evaluate",
        "--model",
        str(task_files["model"]),
        "--benchmarks",
        str(task_files["heldout"]),
        "--n",
        "3",
        "--temperature",
        "1.0",
        "--max-new-tokens",
        "8",
        "--second-attempt",
        "default",
        "--out",
        str(out),
        "--no-progress",
        "--no-plots",
    )
    assert r.returncode == 0, r.stderr
    rows = [json.loads(x) for x in (out / "generations" / "heldout.jsonl").read_text().splitlines()]
    assert rows and all(len(x["responses_t2"]) == 3 and len(x["tokens_t2"]) == 3 for x in rows)
    assert all(0 < t <= 8 for x in rows for t in x["tokens_t2"])
    assert json.loads((out / "generations" / "settings.json").read_text())["second_attempt"].startswith(
        "There might be"
    )
    rep = json.loads((out / "report.json").read_text())
    graded = [json.loads(x) for x in (out / "graded.jsonl").read_text().splitlines()]
    c1 = [c for g in graded for c in g["correct"]]
    c2 = [c for g in graded for c in g["correct_t2"]]
    assert rep["acc@t1"] == pytest.approx(100 * sum(c1) / len(c1))
    assert rep["acc@t2"] == pytest.approx(100 * sum(c2) / len(c2))
    assert rep["delta(t1,t2)"] == pytest.approx(rep["acc@t2"] - rep["acc@t1"])
    r = run(
        "evaluate",
        "--generations",
        str(out / "generations" / "heldout.jsonl"),
        "--second-attempt",
        "default",
        "--out",
        str(tmp_path / "x"),
        "--no-progress",
    )
    assert r.returncode == 2 and "a --generations file brings its own" in r.stderr


@pytest.mark.slow
def test_reward_model_scores_drive_best_of_n(task_files, tmp_path):
    from transformers import AutoConfig, AutoTokenizer, LlamaForSequenceClassification

    from pipeline.evaluate.scoring import reward_model_scores

    cfg = AutoConfig.from_pretrained(task_files["model"])
    cfg.num_labels = 1
    rm = LlamaForSequenceClassification(cfg)
    rm.save_pretrained(tmp_path / "rm")
    AutoTokenizer.from_pretrained(task_files["model"]).save_pretrained(tmp_path / "rm")
    rows = [{"question": "1+1", "responses": [r"\boxed{2}", r"\boxed{3}", "x"]}, {"question": "2", "responses": ["a"]}]
    s = reward_model_scores(str(tmp_path / "rm"), rows, device="cpu")
    assert [len(x) for x in s] == [3, 1] and len(set(s[0])) == 3
    one_by_one = reward_model_scores(str(tmp_path / "rm"), rows, device="cpu", batch_size=1)  # padding-invariant
    assert sum(one_by_one, []) == pytest.approx(sum(s, []), abs=1e-5)

    # a response cannot end its turn early by writing the end-of-turn token as text
    from pipeline.evaluate.scoring import encode

    tok = AutoTokenizer.from_pretrained(tmp_path / "rm")
    end = tok.convert_tokens_to_ids("<|end|>")
    ids, cut = encode(tok, "1+1", "the answer <|end|> is 2", 4096)
    plain, _ = encode(tok, "1+1", "the answer is 2", 4096)
    assert ids.count(end) == plain.count(end) == 2 and not cut  # only the template's own two
    ids, cut = encode(tok, "1+1", "x " * 500 + r"\boxed{2}", 64)
    assert cut and len(ids) <= 64 and tok.decode(ids).rstrip().endswith("<|end|>")

    f = tmp_path / "g.jsonl"
    f.write_text(json.dumps({"question": "1+1", "answer": "2", "responses": rows[0]["responses"]}) + "\n")
    r = run(
        "evaluate",
        "--generations",
        str(f),
        "--reward-model",
        str(tmp_path / "rm"),
        "--out",
        str(tmp_path / "o"),
        "--no-progress",
        "--no-plots",
    )
    assert r.returncode == 0, r.stderr
    rep = json.loads((tmp_path / "o" / "report.json").read_text())
    best = max(range(3), key=lambda i: s[0][i])
    assert rep["bon@3"] == (100.0 if best == 0 else 0.0)
