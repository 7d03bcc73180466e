"""Table-driven tests of rewards.extract.extract_answers (strict and lenient modes)."""

from __future__ import annotations

import pytest

from rewards.extract import LENIENT, STRICT, extract_answers, reference_answer


@pytest.mark.parametrize(
    "text, mode, answers, method",
    [
        # boxed answers: the last one is .answer, all are in .answers
        pytest.param(r"so \boxed{5}.", STRICT, ("5",), "boxed", id="single box"),
        pytest.param(r"first \boxed{1}, then \boxed{2}", STRICT, ("1", "2"), "boxed", id="last box is the answer"),
        pytest.param(r"\boxed{a}\boxed{b}\fbox{c}", STRICT, ("a", "b", "c"), "boxed", id="multiple boxes all returned"),
        pytest.param(r"\boxed{\frac{1}{2}}", STRICT, (r"\frac{1}{2}",), "boxed", id="nested braces"),
        pytest.param(
            r"\boxed{\frac{\sqrt{3}}{2^{x+1}}}",
            STRICT,
            (r"\frac{\sqrt{3}}{2^{x+1}}",),
            "boxed",
            id="deeply nested braces",
        ),
        pytest.param(r"\boxed{\{1,2\}}", STRICT, (r"\{1,2\}",), "boxed", id="escaped braces inside box"),
        pytest.param(r"\boxed{a \{ b}", STRICT, (r"a \{ b",), "boxed", id="unbalanced escaped brace"),
        pytest.param(r"\fbox{7}", STRICT, ("7",), "boxed", id="fbox"),
        pytest.param(r"\boxed 5", STRICT, ("5",), "boxed", id="boxed without braces"),
        pytest.param(r"$\boxed{ 12 }$", STRICT, ("12",), "boxed", id="box content is stripped"),
        pytest.param(r"\boxed{}", STRICT, ("",), "boxed", id="empty box is returned empty"),
        # unterminated box: no answer in either mode from the box
        pytest.param(r"\boxed{5", STRICT, (), None, id="unterminated box strict"),
        pytest.param(r"\boxed{\frac{1}{2}", STRICT, (), None, id="unterminated nested box strict"),
        pytest.param(r"\boxed{1} and \boxed{2", STRICT, ("1",), "boxed", id="unterminated box after a good one"),
        # strict mode ignores everything but boxes
        pytest.param("The final answer is 5", STRICT, (), None, id="strict ignores final answer phrase"),
        pytest.param("#### 5", STRICT, (), None, id="strict ignores hashes"),
        pytest.param("Answer: 5", STRICT, (), None, id="strict ignores Answer colon"),
        pytest.param("The answer is 5", STRICT, (), None, id="strict ignores the answer is"),
        pytest.param("we get 3 and 4 and 5", STRICT, (), None, id="strict ignores last number"),
        # lenient mode
        pytest.param("The final answer is 5.", LENIENT, ("5",), "final_answer", id="lenient final answer"),
        pytest.param(
            r"Final Answer: The final answer is $\frac{3}{4}$. I hope it is correct.",
            LENIENT,
            (r"\frac{3}{4}",),
            "final_answer",
            id="lenient minerva style",
        ),
        pytest.param("so\n#### 42", LENIENT, ("42",), "hashes", id="lenient hashes"),
        pytest.param("#### 1,234", LENIENT, ("1,234",), "hashes", id="lenient hashes with separator"),
        pytest.param("work...\nAnswer: 17", LENIENT, ("17",), "answer_colon", id="lenient Answer colon"),
        pytest.param("The answer is 9", LENIENT, ("9",), "answer_is", id="lenient the answer is"),
        pytest.param(
            "we get 3 then 4 and finally 12 apples", LENIENT, ("12",), "last_number", id="lenient last number"
        ),
        pytest.param("x = -3.5 is it", LENIENT, ("-3.5",), "last_number", id="lenient last negative decimal"),
        pytest.param(r"The final answer is $\boxed{8}$.", LENIENT, ("8",), "boxed", id="lenient prefers boxes"),
        pytest.param(
            r"\boxed{2} but the final answer is 3",
            LENIENT,
            ("3",),
            "final_answer",
            id="lenient a later final-answer phrase beats an earlier box",
        ),
        pytest.param(
            r"the answer is 3, so \boxed{2}", LENIENT, ("2",), "boxed", id="lenient a later box beats a phrase"
        ),
        pytest.param(
            r"\boxed{2} and the answer is 3",
            LENIENT,
            ("2",),
            "boxed",
            id="lenient only an explicit final-answer phrase overrides a box",
        ),
        pytest.param(r"\boxed{5", LENIENT, ("5",), "last_number", id="lenient unterminated box falls back"),
        # lenient: the last math span, or the last number when it comes later
        pytest.param(
            r"the ordered pair is $(7, 6)$. <|im_start|>user",
            LENIENT,
            ("(7, 6)",),
            "last_math",
            id="lenient last inline math",
        ),
        pytest.param(
            r"so \( \frac{1}{3} \) and then \[ x \ge 2 \]",
            LENIENT,
            (r"x \ge 2",),
            "last_math",
            id="lenient display math",
        ),
        pytest.param(
            r"with $d = 90/n$ there are 12 sequences.",
            LENIENT,
            ("12",),
            "last_number",
            id="lenient number after the last math",
        ),
        pytest.param(
            r"costs \$5 then $x=3$", LENIENT, ("x=3",), "last_math", id="lenient escaped dollar is no delimiter"
        ),
        pytest.param(
            "Final Answer: The largest $n$ is 34.",
            LENIENT,
            ("34",),
            "final_answer",
            id="lenient phrase answer in a sentence",
        ),
        pytest.param("AZYUK2A", LENIENT, (), None, id="lenient no number inside a word"),
        pytest.param(
            r"so \boxed{200} and \boxed{255}, in all $10,455. Final Answer: The final answer is $10,455$. "
            "I hope it is correct.",
            LENIENT,
            ("10,455",),
            "final_answer",
            id="lenient final-answer phrase after the last box is the later commitment",
        ),
        pytest.param(
            r"so \boxed{200}. Final Answer: The final answer is 7",
            STRICT,
            ("200",),
            "boxed",
            id="strict keeps the box over a later phrase",
        ),
        pytest.param(r"The final answer is $\boxed{6}$.", LENIENT, ("6",), "boxed", id="lenient phrase around its box"),
        pytest.param(r"\boxed{185\}", STRICT, ("185\\",), "boxed", id="stray backslash before the closing brace"),
        # after </think> only
        pytest.param(r"<think>\boxed{1}</think>so \boxed{2}", STRICT, ("2",), "boxed", id="after think"),
        pytest.param(r"<think>\boxed{1}</think>no box", STRICT, (), None, id="nothing after think"),
        pytest.param("nothing here", LENIENT, (), None, id="lenient nothing"),
        pytest.param("", LENIENT, (), None, id="lenient empty"),
        pytest.param("", STRICT, (), None, id="strict empty"),
    ],
)
def test_extract_answers(text, mode, answers, method):
    ext = extract_answers(text, mode)
    assert ext.answers == answers
    assert ext.method == method
    assert ext.answer == (answers[-1] if answers else None)


def test_default_mode_is_strict():
    assert extract_answers("The final answer is 5").answers == ()
    assert extract_answers(r"\boxed{5}").answer == "5"


def test_unknown_mode_raises():
    with pytest.raises(ValueError):
        extract_answers(r"\boxed{5}", "loose")


def test_hostile_nesting_is_linear():
    depth = 100_000
    text = r"\boxed{" + "{" * depth + "7" + "}" * depth + "}"
    ext = extract_answers(text, STRICT)
    assert ext.method == "boxed"
    assert ext.answer == "{" * depth + "7" + "}" * depth
    # unterminated version: no answer, and no recursion error
    assert extract_answers(r"\boxed{" + "{" * depth, STRICT).answers == ()


@pytest.mark.parametrize(
    "gold, want",
    [
        pytest.param("27", "27", id="string"),
        pytest.param(27.0, "27", id="integral float"),
        pytest.param(2.5, "2.5", id="float"),
        pytest.param(7, "7", id="int"),
        pytest.param(r"so the answer is \boxed{\frac12}.", r"\frac12", id="solution with box"),
        pytest.param("  x=5 ", "x=5", id="stripped"),
    ],
)
def test_reference_answer(gold, want):
    assert reference_answer(gold) == want
