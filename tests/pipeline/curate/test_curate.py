"""The curation stage: each filter on constructed rows, then the whole stage on
messy files written here (and on the shared raw files when present): verl reads
the output, nothing is lost, a re-run is a no-op, user mistakes are one line."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from data.benchmarks import EvalProblem
from pipeline.curate import dedup  # noqa: F401 - registers the set-level filters
from pipeline.curate.filters import FILTERS, Context, detect_language
from pipeline.curate.sources import Record, correct_letter, parse_options

REPO = Path(__file__).resolve().parents[3]
SHARED = REPO.parent / "shared" / "data"


def rec(question, answer="1", uid=None, **kw) -> Record:
    r = Record(
        uid=uid or f"t:{abs(hash((question, answer))) % 10**8}",
        source="t",
        source_id="0",
        line=1,
        question=question,
        answer=answer,
        **kw,
    )
    r.original_question, r.original_answer = question, answer
    return r


def apply(name, records, ctx=None, **params):
    return FILTERS[name](records, ctx or Context(), **params)


@pytest.fixture(scope="module")
def verifier():
    from rewards.verifier import Verifier

    with Verifier(workers=2, timeout=5) as v:
        yield v


# ---------------------------------------------------------------- text filters


def test_normalize_cleans_spacing_and_drops_rows_without_content():
    rows = [rec("  What  is\t2+2?\r\n\r\n\r\n\x07Answer.  ", " 4 "), rec("What is 2+2?", ""), rec("2+2?", "4")]
    assert apply("normalize", rows) == [None, "no answer", "question missing or too short"]
    assert rows[0].question == "What is 2+2?\n\nAnswer." and rows[0].answer == "4"


@pytest.mark.parametrize(
    "text, lang",
    [
        ("下列四个数中，最小的数是多少？请计算", "zh"),
        ("解不等式组: \\left\\{\\begin{array}{c}2 x+1 \\geq x+2 \\end{array}\\right. 的解集", "zh"),
        ("If α+β=5 and αβ=6, find α²+β².", "und"),  # Greek letters are math, not Greek
        ("计算：x(x-2y)+(x+y)^2", "zh"),  # two characters of prose among variables
        ("Combien de pommes y a-t-il dans le panier si Marie en mange trois?", "fr"),
        ("How many apples are in the basket if Mary eats three of them?", "en"),
        ("Simplify $\\frac{x^2-1}{x-1}$.", "und"),  # too little prose to tell: kept
    ],
)
def test_language_detection(text, lang):
    assert detect_language(text)[0] == lang


def test_language_filter_drops_confident_other_languages_only():
    rows = [
        rec("下列四个数中，最小的数是多少？"),
        rec("How many apples are in the basket if Mary eats three?"),
        rec("Compute $\\int_0^1 x\\,dx$."),
    ]
    assert apply("language", rows) == ["zh", None, None]


def test_hyperlink_and_subject():
    assert apply("hyperlink", [rec("See https://x.org/p for the figure. Find x."), rec("Find x if 2x=4.")]) == [
        "contains a URL",
        None,
    ]
    rows = [
        rec("q1 long enough", subject="college_biology"),
        rec("q2 long enough", subject="high_school_mathematics"),
        rec("q3 long enough"),
    ]
    assert apply("subject", rows, keep=["math"]) == ["college_biology", None, None]


@pytest.mark.parametrize(
    "value, expect",
    [
        ("['A)5', 'B)6(√3 + √2)', 'C)7']", {"A": "5", "B": "6(√3 + √2)", "C": "7"}),  # a list stored as text
        ("A) $f(-6)=0$ B) $f(6)=-6$ C) 3", {"A": "$f(-6)=0$", "B": "$f(6)=-6$", "C": "3"}),
        (["red", "green", "blue"], {"A": "red", "B": "green", "C": "blue"}),
        ("", None),
    ],
)
def test_options_in_every_shape(value, expect):
    assert parse_options(value) == expect


def test_correct_option_from_letter_or_index():
    opts = {"A": "1", "B": "2", "C": "3"}
    assert correct_letter("C", opts) == "C" and correct_letter("(b)", opts) == "B" and correct_letter("2", opts) == "C"
    assert correct_letter("7", opts) is None


def test_multiple_choice_stems_that_need_their_options():
    opts = {"A": "$3x^2-3=0$", "B": "$3x^2+3x+3=0$"}
    rows = [
        rec("Which quadratic equation has no real solutions?", "B", options=opts, correct_option="B"),
        rec(
            "Approximately how many gray wolves were there in 2008?",
            "B",
            options={"A": "1,190", "B": "2,900"},
            correct_option="B",
        ),
        rec(
            "Which number could be the actual population?",
            "A",
            options={"A": "4,500,321", "B": "3"},
            correct_option="A",
        ),
        rec("What is the value of the expression 3 x 4?", "A", options={"A": "12", "B": "7"}, correct_option="A"),
        rec("How many sides does a hexagon have here?", "7", options={"A": "6", "B": "5"}, correct_option_given=True),
    ]
    assert apply("multiple_choice", rows) == ["the stem needs its options"] * 3 + [
        None,
        "no recognisable correct option",
    ]


def test_normalize_repairs_latex_that_json_escapes_swallowed():
    rows = [rec("Compute \x0crac{1}{2} + \x0crac{1}{3} for me.", "x \\geq -3, x \neq 0")]
    assert apply("normalize", rows) == [None]
    assert (
        rows[0].question == "Compute \\frac{1}{2} + \\frac{1}{3} for me." and rows[0].answer == "x \\geq -3, x \\neq 0"
    )


def test_multiple_choice_reformulates_or_drops_with_a_reason():
    rows = [
        rec(
            "A rectangle is 8 cm by 3 cm. Find its perimeter.", "B", options={"A": "24", "B": "22"}, correct_option="B"
        ),
        rec("Find the smallest number. A. -2  B. 0  C. 3  D. -1/2", "-2"),  # options inline, answer is the text
        rec("Which of the following is prime? A) 4 B) 6 C) 7", "C"),
        rec("What grows fastest in summer here?", "A", options={"A": "None of these", "B": "3"}, correct_option="A"),
        rec("Pick the right one for this setting.", "D"),  # a letter, and no options anywhere
        rec("What is 3 + 4 in this case?", "7"),  # not multiple choice at all
    ]
    assert apply("multiple_choice", rows) == [
        None,
        None,
        "the stem needs its options",
        "the correct option is not a closed-form answer",
        "answer is an option letter but the options are missing",
        None,
    ]
    assert (rows[0].question, rows[0].answer) == ("A rectangle is 8 cm by 3 cm. Find its perimeter.", "22")
    assert (rows[1].question, rows[1].answer) == ("Find the smallest number.", "-2")
    assert rows[0].meta["reformulated"] == "multiple_choice" and "reformulated" not in rows[5].meta


def test_yes_no_multi_part_proof():
    assert apply(
        "yes_no",
        [
            rec("Is 7 a prime number here?", "Yes"),
            rec("Determine whether the series converges.", "diverges"),
            rec("What is 7 squared?", "49"),
        ],
    ) == ["answer is yes/no or true/false", "question asks true/false or whether", None]
    assert apply(
        "multi_part",
        [
            rec("(a) Find x. (b) Find y.", "3"),
            rec("What is x? And what is y?", "2"),
            rec("What is x?", "(a) 3 (b) 4"),
            rec("Solve $x^2=4$. What is x?", "\\{-2, 2\\}"),
            rec("Fill in the blank: 35 / ? = 7. What number goes there?", "5"),
            rec('Tom asks "how many are left?" What does Ann answer?', "4"),
        ],
    ) == ["question has parts", "2 questions", "answer has parts", None, None, None]
    assert apply(
        "proof",
        [
            rec("Prove that there are infinitely many primes."),
            rec("Show that $x>0$ and find x."),
            rec("The zoo has 3 eagles on show that day. How many birds?"),
            rec("Find the limit. If a limit does not exist, explain why."),
            rec("Does it follow that B=C? Explain why or why not."),
        ],
    ) == ["asks for a proof", "asks for a proof", None, None, "asks for a proof"]


# ---------------------------------------------------------------- the verifier's checks


def test_closed_form_canonicalises_answers_through_the_verifier(verifier):
    rows = [
        rec("q", a)
        for a in [
            "9 (apples)",
            "145.0",
            "$10-4 n$",
            "$(45,2),(-10,-9)$",
            "Westford location",
            "C",
            "0.333...",
            "60,180",
            "3{,}250",
            "5 million",
            "2 pi",
            "–9",
            "Yes, this is a subspace",
        ]
    ]
    rows.append(rec("At what time does the train arrive?", "5:45"))
    reasons = apply("closed_form", rows, Context(verifier=verifier))
    assert reasons[:4] == [None] * 4
    assert [r.answer for r in rows[:4]] == ["9", "145", "10-4 n", "(45,2),(-10,-9)"]
    assert [r.meta["answer_kind"] for r in rows[:4]] == ["number", "number", "expression", "structure"]
    assert reasons[4].startswith("answer is text") and reasons[5].startswith("answer is letter")
    assert reasons[6] == "answer has an ellipsis"
    assert reasons[7].startswith("ambiguous comma")  # sixty thousand one hundred eighty, or 60 and 180?
    assert reasons[8] is None and rows[8].answer == "3250"  # {,} is a thousands separator for sure
    assert reasons[9].startswith("answer is text")  # "5 million" is not 5
    assert reasons[10] is None and rows[10].answer == "2 pi"  # nor is "2 pi" 2
    assert reasons[11] is None and rows[11].answer == "-9"  # an en dash as a minus sign
    assert reasons[12].startswith("answer is text") and reasons[13] == "answer is a clock time"


def test_self_verify(verifier):
    rows = [rec("q", "\\frac{1}{2}"), rec("q", "x^2+1"), rec("q", "")]
    assert apply("self_verify", rows, Context(verifier=verifier)) == [None, None, "self-check failed (no_answer)"]


# ---------------------------------------------------------------- duplicates and contamination


def test_exact_and_near_duplicates():
    rows = [
        rec("What is $2+3$?", uid="a:1"),
        rec("what is 2 + 3 ?", uid="a:2"),
        rec("What is 2+4?", uid="a:3"),
        rec("Simplify $x^{100}$.", uid="a:4"),
        rec("Simplify $x^{-100}$.", uid="a:5"),
    ]
    assert apply("exact_dedup", rows) == [None, "duplicate of a:1", None, None, None]  # a sign is a different problem
    base = "A tourist group has 26 people and wants to rent some large rooms for 3 people each and small rooms"
    rows = [
        rec(base + " for 2 each. How many small rooms?", uid="b:1"),
        rec(base + " for 2 each. How many small rooms do they rent?", uid="b:2"),  # same numbers: a duplicate
        rec(base.replace("26", "31") + " for 2 each. How many small rooms?", uid="b:3"),
    ]  # other numbers: a problem
    reasons = apply("near_dedup", rows, threshold=0.7)
    assert reasons[0] is None and reasons[1].startswith("near-duplicate of b:1") and reasons[2] is None
    assert apply("near_dedup", rows, threshold=0.7, same_numbers=False)[2].startswith("near-duplicate of b:1")
    rows[1].answer = "7"  # the same words asking something else ("large" vs "small" rooms): both stay
    assert apply("near_dedup", rows, threshold=0.7)[1] is None


def test_decontamination_names_the_eval_set_and_problem():
    evals = [
        EvalProblem(
            "math500",
            "7",
            "Find the number of ordered pairs of integers (a, b) such that the polynomial "
            "x^3 + a x^2 + b x + 6 has three distinct integer roots.",
            "5",
        ),
        EvalProblem("gsm8k", "3", "Janet has 3 apples.", "3"),
    ]
    rows = [
        rec(
            "Consider this: find the number of ordered pairs of integers (a, b) such that the polynomial "
            "x^3 + a x^2 + b x + 6 has three distinct integer roots. Answer with a number."
        ),
        rec("janet has 3 apples"),
        rec("Janet has 3 apples and 4 pears; how many fruit does she have?"),
        rec(
            "Find the count of ordered pairs of integers (a, b) so that the cubic "
            "x^3 + ax^2 + bx + 6 has exactly three distinct integer roots."
        ),
    ]
    reasons = apply("decontaminate", rows, Context(eval_problems=evals), ngram=13)
    assert reasons[0] == "math500:7 (13-gram overlap)"
    assert reasons[1] == "gsm8k:3 (identical)"
    assert reasons[2] is None  # shares words with a short eval problem but is not it
    assert reasons[3] is None  # reworded: no 13-gram in common, Jaccard ~0.23, below the default 0.7
    near = apply("decontaminate", rows[3:], Context(eval_problems=evals[:1]), ngram=13, near_threshold=0.2)
    assert near[0].startswith("math500:7 (near duplicate")
    # boilerplate that two eval problems share is no evidence of contamination
    tail = " where m and n are relatively prime positive integers. Find m+n."
    evals = [
        EvalProblem("aime24", "1", "A walk takes m/n hours" + tail, "1"),
        EvalProblem("aime24", "2", "A light bulb glows for m/n seconds" + tail, "2"),
    ]
    assert apply(
        "decontaminate",
        [rec("A garden hose fills a pool in m/n minutes" + tail)],
        Context(eval_problems=evals),
        ngram=13,
    ) == [None]


# ---------------------------------------------------------------- the stage


def write_messy_sources(root: Path) -> Path:
    """Small files with the shapes the real raw sets have; returns a config path."""
    rows = {
        "wordprobs.jsonl": [
            {
                "idx": "0",
                "Body": "Seven red apples and two green apples are in the basket.",
                "Question": "How many apples?",
                "Answer": "9 (apples)",
            },
            {
                "idx": "1",
                "Body": "There are 290 bananas in 2 groups.",
                "Question": "How big is each group?",
                "Answer": "145.0",
            },
            {
                "idx": "2",
                "Body": "Seven red apples and two green apples are in the basket.",
                "Question": "How many apples?",
                "Answer": "9",
            },  # exact duplicate of 0
            {
                "idx": "3",
                "Body": "Janet's ducks lay 16 eggs per day.",
                "Question": "Is that more than 10?",
                "Answer": "Yes",
            },
            {
                "idx": "4",
                "Body": "See https://example.com/fig.png for the garden plan.",
                "Question": "How wide is it?",
                "Answer": "12",
            },
        ],
        "choice.jsonl": [
            {
                "q": "A rectangle has a length of 8 centimeters and a width of 3 centimeters. Find the perimeter.",
                "options": "['A)24', 'B)22', 'C)11']",
                "correct": "B",
                "topic": "high_school_mathematics",
            },
            {
                "q": "Which of the following numbers is prime?",
                "options": "['A)4', 'B)6', 'C)7']",
                "correct": "C",
                "topic": "high_school_mathematics",
            },
            {
                "q": "A frameshift mutation is created when what happens to the DNA sequence?",
                "options": "['deletion', 'duplication', 'inversion']",
                "correct": "0",
                "topic": "college_biology",
            },
        ],
        "mixed.jsonl": [
            {"id": "a", "question": "下列四个数中，最小的数是多少？", "answer": "-2"},
            {"id": "b", "question": "Prove that the square root of 2 is irrational.", "answer": "irrational"},
            {"id": "c", "question": "Simplify: $-10-4(n-5)$", "answer": "$10-4 n$"},
            {"id": "d", "question": "Find all real solutions of $x^2 - 5x + 6 = 0$.", "answer": "$2, 3$"},
            {
                "id": "e",
                "question": "Janet has 3 apples and buys 4 more each day for a week; how many does she have?",
                "answer": "31",
            },
            {"id": "f", "question": "(a) Find x if 2x = 4. (b) Find y if 3y = 9.", "answer": "2, 3"},
        ],
    }
    for name, rs in rows.items():
        (root / name).write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rs))
    (root / "eval.jsonl").write_text(
        json.dumps(
            {
                "problem": "Janet has 3 apples and buys 4 more each day for a week; how many does she have?",
                "answer": "31",
            }
        )
        + "\n"
    )
    cfg = {
        "sources": [
            {
                "name": "wordprobs",
                "file": "wordprobs.jsonl",
                "question": "{Body} {Question}",
                "answer": "Answer",
                "id": "idx",
            },
            {
                "name": "choice",
                "file": "choice.jsonl",
                "question": "q",
                "answer": "correct",
                "options": "options",
                "correct_option": "correct",
                "subject": "topic",
            },
            {"name": "mixed", "file": "mixed.jsonl", "id": "id"},
        ],
        "eval_sets": ["eval.jsonl"],
        "filters": [
            "normalize",
            "language",
            "hyperlink",
            {"subject": {"keep": ["math"]}},
            "multiple_choice",
            "yes_no",
            "multi_part",
            "proof",
            "closed_form",
            "self_verify",
            "exact_dedup",
            "near_dedup",
            "decontaminate",
        ],
        "val_size": 1,
        "verifier": {"workers": 1},
    }
    path = root / "curate.yaml"
    path.write_text(json.dumps(cfg))
    return path


def run(*args):
    return subprocess.run(
        [sys.executable, "-m", "pipeline", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"},
    )


@pytest.mark.slow
def test_curate_end_to_end_accounts_for_every_row_and_verl_reads_it(tmp_path):
    import pandas as pd

    cfg = write_messy_sources(tmp_path)
    out = tmp_path / "out"
    r = run("curate", "--config", str(cfg), "--out", str(out), "--no-progress")
    assert r.returncode == 0, r.stderr
    rep = json.loads((out / "report.json").read_text())
    train, val = pd.read_parquet(out / "train.parquet"), pd.read_parquet(out / "val.parquet")
    dropped = pd.read_parquet(out / "dropped.parquet")
    assert rep["rows_in"] == 14 == len(train) + len(val) + len(dropped)
    assert len(val) == 1
    kept = {
        row["extra_info"]["uid"]: row["reward_model"]["ground_truth"] for _, row in pd.concat([train, val]).iterrows()
    }
    assert kept == {"wordprobs:0": "9", "wordprobs:1": "145", "choice:0": "22", "mixed:c": "10-4 n", "mixed:d": "2, 3"}
    why = dict(zip(dropped["uid"], dropped["filter"]))
    assert why == {
        "wordprobs:2": "exact_dedup",
        "wordprobs:3": "yes_no",
        "wordprobs:4": "hyperlink",
        "choice:1": "multiple_choice",
        "choice:2": "subject",
        "mixed:a": "language",
        "mixed:b": "proof",
        "mixed:e": "decontaminate",
        "mixed:f": "multi_part",
    }
    assert rep["contaminated_by_eval_set"] == {"eval": 1}
    assert rep["by_source"]["wordprobs"] == {"in": 5, "kept": 2, "exact_dedup": 1, "yes_no": 1, "hyperlink": 1}
    md = (out / "report.md").read_text()
    assert "## Per source" in md and "### multiple_choice" in md and (out / "drop_reasons.png").stat().st_size > 1000
    first = train.iloc[0]
    assert first["prompt"][0]["role"] == "user" and "\\boxed{}" in first["prompt"][0]["content"]
    assert first["extra_info"]["original_question"] and first["ability"] == "math"

    # verl's own dataset class reads it
    from omegaconf import OmegaConf
    from transformers import AutoTokenizer
    from verl.utils.dataset.rl_dataset import RLHFDataset

    from pipeline.models.tiny_model import build_tokenizer

    tok_dir = tmp_path / "tok"
    build_tokenizer(["What is 2+2? \\boxed{4}"] * 10).save_pretrained(tok_dir)
    ds = RLHFDataset(
        data_files=[str(out / "train.parquet")],
        tokenizer=AutoTokenizer.from_pretrained(tok_dir),
        config=OmegaConf.create({"prompt_key": "prompt", "max_prompt_length": 512, "filter_overlong_prompts": False}),
    )
    assert len(ds) == len(train)

    # the same config again: nothing to do; a changed config: done again
    mtime = (out / "train.parquet").stat().st_mtime_ns
    again = run("curate", "--config", str(cfg), "--out", str(out), "--no-progress")
    assert again.returncode == 0 and "nothing to do" in again.stderr
    assert (out / "train.parquet").stat().st_mtime_ns == mtime
    c = json.loads(cfg.read_text())
    c["val_size"] = 0
    cfg.write_text(json.dumps(c))
    third = run("curate", "--config", str(cfg), "--out", str(out))  # bars on by default, but stderr is a pipe
    assert third.returncode == 0 and "nothing to do" not in third.stderr
    assert "\r" not in third.stderr, "progress bar redraws written into a log"
    assert not (out / "val.parquet").exists() and len(pd.read_parquet(out / "train.parquet")) == 5


@pytest.mark.parametrize(
    "change, message",
    [
        ({"filters": ["normalize", "dedupe"]}, "unknown filter 'dedupe'"),
        ({"filters": [{"near_dedup": {"treshold": 0.9}}]}, "near_dedup has no parameter(s) ['treshold']"),
        ({"sources": [{"name": "x", "file": "missing.jsonl"}]}, "missing.jsonl: no such file"),
        ({"sources": [{"name": "x", "file": "broken.jsonl"}]}, "broken.jsonl:2: malformed line"),
        ({"sources": [{"name": "x", "file": "a.jsonl", "hub": "org/set"}]}, "exactly one of `file` and `hub`"),
        ({"sources": [{"name": "x", "hub": "org/not-here"}]}, "org/not-here"),
        ({"sources": []}, "at least one source"),
        ({"filters": [{"near_dedup": {"threshold": "high"}}]}, "near_dedup.threshold: expected float"),
        ({"filters": [{"decontaminate": {"near_threshold": 1.5}}]}, "must be between 0 and 1"),
        (
            {"sources": [{"name": "x", "file": "choice.jsonl", "question": "{q} {Qestion}", "answer": "ans"}]},
            "no row has the field(s) ['Qestion', 'ans']",
        ),
        ({"val_size": 100}, "takes all 5 kept rows"),
    ],
)
@pytest.mark.slow
def test_user_errors_are_one_line(tmp_path, change, message):
    cfg = json.loads(write_messy_sources(tmp_path).read_text())
    (tmp_path / "broken.jsonl").write_text('{"question": "What is 1+1?", "answer": "2"}\n{oops\n')
    cfg.update(change)
    path = tmp_path / "bad.yaml"
    path.write_text(json.dumps(cfg))
    r = run("curate", "--config", str(path), "--out", str(tmp_path / "o"), "--no-progress")
    assert r.returncode == 2, r.stderr
    assert message in r.stderr and "Traceback" not in r.stderr


@pytest.mark.slow
@pytest.mark.skipif(not (SHARED / "raw").is_dir(), reason="../shared/data is not present")
def test_shared_config_on_a_slice_of_the_real_raw_files(tmp_path):
    from pipeline.config import load_config
    from pipeline.curate.config import CurateConfig
    from pipeline.curate.run import curate

    cfg = load_config(CurateConfig, REPO / "configs" / "curate" / "shared.yaml")
    for s in cfg.sources:
        s.limit = 40
    rep = curate(cfg, tmp_path / "out", progress=False, log=lambda m: None)
    assert rep["rows_in"] == 8 * 40 - (40 - 32)  # sat_math has 32 rows
    assert rep["kept"] + rep["dropped"] == rep["rows_in"]
    assert rep["by_source"]["cn_middle_school"]["language"] >= 38  # Chinese
    assert rep["by_source"]["mmlu_stem"]["subject"] > 0 and rep["reformulated_multiple_choice"] > 0
    assert rep["by_source"]["svamp"]["kept"] == 40  # clean word problems with float answers


FRESH_FLOOR = 0.9  # measured 0.919 (keep precision), the lowest of the four figures, at the issue-22 commit
LABEL_SETS = {
    "tuned": "curate_labels.jsonl",
    "heldout": "curate_labels_heldout.jsonl",
    "fresh": "curate_labels_fresh.jsonl",
}


@pytest.mark.skipif(not (SHARED / "raw").is_dir(), reason="../shared/data is not present")
def test_filters_on_hand_labelled_raw_rows(verifier):
    """The row-level filters of configs/curate/shared.yaml on raw rows labelled by
    hand: ``keep``, or the filter that should drop the row (``a|b``: either is right).

    ``curate_labels.jsonl``: 56 rows (7 per source, random.Random(7)); the filters
    were tuned on it. ``curate_labels_heldout.jsonl``: 39 rows (random.Random(11)),
    labelled after that tuning; a review's fixes touched two of them since.
    ``curate_labels_fresh.jsonl``: 173 rows (random.Random(22), issue 22), see
    tests/fixtures/curate_labelling_guide.md for what was and was not tuned on it."""
    from pipeline.config import load_config
    from pipeline.curate.audit import label_scores, read_labels, row_outcomes
    from pipeline.curate.config import CurateConfig

    labels = {k: read_labels(REPO / "tests" / "fixtures" / f) for k, f in LABEL_SETS.items()}
    cfg = load_config(CurateConfig, REPO / "configs" / "curate" / "shared.yaml")
    outcome, kept = row_outcomes(cfg, verifier, set().union(*labels.values()))
    assert len(outcome) == sum(map(len, labels.values()))
    scores = {k: label_scores(outcome, v) for k, v in labels.items()}
    print(
        {
            k: {m: v[m] for m in ("accuracy", "keep_precision", "keep_recall", "drop_precision", "wrong")}
            for k, v in scores.items()
        }
    )
    for name, floor in (("tuned", 0.95), ("heldout", 0.9), ("fresh", FRESH_FLOOR)):
        sc = scores[name]
        assert min(sc["accuracy"], sc["keep_precision"], sc["keep_recall"], sc["drop_precision"]) >= floor, (name, sc)


def test_solve_rate_records_difficulty_and_resumes(task_files, tmp_path):
    import pandas as pd

    from pipeline.config import load_config
    from pipeline.curate.config import CurateConfig
    from pipeline.curate.run import curate

    src = tmp_path / "probs.jsonl"
    src.write_text(
        "".join(
            json.dumps({"question": f"What is {i} + {i}? Write the sum.", "answer": str(2 * i)}) + "\n"
            for i in range(1, 6)
        )
    )
    cfg = {
        "sources": [{"name": "p", "file": str(src)}],
        "eval_sets": [],
        "val_size": 0,
        "verifier": {"workers": 1},
        "filters": [
            "normalize",
            {
                "solve_rate": {
                    "model": str(task_files["model"]),
                    "n": 3,
                    "max_new_tokens": 8,
                    "device": "cpu",
                    "drop_unsolved": False,
                    "drop_always_solved": False,
                }
            },
        ],
    }
    path = tmp_path / "c.json"
    path.write_text(json.dumps(cfg))
    rep = curate(load_config(CurateConfig, path), tmp_path / "out", progress=False, log=lambda m: None)
    assert rep["kept"] == 5
    train = pd.read_parquet(tmp_path / "out" / "train.parquet")
    rates = [e["difficulty"] for e in train["extra_info"]]
    assert all(r in (0.0, 1 / 3, 2 / 3, 1.0) for r in rates)
    responses = tmp_path / "out" / "solve_rate" / "responses.jsonl"
    before = responses.read_text()
    assert len(before.splitlines()) == 5 and all(len(json.loads(x)["responses"]) == 3 for x in before.splitlines())

    cfg["filters"][1]["solve_rate"]["max_rate"] = 0.5  # a new threshold: re-filtered, nothing re-sampled
    path.write_text(json.dumps(cfg))
    rep = curate(load_config(CurateConfig, path), tmp_path / "out", progress=False, log=lambda m: None)
    assert responses.read_text() == before
    assert rep["kept"] == sum(r <= 0.5 for r in rates)


def test_closed_form_reads_derivations_labels_and_set_builder(verifier):
    rows = [
        rec("Compute i^15.", r"i^{15}=(i^{4})^{3}\cdot i^{3}=1\cdot(-i)=-i"),
        rec("Find C.", r"C=\frac{def}{de+df+ef}"),
        rec("Find M and N.", r"$\{x|-2\leq x < 1\}$"),
        rec("Find p and q.", "(p,q)=(3,2)"),
        rec("Total?", "x = 5+5+1 = 11"),
        rec("Find the line.", "y=2x+1"),
        rec("Find the circle.", "x^2+y^2=25"),
        rec("Solve.", r"Solution is: (1-i)\sqrt{2}, (1+i)\sqrt{2}"),
        rec("Why?", "Because it is larger"),
    ]
    assert apply("closed_form", rows, Context(verifier=verifier))[:-1] == [None] * 8
    assert [r.answer for r in rows[:-1]] == [
        "-i",
        r"C=\frac{def}{de+df+ef}",
        r"-2\leq x < 1",
        "(3,2)",
        "11",
        "y=2x+1",
        "x^2+y^2=25",
        r"(1-i)\sqrt{2}, (1+i)\sqrt{2}",
    ]
    v = verifier.verify_batch([r"\boxed{[-2, 1)}", r"\boxed{(-2, 1)}"], [rows[2].answer] * 2)
    assert [x.correct for x in v] == [True, False]


def test_standalone():
    rows = [
        rec("(Continue from the previous question) Kirk ran the 1st x miles. How long?"),
        rec("In the figure below, AB = 3. Find the area of the square."),
        rec("The table shows the heights of 5 peaks. What is the mean height?"),
        rec("The table shows values.\n\\begin{tabular}{|l|l|}1 & 2\\end{tabular}\nWhat is f(1)?"),
        rec("Which of the following is closest to 7/3?"),
        rec("Four people are arranged in a row to have their picture taken. In how many ways?"),
        rec("Jerry had 7 action figures on a shelf. He added 2. How many now?"),
        rec("Solve the following equation: $x^2 = 4$."),
    ]
    out = apply("standalone", rows)
    assert [o is None for o in out] == [False, False, False, True, False, True, True, True]
    assert out[0] == "refers to a previous question" and out[4] == "names options that are not in the row"


def test_thousands_separators_and_arithmetic_commands(verifier):
    """A comma in a one-number answer is a thousands separator where that is sure
    (``,000``, or the question writes its numbers so and asks for one value);
    otherwise it may be two answers. "Add." / "Subtract." is a question."""
    rows = [
        rec(
            "The diameter of Jupiter is 143,000 km. What is the diameter of Saturn, to the nearest ten thousand km?",
            "$120,000$",
        ),
        rec("Peaks are 14,439 and 6,684 feet. How many meters is 14,350 feet?", "4,375"),
        rec("How many pages are in the books?", "350,000"),
        rec(
            "A course costs $1,275. The flight part costs $625 more than the ground part. What is the cost of each?",
            "325,950",
        ),
        rec("Find the two angles.", "60,180"),
    ]
    out = apply("closed_form", rows, Context(verifier=verifier))
    assert out[:3] == [None, None, None] and rows[0].answer == "120000" and rows[1].answer == "4375"
    assert out[3].startswith("ambiguous comma") and out[4].startswith("ambiguous comma")
    mc = rec("Subtract. 2,396 - 1,709", "A", options={"A": "687", "B": "1,493", "C": "1,695"}, correct_option="A")
    assert apply("multiple_choice", [mc]) == [None] and mc.answer == "687"


def test_standalone_keeps_text_that_only_names_a_thing():
    """Maps, pictures and drawn balls in word problems, a figure or graph the text
    itself defines, and "which of the following" items listed in the text (rows the
    shared sources have) stand alone."""
    rows = [
        rec("On a map, the road is 20 inches. On this map, 1/4 inch is 10 miles. How many miles is the road?"),
        rec("Debby took 24 pictures and deleted 14 of the pictures. How many are left?"),
        rec("Adam was painting a picture frame 6 inches wide and 9 tall. What is its perimeter?"),
        rec("A picture 10 inches long by 8 inches wide has a frame. What is the frame's area?"),
        rec("A bin has 5 green balls. A ball is drawn, and if a green ball is drawn you win. Find the expected win."),
        rec("How many distinct diagonals of a convex hexagon can be drawn?"),
        rec("Let $f(x)=x^2-9$. The equation $y=f(x)$ is graphed, and its intercepts form a polygon. Find its area."),
        rec("The vertex of f is (-2,5). One of the x-intercepts of this graph is (1,0). Find the other one."),
        rec("The graph of $x+2y=0$ is perpendicular to the graph of $ax+2y=0$. What is $a$?"),
        rec(
            "Three of the 16 squares of a 4 x 4 grid are chosen. What is the probability that a corner of the grid is?"
        ),
        rec("Shifted 2 units right, the resulting figure is identical to the graph of f. Find f(0)."),
        rec("Which of the following are unit vectors? $$u=[1,0], v=[1,1]$$"),
        rec("Use the following picture of the mesh to find the temperature at the middle node."),
        rec("Which of the following expressions equals $\\cos A$: (F) $\\cos(90+A)$ (G) $\\sin A$ (H) $1$"),
        rec("Use the graph below to find the slope of the line."),
    ]
    out = apply("standalone", rows)
    assert [o is None for o in out] == [True] * 12 + [False] * 3, out


def test_multi_answer_keeps_collective_lists_only():
    rows = [
        rec("Find the measures of the second and third angles.", "25,100,55"),
        rec("Chelsea's age is double Daniel's. How old are they now?", "16,32"),
        rec("Solve $x^2-5x+6=0$.", "2,3"),
        rec("Find the point.", "(2,3)"),
        rec("Find x.", "4"),
        rec("State the excluded values for $\\frac{27p}{18p^2-36p}$.", "0,2"),
    ]
    out = apply("multi_answer", rows)
    assert out[0] and out[1] and out[2:] == [None, None, None, None]


def test_answer_key_checks_the_sources_own_arithmetic():
    from pipeline.curate.filters import formula_value

    rows = [
        rec("What is the mean of the money he received?", "16.3", solution="(9+9+22+23+22+22+7)/7=16.3"),
        rec("What is the mean, rounded to the nearest tenth?", "16.3", solution="(9+9+22+23+22+22+7)/7=16.3"),
        rec("How many?", "145", solution="( 290.0 / 2.0 )"),
        rec("How many?", "20", solution="16+3=19"),
        rec("How many?", "3", solution="__import__('os')"),
        rec("How many?", "3"),
    ]
    out = apply("answer_key", rows)
    assert out[0] == "answer is rounded: the source's solution gives 114/7"
    assert out[1] is None and out[2] is None and out[3].startswith("the source's solution gives 19")
    assert out[4:] == [None, None]
    assert formula_value("2**999") is None and formula_value("(" * 250 + "1" + ")" * 250) is None


def test_answer_key_reads_asdiv_steps_divisions_and_equations():
    """ASDiv's formulas as the shared file writes them: steps (the last one gives
    the answer), divisions with a remainder (the key may be the quotient, one
    more, the remainder or what is missing to make it even), equations for an
    unknown (not arithmetic: no verdict). Before, the first step was read and
    ``2x-12`` was read as ``2*-12``: 185 right keys of the shared ASDiv file dropped."""
    from pipeline.curate.filters import formula_value

    rows = [
        rec("How much money does Jermaine have left?", "1", solution="43+19+16=78; 78-77=1"),
        rec("There were 44 laptops divided equally into 5 rows. How many are left?", "4", solution="44/5=8 r4"),
        rec("How many rows to fill?", "8", solution="44/5=8 r4"),
        rec("How many rows of 5 hold 44?", "9", solution="44/5=8 r4"),
        rec("How many more so that no row is short?", "1", solution="44/5=8 r4"),
        rec("How many whole servings are in a gallon?", "21", solution="(4*32)/6=21 r2"),
        rec("How many rows?", "7", solution="44/5=8 r4"),
        rec("12 less than twice a number is 20. Find the number.", "16", solution="x:The number; 2x-12=20"),
        rec("He scores 2 points each round. How many rounds to beat 725?", "362.5", solution="725/2"),
        rec("He scores 2 points each round. What is 725/2 to one decimal place?", "362.5", solution="725/2"),
    ]
    out = apply("answer_key", rows)
    assert out[:6] == [None] * 6 and out[6] and out[7] is None, out
    assert out[8] is None and out[9] is None  # exact: 362.5 is 725/2
    rounded = apply(
        "answer_key",
        [
            rec("He scores 2 points each round. How many rounds?", "363", solution="725/2"),
            rec("Round to the nearest whole number: 725/2", "363", solution="725/2"),
        ],
    )
    assert rounded[0] == "answer is rounded: the source's solution gives 725/2" and rounded[1] is None
    assert formula_value("3 x 4") == 12 and formula_value("2x-12=20") is None
