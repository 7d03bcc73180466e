"""verl adapter: the project's verifier as verl's ``custom_reward_function``.

In a verl config::

    reward.custom_reward_function.path=<repo>/rewards/verl_adapter.py
    reward.custom_reward_function.name=compute_score

verl loads this file by path and calls ``compute_score`` from its reward-loop
threads; the checks run in this process's sandbox pool, so no ``signal.alarm``
is involved and a hostile response costs at most the timeout.
``reward.custom_reward_function.reward_kwargs`` may set ``mode``, ``multi_box``
(``last`` or ``all_agree``, see :mod:`rewards.extract`), ``timeout``,
``correct_score`` and ``incorrect_score``.

On large clusters the checks can run off the GPU nodes, in the verifier
service (``rl-verifier serve``): name ``compute_score_remote`` instead and
give the service's address as ``reward_kwargs.url`` (or ``$PIPELINE_VERIFIER_URL``).
It is ``async``, so verl's reward loop awaits it without a thread per request.
"""

from __future__ import annotations

import os

from rewards.verifier import DEFAULT_TIMEOUT, get_verifier

URL_ENV = "PIPELINE_VERIFIER_URL"
_clients: dict = {}


def _context(extra_info: dict | None) -> tuple[str | None, dict | None]:
    """The question (repeats of it earn nothing) and options (multiple choice) from ``extra_info``."""
    extra = extra_info if isinstance(extra_info, dict) else {}
    options = extra.get("options") if isinstance(extra.get("options"), dict) else None
    question = extra.get("question") if isinstance(extra.get("question"), str) else None
    return question, options


def _result(correct: bool, extracted: str | None, reason: str, correct_score: float, incorrect_score: float) -> dict:
    return {
        "score": correct_score if correct else incorrect_score,
        "acc": float(correct),
        "pred": extracted or "",
        "reason": reason,
    }


def compute_score(
    data_source: str,
    solution_str: str,
    ground_truth: object,
    extra_info: dict | None = None,
    *,
    mode: str = "strict",
    multi_box: str = "last",
    timeout: float = DEFAULT_TIMEOUT,
    correct_score: float = 1.0,
    incorrect_score: float = 0.0,
    **_: object,
) -> dict:
    """Score one response; returns ``{"score", "acc", "pred", "reason"}``.

    ``extra_info`` may carry ``question`` (repeats of it earn nothing) and
    ``options`` (a letter/option-text mapping for multiple choice).
    """
    question, options = _context(extra_info)
    v = get_verifier(timeout=timeout).verify(
        solution_str, ground_truth, mode=mode, question=question, options=options, multi_box=multi_box
    )
    return _result(v.correct, v.extracted, v.reason, correct_score, incorrect_score)


async def compute_score_remote(
    data_source: str,
    solution_str: str,
    ground_truth: object,
    extra_info: dict | None = None,
    *,
    url: str | None = None,
    mode: str = "strict",
    multi_box: str = "last",
    timeout: float = DEFAULT_TIMEOUT,
    correct_score: float = 1.0,
    incorrect_score: float = 0.0,
    **_: object,
) -> dict:
    """:func:`compute_score` through the verifier service at ``url`` (else ``$PIPELINE_VERIFIER_URL``).

    The service's client retries connection errors, 429 and 5xx with backoff;
    an unreachable service raises ``VerifierServiceError`` naming the address.
    """
    from rewards.client import VerifierClient

    base = url or os.environ.get(URL_ENV)
    if not base:
        raise ValueError(f"compute_score_remote needs reward_kwargs.url or ${URL_ENV}: the verifier service's address")
    client = _clients.get(base)
    if client is None:
        client = _clients[base] = VerifierClient(base)
    question, options = _context(extra_info)
    gt = ground_truth if isinstance(ground_truth, (str, int, float)) else str(ground_truth)
    item = {
        "response": solution_str if isinstance(solution_str, str) else str(solution_str),
        "ground_truth": gt,
        "question": question,
        "options": options,
    }
    (v,) = await client.averify([item], mode=mode, timeout=timeout, multi_box=multi_box)
    return _result(bool(v["correct"]), v.get("extracted"), str(v.get("reason", "")), correct_score, incorrect_score)
