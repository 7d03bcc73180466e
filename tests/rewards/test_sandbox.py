"""The sandboxed verifier: hostile inputs, killed workers, timeouts, memory limit, threads, asyncio.

Every test here spawns worker processes; pools are created in fixtures and closed.
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time

import pytest

from rewards import Verifier
from rewards.check import Verdict
from rewards.sandbox import ERROR, OK, TIMEOUT, WorkerPool

TIMEOUT_S = 2.0
SLACK_S = 1.0


@pytest.fixture(scope="module")
def verifier():
    v = Verifier(workers=2, timeout=TIMEOUT_S)
    v.pool.start()
    yield v
    v.close()


@pytest.fixture
def sleepy_pool():
    pool = WorkerPool("tests.sandbox_tasks:sleep_then_echo", workers=1, timeout=TIMEOUT_S)
    pool.start()
    yield pool
    pool.close()


def _wait_for_workers(pool: WorkerPool, n: int, within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while len(pool.pids) < n and time.monotonic() < deadline:
        time.sleep(0.05)


HOSTILE = [
    pytest.param(r"so \boxed{10^{10^{10}}}", "5", id="power tower"),
    pytest.param(r"\boxed{10^{10^{10}}}", r"10^{10^{10}} + 1", id="power tower vs power tower"),
    pytest.param(r"\boxed{9^{9^{9^{9}}}}", "7", id="taller tower"),
    pytest.param(r"\boxed{(10^{1000000})!}", "7", id="factorial of a huge power"),
    pytest.param("{" * 100_000 + "}" * 100_000, "7", id="100k nested braces"),
    pytest.param(r"\boxed{" + "{" * 100_000 + "7" + "}" * 100_000 + "}", "8", id="100k nested braces in a box"),
    pytest.param(
        r"\boxed{" + "{" * 15_000 + "7" + "}" * 15_000 + "}", "8", id="15k nested braces within the kept tail"
    ),
    pytest.param(r"\boxed{" + "\\sqrt{" * 5_000 + "2" + "}" * 5_000 + "}", "7", id="5k nested sqrt"),
    pytest.param("x" * (1 << 20), "7", id="1 MB of text"),
    pytest.param("\\boxed{1}" * 120_000, "7", id="1 MB of boxes"),
    pytest.param(r"\boxed{", "7", id="unterminated box"),
    pytest.param(r"\boxed{" + "1+" * 100_000, "7", id="long unterminated box"),
    pytest.param("\x00" * 1000 + r"\boxed{\x00}" + "\x00" * 1000, "7", id="NUL bytes"),
    pytest.param("\x00\\boxed{7\x00", "7", id="NUL bytes unterminated"),
]


@pytest.mark.parametrize("response, gold", HOSTILE)
def test_hostile_inputs_are_bounded(verifier, response, gold):
    t0 = time.monotonic()
    v = verifier.verify(response, gold)
    elapsed = time.monotonic() - t0
    assert isinstance(v, Verdict)
    assert v.correct is False, v
    assert elapsed < TIMEOUT_S + SLACK_S, f"took {elapsed:.2f}s: {v}"


def test_verifier_still_right_after_hostile_inputs(verifier):
    assert verifier.verify(r"\boxed{\frac{1}{2}}", "0.5").correct is True
    assert verifier.verify(r"\boxed{3}", "4").correct is False


def test_killed_worker_returns_error_and_pool_recovers(sleepy_pool):
    pool = sleepy_pool
    assert pool.call(0, "warm") == (OK, "warm")
    (pid,) = pool.pids
    replaced_before = pool.replaced
    result: dict = {}

    def run() -> None:
        t0 = time.monotonic()
        result["value"] = pool.call(30, "never", timeout=20)
        result["elapsed"] = time.monotonic() - t0

    t = threading.Thread(target=run)
    t.start()
    time.sleep(0.3)  # the worker is now sleeping inside the task
    os.kill(pid, signal.SIGKILL)
    t.join(timeout=5)
    assert not t.is_alive(), "call did not return after its worker was killed"
    status, _ = result["value"]
    assert status == ERROR
    assert result["elapsed"] < 3
    assert pool.replaced == replaced_before + 1
    for k in range(3):
        assert pool.call(0, k) == (OK, k)
    assert pid not in pool.pids
    assert len(pool.pids) == 1


@pytest.mark.slow
def test_timeout_returns_promptly_and_pool_recovers(sleepy_pool):
    pool = sleepy_pool
    replaced_before = pool.replaced
    t0 = time.monotonic()
    status, value = pool.call(10, "late", timeout=1.5)
    elapsed = time.monotonic() - t0
    assert (status, value) == (TIMEOUT, None)
    assert elapsed < 1.5 + SLACK_S
    assert pool.replaced == replaced_before + 1
    assert pool.call(0.01, "next") == (OK, "next")
    # the pool-wide default timeout applies when none is given
    t0 = time.monotonic()
    assert pool.call(10, "late") == (TIMEOUT, None)
    assert time.monotonic() - t0 < TIMEOUT_S + SLACK_S
    assert pool.call(0, "again") == (OK, "again")


def test_verifier_timeout_verdict():
    v = Verifier(workers=1, timeout=1.5, fast_path=False)
    # the real check task, slowed down: the verifier must give up at its timeout
    v.pool = WorkerPool("tests.sandbox_tasks:slow_check", workers=1, timeout=1.5)
    try:
        v.pool.start()
        t0 = time.monotonic()
        verdict = v.verify(r"\boxed{5}", "5")
        elapsed = time.monotonic() - t0
        assert verdict.correct is False
        assert verdict.reason == "timeout"
        assert elapsed < 1.5 + SLACK_S
        t0 = time.monotonic()
        verdict = v.verify(r"\boxed{5}", "5", timeout=0.5)
        assert verdict.reason == "timeout"
        assert time.monotonic() - t0 < 0.5 + SLACK_S
        assert v.pool.replaced == 2
    finally:
        v.close()


def test_memory_limit():
    with WorkerPool("tests.sandbox_tasks:allocate", workers=1, timeout=TIMEOUT_S, memory_mb=512) as pool:
        status, value = pool.call(2048)
        assert status == ERROR
        assert "MemoryError" in str(value)
        assert pool.call(1) == (OK, 1024 * 1024)
        status, _ = pool.call(4096)
        assert status == ERROR
        assert pool.call(8) == (OK, 8 * 1024 * 1024)


def test_task_exception_is_an_error_not_a_crash():
    with WorkerPool("tests.sandbox_tasks:fail", workers=1, timeout=TIMEOUT_S) as pool:
        status, value = pool.call("boom")
        assert status == ERROR and "ValueError" in value and "boom" in value
        assert pool.replaced == 0  # the worker survives its task's exceptions
        status, _ = pool.call("again")
        assert status == ERROR


CASES = [
    (r"\boxed{5}", "5", True),
    (r"\boxed{6}", "5", False),
    (r"\boxed{\frac{1}{2}}", "0.5", True),
    (r"\boxed{2\sqrt{2}}", r"\sqrt{8}", True),
    (r"\boxed{x^2+2x+1}", "(x+1)^2", True),
    (r"\boxed{1-\frac{1}{e}}", "1+1/e", False),
    (r"\boxed{3} \boxed{4}", "3", False),
    ("The answer is 5", "5", False),
]


def test_concurrent_threads_get_right_answers(verifier):
    n_threads = 16
    results: list = [None] * n_threads
    errors: list = []
    barrier = threading.Barrier(n_threads)

    def worker(k: int) -> None:
        try:
            barrier.wait(timeout=10)
            out = []
            for j in range(len(CASES)):
                response, gold, want = CASES[(k + j) % len(CASES)]
                out.append((verifier.verify(response, gold).correct, want))
            results[k] = out
        except Exception as e:  # surfaced below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors
    assert all(r is not None for r in results)
    for out in results:
        for got, want in out:
            assert got is want


def test_verify_batch_keeps_order(verifier):
    responses = [r for r, _, _ in CASES] * 3
    golds = [g for _, g, _ in CASES] * 3
    seen: list[int] = []
    verdicts = verifier.verify_batch(responses, golds, on_result=lambda i, v: seen.append(i))
    assert [v.correct for v in verdicts] == [w for _, _, w in CASES] * 3
    assert sorted(seen) == list(range(len(responses)))


def test_asyncio_gather_averify(verifier):
    async def main():
        return await asyncio.gather(*(verifier.averify(r, g) for r, g, _ in CASES))

    verdicts = asyncio.run(main())
    assert [v.correct for v in verdicts] == [w for _, _, w in CASES]


def test_closed_pool_answers_error():
    pool = WorkerPool("tests.sandbox_tasks:echo", workers=1, timeout=TIMEOUT_S)
    assert pool.call(1) == (OK, 1)
    pool.close()
    status, _ = pool.call(2)
    assert status == ERROR


def test_a_pool_closed_while_its_workers_boot_leaves_no_process():
    """start(wait=False) returns before the workers are ready; closing then kills them."""
    pool = WorkerPool("tests.sandbox_tasks:echo", workers=2, timeout=TIMEOUT_S)
    pool.start(wait=False)
    deadline = time.monotonic() + 10
    while not pool._starting and not pool._all and time.monotonic() < deadline:
        time.sleep(0.005)
    procs = [w.process for w in (*pool._starting, *pool._all)]
    assert procs, "no worker was started"
    pool.close()
    for p in procs:
        assert p.wait(timeout=5) is not None  # killed or exited, not left behind
    time.sleep(0.2)
    assert not pool._all and pool.call(1)[0] == ERROR


def test_background_start_serves_the_first_call():
    pool = WorkerPool("tests.sandbox_tasks:echo", workers=1, timeout=TIMEOUT_S)
    try:
        assert pool.start(wait=False) is pool
        assert pool.call(7) == (OK, 7)  # waits for the booting worker, starts no second one
        assert len(pool._all) == 1
    finally:
        pool.close()


def test_verify_batch_fast_path_needs_no_worker():
    v = Verifier(workers=1, timeout=TIMEOUT_S)
    try:
        seen: list[int] = []
        out = v.verify_batch(
            ["\\boxed{4}", "\\boxed{5}", "\\boxed{x+1}"], ["4", "4", "1+x"], on_result=lambda i, r: seen.append(i)
        )
        assert [r.correct for r in out] == [True, False, True] and sorted(seen) == [0, 1, 2]
        assert len(v.pool._all) == 1  # only the parsed pair started the worker
        fast = Verifier(workers=1, timeout=TIMEOUT_S)
        assert [r.correct for r in fast.verify_batch(["\\boxed{4}"], ["4"])] == [True]
        assert not fast.pool._started  # every check took the fast path
        fast.close()
    finally:
        v.close()
