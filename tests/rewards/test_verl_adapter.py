"""rewards.verl_adapter.compute_score, loaded and called the way verl does it.

verl loads the reward function by file path (``get_custom_reward_fn``) and its
naive reward-loop manager calls it from the event loop's default executor, i.e.
from a worker thread, where ``signal.alarm``-based timeouts cannot work.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ADAPTER = REPO / "rewards" / "verl_adapter.py"

CASES = [
    pytest.param("Adding, 2+3 = 5, so the answer is \\boxed{5}.", "5", 1.0, id="right boxed"),
    pytest.param("Adding, 2+3 = 6, so the answer is \\boxed{6}.", "5", 0.0, id="wrong boxed"),
    pytest.param("The answer is 5.", "5", 0.0, id="unboxed right answer (strict)"),
    pytest.param("\\boxed{\\frac{1}{2}}", "0.5", 1.0, id="fraction vs decimal"),
    pytest.param("\\boxed{3} or maybe \\boxed{4}", "3", 0.0, id="hedged boxes"),
    pytest.param("\\boxed{10^{10^{10}}}", "5", 0.0, id="power tower"),
]


@pytest.fixture(scope="module")
def verl_fn():
    """compute_score as verl's own loader returns it (imports verl once per module)."""
    from omegaconf import OmegaConf
    from verl.trainer.ppo.reward import get_custom_reward_fn

    config = OmegaConf.create(
        {
            "reward": {
                "custom_reward_function": {
                    "path": str(ADAPTER),
                    "name": "compute_score",
                    "reward_kwargs": {},
                }
            }
        }
    )
    fn = get_custom_reward_fn(config)
    assert fn is not None and callable(fn)
    yield fn
    # stop the process-wide verifier the adapter created (its worker processes)
    from rewards.verifier import close_shared_verifiers

    close_shared_verifiers()


def _extra_info(question: str = "What is 2+3?") -> dict:
    # what verl's naive reward-loop manager passes along
    return {"question": question, "num_turns": None, "rollout_reward_scores": {}}


def _assert_result(result, want_score):
    assert isinstance(result, dict)
    assert "score" in result
    assert result["score"] == want_score, result
    assert result["acc"] == want_score
    assert isinstance(result["pred"], str)
    assert isinstance(result["reason"], str)


@pytest.mark.parametrize("solution, gold, want", CASES)
def test_compute_score_from_event_loop_executor(verl_fn, solution, gold, want):
    async def reward_loop():
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            None,
            lambda: verl_fn(
                data_source="lighteval/MATH",
                solution_str=solution,
                ground_truth=gold,
                extra_info=_extra_info(),
            ),
        )

    _assert_result(asyncio.run(reward_loop()), want)


def test_compute_score_many_concurrent_executor_calls(verl_fn):
    async def reward_loop():
        loop = asyncio.get_running_loop()
        calls = [
            loop.run_in_executor(
                None,
                lambda s=solution, g=gold: verl_fn(
                    data_source="lighteval/MATH", solution_str=s, ground_truth=g, extra_info=_extra_info()
                ),
            )
            for solution, gold, _ in [p.values for p in CASES] * 3
        ]
        return await asyncio.gather(*calls)

    results = asyncio.run(reward_loop())
    assert [r["score"] for r in results] == [p.values[2] for p in CASES] * 3


@pytest.mark.parametrize("solution, gold, want", CASES[:2])
def test_compute_score_from_plain_thread(verl_fn, solution, gold, want):
    box: dict = {}

    def run():
        try:
            box["result"] = verl_fn(
                data_source="openai/gsm8k", solution_str=solution, ground_truth=gold, extra_info=_extra_info()
            )
        except BaseException as e:  # surfaced below
            box["error"] = e

    t = threading.Thread(target=run)
    t.start()
    t.join(timeout=60)
    assert not t.is_alive()
    assert "error" not in box, box.get("error")
    _assert_result(box["result"], want)


def test_compute_score_extra_info_question_and_options(verl_fn):
    q = "Which is 12? (A) 10 (B) 11 (C) 12"
    r = verl_fn(
        data_source="mcq",
        solution_str=q,
        ground_truth="C",
        extra_info={"question": q, "options": {"A": "10", "B": "11", "C": "12"}},
    )
    assert r["score"] == 0.0 and r["reason"] == "repeats_question"
    r = verl_fn(
        data_source="mcq",
        solution_str="\\boxed{12}",
        ground_truth="C",
        extra_info={"options": {"A": "10", "B": "11", "C": "12"}},
    )
    assert r["score"] == 1.0
    r = verl_fn(data_source="mcq", solution_str="\\boxed{12}", ground_truth="C", extra_info=None)
    assert r["score"] == 0.0


def test_reward_kwargs_are_passed_through():
    from omegaconf import OmegaConf
    from verl.trainer.ppo.reward import get_custom_reward_fn

    fn = get_custom_reward_fn(
        OmegaConf.create(
            {
                "reward": {
                    "custom_reward_function": {
                        "path": str(ADAPTER),
                        "name": "compute_score",
                        "reward_kwargs": {"mode": "lenient", "correct_score": 2.0, "incorrect_score": -1.0},
                    }
                }
            }
        )
    )
    try:
        assert fn(data_source="x", solution_str="The answer is 5.", ground_truth="5", extra_info={})["score"] == 2.0
        assert fn(data_source="x", solution_str="The answer is 6.", ground_truth="5", extra_info={})["score"] == -1.0
    finally:
        from rewards.verifier import close_shared_verifiers

        close_shared_verifiers()


@pytest.mark.slow
def test_compute_score_remote_from_ray_actors_through_the_service(monkeypatch):
    """The reward service path for large clusters: verl's reward workers are Ray actors that
    await ``compute_score_remote``; here real Ray actors call a real verifier service on loopback
    and get the in-process verdicts. A dead address is a clear error, not a silent 0."""
    import ray

    from rewards.client import VerifierServiceError
    from rewards.service import create_app
    from rewards.verifier import Verifier
    from rewards.verl_adapter import compute_score_remote
    from tests.rewards.test_service import _Server

    cases = [(s, g, w) for s, g, w in (p.values for p in CASES)]
    # a throwaway local cluster: without this Ray enables token auth and writes ~/.ray/auth_token,
    # which later `ray start` clusters on this machine then pick up
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    with Verifier(workers=2, timeout=3) as v, _Server(create_app(v)) as url:
        ray.init(
            num_cpus=2,
            include_dashboard=False,
            log_to_driver=False,
            runtime_env={"env_vars": {"PYTHONPATH": str(REPO)}},
        )
        try:

            @ray.remote
            class RewardWorker:
                async def score(self, solution, gold):
                    from rewards.verl_adapter import compute_score_remote as fn

                    return await fn("synthetic", solution, gold, _extra_info(), url=url, correct_score=1.0)

            workers = [RewardWorker.remote() for _ in range(2)]
            refs = [workers[i % 2].score.remote(s, g) for i, (s, g, _) in enumerate(cases)]
            for result, (_, _, want) in zip(ray.get(refs, timeout=120), cases):
                _assert_result(result, want)
        finally:
            ray.shutdown()
        # the same from asyncio directly, with the address from the environment and custom scores
        import os

        os.environ["PIPELINE_VERIFIER_URL"] = url
        try:
            r = asyncio.run(compute_score_remote("s", "\\boxed{5}", "5", None, correct_score=2.0))
        finally:
            del os.environ["PIPELINE_VERIFIER_URL"]
        assert r["score"] == 2.0 and r["pred"] == "5"
    with pytest.raises(VerifierServiceError, match="unreachable"):
        asyncio.run(compute_score_remote("s", "\\boxed{5}", "5", None, url=url))  # the server is gone
    with pytest.raises(ValueError, match="PIPELINE_VERIFIER_URL"):
        asyncio.run(compute_score_remote("s", "\\boxed{5}", "5", None))
