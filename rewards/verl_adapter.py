"""verl adapter: the project's verifier as verl's ``custom_reward_function``.

In a verl config::

    reward.custom_reward_function.path=<repo>/rewards/verl_adapter.py
    reward.custom_reward_function.name=compute_score

verl loads this file by path and calls ``compute_score`` from its reward-loop
threads; the checks run in this process's sandbox pool, so no ``signal.alarm``
is involved and a hostile response costs at most the timeout.
``reward.custom_reward_function.reward_kwargs`` may set ``mode``, ``timeout``,
``correct_score`` and ``incorrect_score``.
"""

from __future__ import annotations

from rewards.verifier import DEFAULT_TIMEOUT, get_verifier


def compute_score(
    data_source: str,
    solution_str: str,
    ground_truth: object,
    extra_info: dict | None = None,
    *,
    mode: str = "strict",
    timeout: float = DEFAULT_TIMEOUT,
    correct_score: float = 1.0,
    incorrect_score: float = 0.0,
    **_: object,
) -> dict:
    """Score one response; returns ``{"score", "acc", "pred", "reason"}``.

    ``extra_info`` may carry ``question`` (repeats of it earn nothing) and
    ``options`` (a letter/option-text mapping for multiple choice).
    """
    extra = extra_info if isinstance(extra_info, dict) else {}
    options = extra.get("options") if isinstance(extra.get("options"), dict) else None
    question = extra.get("question") if isinstance(extra.get("question"), str) else None
    v = get_verifier(timeout=timeout).verify(
        solution_str, ground_truth, mode=mode, question=question, options=options
    )
    return {
        "score": correct_score if v.correct else incorrect_score,
        "acc": float(v.correct),
        "pred": v.extracted or "",
        "reason": v.reason,
    }
