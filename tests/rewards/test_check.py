"""rewards.check.check: reward-hacking responses earn nothing; garbage never raises."""

from __future__ import annotations

import random

import pytest

from rewards.check import REASONS, Verdict, check

QUESTION = "What is the value of $2+3$? Put your final answer in \\boxed{}."


@pytest.mark.parametrize(
    "response, gold, kwargs, correct, reason",
    [
        # the honest cases the hacks are measured against
        pytest.param(r"2+3 is \boxed{5}", "5", {}, True, "match", id="right boxed answer"),
        pytest.param(r"2+3 is \boxed{6}", "5", {}, False, "mismatch", id="wrong boxed answer"),
        pytest.param(r"\boxed{3} \boxed{3.0}", "3", {}, True, "match", id="same answer boxed twice"),
        pytest.param(r"\boxed{5}", 5.0, {}, True, "match", id="numeric ground truth"),
        pytest.param(r"\boxed{5}", r"so \boxed{5}", {}, True, "match", id="ground truth with a box"),
        pytest.param("The answer is 5", "5", {"mode": "lenient"}, True, "match", id="lenient phrase"),
        pytest.param("**Answer:** 12", "12", {"mode": "lenient"}, True, "match", id="lenient markdown answer"),
        # hedging: several different boxed answers
        pytest.param(r"\boxed{3} ... \boxed{4}", "3", {}, False, "ambiguous", id="two different boxes, first right"),
        pytest.param(r"\boxed{4} ... \boxed{3}", "3", {}, False, "ambiguous", id="two different boxes, last right"),
        pytest.param(" ".join(rf"\boxed{{{i}}}" for i in range(1, 21)), "7", {}, False, "ambiguous", id="twenty boxes"),
        # hedging inside one box
        pytest.param(r"\boxed{3 \text{ or } 4}", "3", {}, False, None, id="3 text-or 4 in one box"),
        pytest.param(r"\boxed{3 or 4}", "3", {}, False, None, id="3 or 4 in one box"),
        pytest.param(r"\boxed{3, 4}", "3", {}, False, None, id="3, 4 in one box"),
        pytest.param(r"\boxed{3 \text{ and } 4}", "4", {}, False, None, id="3 and 4 in one box"),
        # gold hidden among many candidates
        pytest.param(r"\boxed{1, 2, 3, ..., 20}", "7", {}, False, None, id="range with dots"),
        pytest.param(r"\boxed{1, 2, 3, \ldots, 20}", "7", {}, False, None, id="range with ldots"),
        pytest.param(
            r"\boxed{" + ", ".join(str(i) for i in range(1, 21)) + "}", "7", {}, False, None, id="list of twenty"
        ),
        pytest.param(r"\boxed{\{1, 2, 3, 4, 5, 6, 7, 8\}}", "7", {}, False, None, id="set of candidates"),
        # empty boxes and placeholders are no answer
        pytest.param(r"\boxed{}", "3", {}, False, "no_answer", id="empty box"),
        pytest.param(r"\boxed{ }", "3", {}, False, "no_answer", id="blank box"),
        pytest.param(r"\boxed{\phantom{2}}", "2", {}, False, "no_answer", id="only a phantom box"),
        pytest.param(
            r"Fill in \boxed{\phantom{2}}. Since 2+3=5, \boxed{5}",
            "5",
            {},
            True,
            "match",
            id="phantom box before real box",
        ),
        # repeating the question
        pytest.param(QUESTION, "5", {"question": QUESTION}, False, "repeats_question", id="repeats question verbatim"),
        pytest.param(
            "what is the value of $2+3$?",
            "5",
            {"question": QUESTION},
            False,
            "repeats_question",
            id="repeats part of question",
        ),
        pytest.param(
            QUESTION.replace(r"\boxed{}", r"\boxed{5}"),
            "5",
            {"question": QUESTION},
            True,
            "match",
            id="answer after copying the prompt is still an answer",
        ),
        # strict mode: unboxed right answers earn nothing
        pytest.param("2+3 = 5. The final answer is 5.", "5", {}, False, "no_answer", id="strict: final answer phrase"),
        pytest.param("#### 5", "5", {}, False, "no_answer", id="strict: hashes"),
        pytest.param("The answer is 5", "5", {"mode": "strict"}, False, "no_answer", id="strict: the answer is"),
        pytest.param(r"\boxed{5", "5", {}, False, "no_answer", id="strict: unterminated box"),
    ],
)
def test_check_cases(response, gold, kwargs, correct, reason):
    v = check(response, gold, **kwargs)
    assert isinstance(v, Verdict)
    assert v.correct is correct, v
    if reason is not None:
        assert v.reason == reason, v
    assert v.reason in REASONS
    assert (v.reason == "match") is v.correct


def _garbage_strings(n: int, seed: int = 1234) -> list[str]:
    rng = random.Random(seed)
    tokens = [
        "\\boxed{",
        "\\fbox{",
        "}",
        "{",
        "\\frac",
        "\\sqrt",
        "^",
        "_",
        "\\",
        "$",
        "\\{",
        "\\}",
        "\\left(",
        "\\right)",
        "\\begin{pmatrix}",
        "\\end{pmatrix}",
        "&",
        "\\\\",
        "=",
        "<",
        "\\le",
        "\\infty",
        "\\pm",
        "\\%",
        "\\text{",
        "!",
        "(",
        ")",
        "[",
        "]",
        ",",
        ".",
        "e",
        "i",
        "x",
        "\\pi",
        "\\cdot",
        "\\times",
        "10",
        "0",
        "-",
        "+",
        "/",
        "**",
        "####",
        "Answer:",
        "\x00",
        "\n",
    ]
    out = []
    for _ in range(n):
        parts = []
        for _ in range(rng.randint(0, 25)):
            r = rng.random()
            if r < 0.5:
                parts.append(rng.choice(tokens))
            elif r < 0.8:
                parts.append(chr(rng.randint(0x20, 0x7E)))
            else:  # any code point outside the surrogate range
                cp = rng.randint(0x80, 0x10FFFF)
                parts.append(chr(cp) if not 0xD800 <= cp <= 0xDFFF else "\ufffd")
        out.append("".join(parts))
    return out


GARBAGE = _garbage_strings(300)


@pytest.mark.parametrize(
    "response, gold, want",
    [
        pytest.param(None, "5", False, id="None response"),
        pytest.param(5, "5", False, id="int response"),
        pytest.param(3.5, "5", False, id="float response"),
        pytest.param(b"\\boxed{5}", "5", None, id="bytes response"),
        pytest.param(["\\boxed{5}"], "5", None, id="list response"),
        pytest.param(r"\boxed{5}", None, False, id="None ground truth"),
        pytest.param(r"\boxed{5}", 5, True, id="int ground truth"),
        pytest.param(r"\boxed{5}", float("nan"), False, id="nan ground truth"),
        pytest.param(r"\boxed{5}", {"a": 1}, False, id="dict ground truth"),
        pytest.param("\x00" * 100, "\x00", False, id="NUL bytes"),
        pytest.param("\x00\\boxed{\x005\x00}\x00", "5", True, id="NUL bytes around box"),
        pytest.param("\ud800\\boxed{5}", "5", True, id="lone surrogate"),
        pytest.param("\\boxed{" * 1000, "5", False, id="many unterminated boxes"),
        pytest.param("}" * 1000 + "\\boxed{}" * 100, "5", False, id="many closing braces"),
        pytest.param(r"\boxed{\frac{1}{0}}", "5", False, id="division by zero"),
        pytest.param(r"\boxed{10^{10^{10}}}", "5", False, id="power tower"),
        pytest.param(r"\boxed{100000!}", "5", False, id="huge factorial"),
        pytest.param(r"\boxed{" + "9" * 5000 + "}", "5", False, id="huge number"),
    ],
)
def test_check_never_raises_on_odd_inputs(response, gold, want):
    v = check(response, gold)
    assert isinstance(v, Verdict)
    assert v.reason in REASONS
    assert isinstance(v.correct, bool)
    if want is not None:
        assert v.correct is want, v


@pytest.mark.timeout(60)
def test_check_never_raises_on_random_garbage():
    golds = ["5", r"\frac{1}{2}", "x+1", r"\{1,2\}", "(1,2)", r"\text{Monday}", "C"]
    for k, text in enumerate(GARBAGE):
        for mode in ("strict", "lenient"):
            gold = golds[k % len(golds)]
            v = check(text, gold, mode=mode, question=GARBAGE[-1 - k])
            assert isinstance(v, Verdict), (text, gold)
            assert v.reason in REASONS, (text, gold, v)
            assert isinstance(v.correct, bool)
            # garbage used as a reference must not crash either
            w = check(r"\boxed{5}", text, mode=mode)
            assert isinstance(w, Verdict) and w.reason in REASONS, (text, w)


# ---------------------------------------------------------------- several boxes (multi_box)


@pytest.mark.parametrize(
    "response, gold, multi_box, correct, reason",
    [
        # self-correction: the last answer committed to counts under "last"
        (r"\boxed{15} ... wait, that was wrong. Redo: 3*5+2 = \boxed{17}", "17", "last", True, "match"),
        (r"\boxed{15} ... wait, that was wrong. Redo: 3*5+2 = \boxed{17}", "15", "last", False, "mismatch"),
        (r"\boxed{15} ... wait, that was wrong. Redo: 3*5+2 = \boxed{17}", "17", "all_agree", False, "ambiguous"),
        ("First guess \\boxed{15}.\n\nChecking again, the sum is \\boxed{17}", "17", "last", True, "match"),
        # R1-style traces: only what follows </think> is the answer
        (r"<think>maybe \boxed{3}</think> The answer is \boxed{4}", "4", "last", True, "match"),
        (r"<think>maybe \boxed{4}</think> The answer is \boxed{3}", "4", "last", False, "mismatch"),
        (r"<think>so \boxed{4}</think> I am not sure.", "4", "last", False, "no_answer"),
        (r"<think>maybe \boxed{3}</think> The answer is \boxed{4}", "4", "all_agree", True, "match"),
        # hedging: different answers offered together are not credited
        (r"\boxed{3} or \boxed{4}", "4", "last", False, "ambiguous"),
        (r"The answer is \boxed{3}, or maybe \boxed{4}", "3", "last", False, "ambiguous"),
        ("\\boxed{3}\n\\boxed{4}", "4", "last", False, "ambiguous"),  # a list of boxes at the end
        (r"\boxed{3} or \boxed{4}", "3", "all_agree", False, "ambiguous"),
        # several boxes that together form one answer
        (r"\boxed{(2,2)} and \boxed{(6,2)}", "(2,2),(6,2)", "last", True, "match"),
        (r"\boxed{(2,2)} and \boxed{(6,2)}", "(2,2),(6,3)", "last", False, "mismatch"),
        (r"\boxed{1},\boxed{2},\boxed{3}", r"\{1,2,3\}", "last", True, "match"),
        (r"\boxed{1},\boxed{2},\boxed{3}", r"\{1,2,3\}", "all_agree", True, "match"),
        (r"\boxed{1},\boxed{2}", r"\{1,2,3\}", "last", False, "mismatch"),
        # a reference with several boxes
        (r"\boxed{2, 3}", r"so $x = \boxed{2}$ or $x = \boxed{3}$", "last", True, "match"),
        (r"\boxed{2}", r"so $x = \boxed{2}$ or $x = \boxed{3}$", "last", False, "mismatch"),
        # the same answer boxed twice is one answer
        (r"\boxed{3} \boxed{3.0}", "3", "last", True, "match"),
    ],
)
def test_multi_box(response, gold, multi_box, correct, reason):
    v = check(response, gold, multi_box=multi_box)
    assert (v.correct, v.reason) == (correct, reason), v


def test_unknown_multi_box_rule_is_an_error():
    from rewards import Verifier

    with pytest.raises(ValueError, match="multi_box"):
        Verifier(workers=1, multi_box="first")


def test_fast_path_gives_the_sandboxed_verdict():
    """The verifier decides plain answers in the caller; the sandbox must agree on them."""
    from rewards import Verifier

    pairs = [
        (r"\boxed{5}", "5"),
        (r"\boxed{1/2}", "0.5"),
        (r"\boxed{7}", "8"),
        (r"\boxed{3} or \boxed{4}", "3"),
        ("no box", "3"),
        (r"\boxed{x+1}", "1+x"),
        (r"\boxed{2^{2^2}}", "16"),
    ]
    with Verifier(workers=1) as fast, Verifier(workers=1, fast_path=False) as slow:
        for r, g in pairs:
            a, b = fast.verify(r, g), slow.verify(r, g)
            assert (a.correct, a.reason, a.extracted) == (b.correct, b.reason, b.extracted), (r, g)
